print("agentrond")
