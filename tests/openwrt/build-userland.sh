#!/usr/bin/env bash
# Builds OpenWrt's own userland (procd, ubus, uci, ubox, jsonfilter, opkg, apk v3, ucode,
# firewall4 and OpenWrt's busybox) from unmodified source snapshots, for the OpenWrt test
# harness (tests/openwrt/). The result is a directory tree with the programs at their
# OpenWrt paths; the harness copies it into each rootfs it boots.
#
#   build-userland.sh SOURCES_DIR    prints the output directory on the last line
#
# Exit codes: 0 built (or found in the cache), 77 the sources are absent (skip), other: failed.
# Outputs are cached by content: ~/.cache/tinyderp/openwrt-userland/<sha256 of the source
# tarballs, this script and common.sh>, so a second run only hashes.
set -euo pipefail

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$self")/common.sh"
src=$(sources_dir "${1:-}") || exit 77
cache=${OPENWRT_USERLAND_CACHE:-$HOME/.cache/tinyderp/openwrt-userland}

collect_sources "OpenWrt userland" libubox ubus uci ucode udebug ubox procd jsonpath \
    opkg-lede apk-tools firewall4 busybox openwrt-tree-openwrt-24.10 openwrt-tree-openwrt-25.12
key=$(cache_key "$self")
out="$cache/$key"
if [ -f "$out/.done" ]; then
    echo "OpenWrt userland: cached"
    echo "$out"
    exit 0
fi

# Debian build dependencies.
apt_need build-essential cmake pkgconf libjson-c-dev libssl-dev zlib1g-dev meson ninja-build \
    nftables util-linux patch

mkdir -p "$cache"
# The work dir survives a failed build (a rerun resumes after the last finished step) and
# is removed once the output is complete.
work="$cache/build-$key"
root="$work/root"   # DESTDIR: what ends up in the rootfs
mkdir -p "$root" "$work/src"
jobs=$(nproc)

if [ ! -f "$work/unpacked" ]; then
    for f in "${files[@]}"; do
        case "$f" in */openwrt-tree-*) continue ;; esac
        tar -xzf "$f" -C "$work/src"
    done
    # Both trees unpack to openwrt/: each under its own name.
    for v in 24.10 25.12; do
        mkdir -p "$work/tree-$v"
        tar -xzf "$(tarball openwrt-tree-openwrt-$v)" -C "$work/tree-$v" --strip-components=1
    done
    touch "$work/unpacked"
fi

write_compat_h "$work/compat.h"
export CFLAGS="-O2 -I$root/usr/include $NOWERR"
export LDFLAGS="-L$root/usr/lib -Wl,-rpath-link,$root/usr/lib"
export PKG_CONFIG_PATH="$root/usr/lib/pkgconfig"

cm() { # dir [cmake args]: in-source cmake build installed into $root with prefix /usr
    local d=$1
    shift
    [ -f "$work/$d.done" ] && return 0
    echo "--- build $d"
    (cd "$work/src/$d" &&
        cmake -S . -B . -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib \
            -DCMAKE_PREFIX_PATH="$root/usr" -DCMAKE_FIND_ROOT_PATH="$root" \
            -DCMAKE_BUILD_TYPE=Release "$@" >"$work/$d.cmake.log" 2>&1 &&
        make -j"$jobs" >"$work/$d.make.log" 2>&1 &&
        make install DESTDIR="$root" >>"$work/$d.make.log" 2>&1) || {
        tail -n 40 "$work/$d".*.log
        return 1
    }
    touch "$work/$d.done"
}

cm libubox -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
cm ubus -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF
cm uci -DBUILD_LUA=OFF
cm ucode -DNL80211_SUPPORT=OFF -DRTNL_SUPPORT=OFF -DDIGEST_SUPPORT=OFF -DSOCKET_SUPPORT=OFF \
    -DUCI_SUPPORT=ON -DUBUS_SUPPORT=ON -DULOOP_SUPPORT=ON -DFS_SUPPORT=ON -DMATH_SUPPORT=ON \
    -DLOG_SUPPORT=OFF -DDEBUG_SUPPORT=OFF -DRESOLV_SUPPORT=OFF -DSTRUCT_SUPPORT=OFF \
    -DZLIB_SUPPORT=OFF -DUDEBUG_SUPPORT=OFF
cm udebug
cm ubox
CFLAGS="$CFLAGS -include $work/compat.h" cm procd -DJAIL_SUPPORT=ON -DSECCOMP_SUPPORT=OFF \
    -DUTRACE_SUPPORT=OFF
cm jsonpath
CFLAGS="$CFLAGS -include $work/compat.h" cm opkg-lede -DBUILD_TESTS=OFF -DENABLE_USIGN=OFF \
    -DHOST_CPU=x86_64 -DBUILD_ARCH=x86_64

build_apk() {
echo "--- build apk-tools"
rm -rf "$work/src/apk-tools/build"
(cd "$work/src/apk-tools" &&
    meson setup build --prefix=/usr -Ddocs=disabled -Dhelp=disabled -Dlua=disabled \
        -Dpython=disabled -Dtests=disabled -Dzstd=disabled -Ddefault_library=static \
        -Durl_backend=wget >"$work/apk.log" 2>&1 ||
    meson setup build --prefix=/usr -Ddocs=disabled -Dhelp=disabled -Dlua=disabled \
        -Dpython=disabled -Dtests=disabled -Dzstd=disabled -Ddefault_library=static \
        >"$work/apk.log" 2>&1) && ninja -C "$work/src/apk-tools/build" >>"$work/apk.log" 2>&1 ||
    { tail -n 40 "$work/apk.log"; return 1; }
install -D -m 0755 "$work/src/apk-tools/build/src/apk" "$root/usr/bin/apk"

# busybox 1.36.1 with OpenWrt's patches and its default configuration (Config-defaults.in).
}

