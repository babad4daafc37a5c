#!/bin/sh
# Short fuzz run for CI: every target for FUZZ_SECONDS (default 20) seconds, starting from
# the committed seeds. Installs cargo-fuzz first when it is missing. Fails on any crash
# (the crashing input is left in fuzz/artifacts/TARGET/).
#
#   fuzz/ci.sh                 all targets, 20 s each (about 3 minutes)
#   FUZZ_SECONDS=5 fuzz/ci.sh client_frame http_head
#
# FUZZ_TOOLCHAIN names the nightly toolchain (default: nightly).
set -eu
cd "$(dirname "$0")"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
seconds="${FUZZ_SECONDS:-20}"

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    cargo "+$toolchain" install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets="$*"
else
    targets="$(cargo "+$toolchain" fuzz list)"
fi

cargo "+$toolchain" fuzz build
for target in $targets; do
    mkdir -p "corpus/$target"
    echo "== $target (${seconds}s)"
    cargo "+$toolchain" fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        2>&1 | grep -E '^(stat::number_of_executed_units|Done|==[0-9]+==|.*panicked|SUMMARY)' || true
    if ls "artifacts/$target"/crash-* "artifacts/$target"/timeout-* "artifacts/$target"/oom-* >/dev/null 2>&1; then
        echo "fuzz target $target found a failing input:" >&2
        ls "artifacts/$target" >&2
        exit 1
    fi
done
echo "fuzz: all targets ran without a crash"
