import AgentronCore

/// The child's environment is built, not inherited (docs/configuration.md, "The engine's environment"): the profile's env on top of
/// a small allow-list from the daemon's. Never NOTIFY_SOCKET, WATCHDOG_* or LISTEN_*: an
/// engine that saw them would talk to systemd as if it were the daemon.
public enum ChildEnvironment {
    /// Variables passed through by exact name.
    static let allowedNames: Set<String> = [
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
        "XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV",
        "HF_HOME", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "TRANSFORMERS_CACHE",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
        "OMP_NUM_THREADS", "DOCKER_HOST",
    ]
    /// Variables passed through by prefix: GPU runtimes, engines' own settings, locale.
    static let allowedPrefixes = ["CUDA_", "NVIDIA_", "ROCR_", "HIP_", "HF_HUB_", "VLLM_", "OLLAMA_", "LC_", "NCCL_"]
    /// Never passed, even when a prefix would allow them.
    static let deniedNames: Set<String> = [
        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
    ]

    public static func build(daemon: [String: String], profile: Profile) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in daemon where isAllowed(key) { result[key] = value }
        if !profile.gpus.isEmpty {
            result["CUDA_VISIBLE_DEVICES"] = profile.gpus.map(String.init).joined(separator: ",")
        }
        for (key, value) in profile.env where !deniedNames.contains(key) { result[key] = value }
        if result["PATH"] == nil { result["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        return result
    }

    static func isAllowed(_ key: String) -> Bool {
        if deniedNames.contains(key) { return false }
        return allowedNames.contains(key) || allowedPrefixes.contains { key.hasPrefix($0) }
    }
}
