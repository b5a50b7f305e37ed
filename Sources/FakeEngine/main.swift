#if canImport(Glibc)
    import Glibc
#endif

// fake-engine: a test fixture that behaves like a model server's CLI and HTTP API, so
// agentron's integration tests can supervise vLLM, Ollama and TGI on a machine with no
// GPU. It is faithful where agentron depends on it (docs/testing.md, docs/engines.md).
//
// Mode: the basename of argv[0] (`vllm`, `ollama`, `text-generation-launcher`: a symlink
// or a copy of that name), or FAKE_ENGINE_MODE=vllm|ollama|tgi, which wins; else exit 2.
//
// vllm: `vllm --version` prints 0.11.0. `vllm serve <model> [--model M] [--host H]
//   [--port P] [--served-model-name N ...] [--api-key K ...] [--max-model-len L] [any other
//   --flag [value]]` (--x=y and --x y, --x_y is --x-y; VLLM_API_KEY is the --api-key
//   fallback; no model: argparse's usage error, exit 2). It logs like vLLM 0.11 ("(APIServer
//   pid=N) INFO MM-DD hh:mm:ss [file:line] ...", uvicorn's access log), binds its port at once
//   but listens only once loaded, starts a VLLM::EngineCore child (same process group,
//   survives a SIGKILLed parent, exits on SIGTERM), and serves /health, /version, /v1/models,
//   /v1/chat/completions and /v1/completions (JSON or SSE; --api-key guards /v1; an unknown
//   model is 404). A taken port: a traceback ending "OSError: [Errno 98] Address already in
//   use", exit 1. SIGTERM/SIGINT: stops the EngineCore, exit 0.
// ollama: `ollama -v` (client version 0.12.6), `ollama serve` (no arguments, HOME set;
//   OLLAMA_HOST, default 127.0.0.1:11434; OLLAMA_MODELS; OLLAMA_KEEP_ALIVE, default 5m) and
//   the runner serve starts per loaded model, `ollama runner --model <blob> --port <n>`
//   (comm "ollama"). It logs like Ollama 0.12 (slog on stderr, gin's `[GIN]` lines on
//   stdout), listens at once, and serves /, /api/version, /api/ps, /api/pull (NDJSON
//   progress), /api/show, /api/generate (no prompt: load), /api/embed (no input: load),
//   /v1/models and /v1/chat/completions. Pulled models persist only under an explicit
//   OLLAMA_MODELS (manifests/<host>/<namespace>/<model>/<tag>, read at start). A taken port:
//   "Error: listen tcp H:P: bind: address already in use", exit 1. SIGTERM/SIGINT: stops
//   the runners, exit 0.
// tgi: `text-generation-launcher --version` prints 3.3.6. `text-generation-launcher
//   --model-id M [--hostname H] [-p|--port P] [--api-key K] [--num-shard N]
//   [--max-input-tokens N] [--max-total-tokens N] [--huggingface-hub-cache D] [any other
//   --flag [value]]`, with the env fallbacks MODEL_ID, HOSTNAME (not an IP literal, as
//   Docker's container id: 0.0.0.0), PORT (default 80), API_KEY, NUM_SHARD, MAX_INPUT_TOKENS,
//   MAX_TOTAL_TOKENS, HUGGINGFACE_HUB_CACHE. It logs like TGI on stdout, "downloads" the
//   weights into the hub cache (HF_HUB_CACHE, else --huggingface-hub-cache, else
//   $HF_HOME/hub), binds and listens only once loaded, and serves /, /health, /info,
//   /v1/models and /v1/chat/completions (SSE events "data:{...}"). A taken port: the
//   router's panic, "Error: WebserverFailed", exit 1. SIGTERM/SIGINT: exit 0.
//
// Fault knobs (environment; an invalid number is refused: a message on stderr, exit 2):
//   FAKE_LOAD_SECONDS=0.2         vllm, tgi: start → listening. ollama: how long a load takes.
//   FAKE_EXIT_AT_START=bad-model  after ~0.1 s, the engine's unknown-model error (vllm: a
//                                 traceback ending "OSError: <model> is not a local folder
//                                 and is not a valid model identifier listed on
//                                 'https://huggingface.co/models'"; tgi: "Error:
//                                 DownloadError"), exit 1. Other text: printed (ollama:
//                                 "Error: <text>"), exit 1.
//   FAKE_CRASH_AFTER=S            S seconds after listening: the engine's crash report and
//   FAKE_CRASH_CODE=1             exit with this code (vllm stops its EngineCore first), or
//   FAKE_CRASH_SIGNAL=N           death by signal N (nothing cleaned up). Ollama's runners
//                                 are left orphaned either way.
//   FAKE_HANG_AFTER=S             S seconds after listening: accept and read, never answer.
//   FAKE_TOKEN_SECONDS=S          vllm: S seconds before each streamed event, as a model
//                                 generates (a long stream for the gateway's tests).
//   FAKE_IGNORE_SIGTERM=1         log SIGTERM/SIGINT and keep running; the EngineCore and
//                                 the runners ignore SIGTERM too. Only SIGKILL stops them.
//   FAKE_ESCAPE_HELPER=1          at start, a helper that setsid()s into its own session and
//                                 idles (comm "fake-escaped"), surviving a group kill.
//   FAKE_NO_ENGINE_CORE=1         vllm: no EngineCore child.
//   FAKE_PID_FILE=path            "<main> <child> <helper>" (0 = none): vllm's EngineCore,
//                                 written once it is spawned; ollama's first runner,
//                                 rewritten when one starts; tgi: always 0.
//   ollama only:
//   FAKE_PULL_SECONDS=0.5         how long a pull's model layer takes.
//   FAKE_PULL_UNKNOWN=a,b         names the registry lacks: 200, "pulling manifest", then
//                                 {"error":"pull model manifest: file does not exist"}.
//   FAKE_PULL_SPLIT=1             each pull line in two chunks cut mid-JSON, 10 ms apart.
//   FAKE_REGISTRY_UNREACHABLE=1   every pull, of a model on disk too, fails after "pulling
//                                 manifest" with Go's DNS error for the registry's manifest URL.
//   FAKE_EMBEDDING_MODELS=a,b     names that only embed (any name containing "embed" too):
//                                 /api/show lists ["embedding"], /api/generate answers 400
//                                 "\"<model>\" does not support generate".
//
// The EngineCore and the helper are this binary re-executed from /proc/self/exe, with their
// role in argv[1] (Support/Children.swift).

