#!/usr/bin/env bash
# Build static, stripped musl binaries of tinyderp for OpenWrt router CPUs.
#
#   cross/build.sh all                 every target in cross/targets.tsv
#   cross/build.sh mips_24kc x86_64    by OpenWrt arch ...
#   cross/build.sh mips-unknown-linux-musl   ... or by Rust target
#   cross/build.sh --install-only      set up the toolchain and stop
#   cross/build.sh --check-size        only compare dist/sizes.tsv with the budget
#   cross/build.sh --size-table        print dist/sizes.tsv as a Markdown table (docs/building.md)
#
# Writes dist/<openwrt-arch>/tinyderp and dist/sizes.tsv, then checks the sizes against
# cross/size-budget.tsv (exit 3 when a binary is over budget).
#
# The toolchain (see docs/building.md for why this one) is installed from scratch
# and idempotently: Debian's rustc-web/cargo-web/rust-web-src (a std source tree for
# -Zbuild-std), qemu-user, python3-venv; zig and cargo-zigbuild from PyPI, pinned, in a
# virtualenv under ~/.cache/tinyderp/. The cargo target dir lives there too so a CI run on
# the same machine reuses it.
#
# Environment:
#   TINYDERP_CACHE      cache root (default ~/.cache/tinyderp)
#   TINYDERP_NO_INSTALL=1  do not run apt-get/pip (the tools must already be there)
#   TINYDERP_PLAIN=1    build without cross/size-config.toml's panic/location flags
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${TINYDERP_CACHE:-$HOME/.cache/tinyderp}
venv=$cache/venv
target_dir=$cache/cross-target
dist=${TINYDERP_DIST:-$root/dist}

# Pinned together: the -Z flags and build-std are unstable, so versions move as one.
APT_PACKAGES="rustc-web cargo-web rust-web-src qemu-user python3-venv"
ZIGLANG_VERSION=0.17.0
CARGO_ZIGBUILD_VERSION=0.24.0

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Print "rust_target openwrt_arch qemu cpu" lines from the target table.
target_rows() { grep -v '^#' "$here/targets.tsv" | grep -v '^[[:space:]]*$'; }

apt_missing() {
	local pkg missing=
	for pkg in $APT_PACKAGES; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
			missing="$missing $pkg"
	done
	printf '%s' "$missing"
}

