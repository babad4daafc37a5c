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

all_stages=(rust reachability router openwrt luci interop bench fuzz soak)
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
    # dnsmasq: the stub resolver's tests ask a real DNS server (src/net/dns/tests.rs).
    apt_install python3 dnsmasq-base &&
        bash scripts/check-lints.sh &&
        python3 scripts/check-docs.py &&
        cargo fmt --all -- --check &&
        cargo clippy --all-targets --locked -- -D warnings &&
        cargo clippy --all-targets --locked --features https-admission -- -D warnings &&
        cargo clippy --all-targets --locked --no-default-features -- -D warnings &&
        cargo clippy --all-targets --locked --features port-mapping -- -D warnings &&
        cargo build --release --locked &&
        cargo test --locked &&
        cargo test --locked --features https-admission --lib --test admission &&
        cargo test --locked --no-default-features --lib -- check:: client::tls:: config::mesh:: config::option_table_tests::
}

# `tinyderp check` on home lines built from network namespaces (public address, stale
# DDNS record, carrier-grade NAT, double NAT, closed firewall) with a local DNS server,
# and the running relay's own reachability watch; double NAT with miniupnpd on the upstream
# router and --port-mapping. Needs root (CI runs as root).
stage_reachability() {
    apt_install iproute2 nftables python3 miniupnpd &&
        cargo build --release --locked --features port-mapping &&
        TINYDERP_BIN="$CARGO_TARGET_DIR/release/tinyderp" bash tests/check-netns/run.sh
}

apt_updated=0
# Installs Debian packages that are missing (CI machines start fresh).
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$apt_updated" -eq 0 ]; then
        apt-get update -qq >/dev/null && apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade "${missing[@]}" >/dev/null
}

# Router: static musl binaries for the five OpenWrt targets (toolchain installed by
# cross/build.sh, size budget enforced), .ipk/.apk packages, each binary under qemu-user
# serving the integration tests, then the package and init-script tests.
stage_router() {
    apt_install busybox python3 &&
        bash cross/build.sh all &&
        bash openwrt/package.sh all &&
        bash cross/smoke.sh &&
        bash tests/package/run.sh
}

# The .ipk/.apk, init script and every UCI option on OpenWrt's real userland: procd as
# PID 1 in namespaces, ubus, uci, ujail, opkg, apk v3, firewall4, OpenWrt's busybox, all
# built from source snapshots (cached by content). Reuses the router stage's dist/ and
# builds the x86_64 packages itself when they are missing. Exit 77: skipped (no sources).
stage_openwrt() {
    apt_install python3 python3-venv util-linux iproute2 nftables &&
        bash tests/openwrt/run.sh
}

# luci-app-tinyderp on real LuCI (uhttpd, rpcd, luci-base built from source snapshots,
# cached by content) in the OpenWrt userland above, installed with opkg and driven in
# Debian's Chromium (Playwright from pip): login, status (pin, client count), settings
# applied to procd, allowing a refused key. Writes docs/img/luci-*.png. 77: no sources.
stage_luci() {
    apt_install python3 python3-venv util-linux iproute2 openssl chromium &&
        bash tests/openwrt/run-luci.sh
}

# Upstream Tailscale code against tinyderp: derphttp clients at three releases (the
# newest also over WebSocket), headless Chromium over WebSocket, derpprobe, and a
# headscale tailnet of two tailscaled (tools built once, cached).
stage_interop() {
    local tools="$HOME/.cache/tinyderp/interop/tools"
    apt_install curl openssl python3 python3-cryptography chromium &&
        cargo build --release --locked &&
        TINYDERP_BIN="$CARGO_TARGET_DIR/release/tinyderp" bash tests/interop/run.sh &&
        # --verify-clients against the real tailscaled that run.sh built: a logged-out one,
        # then a headscale tailnet whose nodes are admitted and an outside key refused.
        TINYDERP_TAILSCALED="$tools/tailscale-v1.102.5-loopback/tailscaled" \
            TINYDERP_TS_TOOLS="$tools/tailscale-v1.102.5-loopback" \
            TINYDERP_HEADSCALE="$tools/headscale-v0.29.3/headscale" \
            cargo test --locked --test admission -- --ignored
}

# The benchmark harness against tinyderp and upstream derper, short: checks that it
# works, not timings (the README's figures come from a full bench/run.sh).
stage_bench() {
    apt_install valgrind python3 util-linux &&
        cargo build --release --locked &&
        BENCH_TARGET_DIR="$HOME/.cache/tinyderp/bench-target" \
            TINYDERP_BIN="$CARGO_TARGET_DIR/release/tinyderp" bash bench/run.sh --smoke
}

# Every decoder and the relay state machine under libFuzzer for 20 s each (nightly
# toolchain; cargo-fuzz installed when missing).
stage_fuzz() {
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    bash fuzz/ci.sh
}

# 2,000 clients churning for 180 s; the RSS slope after the warm-up must stay at or
# below 2 MiB per minute.
stage_soak() {
    SOAK_OUT="$log_dir/soak" sh scripts/soak.sh
}

declare -A results seconds
for stage in "${stages[@]}"; do
    if ! declare -F "stage_$stage" >/dev/null; then
        echo "unknown stage: $stage (known: ${all_stages[*]})"
        exit 2
    fi
    echo "=== stage $stage"
    start=$(date +%s)
    "stage_$stage" 2>&1 | tee "$log_dir/$stage.log"
    rc=${PIPESTATUS[0]}
    # 77 (as automake's test drivers use it): the stage could not run here.
    case "$rc" in
    0) results[$stage]=passed ;;
    77) results[$stage]=SKIPPED ;;
    *) results[$stage]=failed ;;
    esac
    seconds[$stage]=$(($(date +%s) - start))
done

echo
echo "=== summary"
printf '%-10s %-8s %s\n' stage result seconds
passed=0
failed=0
skipped=0
for stage in "${stages[@]}"; do
    printf '%-10s %-8s %s\n' "$stage" "${results[$stage]}" "${seconds[$stage]}"
    case "${results[$stage]}" in
    passed) passed=$((passed + 1)) ;;
    SKIPPED) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
    esac
done
echo "stages: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
