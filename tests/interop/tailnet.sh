# shellcheck shell=bash
# shellcheck disable=SC1090,SC1091 # per-server env files are written at run time
# Part 3 of run.sh (sourced, not run): a real tailnet whose only path is the
# server under test. headscale on loopback hands out a DERP map holding just
# our region; two userspace tailscaled nodes join with a pre-auth key and talk
# through DERP only (TS_DEBUG_ALWAYS_USE_DERP turns their UDP sockets off).
#
# Run A: DERP map from a headscale `derp.paths` YAML file, node pinned with
#        CertName sha256-raw:<hex>.
# Run B: DERP map from `derp.urls`, JSON served by a local HTTP server, node
#        with InsecureForTests.

TAILNET_TRANSFER_BYTES=$((10 * 1024 * 1024))

# tailnet_derpmap_yaml: headscale reads this with a YAML decoder straight into
# tailcfg.DERPMap, so keys are the Go field names in lower case.
tailnet_derpmap_yaml() {
	(
		set -a && . "$WORK/main/env" && set +a
		cat <<EOF
regions:
  900:
    regionid: 900
    regioncode: interop
    regionname: tinyderp interop
    nodes:
      - name: 900a
        regionid: 900
        hostname: 127.0.0.1
        ipv4: 127.0.0.1
        ipv6: "::1"
        derpport: $INTEROP_DERP_PORT
        stunport: $INTEROP_STUN_PORT
        certname: $INTEROP_CERTNAME
EOF
	)
}

# tailnet_v6_relay: once per run.sh, [::1]:<derp port> -> 127.0.0.1:<derp port>
# (see v6relay.py for why).
tailnet_v6_relay() {
	[ -n "${TAILNET_V6_RELAY_UP:-}" ] && return 0
	local port
	port="$(. "$WORK/main/env" && echo "$INTEROP_DERP_PORT")"
	python3 "$HERE/v6relay.py" "$port" >"$WORK/v6relay.log" 2>&1 &
	PIDS+=($!)
	wait_tcp ::1 "$port" 10 || return 1
	TAILNET_V6_RELAY_UP=1
}

