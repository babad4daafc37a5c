#!/usr/bin/env bash
# Side-by-side benchmark of tinyderp and upstream derper on loopback.
#
#   bench/run.sh            full run: every scenario, A/B alternated over $REPS repetitions,
#                           then valgrind instruction counts and binary sizes; writes bench/results/
#   bench/run.sh --smoke    CI smoke test (~1-2 min): checks the harness works against both
#                           servers (every client logs in, packets arrive), not timings
#
# Environment: REPS (default 3), PAIRS (default "5 20 50 100"), WINDOW (32),
# OPEN_LOOP_PAIRS (default 20; "" skips the open-loop run), IDLE_STEPS
# (default 1000,2000,3000,4000,5000), DURATION (measured seconds, default 8),
# TINYDERP_BIN (a prebuilt tinyderp), TINYDERP_STATIC_BIN (a static build: idle RSS too), SKIP_DERPER=1 (tinyderp only), SKIP_CALLGRIND=1 (no valgrind counts), SERVER_CORE / LOAD_CORE (0 / 1),
# SAVE_RAW=FILE (keep the raw JSON lines, e.g. of a smoke run), SUITES (TLS suites whose
# instructions per byte tinyderp is also counted with, one at a time; default
# "chacha aes128 aes256", none in a smoke run).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
MODE=full
[ "${1:-}" = "--smoke" ] && MODE=smoke

REPS="${REPS:-3}"
PAIRS="${PAIRS:-5 20 50 100}"
IDLE_STEPS="${IDLE_STEPS:-1000,2000,3000,4000,5000}"
DURATION="${DURATION:-8}"
# Packets in flight per pair in the throughput runs: a closed loop that keeps the relay
# busy without overrunning its queues (derper's per-client queue is 32 packets).
WINDOW="${WINDOW:-32}"
OPEN_LOOP_PAIRS="${OPEN_LOOP_PAIRS:-20}"
WARMUP="${WARMUP:-2}"
SERVER_CORE="${SERVER_CORE:-0}"
LOAD_CORE="${LOAD_CORE:-1}"
SUITES="${SUITES-chacha aes128 aes256}"
if [ "$MODE" = smoke ]; then
    REPS=1 PAIRS="2 4" IDLE_STEPS=20,50 DURATION=2 WARMUP=1 OPEN_LOOP_PAIRS="" SUITES=""
fi

# 5,000 clients need 5,000 sockets on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt 12000 ] && [ "$MODE" = full ]; then
    echo "warning: fd limit $(ulimit -n) is below what 5,000 clients need" >&2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/derp-bench.XXXXXX")"
RESULTS="${RESULTS:-$HERE/results}"
RAW="$WORK/raw.jsonl"
: >"$RAW"
SERVER_PID=""
cleanup() {
    declare -F stop_server >/dev/null && stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '== %s %s\n' "$(date +%T)" "$*" >&2; }

# ---- build -----------------------------------------------------------------------
log "building tinyderp (release) and derp-load"
if [ -z "${TINYDERP_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
fi
BENCH_TARGET="${BENCH_TARGET_DIR:-$HERE/target}"
CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release --quiet --manifest-path "$HERE/Cargo.toml"
TINYDERP="${TINYDERP_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tinyderp}"
LOAD="$BENCH_TARGET/release/derp-load"
DERPER=""
if [ "${SKIP_DERPER:-0}" != 1 ]; then
    log "building upstream derper (cached after the first time)"
    DERPER="$("$HERE/scripts/build-derper.sh")"
fi
SERVERS="tinyderp"
[ -n "$DERPER" ] && SERVERS="tinyderp derper"

free_port() {
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=="udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"
}

# start_server NAME [PREFIX...]: starts the server pinned to $SERVER_CORE (PREFIX, such as
# valgrind, goes before the binary); sets SERVER_PID, PORT, SERVER_NAME_ARG, SERVER_LOG.
start_server() {
    local name="$1"
    shift
    PORT="$(free_port tcp)"
    local stun
    stun="$(free_port udp)"
    SERVER_LOG="$WORK/$name.log"
    case "$name" in
    tinyderp)
        mkdir -p "$WORK/tinyderp-state"
        taskset -c "$SERVER_CORE" "$@" "$TINYDERP" -a "127.0.0.1:$PORT" --stun-port "$stun" \
            --state-dir "$WORK/tinyderp-state" --hostname localhost >"$SERVER_LOG" 2>&1 &
        SERVER_NAME_ARG=localhost
        READY_TEXT="listening on"
        ;;
    derper)
        mkdir -p "$WORK/derper-certs"
        taskset -c "$SERVER_CORE" "$@" "$DERPER" --certmode manual --certdir "$WORK/derper-certs" \
            --hostname 127.0.0.1 -a "127.0.0.1:$PORT" --stun-port "$stun" --http-port -1 \
            -c "$WORK/derper.key" >"$SERVER_LOG" 2>&1 &
        SERVER_NAME_ARG=127.0.0.1
        READY_TEXT="serving on"
        ;;
    esac
    SERVER_PID=$!
    # Ready when the log says it listens; no client touches the server before that.
    local i
    for i in $(seq 1 1200); do
        grep -q "$READY_TEXT" "$SERVER_LOG" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "server $name did not start:" >&2
    cat "$SERVER_LOG" >&2
    return 1
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 300); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

