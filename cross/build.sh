#!/usr/bin/env bash
# Build static, stripped musl binaries of tinyderp for OpenWrt router CPUs.
#
#   cross/build.sh all                 every target in cross/targets.tsv
#   cross/build.sh mips_24kc x86_64    by OpenWrt arch ...
#   cross/build.sh mips-unknown-linux-musl   ... or by Rust target
#   cross/build.sh --install-only      set up the toolchain and stop
#   cross/build.sh --check-size        only compare dist/sizes.tsv with the budget
#   cross/build.sh --size-table        print the size table (docs/building.md) from dist/: binaries,
#                                      gzip/xz, .ipk/.apk (openwrt/package.sh) and derper
#   cross/build.sh --derper [ARCH...]  build upstream derper (release pinned in
#                                      bench/derper/go.mod) for the same CPUs, stripped,
#                                      into dist/derper/ARCH/ for the size table
#
# Writes dist/<openwrt-arch>/tinyderp and dist/sizes.tsv, then checks the sizes against
# cross/size-budget.tsv (exit 3 when a binary is over budget; its third column, the .ipk/.apk
# budget, is checked by tests/package).
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
#   TINYDERP_CROSS_TARGET  cargo target dir (default $TINYDERP_CACHE/cross-target)
#   TINYDERP_FEATURES   cargo features for the router build, which has none of the default
#                       features (e.g. TINYDERP_FEATURES=port-mapping,tls-client; what each
#                       costs on mips_24kc is in docs/building.md, "Optional features")
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${TINYDERP_CACHE:-$HOME/.cache/tinyderp}
venv=$cache/venv
target_dir=${TINYDERP_CROSS_TARGET:-$cache/cross-target}
dist=${TINYDERP_DIST:-$root/dist}

# Pinned together: the -Z flags and build-std are unstable, so versions move as one.
# llvm: llvm-objcopy strips what cargo's strip leaves (MIPS .pdr, .comment).
APT_PACKAGES="rustc-web cargo-web rust-web-src qemu-user python3-venv llvm"
ZIGLANG_VERSION=0.17.0
CARGO_ZIGBUILD_VERSION=0.24.0

# C flags for ring on the router builds (see build_one).
C_SIZE_FLAGS="-fno-pic -fno-unwind-tables -fno-asynchronous-unwind-tables"
[ "${TINYDERP_PLAIN:-0}" = 1 ] && C_SIZE_FLAGS=

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
	# ring's C (the only C we compile): a static executable needs no position-independent
	# code, and with panic=immediate-abort nothing unwinds, so no unwind tables either. cc
	# appends these after its own -fPIC, so they win.
	local cflags_var
	cflags_var=CFLAGS_$(printf '%s' "$rust_target" | tr '-' '_')
	# No default features: tls-client (check's login probe, the mesh dialer) and port-mapping
	# (PCP, NAT-PMP, UPnP IGD for a double NAT) are host defaults that routers leave out to
	# fit 1 MiB on MIPS, unless TINYDERP_FEATURES asks for them.
	local features=(--no-default-features ${TINYDERP_FEATURES:+--features "$TINYDERP_FEATURES"})
	(cd "$root" && env "$cflags_var=${C_SIZE_FLAGS}" \
		/usr/bin/cargo zigbuild "${cfg[@]}" --locked --release --target "$rust_target" \
		"${features[@]}" --bin tinyderp)
	bin=$target_dir/$rust_target/release/tinyderp
	[ -f "$bin" ] || die "no binary at $bin"
	out=$dist/$arch
	mkdir -p "$out"
	# cargo's strip keeps sections no loader reads: MIPS .pdr (procedure descriptors for
	# debuggers, ~9 % of the file), .comment, .note.gnu.gold-version and the like.
	llvm-objcopy --strip-all --remove-section=.pdr --remove-section=.comment \
		--remove-section=.note.gnu.gold-version --remove-section=.gnu.build.attributes \
		"$bin" "$out/tinyderp.tmp"
	chmod 0755 "$out/tinyderp.tmp"
	mv "$out/tinyderp.tmp" "$out/tinyderp"
	size=$(stat -c %s "$out/tinyderp")
	log "$arch: $size bytes"
}

# "bytes gzip xz" of a file: gzip -9 is what a download costs, xz -9e roughly what the
# binary costs inside OpenWrt's xz-compressed squashfs.
measure() {
	printf '%s\t%s\t%s' "$(stat -c %s "$1")" "$(gzip -9 -n -c "$1" | wc -c)" "$(xz -9e -c "$1" | wc -c)"
}

