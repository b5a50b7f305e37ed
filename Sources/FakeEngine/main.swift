// fake-engine: a test fixture that behaves like a model server's CLI and HTTP API, so
// agentron's integration tests can supervise "vLLM" on a machine with no GPU.
//
// Mode: the basename of argv[0] (`vllm`, `ollama` or `text-generation-launcher`, via a
// symlink or copy of that name), or FAKE_ENGINE_MODE=vllm|ollama|tgi (which wins); anything
// else exits 2.
//
// vllm mode accepts what `vllm serve` does for agentron:
//   vllm --version | -v                         prints 0.11.0, exit 0
//   vllm serve <model> [--model M] [--host H] [--port P] [--served-model-name N [N ...]]
//              [--api-key K [K ...]] [--max-model-len L] [any other --flag [value]]
//   (--x=y and --x y; --x_y means --x-y; a flag followed by another flag or the end, or a
//   known store_true flag such as --enforce-eager, takes no value.) No model → argparse
//   usage error on stderr, exit 2. VLLM_API_KEY is the --api-key fallback.
// It logs like vLLM 0.11 ("(APIServer pid=N) INFO MM-DD hh:mm:ss [file:line] ..."), binds its
// port at once but listens only after loading, starts a VLLM::EngineCore child (same process
// group, survives a SIGKILLed parent, exits on SIGTERM), serves /health, /ping, /load,
// /version, /metrics, /v1/models, /v1/chat/completions, /v1/completions, and on
// SIGTERM/SIGINT stops the EngineCore and exits 0.
//
// Fault knobs (environment):
//   FAKE_LOAD_SECONDS=0.2         seconds from start to listening; connections are refused
//                                 until then (the port is already bound).
//   FAKE_EXIT_AT_START=bad-model  after ~0.1 s print vLLM's unknown-model traceback ending
//                                 "OSError: <model> is not a local folder and is not a valid
//                                 model identifier listed on 'https://huggingface.co/models'",
//                                 exit 1. Any other text: print it, exit 1.
//   FAKE_CRASH_AFTER=S            S seconds after listening: log an error and exit with
//   FAKE_CRASH_CODE=1             this code (the EngineCore is stopped first), or with
//   FAKE_CRASH_SIGNAL=N           signal N instead (e.g. 9: nothing is cleaned up, the
//                                 EngineCore is orphaned).
//   FAKE_HANG_AFTER=S             S seconds after listening: accept and read, never answer
//                                 any request (/health included). Alive but hung.
//   FAKE_IGNORE_SIGTERM=1         log SIGTERM/SIGINT and keep running; the EngineCore ignores
//                                 SIGTERM too. Only SIGKILL stops them.
//   FAKE_ESCAPE_HELPER=1          at start, spawn a helper that setsid()s into its own
//                                 session and idles forever (comm "fake-escaped"); it
//                                 survives the engine's death and a group kill.
//   FAKE_NO_ENGINE_CORE=1         no EngineCore child.
//   FAKE_ENGINECORE_HOLDS_PORT=1  the EngineCore inherits the API socket (as a forked
//                                 EngineCore does): after a SIGKILLed API server the orphan
//                                 keeps the port, so connections hang instead of failing.
//   FAKE_PID_FILE=path            once children are spawned, write
//                                 "<main pid> <enginecore pid> <helper pid>" (0 = none).
//   An invalid number in a knob is refused: message on stderr, exit 2.
//
// ollama mode accepts what agentron runs, `ollama serve` (settings from the environment:
// OLLAMA_HOST host:port, default 127.0.0.1:11434; OLLAMA_MODELS; OLLAMA_KEEP_ALIVE, default
// 5m), plus `ollama -v` and the hidden `ollama runner ...` it starts itself. It logs like
// Ollama 0.12 (slog `time=... level=INFO source=routes.go:N msg="..."` on stderr, gin's
// `[GIN] ...` access lines on stdout), listens at once and serves /, /api/version,
// /api/tags, /api/pull (NDJSON: pulling manifest, pulling <digest> with total/completed,
// verifying sha256 digest, writing manifest, success), /api/generate and /api/chat (no
// prompt: load, keep_alive 0: unload), /api/ps, /api/delete, /v1/models and
// /v1/chat/completions (OpenAI shapes; a model not pulled → 404 not_found_error). A load
// starts a runner child `ollama runner --model <blob> --port <n>` (comm "ollama"); on
// SIGTERM/SIGINT the server stops its runners and exits 0. A port in use →
// "Error: listen tcp H:P: bind: address already in use", exit 1.
//   FAKE_PULL_SECONDS=0.5         how long the model layer's download takes.
//   FAKE_PULL_UNKNOWN=a,b         names the registry lacks (also any name containing
//                                 "does-not-exist"): 200, "pulling manifest", then
//                                 {"error":"pull model manifest: file does not exist"}.
//   FAKE_MODEL_BYTES=N            size of the model layer (default guessed from the name).
//   FAKE_LOAD_SECONDS=0.2         how long a model load takes (not a listen delay here).
//   FAKE_NO_RUNNER=1              load without a runner child.
//   FAKE_PULL_SPLIT=1             send each pull line in two chunks cut mid-JSON, 10 ms
//                                 apart (clients must reassemble lines across reads).
//   FAKE_REGISTRY_UNREACHABLE=1   every pull (of a model on disk too) fails at the manifest
//                                 as offline: 200, "pulling manifest", then {"error":"pull
//                                 model manifest: Get \"https://<host>/v2/<ns>/<model>/
//                                 manifests/<tag>\": dial tcp: lookup <host>: no such host"}.
//   FAKE_EMBEDDING_MODELS=a,b     names that only embed (also any name containing "embed"):
//                                 /api/show lists ["embedding"], /api/generate and /api/chat
//                                 answer 400 "\"<model>\" does not support generate" (chat),
//                                 /api/embed loads them.
// Like Ollama, serve exits 1 with "Error: $HOME is not defined" when HOME is unset or
// empty, and "Error: accepts 0 arg(s), received N" when given arguments. /api/show answers
// 404 "model '<name>' not found" for a model not in the store, else details and
// capabilities; /api/embed with no input loads the model and answers "embeddings":[].
//   FAKE_CRASH_AFTER/_CODE/_SIGNAL, FAKE_HANG_AFTER, FAKE_IGNORE_SIGTERM (runners ignore it
//   too), FAKE_ESCAPE_HELPER, FAKE_EXIT_AT_START (prints "Error: <text>", exit 1) and
//   FAKE_PID_FILE ("<server> <first runner> <helper>", rewritten when a runner starts) as
//   in vllm mode. A crash leaves the runners orphaned. Pulled models persist only under an
//   explicit OLLAMA_MODELS (manifests/<host>/<namespace>/<model>/<tag>).
//
// tgi mode is `text-generation-launcher` as TGI 3.x's Docker image runs it (the image
// scripts/tgi-test-image builds puts this binary there as the ENTRYPOINT):
//   text-generation-launcher --model-id M [--hostname H] [-p|--port P] [--api-key K]
//                            [--num-shard N] [--max-input-tokens N] [--max-total-tokens N]
//                            [any other --flag [value]: accepted and ignored]
//   text-generation-launcher --version | -V     prints "text-generation-launcher 3.3.6"
//   (--x=y and --x y; env fallbacks MODEL_ID, PORT (default 80, as the image sets),
//   HOSTNAME (default 0.0.0.0; like the real router, a value that is not an IP literal,
//   such as Docker's container id, logs "Invalid hostname, defaulting to 0.0.0.0"),
//   API_KEY, NUM_SHARD, MAX_INPUT_TOKENS, MAX_TOTAL_TOKENS, HUGGINGFACE_HUB_CACHE.) No model
//   id → clap usage error on stderr, exit 2.
// It logs like TGI on stdout ("2025-11-25T10:00:00.123456Z  INFO text_generation_launcher:
// Args {...}", "INFO download: ...: Starting check and download process for M",
// "INFO shard-manager: ...: Starting shard rank=0", "INFO text_generation_router::server:
// ...: Connected"), binds and listens only when loading is done (connections refused
// until then; through Docker's userland proxy a client sees an accepted connection that is
// reset at once), serves GET /, /health, /ping (200, empty), /info, /v1/models (id = model
// id), /metrics and POST /generate, /generate_stream, /, /v1/chat/completions,
// /v1/completions (JSON and SSE, events written "data:{...}" without a space, chat/
// completions streams end with "data:[DONE]"; the request's "model" is ignored; a body
// without Content-Type: application/json → 415, as axum does). --api-key guards only the
// generation routes. On SIGTERM/SIGINT it logs the launcher's shutdown (webserver, then
// shards) and exits 0. Knobs, as in vllm mode:
//   FAKE_LOAD_SECONDS=0.2         start → listening ("Waiting for shard to be ready..." every 10 s).
//   FAKE_EXIT_AT_START=bad-model  after ~0.1 s: "ERROR download: ...: Download encountered an
//                                 error:" with huggingface_hub's RepositoryNotFoundError
//                                 (401, "Repository Not Found for url: https://huggingface.co/
//                                 api/models/M/revision/main."), then "Error: DownloadError" on
//                                 stderr, exit 1.
//                =gated-model     the same with GatedRepoError ("Cannot access gated repo ...
//                                 Please log in."), unless HF_TOKEN (or HUGGING_FACE_HUB_TOKEN)
//                                 is set: then it starts normally.
//                =other text      that text as the download error, exit 1.
//   FAKE_CRASH_AFTER/_CODE        a shard dies (CUDA error): "Shard 0 crashed", shutdown lines,
//                                 "Error: ShardFailed", exit with the code (default 1).
//   FAKE_CRASH_SIGNAL, FAKE_HANG_AFTER, FAKE_IGNORE_SIGTERM, FAKE_ESCAPE_HELPER as in vllm
//   mode; FAKE_PID_FILE gets "<launcher> 0 <helper>". A port in use at the end of loading →
//   the router's panic, "Webserver Crashed", "Error: WebserverFailed", exit 1. No child
//   processes (shards and router are only log lines).
//
// Processes: the EngineCore and the helper are this binary re-executed from /proc/self/exe
// with a hidden argv[1] (ChildRole) and their comm set (VLLM::EngineCor, fake-escaped).

