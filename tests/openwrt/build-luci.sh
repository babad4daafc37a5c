#!/usr/bin/env bash
# Builds what LuCI runs on, from unmodified source snapshots, on top of the OpenWrt
# userland of build-userland.sh: uhttpd (ucode and ubus handlers), rpcd (file and ucode
# plugins), ucode's log module, lucihttp's ucode binding, ucode-mod-html, luci-base's C
# module and its files, the bootstrap theme and luci-mod-status, plus the uhttpd and
# rpcd init scripts and configuration of the OpenWrt tree. The output is a tree the
# harness copies over the userland root.
#
#   build-luci.sh SOURCES_DIR    prints the output directory on the last line
#
# Exit codes: 0 built (or cached), 77 the sources are absent (skip), other: failed.
# Cached by content: ~/.cache/tinyderp/openwrt-luci/<sha256 of the tarballs, this script
# and common.sh>.
set -euo pipefail

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$self")/common.sh"
src=$(sources_dir "${1:-}") || exit 77
cache=${OPENWRT_LUCI_CACHE:-$HOME/.cache/tinyderp/openwrt-luci}

collect_sources LuCI libubox ubus uci ucode rpcd uhttpd lucihttp luci openwrt-tree-openwrt-24.10
key=$(cache_key "$self")
out="$cache/$key"
if [ -f "$out/.done" ]; then
    echo "LuCI: cached"
    echo "$out"
    exit 0
fi

apt_need build-essential cmake pkgconf libjson-c-dev libssl-dev zlib1g-dev libcrypt-dev

mkdir -p "$cache"
work="$cache/build-$key"
root="$work/root"   # DESTDIR of everything (libraries too, for headers)
mkdir -p "$root" "$work/src"
jobs=$(nproc)

if [ ! -f "$work/unpacked" ]; then
    for f in "${files[@]}"; do
        case "$f" in */openwrt-tree-*) continue ;; esac
        tar -xzf "$f" -C "$work/src"
    done
    mkdir -p "$work/tree"
    tar -xzf "$(tarball openwrt-tree-openwrt-24.10)" -C "$work/tree" --strip-components=1 \
        --wildcards '*/package/network/services/uhttpd/files/*' '*/package/system/rpcd/files/*'
    touch "$work/unpacked"
fi

write_compat_h "$work/compat.h"
export CFLAGS="-O2 -I$root/usr/include $NOWERR"
# rpcd, uhttpd, lucihttp, html.c and luci.core need it on glibc (vasprintf and friends).
gnu="-D_GNU_SOURCE="  # empty, like the sources' own #define: no redefinition warning
export LDFLAGS="-L$root/usr/lib -Wl,-rpath-link,$root/usr/lib"
export PKG_CONFIG_PATH="$root/usr/lib/pkgconfig"

cm() { # dir [cmake args]: cmake build installed into $root with prefix /usr
    local d=$1
    shift
    [ -f "$work/$d.done" ] && return 0
    echo "--- build $d"
    (cd "$work/src/$d" && rm -rf build &&
        cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib \
            -DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_FIND_ROOT_PATH="$root" \
            -DCMAKE_BUILD_TYPE=Release "$@" >"$work/$d.cmake.log" 2>&1 &&
        make -C build -j"$jobs" >"$work/$d.make.log" 2>&1 &&
        make -C build install DESTDIR="$root" >>"$work/$d.make.log" 2>&1) || {
        tail -n 40 "$work/$d".*.log
        return 1
    }
    touch "$work/$d.done"
}

cm libubox -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
cm ubus -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
cm uci -DBUILD_LUA=OFF
# Same switches as build-userland.sh, plus the log module luci-base needs.
cm ucode -DNL80211_SUPPORT=OFF -DRTNL_SUPPORT=OFF -DDIGEST_SUPPORT=OFF -DSOCKET_SUPPORT=OFF \
    -DUCI_SUPPORT=ON -DUBUS_SUPPORT=ON -DULOOP_SUPPORT=ON -DFS_SUPPORT=ON -DMATH_SUPPORT=ON \
    -DLOG_SUPPORT=ON -DDEBUG_SUPPORT=OFF -DRESOLV_SUPPORT=OFF -DSTRUCT_SUPPORT=OFF \
    -DZLIB_SUPPORT=OFF -DUDEBUG_SUPPORT=OFF
CFLAGS="$CFLAGS $gnu -include $work/compat.h" cm rpcd -DIWINFO_SUPPORT=OFF -DUCODE_SUPPORT=ON -DFILE_SUPPORT=ON -DRPCSYS_SUPPORT=ON
CFLAGS="$CFLAGS $gnu" cm uhttpd -DTLS_SUPPORT=OFF -DLUA_SUPPORT=OFF -DUCODE_SUPPORT=ON
CFLAGS="$CFLAGS $gnu" cm lucihttp -DBUILD_UCODE=ON -DBUILD_LUA=OFF -DBUILD_TESTS=OFF