# load SUBCOMMAND ARGS...: runs derp-load pinned to $LOAD_CORE against the current server.
# SUITE_ARGS: empty (the client offers every TLS suite, the server picks) or --suite NAME.
SUITE_ARGS=()
load() {
    taskset -c "$LOAD_CORE" "$LOAD" --addr "127.0.0.1:$PORT" --server-name "$SERVER_NAME_ARG" \
        --pid "$SERVER_PID" ${SUITE_ARGS[@]+"${SUITE_ARGS[@]}"} "$@"
}

# record SERVER REP JSON: appends one result line tagged with the server, the repetition
# and the machine's 1-minute load average (other work on a shared machine skews timings).
record() {
    python3 -c 'import json,sys
d=json.loads(sys.argv[3]); d["server"]=sys.argv[1]; d["rep"]=int(sys.argv[2])
d["load1"]=float(open("/proc/loadavg").read().split()[0]); print(json.dumps(d))' \
        "$1" "$2" "$3" >>"$RAW"
}

rss_now() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
rss_json() {
    awk '/^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2}
        END {printf "{\"scenario\":\"idle_rss\",\"rss_kib\":%d,\"rss_anon_kib\":%d,\"rss_file_kib\":%d}", r, a, f}' \
        "/proc/$SERVER_PID/status"
}

# ---- scenarios -------------------------------------------------------------------
scenario_round() {
    local server="$1" rep="$2" out pairs
    log "[$rep] $server: idle RSS"
    start_server "$server"
    sleep 2
    record "$server" "$rep" "$(rss_json)"
    log "[$rep] $server: idle clients $IDLE_STEPS"
    out="$(load idle --steps "$IDLE_STEPS" --settle 2 --concurrency 32)"
    record "$server" "$rep" "$out"
    declare -F stop_server >/dev/null && stop_server

    log "[$rep] $server: latency probe alone"
    start_server "$server"
    load wait >/dev/null
    out="$(load relay --pairs 0 --warmup 1 --duration "$DURATION" --quiet)"
    record "$server" "$rep" "$out"
    declare -F stop_server >/dev/null && stop_server

    for pairs in $PAIRS; do
        log "[$rep] $server: $pairs pairs, 1400 B, $WINDOW in flight per pair"
        start_server "$server"
        load wait >/dev/null
        out="$(load relay --pairs "$pairs" --size 1400 --window "$WINDOW" --warmup "$WARMUP" \
            --duration "$DURATION")"
        record "$server" "$rep" "$out"
        stop_server
    done

    for pairs in $OPEN_LOOP_PAIRS; do
        log "[$rep] $server: $pairs pairs, 1400 B, open loop (senders outrun the relay)"
        start_server "$server"
        load wait >/dev/null
        out="$(load relay --pairs "$pairs" --size 1400 --warmup "$WARMUP" --duration "$DURATION")"
        record "$server" "$rep" "$(echo "$out" | sed 's/"scenario":"relay"/"scenario":"relay_open"/')"
        stop_server
    done
}

for rep in $(seq 1 "$REPS"); do
    # A/B alternation: odd repetitions start with tinyderp, even ones with derper.
    order="$SERVERS"
    if [ $((rep % 2)) = 0 ]; then
        order="$(echo "$SERVERS" | tr ' ' '\n' | tac | tr '\n' ' ')"
    fi
    for server in $order; do
        scenario_round "$server" "$rep"
    done
done

# ---- instruction counts (valgrind): per login and per relayed byte -----------------
# cachegrind without cache simulation counts executed instructions. (callgrind aborts on
# the Go runtime's signals; cachegrind runs both servers, so both are counted alike.)
# Each figure is the difference of two runs that differ only in the amount of work, so
# start-up, certificate loading and shutdown cancel out.
instr_total() {
    awk '/^summary:/ {print $2}' "$1"
}

# instr_run SERVER TAG LOAD-ARGS...: server under cachegrind, one load run, the total.
instr_run() {
    local server="$1" tag="$2" file
    shift 2
    file="$WORK/cachegrind.$server.$tag"
    # Go's asynchronous preemption signals only add noise under valgrind.
    GODEBUG=asyncpreemptoff=1 start_server "$server" valgrind --tool=cachegrind --cache-sim=no \
        --cachegrind-out-file="$file"
    load wait --timeout 120 >/dev/null
    load "$@" >/dev/null
    declare -F stop_server >/dev/null && stop_server
    instr_total "$file"
}

