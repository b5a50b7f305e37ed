/// agentron's version, shown by `--version` and `GET /v1/daemon`.
public let agentronVersion = "0.1.0"
