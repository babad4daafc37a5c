#!/usr/bin/env bash
# Runs every test layer of tinyderp on a fresh Debian machine, installing what it needs
# (apt, pip, cargo, go) itself. This is the README's test command and what CI runs.
#
#   scripts/test-all.sh            every stage
#   scripts/test-all.sh rust ...   only the named stages
#
# Build caches live under ~/.cache/tinyderp, so a second run on the same machine is fast.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tinyderp/target}"
export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
log_dir="${TEST_LOG_DIR:-$HOME/.cache/tinyderp/test-logs}"
mkdir -p "$log_dir"

all_stages=(rust)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=("${all_stages[@]}")

# Rust: format, lints (proto/ and relay/ deny unwrap/expect/indexing/overflow), release
# build, unit + integration + ts_derp interop tests.
stage_rust() {
    if ! command -v cargo >/dev/null; then
        echo "cargo not found: install Rust (https://rustup.rs) first"
        return 1
    fi
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
    cargo fmt --all -- --check &&
        cargo clippy --all-targets --locked -- -D warnings &&
        cargo clippy --all-targets --locked --features https-admission -- -D warnings &&
        cargo build --release --locked &&
        cargo test --locked &&
        cargo test --locked --features https-admission --lib --test admission
}

declare -A results seconds
for stage in "${stages[@]}"; do
    if ! declare -F "stage_$stage" >/dev/null; then
        echo "unknown stage: $stage (known: ${all_stages[*]})"
        exit 2
    fi
    echo "=== stage $stage"
    start=$(date +%s)
    if "stage_$stage" 2>&1 | tee "$log_dir/$stage.log"; then
        results[$stage]=passed
    else
        results[$stage]=failed
    fi
    seconds[$stage]=$(($(date +%s) - start))
done

echo
echo "=== summary"
printf '%-10s %-8s %s\n' stage result seconds
passed=0
failed=0
for stage in "${stages[@]}"; do
    printf '%-10s %-8s %s\n' "$stage" "${results[$stage]}" "${seconds[$stage]}"
    if [ "${results[$stage]}" = passed ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
