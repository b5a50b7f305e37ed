import AgentronHTTP
import FoundationEssentials
import Glibc

/// The Docker Engine API over its Unix socket, through the libcurl client (docs/engines.md:
/// TGI runs as a container driven by the API, not by shelling out to `docker`). It lives
/// with the drivers: running containers is how an engine runs, and the container shim,
/// the TGI driver and the daemon's leftover sweep are its only users.
/// `DOCKER_HOST=unix:///path` is honoured; TCP hosts are refused with a clear error.
public struct DockerClient: Sendable {
    public let socketPath: String

    /// API calls that answer at once; stop, wait, pull and log follows set their own.
    static let callTimeout: Duration = .seconds(30)
    static let connectTimeout: Duration = .seconds(5)

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// The client for `DOCKER_HOST`, or the default socket.
    public static func fromEnvironment(_ environment: [String: String]) throws(DockerError) -> DockerClient {
        guard let host = environment["DOCKER_HOST"], !host.isEmpty else {
            return DockerClient(socketPath: "/var/run/docker.sock")
        }
        guard host.hasPrefix("unix://") else {
            throw .unsupportedHost(host)
        }
        return DockerClient(socketPath: String(host.dropFirst("unix://".count)))
    }

    // MARK: Calls

    public struct Version: Decodable, Sendable {
        public var Version: String
        public var ApiVersion: String
    }

    public func version() async throws(DockerError) -> Version {
        let response = try await send("GET", "/version")
        return try decode(Version.self, response)
    }

    public func imageExists(_ image: String) async throws(DockerError) -> Bool {
        let response = try await send("GET", "/images/\(escape(image))/json", expect: [200, 404])
        return response.status == 200
    }