if [ "${SKIP_CALLGRIND:-0}" != 1 ] && command -v valgrind >/dev/null; then
    if [ "$MODE" = smoke ]; then
        LOGINS_A=1 LOGINS_B=3 PKTS_A=10 PKTS_B=50
    else
        LOGINS_A=10 LOGINS_B=210 PKTS_A=200 PKTS_B=2200
    fi
    for server in $SERVERS; do
        log "$server under cachegrind: logins"
        a="$(instr_run "$server" la handshakes --count "$LOGINS_A" --concurrency 4)"
        b="$(instr_run "$server" lb handshakes --count "$LOGINS_B" --concurrency 4)"
        record "$server" 0 "{\"scenario\":\"instr_logins\",\"a\":$a,\"b\":$b,\"logins\":$((LOGINS_B - LOGINS_A))}"
        log "$server under cachegrind: relayed bytes"
        a="$(instr_run "$server" ra relay --pairs 2 --size 1400 --packets "$PKTS_A" --window 16 \
            --warmup 0 --duration 300 --probe-rate 0 --quiet)"
        b="$(instr_run "$server" rb relay --pairs 2 --size 1400 --packets "$PKTS_B" --window 16 \
            --warmup 0 --duration 300 --probe-rate 0 --quiet)"
        record "$server" 0 "{\"scenario\":\"instr_relay\",\"a\":$a,\"b\":$b,\"packets\":$((2 * (PKTS_B - PKTS_A))),\"size\":1400}"
        # tinyderp again per TLS suite, the client offering only that one: the measurement
        # behind the server's suite preference (src/cert/provider.rs).
        [ "$server" = tinyderp ] || continue
        for suite in $SUITES; do
            log "$server under cachegrind: relayed bytes, $suite only"
            SUITE_ARGS=(--suite "$suite")
            a="$(instr_run "$server" "sa-$suite" relay --pairs 2 --size 1400 --packets "$PKTS_A" \
                --window 16 --warmup 0 --duration 300 --probe-rate 0 --quiet)"
            b="$(instr_run "$server" "sb-$suite" relay --pairs 2 --size 1400 --packets "$PKTS_B" \
                --window 16 --warmup 0 --duration 300 --probe-rate 0 --quiet)"
            SUITE_ARGS=()
            record "$server" 0 "{\"scenario\":\"instr_relay_suite\",\"suite\":\"$suite\",\"a\":$a,\"b\":$b,\"packets\":$((2 * (PKTS_B - PKTS_A))),\"size\":1400}"
        done
    done
fi

# ---- idle RSS of a statically linked tinyderp (the router build links libc statically) ----
if [ -n "${TINYDERP_STATIC_BIN:-}" ] && [ -x "$TINYDERP_STATIC_BIN" ]; then
    for rep in $(seq 1 "$REPS"); do
        log "[$rep] tinyderp (static): idle RSS"
        saved="$TINYDERP"
        TINYDERP="$TINYDERP_STATIC_BIN"
        start_server tinyderp
        sleep 2
        record tinyderp_static "$rep" "$(rss_json)"
        stop_server
        TINYDERP="$saved"
    done
fi

# ---- machine ----------------------------------------------------------------------
machine_json="$(python3 -c 'import json,os,platform,subprocess,sys
cpu=[l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
mem=[l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")]
print(json.dumps({"scenario":"machine","cpu":cpu[0] if cpu else "?","cores":os.cpu_count(),
 "kernel":platform.release(),"mem_gib":round(int(mem[0])/1048576,1),
 "rustc":subprocess.run(["rustc","--version"],capture_output=True,text=True).stdout.strip(),
 "derper":sys.argv[1]}))' "$(basename "$(dirname "${DERPER:-none/none}")")")"
record machine 0 "$machine_json"

# ---- binary sizes ------------------------------------------------------------------
record tinyderp 0 "{\"scenario\":\"binary\",\"bytes\":$(stat -c %s "$TINYDERP")}"
if [ -n "$DERPER" ]; then
    record derper 0 "{\"scenario\":\"binary\",\"bytes\":$(stat -c %s "$DERPER")}"
fi

# ---- report ------------------------------------------------------------------------
if [ -n "${SAVE_RAW:-}" ]; then
    cp "$RAW" "$SAVE_RAW"
fi
if [ "$MODE" = smoke ]; then
    python3 "$HERE/scripts/report.py" --smoke --servers "$SERVERS" "$RAW"
else
    mkdir -p "$RESULTS"
    cp "$RAW" "$RESULTS/raw.jsonl"
    # The plots need matplotlib: use BENCH_PYTHON if given, else a cached venv with it.
    PY="${BENCH_PYTHON:-}"
    if [ -z "$PY" ]; then
        venv="${XDG_CACHE_HOME:-$HOME/.cache}/tinyderp/bench-venv"
        if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
            log "installing matplotlib into $venv for the plots"
            python3 -m venv "$venv" && "$venv/bin/pip" install --quiet matplotlib ||
                log "could not install matplotlib: the report will have no plots"
        fi
        PY="$venv/bin/python"
        [ -x "$PY" ] || PY=python3
    fi
    "$PY" "$HERE/scripts/report.py" --out "$RESULTS" "$RESULTS/raw.jsonl"
fi
