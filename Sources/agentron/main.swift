import AgentronCLI

await AgentronCommand.runAsync()
