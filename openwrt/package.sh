#!/usr/bin/env bash
# Package a cross-built tinyderp for OpenWrt without the SDK.
#
#   openwrt/package.sh ARCH [ARCH...]    e.g. mips_24kc, or `all` (every built arch)
#   openwrt/package.sh luci              only the LuCI app (also made by every run above)
#
# Input:  dist/ARCH/tinyderp (from cross/build.sh), init.d/ (the one copy of the init
#         script, UCI file and capability set).
# Output: dist/tinyderp_<version>_<ARCH>.ipk   opkg (OpenWrt 24.10 and older), laid out
#                                              as scripts/ipkg-build makes it
#         dist/ARCH/tinyderp-<version>.apk      apk v3 (OpenWrt 25.12 and newer), written by
#                                              openwrt/apk3.py as `apk mkpkg` would
# The .apk goes in the arch directory because apk file names carry no architecture.
#         dist/luci-app-tinyderp_<version>_all.ipk and dist/luci-app-tinyderp-<version>.apk:
#                                              openwrt/luci-app-tinyderp/ laid out as
#                                              luci.mk installs it (architecture all/noarch)
#
# <version> is the crate version plus the package release: 0.1.0-r1. Timestamps come
# from SOURCE_DATE_EPOCH (default: the last commit's time), so output is reproducible.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dist=${TINYDERP_DIST:-$root/dist}

PKG_NAME=tinyderp
PKG_RELEASE=1
PKG_LICENSE=BSD-3-Clause
PKG_MAINTAINER="tinyderp maintainers"
PKG_SECTION=net
# Created at install by add_group_and_user (opkg: Require-User; apk: .rusers); ids are
# picked free on the router.
PKG_USERID=tinyderp:tinyderp
PKG_DESCRIPTION="A small Tailscale-compatible DERP relay and STUN server for the router \
itself: one static binary, UCI configuration, procd supervision, firewall rules, \
self-signed certificate with a stable pin."
CONFFILES="/etc/config/tinyderp
/etc/tinyderp/"

die() { printf 'package.sh: error: %s\n' "$*" >&2; exit 1; }

# zopfli writes deflate streams (gzip for the .ipk, raw for the .apk) that every inflater
# reads, about 4 % smaller than gzip -9 (mips_24kc .ipk 523,912 -> 503,330 bytes of binary
# alone): flash and download size on the router. Installed from Debian when missing
# (TINYDERP_NO_INSTALL=1: fail instead).
need_zopfli() {
	command -v zopfli >/dev/null && return 0
	[ "${TINYDERP_NO_INSTALL:-0}" = 1 ] && die "zopfli is missing (apt-get install zopfli)"
	local sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zopfli >/dev/null ||
		{ $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zopfli >/dev/null; } ||
		die "cannot install zopfli (apt-get install zopfli)"
	command -v zopfli >/dev/null || die "zopfli not found after installing it"
}
need_zopfli

crate_version() {
	sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$root/Cargo.toml" | head -n1
}

version=$(crate_version)-r$PKG_RELEASE
[ -n "${version%-r*}" ] || die "no version in Cargo.toml"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

# The file tree both formats share, with OpenWrt's install modes
# (INSTALL_BIN 0755, INSTALL_CONF 0600, INSTALL_DATA 0644, directories 0755).
stage_tree() {
	local arch=$1 dest=$2 x
	install -d -m 0755 "$dest/usr/sbin" "$dest/etc/init.d" "$dest/etc/config" \
		"$dest/etc/capabilities" "$dest/lib/upgrade/keep.d"
	install -m 0755 "$dist/$arch/tinyderp" "$dest/usr/sbin/tinyderp"
	install -m 0755 "$root/init.d/tinyderp" "$dest/etc/init.d/tinyderp"
	install -m 0600 "$root/init.d/tinyderp.config" "$dest/etc/config/tinyderp"
	install -m 0644 "$root/init.d/tinyderp.capabilities.json" "$dest/etc/capabilities/tinyderp.json"
	# Conffiles that are not files of the package (the state dir with the generated key
	# and certificate) are kept by sysupgrade through keep.d, as package-pack.mk does.
	: >"$dest/lib/upgrade/keep.d/$PKG_NAME"
	for x in $CONFFILES; do
		[ -f "$dest$x" ] || echo "$x" >>"$dest/lib/upgrade/keep.d/$PKG_NAME"
	done
	chmod 0644 "$dest/lib/upgrade/keep.d/$PKG_NAME"
}