write_sizes() {
	local rust_target arch _q _c f
	{
		printf 'openwrt_arch\trust_target\tbytes\tgzip_bytes\txz_bytes\n'
		while IFS=$'\t' read -r rust_target arch _q _c; do
			f=$dist/$arch/tinyderp
			[ -f "$f" ] || continue
			printf '%s\t%s\t%s\n' "$arch" "$rust_target" "$(measure "$f")"
		done < <(target_rows)
	} >"$dist/sizes.tsv.tmp"
	mv "$dist/sizes.tsv.tmp" "$dist/sizes.tsv"
}

# Go's name for each OpenWrt arch; MIPS routers have no FPU, so soft float as OpenWrt builds.
derper_goenv() {
	case $1 in
	mips_24kc) echo GOARCH=mips GOMIPS=softfloat ;;
	mipsel_24kc) echo GOARCH=mipsle GOMIPS=softfloat ;;
	arm_cortex-a7_neon-vfpv4) echo GOARCH=arm GOARM=7 ;;
	aarch64_cortex-a53) echo GOARCH=arm64 ;;
	x86_64) echo GOARCH=amd64 ;;
	*) return 1 ;;
	esac
}

build_derper() {
	local arch=$1 goenv out version
	goenv=$(derper_goenv "$arch") || die "no Go architecture known for $arch"
	version=$(sed -n 's/^[[:space:]]*tailscale.com \(v[^ ]*\).*/\1/p' "$root/bench/derper/go.mod" | head -n 1)
	out=$dist/derper/$arch
	mkdir -p "$out"
	log "building derper $version for $arch ($goenv)"
	# Stripped (-s -w) and trimmed as release builds; GOTOOLCHAIN=auto fetches the Go
	# release the pinned tailscale.com needs from the module proxy.
	(cd "$root/bench/derper" && env $goenv GOOS=linux CGO_ENABLED=0 GOTOOLCHAIN=auto GOFLAGS=-mod=mod \
		PATH="$PATH:/usr/local/go/bin" go build -trimpath -ldflags='-s -w' -o "$out/derper.tmp" tailscale.com/cmd/derper)
	mv "$out/derper.tmp" "$out/derper"
	printf '%s\n' "$version" >"$out/version"
}

# Fail (exit 3) when any binary listed in the budget file is larger than its budget.
check_size() {
	local arch budget actual status=0
	[ -f "$dist/sizes.tsv" ] || die "no $dist/sizes.tsv: build first"
	while IFS=$'\t' read -r arch budget _package_budget; do
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

# Size of the one file matching a glob, or "-".
size_of() {
	local f
	for f in "$@"; do
		[ -f "$f" ] && { stat -c %s "$f"; return; }
	done
	echo -
}

# The size table (Markdown), every figure measured from the files in dist/ now: binaries
# (cross/build.sh), packages (openwrt/package.sh) and derper (cross/build.sh --derper).
size_table() {
	local arch rust_target bytes gz xz budget ipk apk d_bytes d_gz d_xz
	[ -f "$dist/sizes.tsv" ] || die "no $dist/sizes.tsv: build first"
	echo "| OpenWrt arch | tinyderp bytes | gzip -9 | xz -9e | .ipk | .apk | budget | derper bytes | derper gzip -9 | derper xz -9e |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	while IFS=$'\t' read -r arch rust_target bytes gz xz; do
		[ "$arch" = openwrt_arch ] && continue
		budget=$(awk -F'\t' -v a="$arch" '$1 == a { print $2 }' "$here/size-budget.tsv")
		ipk=$(size_of "$dist"/tinyderp_*_"$arch".ipk)
		apk=$(size_of "$dist/$arch"/tinyderp-*.apk)
		if [ -f "$dist/derper/$arch/derper" ]; then
			IFS=$'\t' read -r d_bytes d_gz d_xz < <(measure "$dist/derper/$arch/derper"; echo)
		else
			d_bytes=- d_gz=- d_xz=-
		fi
		printf '| `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$arch" "$bytes" "$gz" "$xz" \
			"$ipk" "$apk" "${budget:--}" "$d_bytes" "$d_gz" "$d_xz"
	done <"$dist/sizes.tsv"
	if [ -f "$(ls "$dist"/derper/*/version 2>/dev/null | head -n 1)" ]; then
		echo
		echo "derper: tailscale.com $(cat "$(ls "$dist"/derper/*/version | head -n 1)") cmd/derper, CGO_ENABLED=0, -trimpath -ldflags='-s -w'."
	fi
}

main() {
	[ $# -gt 0 ] || { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
	case "$1" in
	--check-size) check_size; exit $? ;;
	--install-only) install_toolchain; exit 0 ;;
	--size-table) size_table; exit 0 ;;
	--derper)
		shift
		local arches=("$@") a
		[ ${#arches[@]} -gt 0 ] || mapfile -t arches < <(target_rows | cut -f2)
		for a in "${arches[@]}"; do build_derper "$a"; done
		exit 0
		;;
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
