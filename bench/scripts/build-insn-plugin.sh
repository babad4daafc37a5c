#!/usr/bin/env bash
# Builds bench/qemu-plugin/insncount.c into a QEMU TCG plugin for the installed qemu-user
# and prints its path. Cached: reruns reuse the plugin.
#
# The plugin API header (qemu-plugin.h) is in no Debian 12 binary package, so it is taken
# from Debian's source package of the installed qemu-user, the exact same version (the
# plugin API is versioned and checked when QEMU loads a plugin). apt-get fetches that
# source through a private, deb-src-only apt configuration under the cache directory;
# the machine's apt sources are left as they are. Only the header is kept.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${TINYDERP_BENCH_CACHE:-$HOME/.cache/tinyderp/bench}"
log() { printf 'build-insn-plugin: %s\n' "$*" >&2; }

command -v qemu-mips >/dev/null || { log "qemu-user is not installed"; exit 1; }
version="$(dpkg-query -W -f='${source:Version}' qemu-user)"
src_name="$(dpkg-query -W -f='${source:Package}' qemu-user)"
safe="$(printf '%s' "$version" | tr ':+~' '___')"
dir="$CACHE/qemu-plugin-$safe"
plugin="$dir/libinsncount.so"
header="$dir/include/qemu-plugin.h"
source_c="$HERE/qemu-plugin/insncount.c"

if [ ! -f "$header" ]; then
    log "fetching qemu-plugin.h from Debian's $src_name $version source package"
    apt_dir="$dir/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dir/src" "$dir/include"
    # deb-src lines for the suites the installed packages come from.
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    {
        echo "deb-src http://deb.debian.org/debian $codename main"
        echo "deb-src http://deb.debian.org/debian $codename-updates main"
        echo "deb-src http://deb.debian.org/debian-security $codename-security main"
    } >"$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
        -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" -qq update
    (cd "$dir/src" && apt-get "${apt_opts[@]}" -qq source --download-only "$src_name=$version")
    orig="$(ls "$dir/src"/*.orig.tar.* | head -n 1)"
    member="$(tar -tf "$orig" | grep '/include/qemu/qemu-plugin.h$' | head -n 1)"
    [ -n "$member" ] || { log "no qemu-plugin.h in $orig"; exit 1; }
    tar -xOf "$orig" "$member" >"$header.tmp"
    mv "$header.tmp" "$header"
    rm -rf "$dir/src" "$apt_dir"
fi

if [ ! -f "$plugin" ] || [ "$source_c" -nt "$plugin" ]; then
    cc -O2 -shared -fPIC -pthread -Wall -Wextra -Werror -I "$dir/include" -o "$plugin.tmp" "$source_c"
    mv "$plugin.tmp" "$plugin"
fi
# A plugin qemu-user cannot load (built without plugin support, API mismatch) fails here.
# Its count goes to a scratch file: the plugin writes a temporary and renames it over the
# out= path, which would replace /dev/null itself with a regular file.
probe_dir="$(mktemp -d)"
if ! out="$(qemu-x86_64 -plugin "$plugin,out=$probe_dir/count" /bin/true 2>&1)"; then
    rm -rf "$probe_dir"
    log "qemu-user cannot load the plugin: $out"
    exit 1
fi
rm -rf "$probe_dir"
echo "$plugin"
