#!/usr/bin/env bash
# The LuCI stage: luci-app-tinyderp on real LuCI (uhttpd, rpcd, ucode, luci-base, the
# bootstrap theme, built from source snapshots like the rest of the OpenWrt userland),
# installed with opkg next to tinyderp, driven in Debian's Chromium through the DevTools
# protocol (Playwright for Python on the system Chromium). Writes docs/img/luci-*.png.
#
#   tests/openwrt/run-luci.sh [pytest args]
#
# Environment: as tests/openwrt/run.sh (OPENWRT_USERLAND_SOURCES, TINYDERP_DIST).
# Exit codes: 0 passed, 1 failed, 77 skipped (no sources, not root, no namespaces).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tinyderp/target}"
src=${OPENWRT_USERLAND_SOURCES:-$root/../shared/openwrt-userland/sources}
. "$here/common.sh"

need_root_and_namespaces LuCI
run_build "$here/build-userland.sh" "$src" "the OpenWrt userland"
export OPENWRT_USERLAND=$built
run_build "$here/build-luci.sh" "$src" LuCI
export OPENWRT_LUCI=$built

export TINYDERP_DIST=${TINYDERP_DIST:-$root/dist}
x86_64_packages "$root"
# The LuCI app from this checkout (architecture-independent, quick).
TINYDERP_DIST=$TINYDERP_DIST bash "$root/openwrt/package.sh" luci >/dev/null || exit 1

# The test client, and a host tinyderp with the dialer (tls-client, a default feature)
# as the mesh peer of the router's relay.
(cd "$root" && cargo build --locked --quiet --example derp_client --bin tinyderp) || exit 1
export DERP_CLIENT=$CARGO_TARGET_DIR/debug/examples/derp_client
export TINYDERP_HOST_BIN=$CARGO_TARGET_DIR/debug/tinyderp

command -v chromium >/dev/null || apt_need chromium || { echo "installing chromium failed"; exit 1; }
venv=$HOME/.cache/tinyderp/luci-venv
python_venv "$venv" "pytest, playwright.sync_api" pytest playwright

cd "$here" && "$venv/bin/python" -m pytest -p no:cacheprovider -rfEsxX -v "$@" test_luci.py
stage_exit $?
