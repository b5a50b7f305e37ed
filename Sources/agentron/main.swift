print("agentron")
