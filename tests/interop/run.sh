#!/usr/bin/env bash
# shellcheck disable=SC1090,SC1091 # per-server env files are written at run time
# Interop suite: upstream Tailscale code (derphttp client at three releases,
# the newest also over WebSocket, plus a headless Chromium over WebSocket,
# derpprobe, headscale + two tailscaled) drives a DERP server on loopback.
#
# Server under test, chosen by environment:
#   TINYDERP_BIN=/path/to/tinyderp   tinyderp's flags (the default: built from
#                                    this repository with cargo if unset)
#   DERPER_BIN=/path/to/derper       upstream derper's flags (reference run);
#                                    DERPER_BIN=build builds the pinned derper
# Other knobs:
#   INTEROP_PARTS="suite websocket mesh derpprobe tailnet"   which parts to run
#   INTEROP_CLIENTS="v1_104 v1_82 v1_58"      derphttp client releases
#   INTEROP_CACHE=~/.cache/tinyderp/interop   tools and build outputs
#   INTEROP_KEEP=1                            keep the temp dir with all logs
#   INTEROP_SUMMARY=FILE                      also write the summary table there
#
# Everything listens on 127.0.0.1 with ports picked free at run time. Every
# process this script starts is killed on exit. Ends with a table and the
# line "N passed, N failed"; exits non-zero if anything failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

# ---- pinned versions (see docs/compatibility.md for why these) ----
TS_CLIENT_LATEST=v1.104.5 # newest tailscale.com release: derphttp suite
TS_CLIENT_82=v1.82.5      # first sha256-raw pinning line (meta-cert bug)
TS_CLIENT_OLD=v1.58.2     # older client still in the field
TS_TOOLS=v1.102.5         # derper, derpprobe, tailscaled, tailscale: newest release
                          # whose whole dependency graph the module proxy serves
HEADSCALE=v0.29.3

PARTS="${INTEROP_PARTS:-suite websocket mesh derpprobe tailnet}"
CLIENTS="${INTEROP_CLIENTS:-v1_104 v1_82 v1_58}"
CACHE="${INTEROP_CACHE:-$HOME/.cache/tinyderp/interop}"
export GOTOOLCHAIN="${GOTOOLCHAIN_INTEROP:-auto}" # v1.104 needs a newer Go; fetched via the module proxy
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
unset SSL_CERT_FILE SSL_CERT_DIR

export PATH="$PATH:/usr/local/go/bin"
for tool in go python3 curl openssl timeout; do
	command -v "$tool" >/dev/null || { echo "run.sh needs $tool on PATH" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/tinyderp-interop.XXXXXX)"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
PIDS=()
T_START=$(date +%s)

log() { printf '[interop %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
	local pid
	for pid in "${PIDS[@]:-}"; do
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	done
	sleep 0.3
	for pid in "${PIDS[@]:-}"; do
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done
	if [ "${INTEROP_KEEP:-0}" = 1 ]; then
		log "logs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record GROUP CHECK RESULT [NOTE]; RESULT is pass, fail, skip or xfail
# (xfail = an upstream client bug reproduced as upstream documents it).
record() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4:-}" >>"$RESULTS"
	log "$3: $1 / $2 ${4:-}"
}

# free_port: a port that is free for both TCP and UDP on 127.0.0.1.
free_port() {
	python3 - <<'EOF'
import socket
while True:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close(); continue
    u.close(); t.close()
    print(port)
    break
EOF
}