    /// Pulls an image, reporting each progress line's status.
    public func pull(_ image: String, progress: @Sendable (String) -> Void) async throws(DockerError) {
        let (name, tag) = Self.splitTag(image)
        let path = "/images/create?fromImage=\(escape(name))&tag=\(escape(tag))"
        let response: HTTPStreamingResponse
        do {
            response = try await HTTPClient.shared.stream(request("POST", path, timeout: nil))
        } catch {
            throw map(error)
        }
        var buffer: [UInt8] = []
        // A refused pull (no registry, unknown repository, denied) answers an HTTP error
        // with one `{"message": ...}` body; a pull that fails midway answers 200 and puts
        // `{"error": ..., "errorDetail": {"message": ...}}` in the stream. Both carry
        // Docker's own words, which are the only useful part of the failure.
        var body: [UInt8] = []
        do {
            for try await chunk in response.body {
                if response.status != 200 {
                    body += chunk
                    continue
                }
                buffer += chunk
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(buffer[..<newline])
                    buffer.removeSubrange(...newline)
                    if let status = try? JSONDecoder().decode(PullLine.self, from: Data(line)) {
                        if let error = status.errorDetail?.message ?? status.error ?? status.message {
                            throw DockerError.api(status: 500, message: "pulling \(image) failed: \(error)")
                        }
                        progress([status.status, status.id, status.progress].compactMap { $0 }.joined(separator: " "))
                    }
                }
            }
        } catch let error as DockerError {
            throw error
        } catch {
            throw map(error)
        }
        guard response.status == 200 else {
            throw .api(status: response.status, message: "pulling \(image) failed: \(Self.message(in: body))")
        }
    }

    struct PullLine: Decodable {
        struct Detail: Decodable { var message: String? }
        var status: String?
        var id: String?
        var progress: String?
        var error: String?
        var errorDetail: Detail?
        var message: String?
    }

    /// Docker's error text: the `message` of its JSON error body, else the body as text.
    static func message(in body: [UInt8]) -> String {
        struct Message: Decodable { var message: String }
        if let message = try? JSONDecoder().decode(Message.self, from: Data(body)) { return message.message }
        let text = String(String(decoding: body, as: UTF8.self).filter { $0 != "\n" && $0 != "\r" })
        return text.allSatisfy(\.isWhitespace) ? "(no message from Docker)" : text
    }

    /// The container runtimes dockerd knows (`/info` Runtimes): `nvidia` is there when the
    /// NVIDIA container toolkit registered itself with Docker.
    public func runtimes() async throws(DockerError) -> [String] {
        struct Info: Decodable { var Runtimes: [String: Runtime]? }
        struct Runtime: Decodable {}
        let response = try await send("GET", "/info")
        return try decode(Info.self, response).Runtimes.map { Array($0.keys).sorted() } ?? []
    }

    /// Creates a container; returns its id.
    public func createContainer(name: String, spec: ContainerSpec) async throws(DockerError) -> String {
        let body: [UInt8]
        do { body = Array(try JSONEncoder().encode(spec)) } catch {
            throw .api(status: 0, message: "cannot encode the container spec: \(error)")
        }
        let response = try await send("POST", "/containers/create?name=\(escape(name))", body: body, expect: [201])
        struct Created: Decodable { var Id: String }
        return try decode(Created.self, response).Id
    }

    public func start(_ id: String) async throws(DockerError) {
        _ = try await send("POST", "/containers/\(escape(id))/start", expect: [204, 304])
    }

    /// Blocks until the container exits; returns its exit code.
    public func wait(_ id: String) async throws(DockerError) -> Int {
        let response = try await send("POST", "/containers/\(escape(id))/wait", timeout: nil)
        struct Waited: Decodable { var StatusCode: Int }
        return try decode(Waited.self, response).StatusCode
    }

    /// `docker stop -t`: SIGTERM, then SIGKILL after `timeout` seconds.
    public func stop(_ id: String, timeout: Int) async throws(DockerError) {
        _ = try await send(
            "POST", "/containers/\(escape(id))/stop?t=\(timeout)", expect: [204, 304, 404],
            timeout: .seconds(Int64(timeout) + 30))
    }

    public func remove(_ id: String) async throws(DockerError) {
        _ = try await send("DELETE", "/containers/\(escape(id))?force=true&v=true", expect: [204, 404])
    }

    public struct ContainerSummary: Decodable, Sendable {
        public var Id: String
        public var Names: [String]
        public var State: String
        public var Labels: [String: String]?
    }

    /// Containers (running or not) carrying `label=value`.
    public func containers(label: String, value: String? = nil) async throws(DockerError) -> [ContainerSummary] {
        let filter = value.map { "\(label)=\($0)" } ?? label
        let filters = #"{"label":["\#(filter)"]}"#
        let response = try await send("GET", "/containers/json?all=true&filters=\(escape(filters))")
        return try decode([ContainerSummary].self, response)
    }

    /// The container's output as it is written, stdout and stderr demultiplexed.
    public func followLogs(_ id: String) async throws(DockerError) -> AsyncThrowingStream<[UInt8], any Error> {
        let path = "/containers/\(escape(id))/logs?follow=true&stdout=true&stderr=true"
        let response: HTTPStreamingResponse
        do {
            response = try await HTTPClient.shared.stream(request("GET", path, timeout: nil))
        } catch {
            throw map(error)
        }
        guard response.status == 200 else {
            throw .api(status: response.status, message: "cannot follow logs of \(id)")
        }
        let raw = response.body
        return AsyncThrowingStream { continuation in
            let task = Task {
                var demux = DockerLogDemultiplexer()
                do {
                    for try await chunk in raw {
                        let payload = demux.feed(chunk)
                        if !payload.isEmpty { continuation.yield(payload) }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: Transport

    private func request(_ method: String, _ path: String, body: [UInt8]? = nil, timeout: Duration?) -> HTTPRequest {
        HTTPRequest(
            method: method, url: "http://localhost\(path)", unixSocketPath: socketPath,
            headers: body == nil ? [] : [("Content-Type", "application/json")], body: body, timeout: timeout,
            connectTimeout: Self.connectTimeout)
    }

    private func send(
        _ method: String, _ path: String, body: [UInt8]? = nil, expect: Set<Int> = [200],
        timeout: Duration? = DockerClient.callTimeout
    ) async throws(DockerError) -> HTTPResponse {
        try checkSocket()
        let response: HTTPResponse
        do {
            response = try await HTTPClient.shared.execute(request(method, path, body: body, timeout: timeout))
        } catch {
            throw map(error)
        }
        guard expect.contains(response.status) else {
            throw .api(status: response.status, message: Self.message(in: response.body))
        }
        return response
    }

    /// Missing socket and permission denied get their own one-line errors before curl
    /// would blur them into "could not connect".
    private func checkSocket() throws(DockerError) {
        if access(socketPath, F_OK) != 0 { throw .notRunning(socket: socketPath) }
        if access(socketPath, R_OK | W_OK) != 0 { throw .permissionDenied(socket: socketPath) }
    }

    private func map(_ error: any Error) -> DockerError {
        switch error as? HTTPClientError {
        case .connectionRefused: .notRunning(socket: socketPath)
        case .some(let other): .transport("\(other)")
        case .none: .transport("\(error)")
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: HTTPResponse) throws(DockerError) -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(response.body)) } catch {
            throw .api(status: response.status, message: "unexpected answer from Docker: \(error)")
        }
    }

    private func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-_.~:/@".contains(c)) {
                out.append(c)
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    /// `ghcr.io/x/y:3.3` → (`ghcr.io/x/y`, `3.3`); no tag → `latest`. A port in the
    /// registry host (`host:5000/img`) is not a tag.
    /// A digest reference (`img@sha256:…`) is name and digest: Docker's `tag` parameter
    /// takes "a tag or digest".
    static func splitTag(_ image: String) -> (String, String) {
        if let at = image.lastIndex(of: "@") {
            return (String(image[..<at]), String(image[image.index(after: at)...]))
        }
        if let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") {
            return (String(image[..<colon]), String(image[image.index(after: colon)...]))
        }
        return (image, "latest")
    }
}

/// What `POST /containers/create` takes (the part agentron uses).
public struct ContainerSpec: Encodable, Sendable {
    public var Image: String
    public var Cmd: [String]
    public var Env: [String]
    public var Labels: [String: String]
    public var ExposedPorts: [String: [String: String]]
    public var StopTimeout: Int
    public var HostConfig: Host

    public struct Host: Encodable, Sendable {
        public var PortBindings: [String: [PortBinding]]
        public var Binds: [String]
        public var ShmSize: Int64
        public var Init: Bool
        public var DeviceRequests: [DeviceRequest]?
    }

    public struct PortBinding: Encodable, Sendable {
        public var HostIp: String
        public var HostPort: String
    }

    /// Docker's DeviceRequest: either DeviceIDs (these GPUs) or Count (-1: all of them),
    /// as `docker run --gpus 0,1` and `--gpus all` send it.
    public struct DeviceRequest: Encodable, Sendable {
        public var Driver: String
        public var Count: Int?
        public var DeviceIDs: [String]?
        public var Capabilities: [[String]]
    }

    /// Which GPUs the container gets.
    public enum GPUs: Sendable, Equatable {
        case none
        case all
        case indices([Int])
    }

    public init(
        image: String, command: [String], environment: [String], labels: [String: String], containerPort: Int,
        hostIP: String, hostPort: Int, binds: [String], shmSize: Int64, gpus: GPUs, stopTimeout: Int
    ) {
        Image = image
        Cmd = command
        Env = environment
        Labels = labels
        ExposedPorts = ["\(containerPort)/tcp": [:]]
        StopTimeout = stopTimeout
        HostConfig = Host(
            PortBindings: ["\(containerPort)/tcp": [PortBinding(HostIp: hostIP, HostPort: String(hostPort))]],
            Binds: binds, ShmSize: shmSize, Init: true, DeviceRequests: Self.deviceRequests(gpus))
    }

    static func deviceRequests(_ gpus: GPUs) -> [DeviceRequest]? {
        switch gpus {
        case .none: nil
        case .all: [DeviceRequest(Driver: "", Count: -1, Capabilities: [["gpu"]])]
        case .indices(let list) where list.isEmpty: nil
        case .indices(let list): [DeviceRequest(Driver: "", DeviceIDs: list.map(String.init), Capabilities: [["gpu"]])]
        }
    }
}

public enum DockerError: Error, CustomStringConvertible, Sendable, Equatable {
    case notRunning(socket: String)
    case permissionDenied(socket: String)
    case unsupportedHost(String)
    case api(status: Int, message: String)
    case transport(String)

    public var description: String {
        switch self {
        case .notRunning(let socket):
            "cannot reach the Docker daemon at unix://\(socket): is dockerd running? (start it, or set DOCKER_HOST)"
        case .permissionDenied(let socket):
            "permission denied on the Docker socket \(socket): add this user to the docker group, or run agentrond as root"
        case .unsupportedHost(let host):
            "DOCKER_HOST=\(host) is not supported: agentron talks to Docker over a Unix socket (unix:///path)"
        case .api(let status, let message):
            "Docker answered \(status): \(message)"
        case .transport(let message):
            "Docker API: \(message)"
        }
    }
}

/// Docker's log stream for a container without a TTY: frames of an 8-byte header
/// (stream type, three zero bytes, big-endian payload length) then the payload.
struct DockerLogDemultiplexer {
    private var buffer: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [UInt8] {
        buffer += bytes
        var out: [UInt8] = []
        while buffer.count >= 8 {
            let length = Int(buffer[4]) << 24 | Int(buffer[5]) << 16 | Int(buffer[6]) << 8 | Int(buffer[7])
            guard buffer.count >= 8 + length else { break }
            out += buffer[8..<(8 + length)]
            buffer.removeFirst(8 + length)
        }
        return out
    }
}
