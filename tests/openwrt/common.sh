# Shared by the OpenWrt harness scripts, sourced, not run: the build scripts
# (build-userland.sh, build-luci.sh: source snapshots, the content cache key, Debian build
# dependencies, glibc shims) and the stage scripts (run.sh, run-luci.sh: root and
# namespaces, the userland build, the x86_64 packages, the pytest run and its exit code).
# This file is part of every build's cache key, like the build script itself.

common_sh=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh

# ---- build scripts ---------------------------------------------------------------------

# sources_dir DIR: the absolute source directory, or exit 77 (the stage is skipped).
sources_dir() {
    if [ -z "${1:-}" ] || [ ! -d "$1" ]; then
        echo "OpenWrt userland sources not found at '${1:-<unset>}': skipping" >&2
        exit 77
    fi
    (cd "$1" && pwd)
}

# tarball NAME: the one tarball of that source in $src.
tarball() {
    local f
    f=$(ls "$src/$1".tar.gz "$src/$1"-*.tar.gz 2>/dev/null | head -n1)
    [ -n "$f" ] || { echo "missing source tarball $1-*.tar.gz in $src" >&2; return 1; }
    echo "$f"
}

# collect_sources WHAT NAME...: the tarballs of NAME... into the array `files`, or exit 77
# saying WHAT is incomplete.
collect_sources() {
    local what=$1 n f
    shift
    files=()
    for n in "$@"; do
        f=$(tarball "$n") || { echo "$what sources incomplete: skipping"; exit 77; }
        files+=("$f")
    done
}

# cache_key SCRIPT: 16 hex digits of the SHA-256 over the tarballs in `files`, SCRIPT and
# this file: any change of the sources or of how they are built makes a new cache entry.
cache_key() {
    (sha256sum "${files[@]}" | awk '{print $1}'
        sha256sum "$1" "$common_sh" | awk '{print $1}') | sha256sum | cut -c1-16
}

# apt_need PKG...: installs the Debian packages that are missing (CI machines start fresh).
apt_need() {
    local p missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade "${missing[@]}" >/dev/null
}

# write_compat_h FILE: glibc 2.36 has no strlcpy (musl has); rpcd's sys plugin and others
# use it. Force-included with -include FILE.
write_compat_h() {
    cat >"$1" <<'EOF'
#include <stddef.h>
static inline size_t owrt_compat_strlcpy(char *d, const char *s, size_t n)
{
	size_t l = __builtin_strlen(s);
	if (n) {
		size_t c = l >= n ? n - 1 : l;
		__builtin_memcpy(d, s, c);
		d[c] = 0;
	}
	return l;
}
#define strlcpy owrt_compat_strlcpy
EOF
}

# Warnings Debian's gcc 12 turns into errors where OpenWrt's gcc does not.
NOWERR="-Wno-error=format-overflow -Wno-error=format-truncation -Wno-error=maybe-uninitialized \
-Wno-error=stringop-truncation -Wno-error=stringop-overread -Wno-error=cpp -Wno-error=unused-result \
-Wno-error=use-after-free -Wno-error=dangling-pointer"

# ---- stage scripts ---------------------------------------------------------------------

# need_root_and_namespaces STAGE: exit 77 unless procd can be booted in namespaces here.
need_root_and_namespaces() {
    if [ "$(id -u)" != 0 ]; then
        echo "SKIPPED: the $1 stage boots procd in namespaces and needs root"
        exit 77
    fi
    if ! unshare --pid --fork --mount --uts --ipc --net true 2>/dev/null; then
        echo "SKIPPED: cannot create PID/mount/network namespaces here"
        exit 77
    fi
}

# run_build SCRIPT SOURCES WHAT: runs a build script, shows its output but the last line
# and sets `built` to that line (the output directory); exit 77 or 1 when it skipped or
# failed.
run_build() {
    local out rc
    out=$(bash "$1" "$2")
    rc=$?
    echo "$out" | sed '$d'
    [ "$rc" = 77 ] && { echo "SKIPPED: $3: no sources"; exit 77; }
    [ "$rc" = 0 ] || { echo "building $3 failed"; exit 1; }
    built=${out##*$'\n'}
}

# x86_64_packages ROOT: the x86_64 build and packages in $TINYDERP_DIST, built when missing.
x86_64_packages() {
    if ! ls "$TINYDERP_DIST"/tinyderp_*_x86_64.ipk "$TINYDERP_DIST"/x86_64/tinyderp-*.apk \
        >/dev/null 2>&1; then
        echo "--- x86_64 packages missing in $TINYDERP_DIST: building them"
        TINYDERP_DIST=$TINYDERP_DIST bash "$1/cross/build.sh" x86_64 &&
            TINYDERP_DIST=$TINYDERP_DIST bash "$1/openwrt/package.sh" x86_64 || exit 1
    fi
}

# python_venv DIR IMPORTS PKG...: a virtualenv at DIR in which `import IMPORTS` works,
# installing PKG... from PyPI when it does not yet.
python_venv() {
    local venv=$1 imports=$2
    shift 2
    if ! "$venv/bin/python" -c "import $imports" 2>/dev/null; then
        python3 -m venv "$venv" && "$venv/bin/pip" install -q "$@" || exit 1
    fi
}

# stage_exit RC: pytest's exit code as the stage's (0 passed, 77 nothing ran, 1 failed).
stage_exit() {
    case "$1" in
    0) exit 0 ;;
    5) echo "SKIPPED: no scenario ran"; exit 77 ;;
    *) exit 1 ;;
    esac
}
