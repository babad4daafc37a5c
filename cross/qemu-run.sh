#!/usr/bin/env bash
# Run a cross-built tinyderp under qemu-user with the CPU its OpenWrt arch stands for.
#
#   cross/qemu-run.sh ARCH -- ARGS...      e.g. cross/qemu-run.sh mips_24kc -- --version
#   cross/qemu-run.sh --runner ARCH        print the command prefix (for TINYDERP_RUNNER)
#
# ARCH is an OpenWrt arch or a Rust target from cross/targets.tsv; the binary is
# dist/<openwrt-arch>/tinyderp (TINYDERP_DIST overrides dist/). qemu-user shares the
# host's network stack, so the binary can serve on 127.0.0.1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dist=${TINYDERP_DIST:-$root/dist}

die() { printf 'qemu-run.sh: error: %s\n' "$*" >&2; exit 2; }

row_for() {
	grep -v '^#' "$here/targets.tsv" | awk -F'\t' -v w="$1" '$1 == w || $2 == w { print; found = 1 } END { exit !found }'
}

print_only=0
if [ "${1:-}" = --runner ]; then
	print_only=1
	shift
fi
[ $# -ge 1 ] || die "usage: qemu-run.sh ARCH -- ARGS... | qemu-run.sh --runner ARCH"
row=$(row_for "$1") || die "unknown arch '$1' (see cross/targets.tsv)"
shift
IFS=$'\t' read -r _rust_target arch qemu cpu <<<"$row"
command -v "$qemu" >/dev/null || die "$qemu not found: apt-get install qemu-user"
if [ "$print_only" = 1 ]; then
	echo "$qemu -cpu $cpu"
	exit 0
fi
[ "${1:-}" = -- ] && shift
bin=$dist/$arch/tinyderp
[ -x "$bin" ] || die "no $bin: run cross/build.sh $arch"
exec "$qemu" -cpu "$cpu" "$bin" "$@"
