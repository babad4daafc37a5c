#!/usr/bin/env bash
# The OpenWrt stage: tinyderp's .ipk/.apk, init script and UCI options on OpenWrt's real
# userland (procd as PID 1, ubus, uci, validate_data, logd, ujail, jsonfilter, opkg, apk v3,
# firewall4 and OpenWrt's busybox), built from source snapshots and booted in namespaces.
#
#   tests/openwrt/run.sh [pytest args]
#
# Environment:
#   OPENWRT_USERLAND_SOURCES  the source tarballs (default ../shared/openwrt-userland/sources
#                             next to the repository); absent: the stage is skipped
#   TINYDERP_DIST             dist/ with the x86_64 build and packages (default dist/; built
#                             with cross/build.sh x86_64 + openwrt/package.sh x86_64 if missing)
# Exit codes: 0 passed, 1 failed, 77 skipped (no sources, not root, no namespaces).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tinyderp/target}"
src=${OPENWRT_USERLAND_SOURCES:-$root/../shared/openwrt-userland/sources}

if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED: the OpenWrt stage boots procd in namespaces and needs root"
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

export TINYDERP_DIST=${TINYDERP_DIST:-$root/dist}
if ! ls "$TINYDERP_DIST"/tinyderp_*_x86_64.ipk "$TINYDERP_DIST"/x86_64/tinyderp-*.apk >/dev/null 2>&1; then
    echo "--- x86_64 packages missing in $TINYDERP_DIST: building them"
    TINYDERP_DIST=$TINYDERP_DIST bash "$root/cross/build.sh" x86_64 &&
        TINYDERP_DIST=$TINYDERP_DIST bash "$root/openwrt/package.sh" x86_64 || exit 1
fi

(cd "$root" && cargo build --locked --quiet --example derp_client) || exit 1
export DERP_CLIENT=$CARGO_TARGET_DIR/debug/examples/derp_client

venv=$HOME/.cache/tinyderp/openwrt-venv
if ! "$venv/bin/python" -c 'import pytest' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q pytest || exit 1
fi

cd "$here" && "$venv/bin/python" -m pytest -p no:cacheprovider -rfEsxX -v "$@" test_models.py test_openwrt.py
rc=$?
case "$rc" in
0) exit 0 ;;
5) echo "SKIPPED: no scenario ran"; exit 77 ;;
*) exit 1 ;;
esac
