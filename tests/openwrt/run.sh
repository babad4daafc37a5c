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
. "$here/common.sh"

need_root_and_namespaces OpenWrt
run_build "$here/build-userland.sh" "$src" "the OpenWrt userland"
export OPENWRT_USERLAND=$built

export TINYDERP_DIST=${TINYDERP_DIST:-$root/dist}
x86_64_packages "$root"

(cd "$root" && cargo build --locked --quiet --example derp_client) || exit 1
export DERP_CLIENT=$CARGO_TARGET_DIR/debug/examples/derp_client

venv=$HOME/.cache/tinyderp/openwrt-venv
python_venv "$venv" pytest pytest

cd "$here" && "$venv/bin/python" -m pytest -p no:cacheprovider -rfEsxX -v "$@" test_models.py test_openwrt.py
stage_exit $?
