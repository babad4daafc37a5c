#!/bin/sh
# Bounded soak of the release binary: SOAK_CLIENTS (default 2000) clients churn while
# packets flow; RSS is sampled every second and the least-squares slope of the samples
# after the warm-up must stay at or below 2 MiB per minute (tests/soak.rs says why).
#
#   scripts/soak.sh            CI mode: 180 s (60 s warm-up, 120 samples judged)
#   scripts/soak.sh --manual   manual mode: 600 s
#
# Results (soak.csv, summary.txt, soak.png) go to SOAK_OUT (default target/soak). The PNG
# needs python3 with matplotlib; a venv is made under ~/.cache/tinyderp/ when missing.
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--manual" ]; then
    SOAK_SECS="${SOAK_SECS:-600}"
else
    SOAK_SECS="${SOAK_SECS:-180}"
fi
SOAK_OUT="${SOAK_OUT:-$PWD/target/soak}"
export SOAK_SECS SOAK_OUT
mkdir -p "$SOAK_OUT"

test_status=0
cargo test --release --test soak -- --ignored --nocapture || test_status=$?

venv="$HOME/.cache/tinyderp/soak-venv"
python=""
for candidate in python3 "$venv/bin/python"; do
    if "$candidate" -c 'import matplotlib' >/dev/null 2>&1; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet matplotlib && python="$venv/bin/python"
fi
if [ -n "$python" ] && [ -f "$SOAK_OUT/soak.csv" ]; then
    "$python" scripts/soak_plot.py "$SOAK_OUT/soak.csv" "$SOAK_OUT/summary.txt" "$SOAK_OUT/soak.png"
    echo "curve: $SOAK_OUT/soak.png"
fi
exit "$test_status"