# tailnet_run LABEL MODE(paths|urls)
tailnet_run() {
	local label="$1" mode="$2" dir="$WORK/tailnet-$2"
	local hs ts tsd
	hs="$(go_tool headscale)" || { record "$label" "build headscale" fail; return; }
	ts="$(go_tool tailscale)" || { record "$label" "build tailscale" fail; return; }
	tsd="$(go_tool tailscaled)" || { record "$label" "build tailscaled" fail; return; }
	mkdir -p "$dir"
	local hs_port grpc_port metrics_port map_port
	hs_port=$(free_port) grpc_port=$(free_port) metrics_port=$(free_port) map_port=$(free_port)

	# With tinyderp the maps are the ones `tinyderp derpmap` prints for users
	# to paste (HostName = --hostname, here localhost); with derper, or if a
	# snippet cannot be extracted (reported as a failure), maps built here.
	local derp_urls="[]" derp_paths="[]" from_snippet=0
	if [ "$mode" = paths ]; then
		if [ "$SERVER_KIND" = tinyderp ]; then
			if python3 "$HERE/derpmap_snippet.py" "$WORK/main/derpmap.txt" yaml >"$dir/derp.yaml" 2>"$dir/snippet.err"; then
				from_snippet=1
			else
				record "$label" "tinyderp derpmap YAML snippet" fail "$(cat "$dir/snippet.err")"
			fi
		fi
		[ "$from_snippet" = 1 ] || tailnet_derpmap_yaml >"$dir/derp.yaml"
		derp_paths="[\"$dir/derp.yaml\"]"
	else
		mkdir -p "$dir/www"
		if [ "$SERVER_KIND" = tinyderp ]; then
			if python3 "$HERE/derpmap_snippet.py" "$WORK/main/derpmap.txt" insecure-json >"$dir/www/derpmap.json" 2>"$dir/snippet.err"; then
				from_snippet=1
			else
				record "$label" "tinyderp derpmap InsecureForTests snippet" fail "$(cat "$dir/snippet.err")"
			fi
		fi
		[ "$from_snippet" = 1 ] || derpmap_json main insecure "" ::1 >"$dir/www/derpmap.json"
		python3 -m http.server --bind 127.0.0.1 --directory "$dir/www" "$map_port" >"$dir/mapserver.log" 2>&1 &
		PIDS+=($!)
		wait_tcp 127.0.0.1 "$map_port" 10 || { record "$label" "DERP map HTTP server" fail; return; }
		derp_urls="[\"http://127.0.0.1:$map_port/derpmap.json\"]"
	fi

	cat >"$dir/headscale.yaml" <<EOF
server_url: http://127.0.0.1:$hs_port
listen_addr: 127.0.0.1:$hs_port
metrics_listen_addr: 127.0.0.1:$metrics_port
grpc_listen_addr: 127.0.0.1:$grpc_port
grpc_allow_insecure: false
noise:
  private_key_path: $dir/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: false
  urls: $derp_urls
  paths: $derp_paths
  auto_update_enabled: false
  update_frequency: 24h
disable_check_updates: true
database:
  type: sqlite
  sqlite:
    path: $dir/db.sqlite
    write_ahead_log: true
log:
  level: info
policy:
  mode: file
  path: ""
dns:
  magic_dns: false
  override_local_dns: false
  nameservers:
    global: []
unix_socket: $dir/headscale.sock
unix_socket_permission: "0770"
logtail:
  enabled: false
EOF
	"$hs" -c "$dir/headscale.yaml" serve >"$dir/headscale.log" 2>&1 &
	PIDS+=($!)
	if ! wait_tcp 127.0.0.1 "$hs_port" 30; then
		record "$label" "headscale starts" fail "see headscale.log"
		tail -20 "$dir/headscale.log" >&2
		return
	fi
	local i
	for i in $(seq 50); do [ -S "$dir/headscale.sock" ] && break; sleep 0.2; done
	local map_note="map built by run.sh"
	[ "$from_snippet" = 1 ] && map_note="map = the snippet tinyderp derpmap prints"
	record "$label" "headscale $HEADSCALE serves (derp.$mode)" pass "$map_note"

	local hsc=("$hs" -c "$dir/headscale.yaml")
	"${hsc[@]}" users create interop >"$dir/cli.log" 2>&1 || { record "$label" "create user" fail; cat "$dir/cli.log" >&2; return; }
	local uid authkey
	uid="$("${hsc[@]}" users list -o json 2>>"$dir/cli.log" | python3 -c 'import json,sys; print([u["id"] for u in json.load(sys.stdin) if u["name"]=="interop"][0])')" ||
		{ record "$label" "user id" fail; return; }
	authkey="$("${hsc[@]}" preauthkeys create -u "$uid" --reusable -e 1h 2>>"$dir/cli.log" | tail -1)"
	[ -n "$authkey" ] || { record "$label" "create pre-auth key" fail; cat "$dir/cli.log" >&2; return; }

	# `tailscale debug derp` checks TLS with its own dialer, which honours a
	# sha256-raw CertName but not InsecureForTests (upstream behaviour); in the
	# InsecureForTests run the nodes trust the certificate through SSL_CERT_FILE
	# for that check. DERP connections themselves still skip verification.
	local trust=()
	if [ "$mode" = urls ]; then
		trust=(env "SSL_CERT_FILE=$(. "$WORK/main/env" && echo "$INTEROP_CA_FILE")")
	fi
	# Keep the nodes on loopback: anything that tries plain HTTP(S) through
	# the environment's proxy hits a closed loopback port, loopback itself is
	# exempt, port mapping is off (also compiled out), and reaching
	# Tailscale's own control server would panic the daemon.
	export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost,::1
	export http_proxy="$HTTP_PROXY" https_proxy="$HTTPS_PROXY" no_proxy="$NO_PROXY"
	export TS_DISABLE_PORTMAPPER=1 TS_PANIC_IF_HIT_MAIN_CONTROL=1
	local n socks=() socks_port
	for n in 1 2; do
		mkdir -p "$dir/node$n"
		socks_port=$(free_port)
		socks+=("$socks_port")
		TS_DEBUG_ALWAYS_USE_DERP=1 "${trust[@]}" "$tsd" --tun=userspace-networking --statedir="$dir/node$n" \
			--socket="$dir/node$n/tailscaled.sock" --port=0 --no-logs-no-support \
			--socks5-server="127.0.0.1:$socks_port" >"$dir/node$n/tailscaled.log" 2>&1 &
		PIDS+=($!)
	done
	for n in 1 2; do
		for i in $(seq 100); do [ -S "$dir/node$n/tailscaled.sock" ] && break; sleep 0.1; done
		if ! timeout 90 "$ts" --socket="$dir/node$n/tailscaled.sock" up --login-server="http://127.0.0.1:$hs_port" \
			--authkey="$authkey" --hostname="node$n" --accept-dns=false --timeout=60s >"$dir/node$n/up.log" 2>&1; then
			record "$label" "node$n joins (tailscale up)" fail "$(tail -1 "$dir/node$n/up.log")"
			tail -20 "$dir/node$n/tailscaled.log" >&2
			return
		fi
	done
	record "$label" "two tailscaled $TS_TOOLS join (pre-auth key)" pass
	local t1=("$ts" --socket="$dir/node1/tailscaled.sock") t2=("$ts" --socket="$dir/node2/tailscaled.sock")
	local ip2
	ip2="$("${t2[@]}" ip -4 2>/dev/null | head -1)"
	[ -n "$ip2" ] || { record "$label" "node2 address" fail; return; }

	# tailscale ping: must answer via DERP(<our region code>).
	local out ok=0
	for i in 1 2 3; do
		out="$(timeout 60 "${t1[@]}" ping --until-direct=false --c 3 --timeout 10s "$ip2" 2>&1)"
		if grep -q "via DERP(interop)" <<<"$out"; then ok=1; break; fi
		sleep 2
	done
	echo "$out" >"$dir/ping.log"
	if [ "$ok" = 1 ]; then
		record "$label" "tailscale ping via DERP(interop)" pass "$(grep -m1 'via DERP' <<<"$out" | sed -E 's/.* in //')"
	else
		record "$label" "tailscale ping via DERP(interop)" fail "$(tail -1 <<<"$out")"
	fi

	# 10 MiB over the tailnet: node1's SOCKS5 -> tailnet -> node2's netstack,
	# which hands inbound TCP to 127.0.0.1:<port> (a local HTTP server).
	local www_port
	www_port=$(free_port)
	mkdir -p "$dir/blob"
	head -c "$TAILNET_TRANSFER_BYTES" /dev/urandom >"$dir/blob/blob.bin"
	python3 -m http.server --bind 127.0.0.1 --directory "$dir/blob" "$www_port" >"$dir/blobserver.log" 2>&1 &
	PIDS+=($!)
	wait_tcp 127.0.0.1 "$www_port" 10
	local t0 t1s want got
	t0=$(date +%s.%N)
	timeout 180 curl -sS --max-time 170 --socks5-hostname "127.0.0.1:${socks[0]}" -o "$dir/blob.recv" \
		"http://$ip2:$www_port/blob.bin" 2>"$dir/curl.log"
	t1s=$(date +%s.%N)
	want="$(sha256sum <"$dir/blob/blob.bin" | cut -d' ' -f1)"
	got="$(sha256sum <"$dir/blob.recv" 2>/dev/null | cut -d' ' -f1)"
	if [ "$want" = "$got" ]; then
		record "$label" "10 MiB node1<-node2, sha256 match" pass "$(python3 -c "print('%.1f s' % ($t1s - $t0))")"
	else
		record "$label" "10 MiB node1<-node2, sha256 match" fail "$(head -c 200 "$dir/curl.log") got $(stat -c %s "$dir/blob.recv" 2>/dev/null || echo 0) bytes"
	fi

	# netcheck: region latency via STUN.
	local nc_udp
	nc_udp="$(timeout 60 "${t1[@]}" netcheck --format=json 2>"$dir/netcheck-udp.err")"
	echo "$nc_udp" >"$dir/netcheck-udp.json"
	out="$(python3 - "$dir/netcheck-udp.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
lat = (r.get("RegionLatency") or {}).get("900")
v4 = (r.get("RegionV4Latency") or {}).get("900")
ms = lambda ns: "%.2fms" % (ns / 1e6) if ns else "none"
print("ok" if r.get("UDP") and lat and v4 else "bad", "UDP=%s latency=%s v4(STUN)=%s" % (r.get("UDP"), ms(lat), ms(v4)))
EOF
)"
	case "$out" in
	ok*) record "$label" "netcheck: region latency via STUN" pass "${out#ok }" ;;
	*) record "$label" "netcheck: region latency via STUN" fail "${out#bad }" ;;
	esac
	# HTTPS latency alone (no STUN) is proven by the Go suite's TestNetcheckHTTPS, on loopback.

	# tailscale debug derp: no errors (warnings are expected: single region,
	# no port 80).
	"${t1[@]}" debug derp 900 >"$dir/debug-derp.json" 2>&1
	out="$(python3 - "$dir/debug-derp.json" <<'EOF'
