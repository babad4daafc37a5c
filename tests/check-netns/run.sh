#!/usr/bin/env bash
# `tinyderp check` on home lines built from network namespaces: a router running tinyderp,
# an "internet" namespace with the DNS server that answers for the DDNS name, and for the
# NAT cases an ISP carrier-grade NAT or a second home router in between. Every address
# exists only inside these namespaces (documentation ranges 198.51.100.0/24, 203.0.113.0/24
# and 2001:db8::/32 stand for the internet; the port-mapping case uses 11.0.0.10, see
# there). Needs root, ip, nft and python3; the port-mapping case also miniupnpd.
#
#   TINYDERP_BIN=path/to/tinyderp tests/check-netns/run.sh [OUT_DIR]
#
# Each case runs `tinyderp check` and `tinyderp check --json` inside the router namespace,
# asserts the exit status and the steps that must be named, and keeps the text output in
# OUT_DIR (default: a temporary directory) for docs/troubleshooting.md.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${TINYDERP_BIN:-}
name=home.example.test
# Each namespace command is bounded; the whole run takes about a minute.
step_timeout=60
# Flags every `tinyderp check` of the current case gets besides --hostname/--state-dir.
check_flags=()

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v nft >/dev/null || ! command -v python3 >/dev/null; then
	echo "SKIPPED: check-netns needs root, ip, nft and python3"
	exit 0
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "FAIL: set TINYDERP_BIN to the tinyderp binary"
	exit 1
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

work=$(mktemp -d)
out=${1:-$work/out}
mkdir -p "$out"
tag="tdck$$"
pids=()
namespaces=()
failures=0
passes=0