luci="$work/src/luci"
if [ ! -f "$work/luci-c.done" ]; then
    echo "--- build ucode-mod-html and luci.core"
    mkdir -p "$root/usr/lib/ucode/luci" "$root/usr/share/ucode/luci"
    gcc $CFLAGS $gnu -fPIC -shared -o "$root/usr/lib/ucode/html.so" \
        "$luci/contrib/package/ucode-mod-html/src/html.c" $LDFLAGS >"$work/html.log" 2>&1 ||
        { cat "$work/html.log"; exit 1; }
    # luci.mk's version string: %y.%j.<seconds of day>~<hash7> of the snapshot's commit.
    rev=$(basename "$(tarball luci)" .tar.gz | sed 's/^luci-//' | cut -c1-7)
    make -C "$luci/modules/luci-base/src" clean >/dev/null
    make -C "$luci/modules/luci-base/src" compile FPIC=-fPIC \
        CFLAGS="$CFLAGS $gnu" LDFLAGS="$LDFLAGS" LUCI_VERSION="snapshot~$rev" \
        LUCI_GITBRANCH=master >"$work/luci-core.log" 2>&1 || { tail -n 40 "$work/luci-core.log"; exit 1; }
    cp "$luci/modules/luci-base/src/core.so" "$root/usr/lib/ucode/luci/core.so"
    cp "$luci/modules/luci-base/src/version.uc" "$root/usr/share/ucode/luci/version.uc"
    touch "$work/luci-c.done"
fi

# The output: only what LuCI adds to the userland root, at OpenWrt's paths.
rm -rf "$out.tmp"
o="$out.tmp/root"
mkdir -p "$o/sbin" "$o/usr/sbin" "$o/usr/lib/ucode/luci" "$o/usr/lib/rpcd" "$o/www" \
    "$o/usr/share/ucode/luci" "$o/etc/init.d" "$o/etc/config"
cp -a "$root/usr/sbin/rpcd" "$o/sbin/rpcd"
cp -a "$root/usr/bin/uhttpd" "$o/usr/sbin/uhttpd"
cp -a "$root/usr/lib/rpcd/." "$o/usr/lib/rpcd/"
cp -a "$root/usr/lib"/uhttpd_*.so "$o/usr/lib/"
cp -a "$root/usr/lib"/liblucihttp.so* "$o/usr/lib/"
for m in log html lucihttp; do cp -a "$root/usr/lib/ucode/$m.so" "$o/usr/lib/ucode/"; done
cp -a "$root/usr/lib/ucode/luci/core.so" "$o/usr/lib/ucode/luci/"
# luci.mk: htdocs/ -> /www, ucode/ -> /usr/share/ucode/luci, root/ -> /.
for m in modules/luci-base themes/luci-theme-bootstrap modules/luci-mod-status; do
    [ -d "$luci/$m/htdocs" ] && cp -a "$luci/$m/htdocs/." "$o/www/"
    [ -d "$luci/$m/ucode" ] && cp -a "$luci/$m/ucode/." "$o/usr/share/ucode/luci/"
    [ -d "$luci/$m/root" ] && cp -a "$luci/$m/root/." "$o/"
done
cp "$root/usr/share/ucode/luci/version.uc" "$o/usr/share/ucode/luci/version.uc"
t="$work/tree/package"
install -m 0755 "$t/network/services/uhttpd/files/uhttpd.init" "$o/etc/init.d/uhttpd"
install -m 0755 "$t/system/rpcd/files/rpcd.init" "$o/etc/init.d/rpcd"
install -m 0644 "$t/system/rpcd/files/rpcd.config" "$o/etc/config/rpcd"
install -D -m 0644 "$work/src/rpcd/unauthenticated.json" \
    "$o/usr/share/rpcd/acl.d/unauthenticated.json"
# uhttpd's stock configuration as luci-base's postinst and uhttpd-mod-ubus' uci-default
# leave it on a router, minus HTTPS (this build has no TLS).
sed -e '/listen_https/d' \
    -e 's#^\(\s*\)list lua_prefix.*#\1list ucode_prefix '"'"'/cgi-bin/luci=/usr/share/ucode/luci/uhttpd.uc'"'"'\n\1option ubus_prefix '"'"'/ubus'"'"'#' \
    "$t/network/services/uhttpd/files/uhttpd.config" >"$o/etc/config/uhttpd"
grep -q ucode_prefix "$o/etc/config/uhttpd" || { echo "uhttpd config: no ucode_prefix"; exit 1; }
find "$o" -name '*.a' -delete
rm -rf "$out"
mv "$out.tmp" "$out"
touch "$out/.done"
rm -rf "$work"
echo "LuCI: built"
echo "$out"