import json, sys
try:
    st = json.load(open(sys.argv[1]))
except Exception as e:
    print("bad unparsable:", e); sys.exit()
errs = st.get("Errors") or []
info = st.get("Info") or []
ok = not errs and any("Successfully established a DERP connection" in i for i in info) \
    and any("STUN response" in i for i in info)
print("ok" if ok else "bad", "; ".join(errs) if errs else "%d info, %d warnings" % (len(info), len(st.get("Warnings") or [])))
EOF
)"
	case "$out" in
	ok*) record "$label" "tailscale debug derp 900" pass "${out#ok }" ;;
	*) record "$label" "tailscale debug derp 900" fail "${out#bad }" ;;
	esac
}

# stop_since N: ends the processes started after PIDS had N entries.
stop_since() {
	local i
	for ((i = $1; i < ${#PIDS[@]}; i++)); do kill "${PIDS[$i]}" 2>/dev/null; done
	sleep 0.5
	for ((i = $1; i < ${#PIDS[@]}; i++)); do kill -9 "${PIDS[$i]}" 2>/dev/null; done
}

part_tailnet() {
	tailnet_v6_relay || { record tailnet "IPv6 loopback relay" fail; return; }
	local mark=${#PIDS[@]}
	tailnet_run "tailnet A: derp.paths YAML + CertName pin" paths
	stop_since "$mark"
	mark=${#PIDS[@]}
	tailnet_run "tailnet B: derp.urls JSON + InsecureForTests" urls
	stop_since "$mark"
}
