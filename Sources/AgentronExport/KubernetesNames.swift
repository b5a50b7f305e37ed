import AgentronCore

/// Names and label values Kubernetes accepts, made from agentron's (docs/kubernetes.md,
/// "Names and labels").
public enum KubernetesNames {
    /// The longest DNS-1123 label, which a Service's name must also be.
    static let maxLabel = 63

    /// A server's name as a Deployment and Service name: a DNS-1035 label (lower-case
    /// letters, digits, `-`; a letter first; at most 63). `qwen2.5-1.5b-instruct` →
    /// `qwen2-5-1-5b-instruct`. A name that had to be cut gets a hash of the whole, so two
    /// long names that share their start stay apart.
    public static func objectName(_ name: String) -> String {
        var out = ""
        for character in name.lowercased() {
            let keep = character.isASCII && (character.isLetter || character.isNumber)
            if keep {
                out.append(character)
            } else if !out.isEmpty, out.last != "-" {
                out.append("-")
            }
        }
        while out.hasSuffix("-") { out.removeLast() }
        if out.first.map({ !$0.isLetter }) ?? true { out = "m-" + out }
        while out.hasSuffix("-") { out.removeLast() }
        guard out.count > maxLabel else { return out }
        let hash = String(fnv1a(name), radix: 16)
        var cut = String(out.prefix(maxLabel - hash.count - 1))
        while cut.hasSuffix("-") { cut.removeLast() }
        return cut + "-" + hash
    }

    /// Text as a label value: at most 63 of `[A-Za-z0-9._-]`, beginning and ending with a
    /// letter or digit; anything else becomes `_` (`Qwen/Qwen2.5-1.5B-Instruct` →
    /// `Qwen_Qwen2.5-1.5B-Instruct`). The full text goes into an annotation beside it.
    public static func labelValue(_ text: String) -> String {
        var out = String(
            text.map { character -> Character in
                character.isASCII && (character.isLetter || character.isNumber || "._-".contains(character))
                    ? character : "_"
            }.prefix(maxLabel))
        let isAlphanumeric: (Character) -> Bool = { $0.isASCII && ($0.isLetter || $0.isNumber) }
        while let first = out.first, !isAlphanumeric(first) { out.removeFirst() }
        while let last = out.last, !isAlphanumeric(last) { out.removeLast() }
        return out
    }

    /// A DNS-1123 label: a namespace's name.
    public static func isLabel(_ text: String) -> Bool {
        guard let first = text.first, let last = text.last, text.count <= maxLabel else { return false }
        let isAlphanumeric: (Character) -> Bool = { $0.isASCII && ($0.isLowercase || $0.isNumber) }
        return isAlphanumeric(first) && isAlphanumeric(last) && text.allSatisfy { isAlphanumeric($0) || $0 == "-" }
    }

    /// A DNS-1123 subdomain: dot-separated labels, at most 253 (a storage class's name).
    public static func isSubdomain(_ text: String) -> Bool {
        text.count <= 253
            && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel(String($0)) }
    }

    static func fnv1a(_ text: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return hash
    }
}

/// A profile's times as a probe's and a pod's whole seconds (docs/kubernetes.md, "Probes").
public enum KubernetesProbeTiming {
    /// The longest period a startup probe uses; shorter when it must divide the timeout.
    static let startupPeriod = 10

    /// Whole seconds, rounded up, at least `minimum`, at most Int32's largest (what every
    /// seconds field of the API holds). Never traps: a span is saturated milliseconds.
    public static func seconds(_ span: TimeSpan, minimum: Int = 1) -> Int {
        let milliseconds = span.milliseconds
        let whole = milliseconds / 1000 + (milliseconds % 1000 > 0 ? 1 : 0)
        return Int(min(max(whole, Int64(minimum)), Int64(Int32.max)))
    }

    /// A startup probe's period and failure threshold whose product is the startup timeout
    /// (in whole seconds, rounded up): the longest period up to 10 s that divides it.
    /// 30m → 10 s × 180; 95s → 5 s × 19; 7s → 7 s × 1; 97s → 1 s × 97.
    public static func startup(_ timeout: TimeSpan) -> (periodSeconds: Int, failureThreshold: Int) {
        let total = seconds(timeout)
        let period = stride(from: min(startupPeriod, total), through: 1, by: -1).first { total % $0 == 0 } ?? 1
        return (period, total / period)
    }
}
