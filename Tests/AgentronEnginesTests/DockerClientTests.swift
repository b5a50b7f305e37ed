import Testing

@testable import AgentronEngines

/// Image references as Docker's pull takes them: name and tag, or name and digest.
struct DockerReferenceTests {
    @Test func tagsDigestsAndRegistryPorts() {
        #expect(
            DockerClient.splitTag("ghcr.io/huggingface/text-generation-inference:3.3.5") == (
                "ghcr.io/huggingface/text-generation-inference", "3.3.5"
            ))
        #expect(DockerClient.splitTag("img") == ("img", "latest"))
        #expect(DockerClient.splitTag("host:5000/img") == ("host:5000/img", "latest"))
        #expect(DockerClient.splitTag("img@sha256:abc") == ("img", "sha256:abc"))
    }
}