wait_tcp() { # host port seconds
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- tools ----

GO_TOOLS_DIR="$CACHE/tools"
mkdir -p "$GO_TOOLS_DIR"

# go_tool NAME: builds (once) and prints the path of a pinned upstream tool.
go_tool() {
	local name="$1" dir out
	case "$name" in
	derper | derpprobe | tailscaled | tailscale)
		# Built without captive-portal detection and port mapping: both would
		# reach past loopback (Tailscale's own generate_204 URLs, the LAN
		# gateway) and neither is under test. One tag set for all four tools
		# lets them share compiled packages (a cold build compiles the tree once).
		local tags="ts_omit_captiveportal,ts_omit_portmapper"
		dir="$GO_TOOLS_DIR/tailscale-$TS_TOOLS-loopback"
		out="$dir/$name"
		if [ ! -x "$out" ]; then
			log "building $name@$TS_TOOLS (first run only)"
			mkdir -p "$dir"
			GOBIN="$dir" go install -tags "$tags" "tailscale.com/cmd/$name@$TS_TOOLS" >"$WORK/build-$name.log" 2>&1 ||
				{ cat "$WORK/build-$name.log" >&2; return 1; }
		fi
		;;
	headscale)
		dir="$GO_TOOLS_DIR/headscale-$HEADSCALE"
		out="$dir/headscale"
		if [ ! -x "$out" ]; then
			log "building headscale@$HEADSCALE (first run only)"
			mkdir -p "$dir"
			# `go install pkg@version` wants the module's version list, which the
			# proxy may refuse; build from the downloaded module source instead.
			local src
			src="$(go mod download -json "github.com/juanfont/headscale@$HEADSCALE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" ||
				return 1
			(cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -o "$out" ./cmd/headscale) >"$WORK/build-headscale.log" 2>&1 ||
				{ cat "$WORK/build-headscale.log" >&2; return 1; }
		fi
		;;
	*) return 1 ;;
	esac
	printf '%s\n' "$out"
}