let arguments = CommandLine.arguments
let environment: @Sendable (String) -> String? = { getenv($0).map { String(cString: $0) } }

if arguments.count > 1, let role = ChildRole(rawValue: arguments[1]) { role.run() }
// Before any thread or child exists: the signals the main thread waits for stay blocked in
// every thread (NIO's event loop too), so only its sigtimedwait sees them.
Children.blockAwaitedSignals()

let program = String(arguments.first?.split(separator: "/").last ?? "")
let mode =
    environment("FAKE_ENGINE_MODE").flatMap { $0.isEmpty ? nil : $0 }
    ?? ["vllm": "vllm", "ollama": "ollama", "text-generation-launcher": "tgi"][program]
let rest = Array(arguments.dropFirst())
switch mode {
case "vllm":
    VLLMServer(options: VLLMArguments.parse(rest, environment: environment), knobs: Knobs.fromEnvironment(environment))
        .run()
case "ollama": Ollama.main(argv0: arguments.first ?? "ollama", arguments: rest, environment: environment)
case "tgi": TGI.main(arguments: rest, environment: environment)
default:
    Console.finish(
        "fake-engine: run it as vllm, ollama or text-generation-launcher, or set FAKE_ENGINE_MODE=vllm|ollama|tgi",
        code: 2)
}
