#!/bin/sh
# Short fuzz run for CI: every target for FUZZ_SECONDS (default 20) seconds, starting from
# the committed seeds. Installs cargo-fuzz first when it is missing. Fails on any crash
# (the crashing input is left in fuzz/artifacts/TARGET/), and just as well when the
# fuzzing itself does not happen: cargo-fuzz missing or failing to install, no targets,
# a build error, a run that exits non-zero or executes no input.
#
#   fuzz/ci.sh                 all targets, 20 s each (about 3 minutes)
#   FUZZ_SECONDS=5 fuzz/ci.sh client_frame http_head
#
# FUZZ_TOOLCHAIN names the nightly toolchain (default: nightly).
set -eu
cd "$(dirname "$0")"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
seconds="${FUZZ_SECONDS:-20}"

fail() {
    echo "fuzz: $*" >&2
    exit 1
}

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    cargo "+$toolchain" install cargo-fuzz --locked || fail "cannot install cargo-fuzz"
    cargo "+$toolchain" fuzz --version >/dev/null 2>&1 || fail "cargo-fuzz does not run after installing it"
fi

if [ "$#" -gt 0 ]; then
    targets="$*"
else
    targets="$(cargo "+$toolchain" fuzz list)" || fail "cargo fuzz list failed"
fi
[ -n "$(echo $targets)" ] || fail "no fuzz targets"

cargo "+$toolchain" fuzz build || fail "cargo fuzz build failed"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in $targets; do
    mkdir -p "corpus/$target"
    echo "== $target (${seconds}s)"
    status=0
    cargo "+$toolchain" fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|Done|==[0-9]+==|.*panicked|SUMMARY)' "$log" || true
    if ls "artifacts/$target"/crash-* "artifacts/$target"/timeout-* "artifacts/$target"/oom-* >/dev/null 2>&1; then
        echo "fuzz target $target found a failing input:" >&2
        ls "artifacts/$target" >&2
        exit 1
    fi
    if [ "$status" -ne 0 ]; then
        tail -n 30 "$log" >&2
        fail "cargo fuzz run $target exited with status $status"
    fi
    units="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    [ "${units:-0}" -gt 0 ] 2>/dev/null || {
        tail -n 30 "$log" >&2
        fail "cargo fuzz run $target executed no input"
    }
done
echo "fuzz: all targets ran without a crash"