# suite_binary CLIENT [TAGS]: compiles the derphttp suite against one release,
# with Go build TAGS if given (its own stage directory and binary).
suite_binary() {
	local client="$1" tags="${2:-}" name="$1${2:+-$2}"
	local stage="$CACHE/stage/$name" out="$CACHE/bin/interop-$name.test"
	mkdir -p "$stage" "$CACHE/bin"
	rm -f "$stage"/*.go
	cp "$HERE/clients/$client"/go.mod "$HERE/clients/$client"/go.sum "$HERE/clients/$client"/*.go "$HERE"/suite/*.go "$stage/"
	(cd "$stage" && go test -c ${tags:+-tags "$tags"} -o "$out" .) >"$WORK/build-suite-$name.log" 2>&1 ||
		{ cat "$WORK/build-suite-$name.log" >&2; return 1; }
	printf '%s\n' "$out"
}

# ---- the server under test ----

SERVER_KIND=""
if [ -n "${DERPER_BIN:-}" ]; then
	SERVER_KIND=derper
	if [ "$DERPER_BIN" = build ]; then
		DERPER_BIN="$(go_tool derper)" || { log "cannot build derper"; exit 1; }
	fi
else
	SERVER_KIND=tinyderp
	if [ -z "${TINYDERP_BIN:-}" ]; then
		log "building tinyderp (cargo build --release)"
		(cd "$REPO" && cargo build --release --quiet) || { log "cargo build failed"; exit 1; }
		TINYDERP_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/tinyderp"
	fi
fi

# start_server NAME META(1|0): starts one server instance and writes
# $WORK/NAME/env with everything a client needs to know about it.
start_server() {
	local name="$1" meta="$2" dir="$WORK/$1" derp stun http
	mkdir -p "$dir/state"
	derp=$(free_port) stun=$(free_port) http=$(free_port)
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/mesh.key"
	local keyfile certname="" cafile verify
	case "$SERVER_KIND" in
	tinyderp)
		local flags=(-a "127.0.0.1:$derp" --stun-port "$stun" --http-port "$http"
			--hostname localhost --extra-ip 127.0.0.1 --state-dir "$dir/state"
			--mesh-psk-file "$dir/mesh.key" --region-id 900 --region-code interop
			--public-ipv4 127.0.0.1 --public-ipv6 ::1 --log-level debug)
		# --public-ipv6 ::1: the tailnet part's `tailscale debug derp` insists on
		# an IPv6 path, served by tailnet.sh's loopback relay on [::1].
		[ "$meta" = 0 ] && flags+=(--no-meta-cert)
		"$TINYDERP_BIN" "${flags[@]}" >"$dir/server.log" 2>&1 &
		PIDS+=($!)
		keyfile="$dir/state/derper.key"
		verify=localhost
		;;
	derper)
		if [ "$meta" = 0 ]; then
			log "derper has no switch to leave out the meta certificate"
			return 2
		fi
		# The same certificate shape tinyderp generates (DNS name + IP SAN),
		# so derpprobe, which insists on SNI == HostName, can use "localhost";
		# with an IP -hostname derper accepts any SNI.
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$dir/state/127.0.0.1.key" -out "$dir/state/127.0.0.1.crt" -days 365 \
			-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
			-addext "extendedKeyUsage=serverAuth" >"$dir/openssl.log" 2>&1 ||
			{ cat "$dir/openssl.log" >&2; return 1; }
		certname="sha256-raw:$(openssl x509 -in "$dir/state/127.0.0.1.crt" -outform der | sha256sum | cut -d' ' -f1)"
		"$DERPER_BIN" -a "127.0.0.1:$derp" -stun-port "$stun" -http-port "$http" \
			-hostname 127.0.0.1 -certmode manual -certdir "$dir/state" \
			-c "$dir/state/derper.key" -mesh-psk-file "$dir/mesh.key" >"$dir/server.log" 2>&1 &
		PIDS+=($!)
		keyfile="$dir/state/derper.key"
		verify=localhost
		;;
	esac
	if ! wait_tcp 127.0.0.1 "$derp" 20; then
		log "server $name did not start listening; log:"
		cat "$dir/server.log" >&2
		return 1
	fi
	# The pin: tinyderp prints it with `derpmap` (and logs it).
	if [ "$SERVER_KIND" = tinyderp ]; then
		certname=""
		"$TINYDERP_BIN" derpmap "${flags[@]}" >"$dir/derpmap.txt" 2>&1
		certname="$(grep -oE 'sha256-raw:[0-9a-f]{64}' "$dir/derpmap.txt" | head -1)"
	fi
	for _ in $(seq 50); do
		[ -n "$certname" ] && break
		certname="$(grep -oE 'sha256-raw:[0-9a-f]{64}' "$dir/server.log" | head -1)"
		sleep 0.1
	done
	[ -n "$certname" ] || { log "no sha256-raw pin found for $name"; cat "$dir/server.log" >&2; return 1; }
	if [ "$SERVER_KIND" = tinyderp ]; then
		local logged=""
		for _ in $(seq 30); do
			logged="$(grep -oE 'sha256-raw:[0-9a-f]{64}' "$dir/server.log" | head -1)"
			[ -n "$logged" ] && break
			sleep 0.1
		done
		if [ "$logged" = "$certname" ]; then
			record setup "pin in start-up log == tinyderp derpmap ($name)" pass
		else
			record setup "pin in start-up log == tinyderp derpmap ($name)" fail "log: ${logged:-none}, derpmap: $certname"
		fi
	fi
	# The CA file: whichever PEM certificate in the state dir hashes to the pin.
	cafile=""
	local f
	while IFS= read -r f; do
		if [ "sha256-raw:$(openssl x509 -in "$f" -outform der 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$certname" ]; then
			cafile="$f"
			break
		fi
	done < <(grep -l 'BEGIN CERTIFICATE' -r "$dir/state" 2>/dev/null)
	[ -n "$cafile" ] || { log "no certificate file in $dir/state matches $certname"; return 1; }
	cat >"$dir/env" <<EOF
INTEROP_HOST=127.0.0.1
INTEROP_VERIFY_NAME=$verify
INTEROP_DERP_PORT=$derp
INTEROP_STUN_PORT=$stun
INTEROP_HTTP_PORT=$http
INTEROP_CERTNAME=$certname
INTEROP_CA_FILE=$cafile
INTEROP_SERVER_KEY_FILE=$keyfile
INTEROP_MESH_KEY=$(cat "$dir/mesh.key")
INTEROP_META_CERT=$meta
EOF
	log "server $name ($SERVER_KIND, meta cert $meta): derp $derp stun $stun http $http $certname"
}

# ---- part 1: the derphttp suite ----

client_version() {
	case "$1" in
	v1_104) echo "$TS_CLIENT_LATEST" ;;
	v1_82) echo "$TS_CLIENT_82" ;;
	v1_58) echo "$TS_CLIENT_OLD" ;;
	esac
}

# run_suite CLIENT SERVER_NAME LABEL [websocket|mesh]: with "mesh", the binary is
# built with the interop_mesh tag and runs MESH_TESTS (see part_mesh); with
# "websocket", the binary is
# built with upstream's ts_debug_websockets tag and runs WS_TESTS with
# TS_DEBUG_DERP_WS_CLIENT=1, so derphttp speaks DERP over wss://…/derp (verifying
# the server's certificate against the CA file, as a WebSocket dial does).
run_suite() {
	local client="$1" srv="$2" label="$3" ws="${4:-}" bin outf
	local tags=""
	case "$ws" in
	websocket) tags=ts_debug_websockets ;;
	mesh) tags=interop_mesh ;;
	esac
	bin="$(suite_binary "$client" $tags)" || { record "$label" build fail "see build log"; return; }
	outf="$WORK/suite-$client-$srv${ws:+-$ws}.log"
	(
		set -a && . "$WORK/$srv/env" && set +a
		if [ "$ws" = mesh ]; then
			export INTEROP_TINYDERP_BIN="$TINYDERP_BIN" INTEROP_DERPER_BIN="$MESH_DERPER_BIN"
			timeout 300 "$bin" -test.v -test.count=1 -test.timeout=280s -test.run "$MESH_TESTS"
		elif [ -n "$ws" ]; then
			export TS_DEBUG_DERP_WS_CLIENT=1 SSL_CERT_FILE="$INTEROP_CA_FILE" SSL_CERT_DIR=/nonexistent
			timeout 300 "$bin" -test.v -test.count=1 -test.timeout=280s -test.run "$WS_TESTS"
		else
			timeout 300 "$bin" -test.v -test.count=1 -test.timeout=280s
		fi
	) >"$outf" 2>&1
	local rc=$?
	local line n=0
	while IFS= read -r line; do
		local res name note=""
		res="$(sed -E 's/^--- (PASS|FAIL|SKIP): .*/\1/' <<<"$line")"
		name="$(sed -E 's/^--- [A-Z]+: ([^ ]+).*/\1/' <<<"$line")"
		case "$res" in
		PASS) res=pass ;;
		FAIL) res=fail ;;
		SKIP) res=skip; note="$(grep -B1 -- "^--- SKIP: $name" "$outf" | head -1 | sed -E 's/^ *[a-z_]+\.go:[0-9]+: //')" ;;
		esac
		# A test may leave one "NOTE: ..." line for the table; "NOTE: XFAIL"
		# marks an upstream client bug reproduced as upstream documents it.
		local tnote
		tnote="$(sed -n "/^=== RUN   $name\$/,/^--- [A-Z]*: $name /p" "$outf" | grep -oE 'NOTE: .*' | tail -1 | sed 's/^NOTE: //')"
		if [ -n "$tnote" ]; then
			note="$(cut -c1-110 <<<"$tnote")"
			if [ "$res" = pass ] && [ "${tnote#XFAIL}" != "$tnote" ]; then
				res=xfail
			fi
		fi
		record "$label" "$name" "$res" "$note"
		n=$((n + 1))
	done < <(grep -E '^--- (PASS|FAIL|SKIP): Test' "$outf")
	if [ "$n" = 0 ] || { [ "$rc" != 0 ] && ! grep -q -- '--- FAIL' "$outf"; }; then
		record "$label" "run" fail "test binary exit $rc, see $outf"
	fi
	if [ "$rc" != 0 ]; then
		grep -E -B2 -A12 -- '--- FAIL|panic:' "$outf" | head -80 >&2
	fi
}

