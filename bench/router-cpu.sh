#!/usr/bin/env bash
# Instructions per login and per relayed byte on router CPUs: tinyderp's router builds and
# upstream derper cross-compiled for the same CPU, each run under qemu-user with an
# instruction-counting TCG plugin (bench/qemu-plugin/insncount.c), driven over loopback
# by the native derp-load tool.
#
#   bench/router-cpu.sh                       mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4
#                                             aarch64_cortex-a53
#   bench/router-cpu.sh mips_24kc ...         only these OpenWrt arches (cross/targets.tsv)
#
# The count is read from the plugin's periodic snapshot 1 s after the load tool finished.
# Every figure is the difference of two runs of the same server that differ only in the
# amount of work (LOGINS_A vs LOGINS_B logins; PKTS_A vs PKTS_B packets of 1400 bytes per
# pair over PAIRS pairs), so start-up, key and certificate generation and shutdown cancel.
# Instruction counts do not depend on the emulation's speed or the machine's load.
#
# Writes bench/results/router-cpu.jsonl (raw), router-cpu.tsv and router-cpu.md (the
# "how fast on my router" estimate table), and copies that table into README.md.
#
# derper's start-up alone varies by ~10^8 instructions from run to run (key and certificate
# generation, Go runtime), so the differences must be large: the defaults relay 5.6 MB.
#
# Environment: LOGINS_A/LOGINS_B (default 1/21), PKTS_A/PKTS_B (per pair, default 20/2020),
# PAIRS (2), SUITES (TLS suites tinyderp is also measured with, one at a time; default
# "chacha aes128 aes256", empty for none), RUN_TIMEOUT (seconds one counted run may take,
# default 1200),
# TINYDERP_DIST (dir with <arch>/tinyderp; default dist/, built by cross/build.sh unless
# SKIP_BUILD=1), SKIP_DERPER=1, RESULTS (output dir).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ARCHES=("$@")
[ ${#ARCHES[@]} -gt 0 ] || ARCHES=(mips_24kc mipsel_24kc arm_cortex-a7_neon-vfpv4 aarch64_cortex-a53)
LOGINS_A="${LOGINS_A:-1}"
LOGINS_B="${LOGINS_B:-21}"
PKTS_A="${PKTS_A:-20}"
PKTS_B="${PKTS_B:-2020}"
PAIRS="${PAIRS:-2}"
SUITES="${SUITES-chacha aes128 aes256}"
SIZE=1400
RUN_TIMEOUT="${RUN_TIMEOUT:-1200}"
DIST="${TINYDERP_DIST:-$ROOT/dist}"
RESULTS="${RESULTS:-$HERE/results}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/derp-router-bench.XXXXXX")"
RAW="$WORK/raw.jsonl"
: >"$RAW"
SERVER_PID=""
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '== %s %s\n' "$(date +%T)" "$*" >&2; }

# ---- tools --------------------------------------------------------------------------
PLUGIN="$("$HERE/scripts/build-insn-plugin.sh")"
log "instruction-count plugin: $PLUGIN"
BENCH_TARGET="${BENCH_TARGET_DIR:-$HERE/target}"
CARGO_TARGET_DIR="$BENCH_TARGET" cargo build --release --quiet --manifest-path "$HERE/Cargo.toml" \
    --bin derp-load
LOAD="$BENCH_TARGET/release/derp-load"

# qemu binary and CPU model for an OpenWrt arch, from the cross build's target table.
qemu_for() {
    awk -v a="$1" '!/^#/ && $2 == a { print $3, $4 }' "$ROOT/cross/targets.tsv"
}

free_port() {
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=="udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"
}

# start_server NAME BINARY QEMU CPU COUNT_FILE: the server under qemu-user with the plugin.
start_server() {
    local name="$1" bin="$2" qemu="$3" cpu="$4" count="$5" stun
    PORT="$(free_port tcp)"
    stun="$(free_port udp)"
    SERVER_LOG="$WORK/$name.log"
    local emu=(nice -n 10 "$qemu" -cpu "$cpu" -plugin "$PLUGIN,out=$count,every=200")
    case "$name" in
    tinyderp)
        rm -rf "$WORK/tinyderp-state" && mkdir -p "$WORK/tinyderp-state"
        "${emu[@]}" "$bin" -a "127.0.0.1:$PORT" --stun-port "$stun" \
            --state-dir "$WORK/tinyderp-state" --hostname localhost >"$SERVER_LOG" 2>&1 &
        SERVER_NAME_ARG=localhost
        ;;
    derper)
        rm -rf "$WORK/derper-certs" && mkdir -p "$WORK/derper-certs"
        # Go's asynchronous preemption only adds timing-dependent work.
        GODEBUG=asyncpreemptoff=1 "${emu[@]}" "$bin" --certmode manual \
            --certdir "$WORK/derper-certs" --hostname 127.0.0.1 -a "127.0.0.1:$PORT" \
            --stun-port "$stun" --http-port -1 -c "$WORK/derper.key" >"$SERVER_LOG" 2>&1 &
        SERVER_NAME_ARG=127.0.0.1
        ;;
    esac
    SERVER_PID=$!
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

# SUITE_ARGS: empty (the client offers every suite, the server picks) or --suite NAME.
SUITE_ARGS=()
load() {
    timeout "$RUN_TIMEOUT" "$LOAD" --addr "127.0.0.1:$PORT" --server-name "$SERVER_NAME_ARG" \
        --pid "$SERVER_PID" ${SUITE_ARGS[@]+"${SUITE_ARGS[@]}"} "$@"
}