build_busybox() {
echo "--- build busybox"
bb="$work/src/busybox"
rm -rf "$bb"
tar -xzf "$(tarball busybox)" -C "$work/src"
for p in "$work/tree-24.10"/package/utils/busybox/patches/*.patch; do
    patch -d "$bb" -p1 -s <"$p" || return 1
done
awk '
    /^config BUSYBOX_DEFAULT_/ { if (name != "" && !done) emit(""); name = substr($2, 17); done = 0; next }
    /^[ \t]*default / && name != "" && !done {
        line = $0; sub(/^[ \t]*default /, "", line)
        # OpenWrt builds with IPv6: "default y if IPV6" applies; other conditions do not.
        if (line ~ / if IPV6$/) { sub(/ if IPV6$/, "", line) }
        else if (line ~ / if /) next
        emit(line); done = 1; next
    }
    function emit(v) {
        if (v == "y") print "CONFIG_" name "=y"
        else if (v == "n" || v == "") print "# CONFIG_" name " is not set"
        else print "CONFIG_" name "=" v
    }
' "$work/tree-24.10/package/utils/busybox/Config-defaults.in" >"$bb/.config"
# Host differences: glibc, not musl; no SELinux, PAM or static link here.
sed -i -e 's/^CONFIG_STATIC=y/# CONFIG_STATIC is not set/' \
    -e 's/^CONFIG_EXTRA_CFLAGS=.*/CONFIG_EXTRA_CFLAGS=""/' \
    -e 's/^CONFIG_EXTRA_LDFLAGS=.*/CONFIG_EXTRA_LDFLAGS=""/' \
    -e 's/^CONFIG_CROSS_COMPILER_PREFIX=.*/CONFIG_CROSS_COMPILER_PREFIX=""/' \
    -e 's/^CONFIG_SYSROOT=.*/CONFIG_SYSROOT=""/' \
    -e 's/^CONFIG_PREFIX=.*/CONFIG_PREFIX=".\/_install"/' \
    -e 's/^CONFIG_TC=y/# CONFIG_TC is not set/' \
    "$bb/.config"
(cd "$bb" && unset CFLAGS LDFLAGS && (yes '' || :) | make oldconfig >"$work/busybox.log" 2>&1 &&
    make -j"$jobs" >>"$work/busybox.log" 2>&1 &&
    make install >>"$work/busybox.log" 2>&1) || { tail -n 40 "$work/busybox.log"; return 1; }
grep -q '^CONFIG_LOCK=y' "$bb/.config" || { echo "busybox: no lock applet"; return 1; }
}

[ -f "$work/apk.done" ] || { build_apk && touch "$work/apk.done"; }
bb="$work/src/busybox"
[ -f "$work/busybox.done" ] || { build_busybox && touch "$work/busybox.done"; }

# Arrange at OpenWrt's paths (its package Makefiles install these names).
mkdir -p "$out.tmp"
rm -rf "$out.tmp"/*
cp -a "$root" "$out.tmp/root"
r="$out.tmp/root"
mkdir -p "$r/sbin" "$r/bin" "$r/lib" "$r/usr/sbin" "$r/usr/bin" "$r/usr/share/libubox"
mv "$r/usr/sbin/procd" "$r/sbin/procd"
mv "$r/usr/sbin/ubusd" "$r/sbin/ubusd"
mv "$r/usr/bin/ubus" "$r/bin/ubus"
mv "$r/usr/bin/uci" "$r/sbin/uci"
for b in validate_data logd logread; do [ -e "$r/usr/sbin/$b" ] && mv "$r/usr/sbin/$b" "$r/sbin/$b"; done
for b in ujail uxc init askfirst udevtrigger upgraded; do
    [ -e "$r/usr/sbin/$b" ] && mv "$r/usr/sbin/$b" "$r/sbin/$b"
done
[ -e "$r/usr/lib/libsetlbf.so" ] && mv "$r/usr/lib/libsetlbf.so" "$r/lib/libsetlbf.so"
mv "$r/usr/bin/jsonpath" "$r/usr/bin/jsonfilter"
[ -e "$r/usr/bin/opkg-cl" ] && mv "$r/usr/bin/opkg-cl" "$r/bin/opkg"
[ -e "$r/usr/bin/opkg" ] && mv "$r/usr/bin/opkg" "$r/bin/opkg"
[ -e "$r/usr/share/libubox/jshn.sh" ] || cp "$work/src/libubox/sh/jshn.sh" "$r/usr/share/libubox/"
# firewall4: its root/ tree as the package installs it.
cp -a "$work/src/firewall4/root/." "$r/"
# busybox as /bin/busybox plus its applet links.
cp -a "$bb/_install/." "$r/"
rm -rf "$r/usr/include" "$r/usr/lib/pkgconfig" "$r/usr/lib"/*.a
cp "$bb/.config" "$out.tmp/busybox.config"
cp -a "$work/tree-24.10" "$work/tree-25.12" "$out.tmp/"
ls -R "$r" >"$out.tmp/manifest.txt"
rm -rf "$out"
mv "$out.tmp" "$out"
touch "$out/.done"
rm -rf "$work"
echo "OpenWrt userland: built"
echo "$out"