part_suite() {
	local client ver
	for client in $CLIENTS; do
		ver="$(client_version "$client")"
		if [ "$client" = v1_82 ]; then
			if [ -f "$WORK/nometa/env" ]; then
				run_suite "$client" nometa "derphttp $ver, meta cert off"
			else
				record "derphttp $ver, meta cert off" "all" skip "$SERVER_KIND cannot turn the meta cert off"
			fi
			run_suite "$client" main "derphttp $ver, meta cert on"
		else
			run_suite "$client" main "derphttp $ver"
		fi
	done
}

# ---- part: DERP over WebSocket ----

# The suite's tests that run again over WebSocket (relay, ping, PeerGone), plus the
# one that proves the WebSocket path was taken.
WS_TESTS='^(TestWebSocketTransport|TestSendRecvBothWays|TestPeerGoneNotHere|TestPeerGoneDisconnected|TestPingPong)$'

part_websocket() {
	run_suite v1_104 main "derphttp $TS_CLIENT_LATEST over WebSocket" websocket
	# A real browser: headless Chromium (Debian package) opens wss://…/derp from a
	# test page and must get the derp subprotocol and the ServerKey frame.
	if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
		log "installing chromium (Debian package)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade chromium >"$WORK/apt-chromium.log" 2>&1 ||
			tail -5 "$WORK/apt-chromium.log" >&2
	fi
	local outf="$WORK/browser-ws.log" rc line
	(set -a && . "$WORK/main/env" && set +a && timeout 120 python3 "$HERE/browser_ws.py") >"$outf" 2>&1
	rc=$?
	if [ "$rc" = 77 ]; then
		record "Chromium over WebSocket" all skip "$(grep -m1 SKIPPED "$outf")"
		return
	fi
	local n=0
	while IFS= read -r line; do
		case "$line" in
		"PASS "*) record "Chromium over WebSocket" "${line#PASS }" pass ;;
		"FAIL "*) record "Chromium over WebSocket" "${line#FAIL }" fail ;;
		*) continue ;;
		esac
		n=$((n + 1))
	done <"$outf"
	if [ "$n" = 0 ] || [ "$rc" != 0 ]; then
		[ "$rc" != 0 ] && cat "$outf" >&2
		[ "$n" = 0 ] && record "Chromium over WebSocket" run fail "exit $rc, see $outf"
	fi
	grep -m1 '^# DOM result' "$outf" >&2 || true
}

