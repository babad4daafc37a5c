#!/usr/bin/env bash
# For every built router binary (dist/<arch>/tinyderp), run it under qemu-user:
# first `--version` and `--help` must exit 0, then the integration test
# (tests/smoke.rs if it exists, else tests/server.rs; TINYDERP_SMOKE_TEST=NAME picks
# another) runs as `cargo test --test NAME` with
#   TINYDERP_BIN=dist/<arch>/tinyderp  TINYDERP_RUNNER="qemu-<arch> -cpu <model>"
# so it spawns the router binary under emulation on 127.0.0.1.
#
#   cross/smoke.sh [ARCH...]        default: every arch with a built binary
# Tests an emulator cannot run are listed in SKIPS below: they get `--skip NAME` and
# a `SKIPPED` line with the reason, and count as skipped, never as passed.
# Prints one line per check and `N passed, N failed, N skipped`; exit 1 on any failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dist=${TINYDERP_DIST:-$root/dist}
# Upper bound for one emulated command (a wedged binary must not hang CI).
STEP_TIMEOUT=${TINYDERP_SMOKE_TIMEOUT:-120}

passed=0
failed=0
skipped=0

# qemu binary <TAB> test name <TAB> why the test cannot run under that emulator.
SKIPS=$(cat <<'EOF_SKIPS'
qemu-mips	sigterm_sends_restarting_and_exits_zero	qemu-user 7.2 lacks timerfd_settime64 for 32-bit MIPS guests, so the emulated event loop cannot arm the shutdown timer (OpenWrt kernels 5.1+ have the syscall)
qemu-mipsel	sigterm_sends_restarting_and_exits_zero	qemu-user 7.2 lacks timerfd_settime64 for 32-bit MIPS guests, so the emulated event loop cannot arm the shutdown timer (OpenWrt kernels 5.1+ have the syscall)
EOF_SKIPS
)
check() { # name command...
	local name=$1
	shift
	local rc=0
	timeout "$STEP_TIMEOUT" "$@" >"$log" 2>&1 || rc=$?
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
		echo "ok   smoke $name"
	else
		failed=$((failed + 1))
		echo "FAIL smoke $name (exit $rc):"
		tail -n 20 "$log" | sed 's/^/     /'
	fi
}

test_name=${TINYDERP_SMOKE_TEST:-}
if [ -z "$test_name" ]; then
	for candidate in smoke server; do
		if [ -f "$root/tests/$candidate.rs" ]; then
			test_name=$candidate
			break
		fi
	done
fi
# A whole integration suite under emulation takes longer than one command.
[ -n "${TINYDERP_SMOKE_TIMEOUT:-}" ] || [ -z "$test_name" ] || STEP_TIMEOUT=1800

log=$(mktemp)
trap 'rm -f "$log"' EXIT

arches=("$@")
if [ ${#arches[@]} -eq 0 ]; then
	while IFS=$'\t' read -r _t arch _q _c; do
		[ -x "$dist/$arch/tinyderp" ] && arches+=("$arch")
	done < <(grep -v '^#' "$here/targets.tsv")
fi
[ ${#arches[@]} -gt 0 ] || { echo "no dist/*/tinyderp: run cross/build.sh first"; echo "0 passed, 1 failed"; exit 1; }

for arch in "${arches[@]}"; do
	check "$arch --version" "$here/qemu-run.sh" "$arch" -- --version
	check "$arch --help" "$here/qemu-run.sh" "$arch" -- --help
	if [ -n "$test_name" ]; then
		runner=$("$here/qemu-run.sh" --runner "$arch")
		skip_args=()
		while IFS=$'\t' read -r qemu name reason; do
			[ "$qemu" = "${runner%% *}" ] || continue
			skip_args+=(--skip "$name")
			skipped=$((skipped + 1))
			echo "SKIPPED smoke $arch $test_name::$name: $reason"
		done <<<"$SKIPS"
		check "$arch cargo test --test $test_name" env TINYDERP_BIN="$dist/$arch/tinyderp" \
			TINYDERP_RUNNER="$runner" cargo test --manifest-path "$root/Cargo.toml" --test "$test_name" \
			-- "${skip_args[@]}"
	fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