cleanup() {
	local pid ns i left
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	# A backgrounded function's $! is its subshell: the relay and DNS server it started
	# would live on in the deleted namespace (writing into the next case's log), so every
	# process still in one of our namespaces is stopped by its own pid first.
	for i in $(seq 50); do
		left=()
		for ns in "${namespaces[@]}"; do
			for pid in $(ip netns pids "$ns" 2>/dev/null); do left+=("$pid"); done
		done
		[ ${#left[@]} -gt 0 ] || break
		kill "${left[@]}" 2>/dev/null
		sleep 0.1
	done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
	for ns in "${namespaces[@]}"; do
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	pids=()
	namespaces=()
}
trap 'cleanup; [ -n "${CHECK_NETNS_KEEP:-}" ] || rm -rf "$work"' EXIT

ok() { passes=$((passes + 1)); echo "ok   $*"; }
fail() { failures=$((failures + 1)); echo "FAIL $*"; }

in_ns() { local ns=$1; shift; timeout "$step_timeout" ip netns exec "$ns" "$@"; }

new_ns() {
	local ns="$tag-$1"
	ip netns add "$ns" || return 1
	namespaces+=("$ns")
	ip -n "$ns" link set lo up
	in_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# link NS_A IF_A NS_B IF_B: a veth pair between two namespaces.
link() {
	ip link add "$2" netns "$tag-$1" type veth peer name "$4" netns "$tag-$3" &&
		ip -n "$tag-$1" link set "$2" up && ip -n "$tag-$3" link set "$4" up
}

addr() { ip -n "$tag-$1" addr add "$3" dev "$2" nodad 2>/dev/null || ip -n "$tag-$1" addr add "$3" dev "$2"; }
route() { local ns=$1; shift; ip -n "$tag-$ns" route add "$@"; }
forwarding() { in_ns "$tag-$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1; }

# The internet: the DNS server for the DDNS name (198.51.100.53) and a host outside
# (198.51.100.7) that tries the router's ports.
internet() {
	new_ns inet
	addr inet lo 198.51.100.53/32
	addr inet lo 198.51.100.7/32
}

# dns A|AAAA=IP ...: the DDNS provider's answer for $name.
dns() {
	in_ns "$tag-inet" python3 "$here/dns.py" 198.51.100.53 "$name" "$@" >"$work/dns.log" 2>&1 &
	pids+=($!)
	local i
	for i in $(seq 50); do grep -q ready "$work/dns.log" 2>/dev/null && return 0; sleep 0.1; done
	echo "dns server did not start"; cat "$work/dns.log"; return 1
}

# The router namespace: resolv.conf pointing at the DDNS provider's server, tinyderp.
router() {
	new_ns rtr
	mkdir -p "/etc/netns/$tag-rtr"
	echo "nameserver 198.51.100.53" >"/etc/netns/$tag-rtr/resolv.conf"
}

# firewall closed|open: a fw4-shaped ruleset on the router; also checks that nft prints
# it as the JSON the unit tests read (one source for both).
firewall() {
	local nft="$repo/src/check/testdata/fw4-$1.nft" json="$repo/src/check/testdata/fw4-$1.json"
	in_ns "$tag-rtr" nft -f "$nft" || return 1
	if in_ns "$tag-rtr" nft -j list ruleset | python3 -c '
import json, sys
strip = lambda doc: [item for item in doc["nftables"] if "metainfo" not in item]
live = strip(json.load(sys.stdin)); fixture = strip(json.load(open(sys.argv[1])))
sys.exit(0 if live == fixture else 1)' "$json"; then
		ok "nft prints fw4-$1.nft as the unit tests' fw4-$1.json"
	else
		fail "fw4-$1.json is not what nft prints for fw4-$1.nft"
	fi
}

start_relay() {
	in_ns "$tag-rtr" "$bin" --hostname "$name" --state-dir "$work/state" --log-level info "$@" \
		>"$work/relay.log" 2>&1 &
	pids+=($!)
	local i
	for i in $(seq 100); do
		in_ns "$tag-rtr" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8443' 2>/dev/null && return 0
		sleep 0.1
	done
	echo "tinyderp did not start"; cat "$work/relay.log"; return 1
}

# stop_relay: SIGTERM to the tinyderp processes of the router namespace (the relay this
# script started there); waits up to 10 s for them to exit.
stop_relay() {
	local pid pids_in i
	pids_in=()
	for pid in $(ip netns pids "$tag-rtr"); do
		[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$bin" ] && pids_in+=("$pid")
	done
	[ ${#pids_in[@]} -gt 0 ] || return 0
	kill -TERM "${pids_in[@]}"
	for i in $(seq 100); do
		kill -0 "${pids_in[@]}" 2>/dev/null || return 0
		sleep 0.1
	done
}

# outside_connect IP: can the outside host open TCP 8443 at IP? (what a client would see)
outside_connect() {
	in_ns "$tag-inet" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.settimeout(3)
try:
    s.connect((sys.argv[1], 8443)); sys.exit(0)
except OSError:
    sys.exit(1)' "$1"
}

# run_check CASE WANT_EXIT STEP=STATUS[:TEXT] ...: run the check in the router namespace.
run_check() {
	local case=$1 want=$2 code expect step status text got
	shift 2
	in_ns "$tag-rtr" "$bin" check --hostname "$name" --state-dir "$work/state" "${check_flags[@]}" >"$out/$case.txt" 2>&1
	code=$?
	in_ns "$tag-rtr" "$bin" check --json --hostname "$name" --state-dir "$work/state" "${check_flags[@]}" >"$out/$case.json" 2>/dev/null
	sed 's/^/    | /' "$out/$case.txt"
	if [ "$code" = "$want" ]; then ok "$case: exit $code"; else fail "$case: exit $code, want $want"; fi
	for expect in "$@"; do
		step=${expect%%=*}
		status=${expect#*=}
		text=
		case "$status" in *:*) text=${status#*:}; status=${status%%:*} ;; esac
		got=$(python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
step = [s for s in doc["steps"] if s["step"] == sys.argv[2]]
print(step[0]["status"] + "\t" + step[0]["detail"] + "\t" + (step[0]["action"] or "") if step else "missing")' "$out/$case.json" "$step")
		if [ "${got%%	*}" != "$status" ]; then
			fail "$case: step $step is '${got%%	*}', want $status"
		elif [ -n "$text" ] && ! grep -qF -- "$text" <<<"$got"; then
			fail "$case: step $step does not say '$text': $got"
		else
			ok "$case: $step $status${text:+ ($text)}"
		fi
	done
}

# fetch PATH: a page of the relay, from the router itself (loopback may read metrics).
fetch() {
	in_ns "$tag-rtr" python3 -c '
import ssl, sys, urllib.request
context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
print(urllib.request.urlopen("https://127.0.0.1:8443" + sys.argv[1], context=context, timeout=5).read().decode())' "$1"
}

# watched CASE STEP STATUS: the running relay's own check (started 3 s after the relay)
# logged the step, and shows it on the status page and in the metrics.
watched() {
	local case=$1 step=$2 status=$3 value i
	case "$status" in ok) value=0 ;; warn) value=1 ;; fail) value=2 ;; *) value=-1 ;; esac
	local metrics page
	for i in $(seq 100); do
		metrics=$(fetch /debug/varz 2>/dev/null)
		grep -q "^tinyderp_check_status{step=\"$step\"}" <<<"$metrics" && break
		sleep 0.2
	done
	if grep -qx "tinyderp_check_status{step=\"$step\"} $value" <<<"$metrics"; then
		ok "$case: the running relay exports check $step = $status"
	else
		fail "$case: metrics lack tinyderp_check_status{step=\"$step\"} $value"
	fi
	page=$(fetch /)
	if grep -q "Reachability check" <<<"$page"; then ok "$case: status page shows the check and its time"; else fail "$case: status page has no check"; fi
	if grep -q "check $step: ${status^^}" "$work/relay.log"; then
		ok "$case: the relay logged the $step result"
	else
		fail "$case: no 'check $step: ${status^^}' line in the relay log"; cat "$work/relay.log"
	fi
}

# Case 1: the router holds the public address, the records are right, the firewall
# opens the ports.
case_public() {
	internet && router && link rtr wan0 inet isp0 &&
		addr rtr wan0 203.0.113.10/24 && addr inet isp0 203.0.113.1/24 &&
		addr rtr wan0 2001:db8:1::10/64 && addr inet isp0 2001:db8:1::1/64 &&
		route rtr default via 203.0.113.1 && route rtr default via 2001:db8:1::1 &&
		dns A=203.0.113.10 AAAA=2001:db8:1::10 && firewall open && start_relay || { fail "public: setup"; return; }
	run_check public 0 dns=ok records=ok wan-ipv4=ok:"public IPv4 203.0.113.10" wan-ipv6=ok firewall=ok derp=ok stun=ok
	if outside_connect 203.0.113.10; then ok "public: an outside host reaches TCP 8443"; else fail "public: outside host cannot connect"; fi
	watched public derp ok
	# Opened for IPv4 only: the IPv6 path is named closed.
	in_ns "$tag-rtr" nft flush ruleset && in_ns "$tag-rtr" nft -f "$repo/src/check/testdata/fw4-closed.nft" &&
		in_ns "$tag-rtr" nft insert rule inet fw4 input_wan meta nfproto ipv4 tcp dport 8443 accept &&
		in_ns "$tag-rtr" nft insert rule inet fw4 input_wan meta nfproto ipv4 udp dport 3478 accept ||
		{ fail "public: IPv4-only firewall setup"; return; }
	run_check firewall-ipv4-only 2 firewall=fail:"IPv6: reject" wan-ipv6=ok derp=ok
	if outside_connect 2001:db8:1::10; then fail "public: IPv6 got through the IPv4-only rule"; else ok "public: the kernel really refuses TCP 8443 over IPv6"; fi
}

# Case 2: the DDNS record still holds the line's previous address.
case_stale() {
	internet && router && link rtr wan0 inet isp0 &&
		addr rtr wan0 203.0.113.10/24 && addr inet isp0 203.0.113.1/24 &&
		route rtr default via 203.0.113.1 &&
		dns A=203.0.113.99 && firewall open && start_relay || { fail "stale: setup"; return; }
	run_check stale 2 records=fail:"stale DDNS record" records=fail:"203.0.113.99" derp=fail
}

# Case 3: the ISP puts the line behind carrier-grade NAT (100.64.0.0/10) but routes IPv6.
case_cgnat() {
	internet && router && new_ns isp && link rtr wan0 isp cpe0 && link isp up0 inet isp0 &&
		addr rtr wan0 100.64.0.2/24 && addr isp cpe0 100.64.0.1/24 &&
		addr isp up0 203.0.113.10/24 && addr inet isp0 203.0.113.1/24 &&
		addr rtr wan0 2001:db8:1::10/64 && addr isp cpe0 2001:db8:1::1/64 &&
		addr isp up0 2001:db8:2::1/64 && addr inet isp0 2001:db8:2::2/64 &&
		route rtr default via 100.64.0.1 && route rtr default via 2001:db8:1::1 &&
		route isp default via 203.0.113.1 && route inet 2001:db8:1::/64 via 2001:db8:2::1 &&
		forwarding isp &&
		in_ns "$tag-isp" nft add table ip cgnat &&
		in_ns "$tag-isp" nft add chain ip cgnat post '{ type nat hook postrouting priority srcnat; }' &&
		in_ns "$tag-isp" nft add rule ip cgnat post oifname up0 ip saddr 100.64.0.0/10 masquerade &&
		dns A=203.0.113.10 AAAA=2001:db8:1::10 && firewall open && start_relay || { fail "cgnat: setup"; return; }
	run_check cgnat 1 wan-ipv4=warn:"carrier-grade NAT" wan-ipv6=ok derp=warn stun=warn
	if outside_connect 2001:db8:1::10; then ok "cgnat: an outside host reaches TCP 8443 over IPv6"; else fail "cgnat: IPv6 path closed"; fi
	if outside_connect 203.0.113.10; then fail "cgnat: IPv4 reached the router through CGNAT"; else ok "cgnat: IPv4 from outside does not reach the router"; fi
}

# Case 4: the router sits behind the ISP's own router (double NAT), no port forward.
case_double_nat() {
	internet && router && new_ns up && link rtr wan0 up lan0 && link up wan1 inet isp0 &&
		addr rtr wan0 192.168.1.2/24 && addr up lan0 192.168.1.1/24 &&
		addr up wan1 203.0.113.10/24 && addr inet isp0 203.0.113.1/24 &&
		route rtr default via 192.168.1.1 && route up default via 203.0.113.1 && forwarding up &&
		in_ns "$tag-up" nft add table ip nat &&
		in_ns "$tag-up" nft add chain ip nat post '{ type nat hook postrouting priority srcnat; }' &&
		in_ns "$tag-up" nft add rule ip nat post oifname wan1 masquerade &&
		dns A=203.0.113.10 && firewall open && start_relay || { fail "double-nat: setup"; return; }
	run_check double-nat 1 wan-ipv4=warn:"double NAT" wan-ipv4=warn:"forward TCP 8443 and UDP 3478" derp=warn:"hairpin"
	# The upstream router forwards the ports (with hairpin NAT): the check sees it work.
	in_ns "$tag-up" nft add chain ip nat pre '{ type nat hook prerouting priority dstnat; }' &&
		in_ns "$tag-up" nft add rule ip nat pre ip daddr 203.0.113.10 tcp dport 8443 dnat to 192.168.1.2 &&
		in_ns "$tag-up" nft add rule ip nat pre ip daddr 203.0.113.10 udp dport 3478 dnat to 192.168.1.2 &&
		in_ns "$tag-up" nft add rule ip nat post ip saddr 192.168.1.0/24 ip daddr 192.168.1.2 masquerade ||
		{ fail "double-nat: port forward setup"; return; }
	run_check double-nat-forwarded 1 wan-ipv4=warn:"double NAT" records=ok derp=ok stun=ok
}

# double_nat_line PUBLIC_IP ISP_IP: the double-NAT line of case 4 (router 192.168.1.2
# behind the upstream router, whose WAN holds PUBLIC_IP/24), without forwards, plus a STUN
# server on the internet (a second tinyderp at 198.51.100.7) that tells the check the
# line's public address.
double_nat_line() {
	internet && router && new_ns up && link rtr wan0 up lan0 && link up wan1 inet isp0 &&
		addr rtr wan0 192.168.1.2/24 && addr up lan0 192.168.1.1/24 &&
		addr up wan1 "$1/24" && addr inet isp0 "$2/24" &&
		route rtr default via 192.168.1.1 && route up default via "$2" && forwarding up &&
		in_ns "$tag-up" nft -f - <<'NFT' &&
table inet filter {
	chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
	chain miniupnpd { }
	chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump prerouting_miniupnpd; }
	chain prerouting_miniupnpd { }
	chain postrouting { type nat hook postrouting priority srcnat; policy accept; jump postrouting_miniupnpd; oifname "wan1" masquerade; }
	chain postrouting_miniupnpd { }
}
NFT
		outside_stun_server
}

# A STUN server on the internet: a second tinyderp (its name ends in .example, so it does
# not watch itself) serving STUN on 198.51.100.7:3478.
outside_stun_server() {
	in_ns "$tag-inet" "$bin" --hostname stun.example --addr 198.51.100.7:9443 --stun-port 3478 \
		--state-dir "$work/stun-state" >"$work/stun.log" 2>&1 &
	pids+=($!)
	local i
	for i in $(seq 100); do
		grep -q "STUN listening" "$work/stun.log" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "outside STUN server did not start"; cat "$work/stun.log"; return 1
}

# Case 6: double NAT and a DDNS record that is not the line's address: without the outside
# STUN server the check could only say "nothing answered"; with it, the record is stale.
case_double_nat_stale() {
	double_nat_line 203.0.113.10 203.0.113.1 && dns A=203.0.113.99 && firewall open && start_relay || { fail "double-nat-stale: setup"; return; }
	check_flags=(--check-stun-server 198.51.100.7:3478)
	run_check double-nat-stale 2 outside=ok:"sees this line as 203.0.113.10" records=fail:"stale DDNS record" \
		records=fail:"seen from outside as 203.0.113.10" wan-ipv4=warn:"double NAT"
}

# Case 7: double NAT, the upstream router runs miniupnpd (UPnP IGD and NAT-PMP/PCP,
# nftables backend) and tinyderp runs with --$case: the mappings appear in
# miniupnpd's nft chains, a client on the internet logs in and gets STUN answers through
# them, the check names them, and they are gone once tinyderp stops.
portmap_case() {
	local case=$1 natpmp=$2 method=$3
	if ! command -v miniupnpd >/dev/null; then
		echo "SKIPPED: $case (miniupnpd not installed)"
		return
	fi
	# miniupnpd refuses to forward to a reserved external address (documentation ranges
	# included), so here the upstream WAN holds 11.0.0.10: it exists only inside these
	# namespaces, which have no route out.
	double_nat_line 11.0.0.10 11.0.0.1 && dns A=11.0.0.10 && firewall open || { fail "$case: setup"; return; }
	cat >"$work/miniupnpd.conf" <<CONF
ext_ifname=wan1
listening_ip=lan0
http_port=0
enable_natpmp=$natpmp
enable_upnp=yes
secure_mode=yes
system_uptime=yes
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 192.168.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
CONF
	rm -f "$work/miniupnpd.pid"
	in_ns "$tag-up" miniupnpd -d -f "$work/miniupnpd.conf" -P "$work/miniupnpd.pid" >"$work/miniupnpd.log" 2>&1 &
	pids+=($!)
	local i
	for i in $(seq 50); do
		grep -q "HTTP listening on port" "$work/miniupnpd.log" && break
		sleep 0.1
	done
	if outside_connect 11.0.0.10; then fail "$case: TCP 8443 open before any mapping"; else ok "$case: nothing forwarded before tinyderp asks"; fi
	start_relay --port-mapping || { fail "$case: relay start"; cat "$work/miniupnpd.log"; return; }
	for i in $(seq 100); do
		grep -q "port mapping: " "$work/relay.log" && break
		sleep 0.1
	done
	if grep -q "port mapping: $method on gateway 192.168.1.1: 11.0.0.10 TCP 8443 -> 8443, UDP 3478 -> 3478" "$work/relay.log"; then
		ok "$case: relay logged the $method mapping of TCP 8443 and UDP 3478"
	else
		fail "$case: no mapping logged"; cat "$work/relay.log" "$work/miniupnpd.log"
	fi
	local rules
	rules=$(in_ns "$tag-up" nft list table inet filter)
	# miniupnpd matches the IPv4 protocol byte raw: @nh,72,8 0x6 is TCP, 0x11 UDP.
	if grep -q '@nh,72,8 0x6 th dport 8443 dnat ip to 192.168.1.2:8443' <<<"$rules" &&
		grep -q '@nh,72,8 0x11 th dport 3478 dnat ip to 192.168.1.2:3478' <<<"$rules"; then
		ok "$case: miniupnpd's nft chain holds the TCP 8443 and UDP 3478 forwards"
	else
		fail "$case: forwards missing from miniupnpd's nft table"; echo "$rules"
	fi
	check_flags=(--port-mapping --check-stun-server 198.51.100.7:3478)
	run_check "$case" 1 portmap=ok:"11.0.0.10 TCP 8443 -> 8443, UDP 3478 -> 3478" \
		wan-ipv4=ok:"port mapping" outside=ok:"11.0.0.10" records=ok
	# A client on the internet: the check's own DERP clients (pinned TLS, two logins, one
	# relayed packet) and STUN request, run from the internet namespace.
	mkdir -p "/etc/netns/$tag-inet"
	echo "nameserver 198.51.100.53" >"/etc/netns/$tag-inet/resolv.conf"
	in_ns "$tag-inet" "$bin" check --json --hostname "$name" --state-dir "$work/state" >"$work/outside.json" 2>/dev/null
	local step
	for step in derp stun; do
		got=$(python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
print(" ".join(s["status"] + ": " + s["detail"] for s in doc["steps"] if s["step"] == sys.argv[2]))' "$work/outside.json" "$step")
		if [[ $got == ok:* ]]; then ok "$case: from the internet, $step through the mapping: ${got#ok: }"; else fail "$case: from the internet, $step: $got"; fi
	done
	local metrics
	metrics=$(fetch /debug/varz)
	if grep -qx 'tinyderp_portmap_external_port{proto="tcp"} 8443' <<<"$metrics" && grep -qx 'tinyderp_portmap_external_port{proto="udp"} 3478' <<<"$metrics"; then
		ok "$case: metrics export the external ports"
	else
		fail "$case: metrics lack the external ports"
	fi
	local page
	page=$(fetch /)
	if grep -q "<h2>Port mapping</h2>" <<<"$page"; then ok "$case: status page shows the mapping"; else fail "$case: status page lacks the mapping"; fi
	# Stop: the mappings are deleted.
	stop_relay
	rules=$(in_ns "$tag-up" nft list table inet filter)
	if grep -q "dport 8443\|dport 3478" <<<"$rules"; then
		fail "$case: forwards left behind after stop"; echo "$rules"
	else
		ok "$case: miniupnpd's nft chains are empty after tinyderp stopped"
	fi
	if grep -q "port mapping: deleted TCP 8443" "$work/relay.log" && grep -q "port mapping: deleted UDP 3478" "$work/relay.log"; then
		ok "$case: relay logged both deletions"
	else
		fail "$case: deletions not logged"; cat "$work/relay.log"
	fi
	if outside_connect 11.0.0.10; then fail "$case: TCP 8443 still reachable after stop"; else ok "$case: TCP 8443 closed from the internet after stop"; fi
	if [ -e "$work/state/portmap.state" ]; then fail "$case: record left in the state dir"; else ok "$case: record removed on stop"; fi
	# miniupnpd runs under timeout in a subshell: stop it by the pid it wrote.
	[ -s "$work/miniupnpd.pid" ] && kill "$(cat "$work/miniupnpd.pid")" 2>/dev/null
}

# Case 7: miniupnpd with PCP and NAT-PMP on: tinyderp maps with PCP.
case_port_mapping() { portmap_case port-mapping yes PCP; }

# Case 8: miniupnpd with UPnP IGD only: no answer on UDP 5351, tinyderp falls back to
# SSDP, the device description and SOAP AddPortMapping/DeletePortMapping.
case_port_mapping_upnp() { portmap_case port-mapping-upnp no "UPnP IGD"; }

# Case 5: public address, right records, but the firewall keeps the ports closed.
case_firewall() {
	internet && router && link rtr wan0 inet isp0 &&
		addr rtr wan0 203.0.113.10/24 && addr inet isp0 203.0.113.1/24 &&
		route rtr default via 203.0.113.1 &&
		dns A=203.0.113.10 && firewall closed && start_relay || { fail "firewall: setup"; return; }
	run_check firewall-closed 2 firewall=fail:"TCP 8443" firewall=fail:"UDP 3478" derp=ok
	watched firewall-closed firewall fail
	if outside_connect 203.0.113.10; then fail "firewall: an outside host got through"; else ok "firewall: the kernel really refuses TCP 8443 from outside"; fi
}

# CHECK_NETNS_CASES="double_nat_stale port_mapping" runs only those cases (while working on one).
for case in ${CHECK_NETNS_CASES:-public stale cgnat double_nat firewall double_nat_stale port_mapping port_mapping_upnp}; do
	case=case_$case
	echo "== ${case#case_}"
	rm -rf "$work/state"
	check_flags=()
	$case
	cleanup
done
# docs/troubleshooting.md shows these outputs: they must still be what the check prints
# (STUN mapped ports and the age of a port mapping differ from run to run).
for case in public stale cgnat double-nat double-nat-forwarded firewall-closed firewall-ipv4-only double-nat-stale port-mapping port-mapping-upnp; do
	if python3 - "$repo/docs/troubleshooting.md" "$out/$case.txt" "$case" <<'PY'; then ok "docs/troubleshooting.md shows the $case output"; else fail "docs/troubleshooting.md differs from the $case output (copy $out/$case.txt)"; fi
import re, sys
doc, run, case = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3]
found = re.search(r"<!-- check-output: " + re.escape(case) + r" -->\n```text\n(.*?)```", doc, re.S)
mask = lambda text: re.sub(r"renewed \d+s ago, lives \d+s more", "renewed Ns ago, lives Ns more",
    re.sub(r"(mapped (\[[0-9a-f:]+\]|[0-9.]+)):\d+", r"\1:PORT", text)).strip()
sys.exit(0 if found and mask(found.group(1)) == mask(run) else 1)
PY
done
echo "check-netns: $passes passed, $failures failed (outputs in $out)"
[ "$failures" = 0 ]
