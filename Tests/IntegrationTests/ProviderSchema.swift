import Foundation
import Testing

/// Checks a provider file against docs/providers.schema.json with Python's `jsonschema`
/// (apt: python3-jsonschema; scripts/test installs it).
enum ProviderSchema {
    /// docs/providers.schema.json, found from this file: Tests/IntegrationTests/<file>.
    static let schemaPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs/providers.schema.json").path

    /// Records an issue naming the file when it does not validate.
    static func expectValid(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[2]))
            jsonschema.Draft202012Validator.check_schema(schema)
            errors = [e.message + " at " + "/".join(map(str, e.absolute_path)) for e in jsonschema.Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[1])))]
            print("\\n".join(errors))
            sys.exit(1 if errors else 0)
            """
        let (code, text) = try Harness.capture("/usr/bin/python3", ["-c", script, path, schemaPath])
        #expect(code == 0, "\(path) does not match the schema: \(text)", sourceLocation: sourceLocation)
    }
}