# counted ARCH SERVER BINARY TAG LOAD-ARGS...: one server run under the plugin; prints
# {"insns":N,"load":{...the load tool's report...}}.
counted() {
    local arch="$1" name="$2" bin="$3" tag="$4" qemu cpu count out insns
    shift 4
    read -r qemu cpu <<<"$(qemu_for "$arch")"
    count="$WORK/count.$arch.$name.$tag"
    rm -f "$count"
    start_server "$name" "$bin" "$qemu" "$cpu" "$count"
    load wait --timeout 300 >/dev/null
    out="$(load "$@")"
    # The count when the work is done (the plugin rewrites it every 200 ms): shutdown is
    # not counted, and a server that does not stop on SIGTERM under emulation (tinyderp's
    # router builds under qemu-user 7.2 do not) still gives its figure.
    sleep 1
    insns="$(awk '$1 == "insns" { print $2 }' "$count" 2>/dev/null)"
    stop_server
    [ -n "$insns" ] || { log "$name on $arch: no instruction count"; cat "$SERVER_LOG" >&2; return 1; }
    printf '{"insns":%s,"load":%s}' "$insns" "$out"
}

record() {
    python3 -c 'import json,sys
d=json.loads(sys.argv[1]); d["load1"]=float(open("/proc/loadavg").read().split()[0])
print(json.dumps(d))' "$1" >>"$RAW"
}

# publish: results so far to $RESULTS (after each server, so a long run leaves a report).
publish() {
    mkdir -p "$RESULTS"
    {
        cat "$RAW"
        python3 -c 'import json,platform,subprocess
q=subprocess.run(["qemu-mips","--version"],capture_output=True,text=True).stdout.splitlines()[0]
print(json.dumps({"scenario":"machine","qemu":q,"kernel":platform.release()}))'
    } >"$RESULTS/router-cpu.jsonl"
    python3 "$HERE/scripts/router_report.py" --out "$RESULTS" --readme "$ROOT/README.md" \
        "$RESULTS/router-cpu.jsonl"
}

for arch in "${ARCHES[@]}"; do
    [ -n "$(qemu_for "$arch")" ] || { log "unknown arch $arch (see cross/targets.tsv)"; exit 2; }
    # derper first: its cross build is quick, tinyderp's (cross/build.sh) is built after.
    servers=(tinyderp)
    [ "${SKIP_DERPER:-0}" = 1 ] || servers=(derper tinyderp)
    for name in "${servers[@]}"; do
        if [ "$name" = derper ]; then
            bin="$("$HERE/scripts/build-derper.sh" "$arch")"
        else
            if [ "${SKIP_BUILD:-0}" != 1 ]; then
                log "building tinyderp for $arch"
                # Exit 3 is "over the size budget": the binary is still there to measure.
                TINYDERP_DIST="$DIST" "$ROOT/cross/build.sh" "$arch" </dev/null >&2 ||
                    log "cross/build.sh $arch exited $?"
            fi
            bin="$DIST/$arch/tinyderp"
        fi
        # A missing build is reported and skipped, so the other server is still measured.
        [ -x "$bin" ] || { log "no $bin: $name on $arch not measured"; continue; }
        log "$arch $name: logins ($LOGINS_A, $LOGINS_B)"
        a="$(counted "$arch" "$name" "$bin" la handshakes --count "$LOGINS_A" --concurrency 1)"
        b="$(counted "$arch" "$name" "$bin" lb handshakes --count "$LOGINS_B" --concurrency 1)"
        record "{\"scenario\":\"logins\",\"arch\":\"$arch\",\"server\":\"$name\",\"bytes\":$(stat -c %s "$bin"),\"a\":$a,\"b\":$b}"
        log "$arch $name: relay ($PKTS_A, $PKTS_B packets per pair, $PAIRS pairs)"
        relay=(relay --pairs "$PAIRS" --size "$SIZE" --window 16 --warmup 0 --duration "$RUN_TIMEOUT"
            --probe-rate 0 --concurrency 1 --quiet)
        a="$(counted "$arch" "$name" "$bin" ra "${relay[@]}" --packets "$PKTS_A")"
        b="$(counted "$arch" "$name" "$bin" rb "${relay[@]}" --packets "$PKTS_B")"
        record "{\"scenario\":\"relay\",\"arch\":\"$arch\",\"server\":\"$name\",\"size\":$SIZE,\"a\":$a,\"b\":$b}"
        # tinyderp once more per TLS suite, the client offering only that one: what each
        # suite costs on this CPU, the measurement behind the server's preference
        # (src/cert/provider.rs).
        if [ "$name" = tinyderp ]; then
            for suite in $SUITES; do
                log "$arch $name: relay with $suite only"
                SUITE_ARGS=(--suite "$suite")
                a="$(counted "$arch" "$name" "$bin" "sa-$suite" "${relay[@]}" --packets "$PKTS_A")"
                b="$(counted "$arch" "$name" "$bin" "sb-$suite" "${relay[@]}" --packets "$PKTS_B")"
                SUITE_ARGS=()
                record "{\"scenario\":\"relay-suite\",\"suite\":\"$suite\",\"arch\":\"$arch\",\"server\":\"$name\",\"size\":$SIZE,\"a\":$a,\"b\":$b}"
            done
        fi
        publish
    done
done
log "wrote $RESULTS/router-cpu.md"
