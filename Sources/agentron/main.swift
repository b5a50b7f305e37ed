import AgentronCLI

if !AgentronCommand.answerAtOnce(Array(CommandLine.arguments.dropFirst())) {
    await AgentronCommand.runAsync()
}
