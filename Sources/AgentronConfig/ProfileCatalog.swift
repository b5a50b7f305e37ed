import AgentronCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The profile search path: built-in profiles first, then each configured directory in
/// order (`AgentronPaths.profileDirectories`: system, then user). A later profile with the
/// same name shadows an earlier one, so a user can override a built-in by copying it.
///
/// The directories are read on every call: profiles are edited while the daemon runs, and
/// a directory of a few YAML files is cheap to read.
public struct ProfileCatalog: Sendable {
    public enum Origin: Sendable, Equatable, Hashable, CustomStringConvertible {
        /// Shipped with agentron (`share/agentron/profiles`, or the source tree's `profiles/`).
        case builtin
        /// A configured directory, such as `/etc/agentron/profiles`.
        case directory(String)

        public var description: String {
            switch self {
            case .builtin: "builtin"
            case .directory(let path): path
            }
        }
    }

    /// One profile file. Invalid files are listed with their error rather than hidden, so
    /// `agentron profile ls` shows why a profile is missing.
    public struct Entry: Sendable, Equatable {
        /// The profile's name, or the file's base name when it did not parse.
        public var name: String
        public var path: String
        public var origin: Origin
        public var result: Result<Profile, ProfileError>
        /// Files with the same name earlier in the search path that this one hides.
        public var shadows: [String]

        public init(
            name: String, path: String, origin: Origin, result: Result<Profile, ProfileError>, shadows: [String] = []
        ) {
            self.name = name
            self.path = path
            self.origin = origin
            self.result = result
            self.shadows = shadows
        }

        public var profile: Profile? {
            if case .success(let profile) = result { return profile }
            return nil
        }

        public var error: ProfileError? {
            if case .failure(let error) = result { return error }
            return nil
        }
    }

    public var builtinDirectory: String?
    public var directories: [String]

    public init(builtinDirectory: String?, directories: [String]) {
        self.builtinDirectory = builtinDirectory
        self.directories = directories
    }

    /// The catalog for this process: built-ins found next to the executable, then `paths`.
    public init(paths: AgentronPaths) {
        self.init(builtinDirectory: AgentronPaths.builtinProfileDirectory(), directories: paths.profileDirectories)
    }

    /// The search path in precedence order (lowest first).
    public var searchPath: [(directory: String, origin: Origin)] {
        var out: [(String, Origin)] = []
        if let builtinDirectory { out.append((builtinDirectory, .builtin)) }
        for directory in directories { out.append((directory, .directory(directory))) }
        return out
    }

    /// The profile that wins for each name, sorted by name. Missing directories are skipped.
    public func entries() -> [Entry] {
        var byName: [String: Entry] = [:]
        for (directory, origin) in searchPath {
            for path in Self.profileFiles(in: directory) {
                let result: Result<Profile, ProfileError>
                do throws(ProfileError) {
                    result = .success(try Profile.load(path: path))
                } catch {
                    result = .failure(error)
                }
                let name = (try? result.get())?.name ?? Profile.baseName(ofProfileFile: path)
                var entry = Entry(name: name, path: path, origin: origin, result: result)
                if let earlier = byName[name] {
                    entry.shadows = earlier.shadows + [earlier.path]
                }
                byName[name] = entry
            }
        }
        return byName.values.sorted { $0.name < $1.name }
    }

    /// A profile by explicit path (contains `/` or ends in `.yaml`/`.yml`) or by name.
    /// A name whose winning file is invalid throws that file's error.
    public func resolve(_ nameOrPath: String) throws(ProfileError) -> Profile {
        if Self.looksLikePath(nameOrPath) {
            return try Profile.load(path: nameOrPath)
        }
        let all = entries()
        if let entry = all.first(where: { $0.name == nameOrPath }) {
            return try entry.result.get()
        }
        throw unknownName(nameOrPath, known: all.map(\.name))
    }

    static func looksLikePath(_ text: String) -> Bool {
        text.contains("/") || text.hasSuffix(".yaml") || text.hasSuffix(".yml")
    }

    func unknownName(_ name: String, known: [String]) -> ProfileError {
        var message = "no profile named \(YAMLNode.quoteForMessage(name))"
        let close = Self.closeNames(to: name, in: known)
        if !close.isEmpty {
            let quoted = close.map { YAMLNode.quoteForMessage($0) }
            message +=
                quoted.count == 1
                ? "; did you mean \(quoted[0])?" : "; did you mean one of \(quoted.joined(separator: ", "))?"
        } else if known.isEmpty {
            let places = searchPath.map(\.directory).joined(separator: ", ")
            message += "; no profiles found in \(places.isEmpty ? "any directory" : places)"
        } else {
            let shown = known.prefix(12).joined(separator: ", ")
            message += "; available: \(shown)\(known.count > 12 ? ", …" : "")"
        }
        message += " (see: agentron profile ls, or pass a path to a .yaml file)"
        return ProfileError(file: "", message: message)
    }

    /// Names within a few edits, or containing what was typed (`qwen` → every Qwen profile).
    static func closeNames(to name: String, in known: [String], limit: Int = 5) -> [String] {
        var out = Spelling.closest(to: name, in: known, limit: limit)
        let needle = name.lowercased()
        if needle.count >= 3 {
            for candidate in known.sorted() where out.count < limit && !out.contains(candidate) {
                if candidate.lowercased().contains(needle) { out.append(candidate) }
            }
        }
        return out
    }

    /// `*.yaml` and `*.yml` regular files (symlinks followed), sorted, hidden files skipped.
    static func profileFiles(in directory: String) -> [String] {
        profileFileStats(in: directory).map(\.path)
    }

    /// The same files with what `stat` says of each (ProfileCatalogCache's stamps).
    static func profileFileStats(in directory: String) -> [(path: String, info: stat)] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard !name.hasPrefix("."), name.hasSuffix(".yaml") || name.hasSuffix(".yml") else { continue }
            names.append(name)
        }
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        return names.sorted().compactMap { name in
            var info = stat()
            guard stat(base + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
            return (base + name, info)
        }
    }
}
