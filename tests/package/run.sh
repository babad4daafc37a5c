#!/usr/bin/env bash
# Package and router-integration tests (no Rust needed):
#   - shell syntax of the init script (busybox ash -n) and of the cross/openwrt scripts
#   - the init script under busybox ash against OpenWrt models (test_init.py)
#   - the .ipk and .apk that openwrt/package.sh makes (test_packages.py)
#   - cross/build.sh's size budget check
# Needs: busybox (Debian package busybox), python3, bash, GNU tar, gzip.
# Ends with `N passed, N failed`; exit 1 on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# Run a suite that prints its own "N passed, N failed" last line; add its counts.
suite() {
	local out last p f
	out=$(mktemp)
	"$@" 2>&1 | tee "$out"
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n1)
	rm -f "$out"
	if [ -z "$last" ]; then
		fail "suite $* printed no summary"
		return
	fi
	p=${last%% passed*}
	f=${last#*, }
	f=${f%% failed*}
	passed=$((passed + p))
	failed=$((failed + f))
}

BUSYBOX=$(command -v busybox || true)
if [ -z "$BUSYBOX" ]; then
	fail "busybox not installed (apt-get install busybox)"
else
	if "$BUSYBOX" ash -n "$root/init.d/tinyderp"; then ok "syntax init.d/tinyderp (busybox ash)"; else fail "syntax init.d/tinyderp"; fi
	for f in "$here"/model/etc/rc.common "$here"/model/lib/functions.sh "$here"/model/lib/functions/procd.sh \
		"$here"/model/lib/config/uci.sh "$here"/model/usr/share/libubox/jshn.sh; do
		if "$BUSYBOX" ash -n "$f"; then ok "syntax ${f#"$root"/} (busybox ash)"; else fail "syntax ${f#"$root"/}"; fi
	done
fi
for f in "$root"/cross/*.sh "$root"/openwrt/package.sh "$here"/run.sh; do
	if bash -n "$f"; then ok "syntax ${f#"$root"/} (bash)"; else fail "syntax ${f#"$root"/}"; fi
done
if python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$root/init.d/tinyderp.capabilities.json"; then
	ok "init.d/tinyderp.capabilities.json is JSON"
else
	fail "init.d/tinyderp.capabilities.json is not JSON"
fi

# Size budget: a binary over budget fails with exit 3, one within passes.
tmp=$(mktemp -d)
mkdir -p "$tmp/dist"
budget=$(awk -F'\t' '$1 == "mips_24kc" { print $2 }' "$root/cross/size-budget.tsv")
printf 'openwrt_arch\trust_target\tbytes\txz_bytes\nmips_24kc\tmips-unknown-linux-musl\t%s\t1\n' "$((budget + 1))" >"$tmp/dist/sizes.tsv"
TINYDERP_DIST=$tmp/dist "$root/cross/build.sh" --check-size >/dev/null 2>&1
rc=$?
if [ "$rc" = 3 ]; then ok "size check fails over budget"; else fail "size check over budget gave exit $rc, want 3"; fi
printf 'openwrt_arch\trust_target\tbytes\txz_bytes\nmips_24kc\tmips-unknown-linux-musl\t%s\t1\n' "$budget" >"$tmp/dist/sizes.tsv"
if TINYDERP_DIST=$tmp/dist "$root/cross/build.sh" --check-size >/dev/null 2>&1; then
	ok "size check passes at budget"
else
	fail "size check at budget failed"
fi
rm -rf "$tmp"

suite python3 "$here/test_init.py"
suite python3 "$here/test_packages.py"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