#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments

if arguments.count >= 2, let role = ChildRole(rawValue: arguments[1]) {
    role.run()
}

/// The engines the fixture can impersonate.
enum EngineMode: String {
    case vllm
    case ollama
    case tgi

    /// FAKE_ENGINE_MODE, else argv[0]'s basename.
    static func select(argv0: String, environment: (String) -> String?) -> Result<EngineMode, ModeError> {
        let requested = environment("FAKE_ENGINE_MODE").flatMap { $0.isEmpty ? nil : $0 }
            ?? String(argv0.split(separator: "/").last ?? "")
        if requested == "text-generation-launcher" { return .success(.tgi) }
        guard let mode = EngineMode(rawValue: requested) else { return .failure(.unknown(requested)) }
        return .success(mode)
    }

    enum ModeError: Error, CustomStringConvertible {
        case unknown(String)

        var description: String {
            switch self {
            case .unknown(let name):
                "fake-engine: unknown mode '\(name)'; run it through a symlink named vllm, ollama or text-generation-launcher, or set FAKE_ENGINE_MODE=vllm"
            }
        }
    }

    func run(arguments: [String], environment: @escaping (String) -> String?) -> Never {
        switch self {
        case .vllm:
            runVLLM(arguments: arguments, environment: environment)
        case .ollama:
            runOllama(argv0: CommandLine.arguments.first ?? "ollama", arguments: arguments, environment: environment)
        case .tgi:
            runTGI(arguments: arguments, environment: environment)
        }
    }
}

func environmentValue(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

func runVLLM(arguments: [String], environment: @escaping (String) -> String?) -> Never {
    let command: VLLMCommand
    do {
        command = try VLLMArguments.parse(arguments, environment: environment)
    } catch {
        Console.err(error.description)
        exit(2)
    }
    switch command {
    case .version:
        Console.out(VLLM.version)
        exit(0)
    case .help(let text):
        Console.out(text)
        exit(0)
    case .serve(let options):
        let knobs: FaultKnobs
        do {
            knobs = try FaultKnobs.fromEnvironment(environment)
        } catch {
            Console.err(error.description)
            exit(2)
        }
        VLLMServer(options: options, knobs: knobs).run()
    }
}

switch EngineMode.select(argv0: arguments.first ?? "", environment: environmentValue) {
case .success(let mode):
    mode.run(arguments: Array(arguments.dropFirst()), environment: environmentValue)
case .failure(let error):
    Console.err(error.description)
    exit(2)
}
