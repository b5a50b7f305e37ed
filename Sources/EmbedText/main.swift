// Build-time tool for the EmbedUnits plugin: writes a Swift file with the text of some files
// as string literals, so a binary carries them without reading anything at run time.
//
//     EmbedText <output.swift> <EnumName> <name>=<file>...
//
// Runs on the build machine only; it is not installed.
import Glibc

func fail(_ message: String) -> Never {
    let line = Array("EmbedText: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    exit(1)
}

func readFile(_ path: String) -> String {
    guard let file = fopen(path, "rb") else { fail("cannot read \(path): \(String(cString: strerror(errno)))") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        bytes += buffer[0..<count]
        if count < buffer.count { break }
    }
    guard ferror(file) == 0 else { fail("cannot read \(path): \(String(cString: strerror(errno)))") }
    guard let text = String(validating: bytes, as: UTF8.self) else { fail("\(path) is not UTF-8 text") }
    return text
}

/// One line of Swift: every character that is not plain printable text is escaped.
func literal(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count >= 2 else { fail("usage: EmbedText <output.swift> <EnumName> <name>=<file>...") }
let output = arguments[arguments.startIndex]
let enumName = arguments[arguments.startIndex + 1]

var source = "// Generated at build time by EmbedText from the files named below; edit those, not this.\n\n"
source += "enum \(enumName) {\n"
for pair in arguments.dropFirst(2) {
    guard let equals = pair.firstIndex(of: "=") else { fail("expected <name>=<file>, got \(pair)") }
    let name = String(pair[..<equals])
    let path = String(pair[pair.index(after: equals)...])
    let file = path.split(separator: "/").last.map(String.init) ?? path
    source += "    /// \(file)\n"
    source += "    static let \(name) = \(literal(readFile(path)))\n"
}
source += "}\n"

// Written whole or not at all: the build system must never compile half a file.
let temporary = output + ".tmp"
guard let file = fopen(temporary, "wb") else { fail("cannot write \(temporary): \(String(cString: strerror(errno)))") }
let bytes = Array(source.utf8)
let written = fwrite(bytes, 1, bytes.count, file)
guard fclose(file) == 0, written == bytes.count else {
    fail("cannot write \(temporary): \(String(cString: strerror(errno)))")
}
guard rename(temporary, output) == 0 else { fail("cannot replace \(output): \(String(cString: strerror(errno)))") }
