#!/bin/sh
# Long fuzz campaign: each target until FUZZ_RUNS executions (default 10 million) or
# FUZZ_MAX_SECONDS (default 1800), JOBS targets at a time (default 2). Logs go to
# fuzz/logs/TARGET.log; a Markdown table of the final figures is printed at the end
# (paste it into fuzz/RESULTS.md). `run-long.sh --table` prints the table of the logs only.
set -eu
cd "$(dirname "$0")"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
runs="${FUZZ_RUNS:-10000000}"
max_seconds="${FUZZ_MAX_SECONDS:-1800}"
jobs="${JOBS:-2}"
if [ "${1:-}" = "--one" ]; then
    targets="$2"
elif [ "${1:-}" = "--table" ]; then
    # Only print the table for the targets that have a log.
    targets="$(ls logs 2>/dev/null | sed -n 's/\.log$//p')"
elif [ "$#" -gt 0 ]; then
    targets="$*"
else
    targets="$(cargo "+$toolchain" fuzz list)"
fi

if [ "${1:-}" = "--one" ]; then
    target="$2"
    mkdir -p "corpus/$target" logs
    cargo "+$toolchain" fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -runs="$runs" -max_total_time="$max_seconds" -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 >"logs/$target.log" 2>&1 || true
    exit 0
fi
if [ "${1:-}" != "--table" ]; then
cargo "+$toolchain" fuzz build
# A pool of JOBS runners; targets start in the order given (put the slow ones first).
printf '%s\n' $targets | xargs -P "$jobs" -I{} sh "./$(basename "$0")" --one {}
fi

echo "| target | executions | seconds | exec/s | coverage (cov) | features (ft) | corpus | crashes |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for target in $targets; do
    log="logs/$target.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
    crashes=$(ls "artifacts/$target" 2>/dev/null | grep -cE '^(crash|timeout|oom)-' || true)
    echo "| $target | ${execs:-?} | ${secs:-?} | ${speed:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | ${crashes:-0} |"
done
