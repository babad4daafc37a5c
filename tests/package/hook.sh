# Sourced by the model rc.common after the init script (RC_TEST_HOOK): replaces the
# commands that would touch the host with ones that record what was asked, in
# $TEST_OUT/actions, so a test can assert them.
logger() {
	printf 'logger %s\n' "$*" >>"$TEST_OUT/actions"
}
mkdir() {
	printf 'mkdir %s\n' "$*" >>"$TEST_OUT/actions"
}
chmod() {
	printf 'chmod %s\n' "$*" >>"$TEST_OUT/actions"
}
chown() {
	printf 'chown %s\n' "$*" >>"$TEST_OUT/actions"
}
have_ujail() {
	[ "${TEST_UJAIL:-0}" = 1 ]
}
# The real binary's own check (test_init.py finds a built tinyderp), as on the router.
check_options() {
	"$TEST_TINYDERP" validate "$@" 2>&1
}
# A stand-in for /usr/sbin/tinyderp when a test sets TEST_PROG.
[ -z "${TEST_PROG:-}" ] || PROG=$TEST_PROG