# GNU tar with ipkg-build's flags, gzip (by zopfli: no name, time 0) of it.
tar_gz() {
	local dir=$1 out=$2
	shift 2
	(cd "$dir" && tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$SOURCE_DATE_EPOCH" -cf - "$@") >"$out.tar"
	zopfli --gzip -c "$out.tar" >"$out"
	rm -f "$out.tar"
}

build_ipk() {
	local arch=$1 work=$2 data=$2/ipk-data ctl=$2/ipk-control out size x
	stage_tree "$arch" "$data"
	install -d -m 0755 "$ctl"
	# Only conffiles that are files in the package, sorted (ipkg-build resolves them).
	for x in $CONFFILES; do
		[ -f "$data$x" ] && echo "$x"
	done | LC_ALL=C sort >"$ctl/conffiles"
	chmod 0644 "$ctl/conffiles"
	printf '%s\n' '#!/bin/sh' \
		'[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0' \
		'[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
		'. ${IPKG_INSTROOT}/lib/functions.sh' \
		'default_postinst $0 $@' >"$ctl/postinst"
	printf '%s\n' '#!/bin/sh' \
		'[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
		'. ${IPKG_INSTROOT}/lib/functions.sh' \
		'default_prerm $0 $@' >"$ctl/prerm"
	chmod 0755 "$ctl/postinst" "$ctl/prerm"

	tar_gz "$data" "$work/data.tar.gz" .
	size=$(gzip -dc "$work/data.tar.gz" | wc -c)
	{
		echo "Package: $PKG_NAME"
		echo "Version: $version"
		echo "Source: $PKG_NAME"
		echo "SourceName: $PKG_NAME"
		echo "License: $PKG_LICENSE"
		echo "Section: $PKG_SECTION"
		echo "Require-User: $PKG_USERID"
		echo "SourceDateEpoch: $SOURCE_DATE_EPOCH"
		echo "Maintainer: $PKG_MAINTAINER"
		echo "Architecture: $arch"
		echo "Installed-Size: $size"
		echo "Description:  $PKG_DESCRIPTION"
	} >"$ctl/control"
	chmod 0644 "$ctl/control"
	tar_gz "$ctl" "$work/control.tar.gz" .
	echo "2.0" >"$work/debian-binary"
	out=$dist/${PKG_NAME}_${version}_${arch}.ipk
	tar_gz "$work" "$out.tmp" ./debian-binary ./data.tar.gz ./control.tar.gz
	mv "$out.tmp" "$out"
	echo "$out"
}

build_apk() {
	local arch=$1 work=$2 data=$2/apk-data scripts=$2/apk-scripts meta out x sum
	stage_tree "$arch" "$data"
	meta=$data/lib/apk/packages
	install -d -m 0755 "$meta" "$scripts"
	echo "$PKG_USERID" >"$meta/$PKG_NAME.rusers"
	# .list: every file and link of the package, as package-pack.mk writes it before
	# adding the conffiles lists.
	(cd "$data" && find . \( -type f -o -type l \) -printf '/%P\n' | LC_ALL=C sort) >"$work/list"
	mv "$work/list" "$meta/$PKG_NAME.list"
	printf '%s\n' $CONFFILES >"$meta/$PKG_NAME.conffiles"
	: >"$meta/$PKG_NAME.conffiles_static"
	for x in $CONFFILES; do
		[ -f "$data$x" ] || continue
		sum=$(sha256sum "$data$x" | cut -d' ' -f1)
		echo "$x $sum" >>"$meta/$PKG_NAME.conffiles_static"
	done
	chmod 0644 "$meta"/*

	printf '%s\n' '#!/bin/sh' \
		'[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0' \
		'[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
		'. ${IPKG_INSTROOT}/lib/functions.sh' \
		'export root="${IPKG_INSTROOT}"' \
		"export pkgname=\"$PKG_NAME\"" \
		'add_group_and_user' \
		'default_postinst' >"$scripts/post-install"
	{
		echo '#!/bin/sh'
		echo 'export PKG_UPGRADE=1'
		sed '/^\s*#!/d' "$scripts/post-install"
	} >"$scripts/post-upgrade"
	printf '%s\n' '#!/bin/sh' \
		'[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0' \
		'. ${IPKG_INSTROOT}/lib/functions.sh' \
		'export root="${IPKG_INSTROOT}"' \
		"export pkgname=\"$PKG_NAME\"" \
		'default_prerm' >"$scripts/pre-deinstall"

	out=$dist/$arch/$PKG_NAME-$version.apk
	python3 "$here/apk3.py" --zopfli \
		--info "name:$PKG_NAME" \
		--info "version:$version" \
		--info "description:$PKG_DESCRIPTION" \
		--info "arch:$arch" \
		--info "license:$PKG_LICENSE" \
		--info "origin:$PKG_NAME" \
		--info "maintainer:$PKG_MAINTAINER" \
		--script "post-install:$scripts/post-install" \
		--script "post-upgrade:$scripts/post-upgrade" \
		--script "pre-deinstall:$scripts/pre-deinstall" \
		--files "$data" \
		--output "$out.tmp"
	mv "$out.tmp" "$out"
	echo "$out"
}

# luci-app-tinyderp: architecture-independent, laid out as luci.mk installs a LuCI app
# (htdocs/ -> /www, root/ -> /), depending on tinyderp and luci-base.
LUCI_NAME=luci-app-tinyderp
LUCI_DEPENDS="tinyderp luci-base"
LUCI_DESCRIPTION="LuCI support for the tinyderp DERP relay: status (clients, traffic, \
certificate pin, DERP map snippets), settings and the allowlist."
# What luci.mk's postinst does on a running router: drop LuCI's caches and make rpcd
# load the new ACL and plugin.
LUCI_POSTINST='[ -n "${IPKG_INSTROOT}" ] || {
	rm -f /tmp/luci-indexcache.*
	rm -rf /tmp/luci-modulecache/
	killall -HUP rpcd 2>/dev/null
}
exit 0'

luci_tree() {
	local dest=$1 src=$here/$LUCI_NAME f
	install -d -m 0755 "$dest/www"
	(cd "$src/htdocs" && find . -type f) | while read -r f; do
		install -D -m 0644 "$src/htdocs/$f" "$dest/www/$f"
	done
	(cd "$src/root" && find . -type f) | while read -r f; do
		install -D -m 0644 "$src/root/$f" "$dest/$f"
	done
}

build_luci() {
	local work=$1 data=$1/luci-data ctl=$1/luci-control scripts=$1/luci-scripts meta size out
	rm -rf "$data" "$ctl" "$scripts"
	luci_tree "$data"
	install -d -m 0755 "$ctl" "$scripts"
	printf '#!/bin/sh\n%s\n' "$LUCI_POSTINST" >"$ctl/postinst"
	chmod 0755 "$ctl/postinst"
	tar_gz "$data" "$work/data.tar.gz" .
	size=$(gzip -dc "$work/data.tar.gz" | wc -c)
	{
		echo "Package: $LUCI_NAME"
		echo "Version: $version"
		echo "Depends: ${LUCI_DEPENDS// /, }"
		echo "Source: $LUCI_NAME"
		echo "SourceName: $LUCI_NAME"
		echo "License: $PKG_LICENSE"
		echo "Section: luci"
		echo "SourceDateEpoch: $SOURCE_DATE_EPOCH"
		echo "Maintainer: $PKG_MAINTAINER"
		echo "Architecture: all"
		echo "Installed-Size: $size"
		echo "Description:  $LUCI_DESCRIPTION"
	} >"$ctl/control"
	chmod 0644 "$ctl/control"
	tar_gz "$ctl" "$work/control.tar.gz" .
	echo "2.0" >"$work/debian-binary"
	out=$dist/${LUCI_NAME}_${version}_all.ipk
	mkdir -p "$dist"
	tar_gz "$work" "$out.tmp" ./debian-binary ./data.tar.gz ./control.tar.gz
	mv "$out.tmp" "$out"
	echo "$out"

	meta=$data/lib/apk/packages
	install -d -m 0755 "$meta"
	(cd "$data" && find . \( -type f -o -type l \) -printf '/%P\n' | LC_ALL=C sort) >"$work/list"
	mv "$work/list" "$meta/$LUCI_NAME.list"
	chmod 0644 "$meta/$LUCI_NAME.list"
	printf '#!/bin/sh\n%s\n' "$LUCI_POSTINST" >"$scripts/post-install"
	cp "$scripts/post-install" "$scripts/post-upgrade"
	out=$dist/$LUCI_NAME-$version.apk
	python3 "$here/apk3.py" --zopfli \
		--info "name:$LUCI_NAME" \
		--info "version:$version" \
		--info "description:$LUCI_DESCRIPTION" \
		--info "arch:noarch" \
		--info "license:$PKG_LICENSE" \
		--info "origin:$LUCI_NAME" \
		--info "maintainer:$PKG_MAINTAINER" \
		--info "depends:$LUCI_DEPENDS" \
		--script "post-install:$scripts/post-install" \
		--script "post-upgrade:$scripts/post-upgrade" \
		--files "$data" \
		--output "$out.tmp"
	mv "$out.tmp" "$out"
	echo "$out"
}

main() {
	[ $# -gt 0 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
	local arches=() arch work
	if [ "$1" = luci ]; then
		work=$(mktemp -d)
		(umask 022 && build_luci "$work")
		rm -rf "$work"
		return
	fi
	if [ "$1" = all ]; then
		for arch in "$dist"/*/tinyderp; do
			[ -f "$arch" ] || continue
			arch=${arch%/tinyderp}
			arches+=("${arch##*/}")
		done
		[ ${#arches[@]} -gt 0 ] || die "no dist/*/tinyderp: run cross/build.sh first"
	else
		arches=("$@")
	fi
	for arch in "${arches[@]}"; do
		case "$arch" in '' | *[!A-Za-z0-9_.+-]*) die "bad arch '$arch'" ;; esac
		[ -f "$dist/$arch/tinyderp" ] || die "no $dist/$arch/tinyderp: run cross/build.sh $arch"
		work=$(mktemp -d)
		trap 'rm -rf "$work"' EXIT
		# umask matters for the directories install -d makes
		(umask 022 && build_ipk "$arch" "$work" && build_apk "$arch" "$work")
		rm -rf "$work"
		trap - EXIT
	done
	work=$(mktemp -d)
	(umask 022 && build_luci "$work")
	rm -rf "$work"
}

main "$@"