install_toolchain() {
	local missing stamp want
	missing=$(apt_missing)
	if [ -n "$missing" ]; then
		[ "${TINYDERP_NO_INSTALL:-0}" = 1 ] && die "missing Debian packages:$missing"
		log "apt-get install$missing"
		local sudo=
		[ "$(id -u)" = 0 ] || sudo=sudo
		export DEBIAN_FRONTEND=noninteractive
		# A fresh machine may have no package lists yet: update once, then install.
		$sudo apt-get install -y --no-upgrade -o DPkg::Lock::Timeout=600 $missing >/dev/null 2>&1 || {
			$sudo apt-get update -o DPkg::Lock::Timeout=600 >/dev/null
			$sudo apt-get install -y --no-upgrade -o DPkg::Lock::Timeout=600 $missing >/dev/null
		}
	fi
	stamp=$venv/.tinyderp-pins
	want="ziglang==$ZIGLANG_VERSION cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
	if [ ! -x "$venv/bin/cargo-zigbuild" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
		[ "${TINYDERP_NO_INSTALL:-0}" = 1 ] && die "missing venv $venv"
		log "pip install $want into $venv"
		mkdir -p "$cache"
		# Debian's python3 has the venv module from python3-venv; a pyenv python may be first on PATH.
		/usr/bin/python3 -m venv "$venv"
		"$venv/bin/pip" install --quiet --disable-pip-version-check $want
		printf '%s' "$want" >"$stamp"
	fi
}

# The Debian compiler must win over any rustup toolchain on PATH.
use_toolchain() {
	export PATH="$venv/bin:/usr/bin:/bin:$PATH"
	export RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo RUSTDOC=/usr/bin/rustdoc
	export RUSTC_BOOTSTRAP=1
	export CARGO_TARGET_DIR=$target_dir
	unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS || true
}

# Resolve an argument (OpenWrt arch or Rust target) to its table row.
row_for() {
	local want=$1
	target_rows | awk -F'\t' -v w="$want" '$1 == w || $2 == w { print; found = 1 } END { exit !found }'
}

build_one() {
	local rust_target=$1 arch=$2 cfg out bin size
	cfg=(--config "$here/size-config.toml")
	if [ "${TINYDERP_PLAIN:-0}" = 1 ]; then
		cfg=(--config 'unstable.build-std=["std","panic_abort"]'
			--config "target.'cfg(target_env = \"musl\")'.rustflags=[\"-Ctarget-feature=+crt-static\",\"-Clink-self-contained=no\"]")
	fi
	log "building $rust_target ($arch)"
	(cd "$root" && /usr/bin/cargo zigbuild "${cfg[@]}" --locked --release --target "$rust_target" --bin tinyderp)
	bin=$target_dir/$rust_target/release/tinyderp
	[ -f "$bin" ] || die "no binary at $bin"
	out=$dist/$arch
	mkdir -p "$out"
	cp "$bin" "$out/tinyderp.tmp"
	chmod 0755 "$out/tinyderp.tmp"
	mv "$out/tinyderp.tmp" "$out/tinyderp"
	size=$(stat -c %s "$out/tinyderp")
	log "$arch: $size bytes"
}

write_sizes() {
	local rust_target arch _q _c f size xz
	{
		printf 'openwrt_arch\trust_target\tbytes\txz_bytes\n'
		while IFS=$'\t' read -r rust_target arch _q _c; do
			f=$dist/$arch/tinyderp
			[ -f "$f" ] || continue
			size=$(stat -c %s "$f")
			# What the binary costs inside OpenWrt's xz-compressed squashfs, roughly.
			xz=$(xz -9e -c "$f" 2>/dev/null | wc -c || echo 0)
			printf '%s\t%s\t%s\t%s\n' "$arch" "$rust_target" "$size" "$xz"
		done < <(target_rows)
	} >"$dist/sizes.tsv.tmp"
	mv "$dist/sizes.tsv.tmp" "$dist/sizes.tsv"
}

# Fail (exit 3) when any binary listed in the budget file is larger than its budget.
check_size() {
	local arch budget actual status=0
	[ -f "$dist/sizes.tsv" ] || die "no $dist/sizes.tsv: build first"
	while IFS=$'\t' read -r arch budget; do
		case "$arch" in '#'* | '' | openwrt_arch) continue ;; esac
		actual=$(awk -F'\t' -v a="$arch" '$1 == a { print $3 }' "$dist/sizes.tsv")
		if [ -z "$actual" ]; then
			log "size: $arch not built, not checked"
			continue
		fi
		if [ "$actual" -gt "$budget" ]; then
			log "size: $arch is $actual bytes, over its budget of $budget (cross/size-budget.tsv)"
			status=3
		else
			log "size: $arch is $actual bytes, budget $budget: ok"
		fi
	done <"$here/size-budget.tsv"
	return $status
}

# dist/sizes.tsv as Markdown, with the budget column.
size_table() {
	[ -f "$dist/sizes.tsv" ] || die "no $dist/sizes.tsv: build first"
	echo "| OpenWrt arch | Rust target | bytes | xz -9e bytes | budget |"
	echo "| --- | --- | ---: | ---: | ---: |"
	awk -F'\t' 'NR == FNR { if ($1 !~ /^#/) budget[$1] = $2; next }
		FNR > 1 { b = ($1 in budget) ? budget[$1] : "-"; printf "| `%s` | `%s` | %s | %s | %s |\n", $1, $2, $3, $4, b }' \
		"$here/size-budget.tsv" "$dist/sizes.tsv"
}

main() {
	[ $# -gt 0 ] || { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
	case "$1" in
	--check-size) check_size; exit $? ;;
	--install-only) install_toolchain; exit 0 ;;
	--size-table) size_table; exit 0 ;;
	esac
	local rows=() arg row
	if [ "$1" = all ]; then
		mapfile -t rows < <(target_rows)
	else
		for arg in "$@"; do
			row=$(row_for "$arg") || die "unknown target '$arg' (see cross/targets.tsv)"
			rows+=("$row")
		done
	fi
	install_toolchain
	use_toolchain
	mkdir -p "$dist"
	for row in "${rows[@]}"; do
		IFS=$'\t' read -r rust_target arch _ _ <<<"$row"
		build_one "$rust_target" "$arch"
	done
	write_sizes
	column -t -s $'\t' "$dist/sizes.tsv" >&2 || cat "$dist/sizes.tsv" >&2
	check_size
}

main "$@"