# ---- part: mesh (--mesh-with) ----

# Tests that start their own region of servers: tinyderp and upstream derper
# meshed both ways, three nodes with a restart, and pinned self-signed peers.
MESH_TESTS='^TestMesh(WithDerper|ThreeNodesRestart|PinnedSelfSigned)$'

part_mesh() {
	local label="mesh: tinyderp + derper $TS_TOOLS, derphttp $TS_CLIENT_LATEST"
	if [ "$SERVER_KIND" != tinyderp ]; then
		record "$label" all skip "needs tinyderp as the server under test"
		return
	fi
	MESH_DERPER_BIN="$(go_tool derper)" || { record "$label" "build derper" fail; return; }
	run_suite v1_104 main "$label" mesh
}

# ---- part 2: derpprobe ----

# derpmap_json SERVER MODE(pin|insecure) [HOSTNAME [IPV6]]: a DERP map with only
# our region; HOSTNAME defaults to the IP literal (no SNI). Without IPV6 the
# node has no IPv6 field: the server listens on 127.0.0.1 only, and derpprobe
# would probe any non-empty IPv6 value (even "none").
derpmap_json() {
	local srv="$1" mode="$2" hostname="${3:-}" ipv6="${4:-}"
	(
		set -a && . "$WORK/$srv/env" && set +a
		python3 - "$mode" "$hostname" "$ipv6" <<'EOF'
import json, os, sys
mode, hostname, ipv6 = sys.argv[1], sys.argv[2], sys.argv[3]
e = os.environ
node = {"Name": "900a", "RegionID": 900, "HostName": hostname or e["INTEROP_HOST"], "IPv4": "127.0.0.1",
        "DERPPort": int(e["INTEROP_DERP_PORT"]), "STUNPort": int(e["INTEROP_STUN_PORT"])}
if ipv6:
    node["IPv6"] = ipv6
if mode == "pin":
    node["CertName"] = e["INTEROP_CERTNAME"]
else:
    node["InsecureForTests"] = True
print(json.dumps({"OmitDefaultRegions": True, "Regions": {"900": {
    "RegionID": 900, "RegionCode": "interop", "RegionName": "tinyderp interop", "Nodes": [node]}}}, indent=1))
EOF
	)
}

