import AgentronConfig
import AgentronJSON
import Glibc

// The system daemon's providers.json is root's (0600: it holds keys). Users' apps read a
// copy of agentron's entries without the keys instead (docs/providers.md, "For users of
// the system daemon").
extension Registrar {
    /// Writes the public copy (mode 0644) when agentron's entries changed; `apiKey` becomes
    /// `apiKeyRequired: true`.
    func writePublicCopy(_ servers: [RegisteredServer]) {
        guard let path = config.publicCopyPath else { return }
        let entries: [JSONValue] = servers.map { server in
            var fields = ProvidersFile.fields(server).filter { $0.key != "apiKey" }
            if server.apiKey != nil { fields.append(("apiKeyRequired", .bool(true))) }
            return JSONRender.sortedObject(fields)
        }
        let signature = JSONRender.render(.array(entries), indent: "", unit: "", multiline: false)
        guard signature != publicCopyWritten || access(path, F_OK) != 0 else { return }
        let stamp = Self.timestamp()
        let document = JSONValue.object([
            (
                "providers",
                .array(
                    entries.map { entry in
                        guard case .object(let members) = entry else { return entry }
                        return JSONRender.sortedObject(members + [("updatedAt", .string(stamp))])
                    })
            ),
            ("version", .number(String(ProvidersFile.version))),
        ])
        let text = JSONRender.render(document, indent: "", unit: "  ", multiline: true) + "\n"
        do {
            try FileIO.writeAtomically(Array(text.utf8), to: path, mode: 0o644, owner: nil)
            publicCopyWritten = signature
        } catch {
            logger.warning("cannot write the public provider copy \(path): \(error)")
        }
    }
}
