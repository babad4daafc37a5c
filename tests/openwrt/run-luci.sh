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

if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED: the LuCI stage boots procd in namespaces and needs root"
    exit 77
fi
if ! unshare --pid --fork --mount --uts --ipc --net true 2>/dev/null; then
    echo "SKIPPED: cannot create PID/mount/network namespaces here"
    exit 77
fi

out=$(bash "$here/build-userland.sh" "$src")
rc=$?
echo "$out" | sed '$d'
[ "$rc" = 77 ] && { echo "SKIPPED: no OpenWrt userland sources"; exit 77; }
[ "$rc" = 0 ] || { echo "building the OpenWrt userland failed"; exit 1; }
export OPENWRT_USERLAND=${out##*$'\n'}

out=$(bash "$here/build-luci.sh" "$src")
rc=$?
echo "$out" | sed '$d'
[ "$rc" = 77 ] && { echo "SKIPPED: no LuCI sources"; exit 77; }
[ "$rc" = 0 ] || { echo "building LuCI failed"; exit 1; }
export OPENWRT_LUCI=${out##*$'\n'}

export TINYDERP_DIST=${TINYDERP_DIST:-$root/dist}
if ! ls "$TINYDERP_DIST"/tinyderp_*_x86_64.ipk >/dev/null 2>&1; then
    echo "--- x86_64 packages missing in $TINYDERP_DIST: building them"
    TINYDERP_DIST=$TINYDERP_DIST bash "$root/cross/build.sh" x86_64 &&
        TINYDERP_DIST=$TINYDERP_DIST bash "$root/openwrt/package.sh" x86_64 || exit 1
fi
# The LuCI app from this checkout (architecture-independent, quick).
TINYDERP_DIST=$TINYDERP_DIST bash "$root/openwrt/package.sh" luci >/dev/null || exit 1

# The test client, and a host tinyderp with the dialer (tls-client, a default feature)
# as the mesh peer of the router's relay.
(cd "$root" && cargo build --locked --quiet --example derp_client --bin tinyderp) || exit 1
export DERP_CLIENT=$CARGO_TARGET_DIR/debug/examples/derp_client
export TINYDERP_HOST_BIN=$CARGO_TARGET_DIR/debug/tinyderp

if ! command -v chromium >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade chromium >/dev/null ||
        { echo "installing chromium failed"; exit 1; }
fi
venv=$HOME/.cache/tinyderp/luci-venv
if ! "$venv/bin/python" -c 'import pytest, playwright.sync_api' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q pytest playwright || exit 1
fi

cd "$here" && "$venv/bin/python" -m pytest -p no:cacheprovider -rfEsxX -v "$@" test_luci.py
rc=$?
case "$rc" in
0) exit 0 ;;
5) echo "SKIPPED: no scenario ran"; exit 77 ;;
*) exit 1 ;;
esac
