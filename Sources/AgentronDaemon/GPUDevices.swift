import AgentronCore
import Glibc

/// The device nodes a GPU profile needs before its engine may start (issue #6: boot must
/// not race the GPU driver).
enum GPUDevices {
    /// `/dev/nvidiactl` and `/dev/nvidia<i>` for each GPU the profile names.
    static func required(by profile: Profile) -> [String] {
        guard !profile.gpus.isEmpty else { return [] }
        return ["/dev/nvidiactl"] + profile.gpus.map { "/dev/nvidia\($0)" }
    }

    static func missing(_ devices: [String]) -> [String] {
        devices.filter { access($0, F_OK) != 0 }
    }

    /// Polls until every device exists or `timeout` passes; returns those still missing.
    /// `waiting` is told once, when the first check finds some missing.
    static func waitFor(
        _ devices: [String], timeout: Duration, poll: Duration, waiting: @Sendable ([String]) -> Void
    ) async -> [String] {
        var absent = missing(devices)
        guard !absent.isEmpty else { return [] }
        waiting(absent)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while !absent.isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: poll)
            absent = missing(devices)
        }
        return absent
    }
}