part_derpprobe() {
	local probe
	probe="$(go_tool derpprobe)" || { record derpprobe build fail; return; }
	# derpprobe's mesh probe requires SNI == HostName, so it gets the DNS name.
	derpmap_json main pin localhost >"$WORK/derpmap-probe.json"
	local outf="$WORK/derpprobe.log" rc
	(set -a && . "$WORK/main/env" && set +a &&
		SSL_CERT_FILE="$INTEROP_CA_FILE" timeout 120 "$probe" -once -spread=false \
			-derp-map "file://$WORK/derpmap-probe.json" -mesh-psk-file "$WORK/main/mesh.key" \
			-bw-interval 1s -bw-probe-size-bytes 1000000) >"$outf" 2>&1
	rc=$?
	local kind found
	for kind in derpmap-probe 900a/tls 900a/udp 900a/mesh 900a/bw; do
		found="$(grep -E "(good|bad): (derp/interop/)?[0-9a-z/]*${kind}:" "$outf" | head -1)"
		case "$found" in
		*good:*) record derpprobe "$kind probe" pass "$(sed -E 's/.*good: //' <<<"$found" | cut -c1-60)" ;;
		*bad:*) record derpprobe "$kind probe" fail "$(sed -E 's/.*bad: //' <<<"$found" | cut -c1-90)" ;;
		*) record derpprobe "$kind probe" fail "probe not reported" ;;
		esac
	done
	if [ "$rc" = 0 ]; then record derpprobe "overall (-once exit)" pass; else
		record derpprobe "overall (-once exit)" fail "exit $rc"
		tail -30 "$outf" >&2
	fi
}

# ---- part 3: a real tailnet through the server ----

# shellcheck source=tailnet.sh
. "$HERE/tailnet.sh"

# ---- main ----

log "server under test: $SERVER_KIND (${TINYDERP_BIN:-${DERPER_BIN:-}}); work dir $WORK"
start_server main 1 || { record setup "start server" fail; }
if [ "$SERVER_KIND" = tinyderp ]; then
	start_server nometa 0 || record setup "start server without meta cert" fail
fi
PART_TIMES=""
if [ -f "$WORK/main/env" ]; then
	for part in $PARTS; do
		t0=$(date +%s)
		"part_$part"
		log "part $part took $(($(date +%s) - t0))s"
		PART_TIMES="$PART_TIMES $part $(($(date +%s) - t0))s,"
	done
fi

# ---- summary ----
# INTEROP_SUMMARY=FILE also writes the table there (for a closing note).
T_TOTAL=$(($(date +%s) - T_START))
pass=0 fail=0 skip=0
{
	echo
	echo "## tinyderp interop summary (server: $SERVER_KIND, ${T_TOTAL}s:${PART_TIMES%,})"
	echo
	printf '| %-38s | %-34s | %-6s | %s\n' "group" "check" "result" "note"
	printf '|%s|%s|%s|%s\n' "----------------------------------------" "------------------------------------" "--------" "------"
	while IFS=$'\t' read -r group check res note; do
		printf '| %-38s | %-34s | %-6s | %s\n' "$group" "$check" "$res" "$note"
	done <"$RESULTS"
	echo
} | tee "${INTEROP_SUMMARY:-/dev/null}"
while IFS=$'\t' read -r _ _ res _; do
	case "$res" in
	pass | xfail) pass=$((pass + 1)) ;;
	skip) skip=$((skip + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
done <"$RESULTS"
echo "$pass passed, $fail failed, $skip skipped" | tee -a "${INTEROP_SUMMARY:-/dev/null}"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
