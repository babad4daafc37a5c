// Generated from src/cli/options.rs by `TINYDERP_BLESS=1 cargo test --lib generated_files`; do not edit.
// The UCI options of /etc/config/tinyderp for the settings form: kind (value, list,
// switch), validate_data datatype as the init script checks it, default, tab, summary.
'use strict';
'require baseclass';

return baseclass.extend({
	groups: [
		[ "basic", _("Basic") ],
		[ "certificate", _("Certificate") ],
		[ "access", _("Who may connect") ],
		[ "limits", _("Limits") ],
		[ "advanced", _("Advanced") ]
	],

	options: [
		{ name: "enabled", kind: "value", datatype: "bool", default: "0", group: "basic", summary: _("Start the relay (1) or not (0). Off until you have set hostname.") },
		{ name: "hostname", kind: "value", datatype: "host", default: null, group: "basic", summary: _("DNS name (your DDNS name) or IP that clients dial; first name in the self-signed certificate.") },
		{ name: "addr", kind: "value", datatype: "string", default: ":8443", group: "basic", summary: _("DERP TLS listen address: ':PORT' (all interfaces), 'IP:PORT' or '[IPv6]:PORT'.") },
		{ name: "stun_port", kind: "value", datatype: "range(-1,65535)", default: "3478", group: "basic", summary: _("UDP STUN port on the same IP as addr; -1 turns STUN off.") },
		{ name: "http_port", kind: "value", datatype: "range(-1,65535)", default: "-1", group: "basic", summary: _("Plain-HTTP port (captive-portal check, redirect to https); -1 turns it off.") },
		{ name: "open_firewall", kind: "value", datatype: "bool", default: "1", group: "basic", summary: _("Open the DERP TCP port, the STUN UDP port (and http_port if on) from WAN through fw4.") },
		{ name: "region_id", kind: "value", datatype: "range(1,999)", default: "900", group: "basic", summary: _("Region id in the DERP map, 1-999; 900-999 are set aside for user-run relays.") },
		{ name: "region_code", kind: "value", datatype: "string", default: "home", group: "basic", summary: _("Short region code shown by clients (tailscale netcheck); no spaces.") },
		{ name: "region_name", kind: "value", datatype: "string", default: "Home router", group: "basic", summary: _("Long region name shown by clients (at most 64 characters).") },
		{ name: "node_name", kind: "value", datatype: "string", default: null, group: "basic", summary: _("Node name in the DERP map, unique across all regions; no spaces.") },
		{ name: "certmode", kind: "value", datatype: "or(\"self-signed\",\"manual\")", default: "self-signed", group: "certificate", summary: _("'self-signed' (generated once, pinned by clients) or 'manual' (your own files).") },
		{ name: "extra_name", kind: "list", datatype: "hostname", default: null, group: "certificate", summary: _("Another DNS name for the self-signed certificate (repeatable).") },
		{ name: "extra_ip", kind: "list", datatype: "ipaddr", default: null, group: "certificate", summary: _("An IP address for the self-signed certificate (repeatable).") },
		{ name: "certdir", kind: "value", datatype: "string", default: null, group: "certificate", summary: _("Where the self-signed files are generated, or manual HOSTNAME.crt and HOSTNAME.key are read.") },
		{ name: "tls_cert", kind: "value", datatype: "string", default: null, group: "certificate", summary: _("certmode manual: certificate chain file (PEM); needs tls_key.") },
		{ name: "tls_key", kind: "value", datatype: "string", default: null, group: "certificate", summary: _("certmode manual: private key file (PEM); needs tls_cert.") },
		{ name: "no_meta_cert", kind: "switch", datatype: "bool", default: "0", group: "certificate", summary: _("'1' leaves the meta certificate out of the TLS chain (for Tailscale v1.82.x clients with a pinned certificate).") },
		{ name: "state_dir", kind: "value", datatype: "string", default: "/etc/tinyderp", group: "certificate", summary: _("Directory of the server key and the generated certificate (kept by sysupgrade; created 0700 and given to user).") },
		{ name: "server_key", kind: "value", datatype: "string", default: null, group: "certificate", summary: _("The server's private key file (derper's JSON format), created on first start.") },
		{ name: "allowed_key", kind: "list", datatype: "string", default: null, group: "access", summary: _("A node key allowed without other checks, as nodekey:HEX (repeatable); with only this, every other key is refused.") },
		{ name: "log_refused_keys", kind: "switch", datatype: "bool", default: "0", group: "access", summary: _("Learn mode: log each refused node key every 10 minutes with the command that allows it.") },
		{ name: "verify_clients", kind: "switch", datatype: "bool", default: "0", group: "access", summary: _("'1' admits only nodes the local tailscaled knows (its node and its tailnet peers).") },
		{ name: "socket", kind: "value", datatype: "string", default: "/var/run/tailscale/tailscaled.sock", group: "access", summary: _("tailscaled's LocalAPI socket for verify_clients.") },
		{ name: "verify_client_url", kind: "value", datatype: "string", default: null, group: "access", summary: _("Ask this http:// URL whether to admit each node (https:// needs a build with the https-admission feature).") },
		{ name: "verify_client_url_ca", kind: "value", datatype: "string", default: "/etc/ssl/certs/ca-certificates.crt", group: "access", summary: _("Trusted CA certificates (PEM) for an https:// verify_client_url.") },
		{ name: "verify_client_url_fail_open", kind: "value", datatype: "bool", default: "1", group: "access", summary: _("Admit nodes (1) or refuse them (0) when verify_client_url cannot be reached.") },
		{ name: "max_clients", kind: "value", datatype: "uinteger", default: null, group: "limits", summary: _("Most clients connected at once; more are closed after the handshake (0 = no limit; mesh peers never refused).") },
		{ name: "client_rate", kind: "value", datatype: "string", default: null, group: "limits", summary: _("Per-client receive rate in bytes/s (k, M, G, Ki, Mi, Gi; 0 = no limit); faster clients are slowed, mesh peers exempt.") },
		{ name: "client_burst", kind: "value", datatype: "string", default: "65568", group: "limits", summary: _("Per-client burst in bytes (at least 65568).") },
		{ name: "total_rate", kind: "value", datatype: "string", default: null, group: "limits", summary: _("Cap on the bytes/s read from all DERP connections together (suffixes as client_rate; 0 = no limit).") },
		{ name: "rate_config", kind: "value", datatype: "string", default: null, group: "limits", summary: _("derper's per-client rate JSON file, re-read on SIGHUP; replaces client_rate and client_burst.") },
		{ name: "accept_rate", kind: "value", datatype: "ufloat", default: null, group: "limits", summary: _("New TLS connections accepted per second (decimals allowed; 0 = no limit); excess ones are closed at once.") },
		{ name: "accept_burst", kind: "value", datatype: "uinteger", default: null, group: "limits", summary: _("Connections accepted at once before accept_rate applies.") },
		{ name: "user", kind: "value", datatype: "string", default: "tinyderp", group: "advanced", summary: _("Run as this user; ports below 1024 then get only CAP_NET_BIND_SERVICE (needs procd-ujail). 'root' runs unconfined.") },
		{ name: "meta_cert", kind: "value", datatype: "bool", default: "1", group: "advanced", summary: _("Older spelling of no_meta_cert: '0' here is no_meta_cert '1'.") },
		{ name: "public_derp_port", kind: "value", datatype: "range(1,65535)", default: null, group: "advanced", summary: _("TCP port clients dial, when a port forward maps another outside port to addr.") },
		{ name: "public_stun_port", kind: "value", datatype: "range(-1,65535)", default: null, group: "advanced", summary: _("UDP port clients send STUN to, when a port forward changes it; -1 tells clients there is no STUN.") },
		{ name: "public_ipv4", kind: "value", datatype: "ip4addr", default: null, group: "advanced", summary: _("Public IPv4 address written into the DERP map (leave unset with a DDNS name).") },
		{ name: "public_ipv6", kind: "value", datatype: "ip6addr", default: null, group: "advanced", summary: _("Public IPv6 address written into the DERP map (leave unset with a DDNS name).") },
		{ name: "wan_interface", kind: "value", datatype: "string", default: null, group: "advanced", summary: _("Interface of the internet line that tinyderp check and the running relay's reachability watch compare DNS records with.") },
		{ name: "metrics_allow", kind: "list", datatype: "cidr", default: null, group: "advanced", summary: _("An address or range allowed to read /debug/varz and the status detail (repeatable); loopback always may.") },
		{ name: "tcp_write_timeout", kind: "value", datatype: "string", default: "2s", group: "advanced", summary: _("How long one write to a client may take before it is dropped (Go duration like 2s, 10m, 1m30s, or seconds; 0 = no limit).") },
		{ name: "tcp_keepalive", kind: "value", datatype: "string", default: "10m", group: "advanced", summary: _("TCP keep-alive period (at least 1s; 0 = off).") },
		{ name: "tcp_user_timeout", kind: "value", datatype: "string", default: "15s", group: "advanced", summary: _("Linux TCP_USER_TIMEOUT: drop a connection whose sent data stays unacknowledged this long (at most 9h; 0 = kernel default).") },
		{ name: "mesh_psk_file", kind: "value", datatype: "string", default: null, group: "advanced", summary: _("File holding the 64-hex-digit mesh key shared by the relays of one region.") },
		{ name: "mesh_with", kind: "list", datatype: "string", default: null, group: "advanced", summary: _("Other relays of the region to dial, in derper syntax (repeatable, comma-separated host[:port], host/dialhost); this server's own name is skipped.") },
		{ name: "mesh_pin", kind: "list", datatype: "string", default: null, group: "advanced", summary: _("Trust a mesh_with relay by its certificate pin (host=sha256-raw:HEX, repeatable) instead of the system CA roots; needed for self-signed peers.") },
		{ name: "log_level", kind: "value", datatype: "or(\"error\",\"warn\",\"info\",\"debug\",\"trace\")", default: "info", group: "advanced", summary: _("Log verbosity: error, warn, info, debug or trace.") },
		{ name: "port_mapping", kind: "switch", datatype: "bool", default: "0", group: "advanced", summary: _("'1' asks the router in front (double NAT) to forward the DERP and STUN ports with PCP, NAT-PMP or UPnP IGD, renews the mappings and removes them on stop. Needs a build with port mapping (the router packages leave it out to save flash).") },
		{ name: "check_stun_server", kind: "value", datatype: "string", default: null, group: "advanced", summary: _("A STUN server on the internet (HOST:PORT) that tinyderp check and the reachability watch ask for this line's public address.") }
	]
});
