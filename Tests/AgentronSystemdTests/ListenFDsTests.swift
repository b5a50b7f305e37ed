import AgentronSystemd
import Glibc
import Testing

@Suite struct ListenFDsTests {
    @Test(
        arguments: [
            // (environment, expected descriptors) for a process whose pid is 4242
            ([:], []),
            (["LISTEN_PID": "4242", "LISTEN_FDS": "1"], [3]),
            (["LISTEN_PID": "4242", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "a:b:c"], [3, 4, 5]),
            // Meant for another process (inherited from a parent that was the target).
            (["LISTEN_PID": "4243", "LISTEN_FDS": "1"], []),
            (["LISTEN_FDS": "1"], []),
            (["LISTEN_PID": "4242"], []),
            (["LISTEN_PID": "4242", "LISTEN_FDS": "0"], []),
            (["LISTEN_PID": "4242", "LISTEN_FDS": "-1"], []),
            (["LISTEN_PID": "4242", "LISTEN_FDS": "two"], []),
            (["LISTEN_PID": "self", "LISTEN_FDS": "1"], []),
        ] as [([String: String], [Int32])])
    func parseFollowsSdListenFds(environment: [String: String], expected: [Int32]) {
        #expect(ListenFDs.parse(environment: environment, pid: 4242) == expected)
    }

    @Test func takeIgnoresDescriptorsMeantForAnotherProcess() {
        #expect(ListenFDs.take(environment: ["LISTEN_PID": "\(getpid() + 1)", "LISTEN_FDS": "1"]).isEmpty)
        #expect(getenv("LISTEN_FDS") == nil)
    }

    @Test func recognisesAListeningUnixStreamSocket() throws {
        let path = "/tmp/agentron-listen-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        defer { unlink(path) }
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(bound == 0)
        #expect(!ListenFDs.isListeningUnixStream(listener), "bound, not listening yet")
        try #require(listen(listener, 8) == 0)
        #expect(ListenFDs.isListeningUnixStream(listener))

        let datagram = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(datagram) }
        #expect(!ListenFDs.isListeningUnixStream(datagram))
        let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(tcp) }
        try #require(listen(tcp, 8) == 0)
        #expect(!ListenFDs.isListeningUnixStream(tcp), "TCP is not the control socket")
        #expect(!ListenFDs.isListeningUnixStream(-1))
    }
}
