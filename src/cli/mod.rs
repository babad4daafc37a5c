//! The command-line flag definitions (whose doc comments are the `--help` text) and,
//! in [`options`], the table of every option with its UCI kind, shell datatype, default
//! and examples, from which the init script's validation list, the shipped UCI file,
//! `docs/configuration.md` and `tests/openwrt/options.json` are generated.
//!
//! Every flag is collected as a raw string here; [`crate::config::Config::from_flags`]
//! validates it, and [`crate::command`] turns process arguments into a command (derper's
//! Go-style spellings are rewritten first by [`crate::config::derper`]). The OpenWrt init
//! script maps each UCI option `foo_bar` to `--foo-bar`. This module imports nothing
//! from the rest of the crate.

use argh::FromArgs;

pub mod options;

/// Exit status for `--help` and `--version`.
pub const EXIT_OK: i32 = 0;
/// Exit status for a command line that cannot be used (same as Go's flag package).
pub const EXIT_USAGE: i32 = 2;
/// Program name used in help and messages (`argv[0]` may be a full path).
pub const PROGRAM_NAME: &str = "tinyderp";
/// The crate version, printed by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Arguments that show the help (also set in the argh attributes of [`Flags`]).
pub const HELP_TRIGGERS: &[&str] = &["-h", "--help", "help"];
/// First argument that selects "print DERP map snippets and exit".
pub const DERPMAP_COMMAND: &str = "derpmap";
/// First argument that selects "check the options as the server would, then exit".
pub const VALIDATE_COMMAND: &str = "validate";
/// First argument that selects "check that the relay is reachable, report and exit".
pub const CHECK_COMMAND: &str = "check";
/// Option of the check and status commands only: print the report as JSON.
pub const CHECK_JSON: &str = "--json";
/// First argument that selects "print the running relay's counters (its /debug/varz,
/// read from the status socket in the state directory) and exit"; LuCI's status page
/// reads them through the rpcd plugin.
pub const STATUS_COMMAND: &str = "status";

/// The raw flags, as argh collects them; see [`crate::config`] for validation and defaults.
#[derive(FromArgs, Debug, Default, Clone, PartialEq)]
#[argh(
    description = "tinyderp: a small Tailscale-compatible DERP relay and STUN server.",
    usage = "[derpmap|validate|check [--json]|status [--json]] [options]",
    help_triggers("-h", "--help", "help"),
    example = "tinyderp --hostname myhome.example.net --state-dir /etc/tinyderp",
    example = "tinyderp derpmap --hostname myhome.example.net",
    example = "tinyderp validate --max-clients 20",
    example = "tinyderp check --hostname myhome.example.net",
    example = "tinyderp --dev",
    note = "tinyderp derpmap [options] prints the ready-to-paste DERP map snippets\n\
(Tailscale policy file, headscale) and exits; give it the same options as\n\
the server so the snippets match.",
    note = "tinyderp validate [options] checks the options exactly as the server\n\
would and exits 0, or prints what is wrong (with the UCI option name) and\n\
exits 2; the init script runs it before starting the relay.",
    note = "tinyderp check [--json] [options] checks that the relay is reachable through\n\
its public name (DNS records, WAN address class, firewall, DERP and STUN end to\n\
end) and exits 0 (all OK), 1 (warnings) or 2 (failures).",
    note = "tinyderp status [--json] [options] prints the running relay's counters (what\n\
/debug/varz shows; with --json also learn mode's refused keys and the mesh\n\
peers), read from status.sock in its --state-dir, and exits 0, or 1 when it is\n\
not reachable.",
    note = "Every option is also a UCI option in /etc/config/tinyderp: the flag name\n\
with _ for - (--stun-port 3478 is option stun_port '3478').",
    note = "Signals: SIGHUP re-reads the certificate and the --rate-config file (other\n\
options need a restart); SIGTERM or SIGINT stop after telling clients to reconnect.",
    note = "derper spellings work too: -hostname x, -a :443, -c FILE,\n\
-certmode=manual, -verify-clients=true, -http-port=-1,\n\
-accept-connection-limit=10, -verify-client-url-fail-open=false."
)]
pub struct Flags {
    /// where the DERP relay listens (HTTPS over TCP): `:PORT` for every interface (IPv4
    /// and IPv6), `IP:PORT` or `[IPv6]:PORT`. Default :8443 (uhttpd/LuCI usually holds 443).
    #[argh(option, short = 'a', arg_name = "ADDR")]
    pub addr: Option<String>,

    /// UDP port of the STUN server, on the same IP as --addr; -1 turns STUN off. Default
    /// 3478.
    #[argh(option, arg_name = "N")]
    pub stun_port: Option<String>,

    /// port for plain HTTP on the same IP as --addr (captive-portal checks, redirect to
    /// https); -1 turns it off. Default -1 (off).
    #[argh(option, arg_name = "N")]
    pub http_port: Option<String>,

    /// the DNS name (e.g. your DDNS name) or public IP clients use to reach this relay;
    /// first name in the self-signed certificate. Default localhost.
    #[argh(option, arg_name = "NAME")]
    pub hostname: Option<String>,

    /// another DNS name to put in the self-signed certificate (repeatable). Default none.
    #[argh(option, arg_name = "NAME")]
    pub extra_name: Vec<String>,

    /// an IP address to put in the self-signed certificate (repeatable). Default none.
    #[argh(option, arg_name = "IP")]
    pub extra_ip: Vec<String>,

    /// directory for the server key and the generated certificate; keep it across
    /// upgrades. Default /etc/tinyderp.
    #[argh(option, arg_name = "DIR")]
    pub state_dir: Option<String>,

    /// the server's private key file (derper's JSON format), created on first start.
    /// Default: derper.key in the state dir.
    #[argh(option, short = 'c', arg_name = "FILE")]
    pub server_key: Option<String>,

    /// where the TLS certificate comes from: self-signed (generated once and kept, so its
    /// pin never changes) or manual (your own files). Default self-signed.
    #[argh(option, arg_name = "MODE")]
    pub certmode: Option<String>,

    /// self-signed: where the certificate is generated; manual: where
    /// HOSTNAME.crt and HOSTNAME.key are read. Default: the state dir.
    #[argh(option, arg_name = "DIR")]
    pub certdir: Option<String>,

    /// manual mode: certificate chain file (PEM) instead of CERTDIR/HOSTNAME.crt;
    /// needs --tls-key. Default none.
    #[argh(option, arg_name = "FILE")]
    pub tls_cert: Option<String>,

    /// manual mode: private key file (PEM) instead of CERTDIR/HOSTNAME.key; needs
    /// --tls-cert. Default none.
    #[argh(option, arg_name = "FILE")]
    pub tls_key: Option<String>,

    /// leave the meta certificate out of the TLS chain, so Tailscale v1.82.x clients
    /// accept a pinned certificate (costs one round trip per connection). Default: meta
    /// certificate sent.
    #[argh(switch)]
    pub no_meta_cert: bool,

    /// region id in the DERP map, 1-999; 900-999 are set aside for user-run relays.
    /// Default 900.
    #[argh(option, arg_name = "N")]
    pub region_id: Option<String>,

    /// short region code shown by clients (tailscale netcheck). Default home.
    #[argh(option, arg_name = "CODE")]
    pub region_code: Option<String>,

    /// long region name shown by clients. Default "Home router".
    #[argh(option, arg_name = "NAME")]
    pub region_name: Option<String>,

    /// node name in the DERP map, unique across all regions. Default: the region id and "a" (900a).
    #[argh(option, arg_name = "NAME")]
    pub node_name: Option<String>,

    /// TCP port clients dial, if a port forward maps another outside port to --addr.
    /// Default: the --addr port.
    #[argh(option, arg_name = "N")]
    pub public_derp_port: Option<String>,

    /// UDP port clients send STUN to, if a port forward changes it; -1 tells clients there
    /// is no STUN. Default: --stun-port.
    #[argh(option, arg_name = "N")]
    pub public_stun_port: Option<String>,

    /// public IPv4 address written into the DERP map, so clients skip DNS; leave unset
    /// with a DDNS name. Default none.
    #[argh(option, arg_name = "IP")]
    pub public_ipv4: Option<String>,

    /// public IPv6 address written into the DERP map; leave unset with a DDNS name.
    /// Default none.
    #[argh(option, arg_name = "IP")]
    pub public_ipv6: Option<String>,

    /// network interface of the internet line, which `tinyderp check` and the running
    /// server's reachability watch compare DNS records with (e.g. eth1, pppoe-wan).
    /// Default: the interface holding the default route.
    #[argh(option, arg_name = "IFACE")]
    pub wan_interface: Option<String>,

    /// an address or range (e.g. 192.168.1.0/24) allowed to read /debug/varz and the
    /// detailed status page (repeatable). Default: loopback only (always allowed).
    #[argh(option, arg_name = "CIDR")]
    pub metrics_allow: Vec<String>,

    /// how long one write to a client may take before the client is dropped: a Go
    /// duration like 2s, 10m, 1m30s, 500ms, or plain seconds; 0 = no limit. Default 2s.
    #[argh(option, arg_name = "DUR")]
    pub tcp_write_timeout: Option<String>,

    /// TCP keep-alive period (duration as above; 0 = off). Default 10m.
    #[argh(option, arg_name = "DUR")]
    pub tcp_keepalive: Option<String>,

    /// drop a connection whose sent data stays unacknowledged this long (Linux
    /// TCP_USER_TIMEOUT; duration as above; 0 = kernel default). Default 15s.
    #[argh(option, arg_name = "DUR")]
    pub tcp_user_timeout: Option<String>,

    /// file holding the 64-hex-digit mesh key shared by relays of one region. Default none.
    #[argh(option, arg_name = "FILE")]
    pub mesh_psk_file: Option<String>,

    /// other relays of the region to dial (derper syntax, repeatable): comma-separated
    /// host[:port] (port 443 if omitted); host:port/dialhost dials dialhost but verifies
    /// host; this server's own name is skipped. Needs --mesh-psk-file. Default none.
    #[argh(option, arg_name = "LIST")]
    pub mesh_with: Vec<String>,

    /// trust a --mesh-with relay by its certificate pin instead of the system roots
    /// (repeatable or comma-separated): host=sha256-raw:HEX, host as written in
    /// --mesh-with without port. A pin for this server's own name is allowed (one list
    /// for every node) and shown in the region snippet. Default none.
    #[argh(option, arg_name = "HOST=PIN")]
    pub mesh_pin: Vec<String>,

    /// a node key allowed to use the relay without other checks, as nodekey:HEX
    /// (repeatable; --log-refused-keys prints refused keys in this form). With only this
    /// option, every other key is refused. Default none.
    #[argh(option, arg_name = "KEY")]
    pub allowed_key: Vec<String>,

    /// admit only nodes the local tailscaled knows (its own node and its tailnet peers),
    /// asked over its LocalAPI socket. Default off.
    #[argh(switch)]
    pub verify_clients: bool,

    /// tailscaled's LocalAPI socket for --verify-clients. Default
    /// /var/run/tailscale/tailscaled.sock.
    #[argh(option, arg_name = "PATH")]
    pub socket: Option<String>,

    /// ask this http:// URL whether to admit each node: a POST of
    /// {"NodePublic":"nodekey:...","Source":"IP"}, admitted only on status 200 with
    /// {"Allow":true}, 5s timeout (https:// needs a build with the https-admission
    /// feature). Default none.
    #[argh(option, arg_name = "URL")]
    pub verify_client_url: Option<String>,

    /// trusted CA certificates (PEM file) for an https:// --verify-client-url. Default
    /// /etc/ssl/certs/ca-certificates.crt (OpenWrt package ca-bundle).
    #[argh(option, arg_name = "FILE")]
    pub verify_client_url_ca: Option<String>,

    /// admit nodes when the --verify-client-url cannot be reached (true or false; write
    /// --verify-client-url-fail-open=false to refuse them). Default true.
    #[argh(option, arg_name = "BOOL")]
    pub verify_client_url_fail_open: Option<String>,

    /// learn mode: log each refused node key and its address once every 10 minutes, with
    /// the command that adds it to the allowed keys. Default off.
    #[argh(switch)]
    pub log_refused_keys: bool,

    /// per-client receive rate in bytes per second: reading from a faster client is
    /// slowed, nothing is dropped; mesh peers are exempt. Suffixes k, M, G, Ki, Mi, Gi;
    /// 0 = no limit. Default no limit.
    #[argh(option, arg_name = "BYTES")]
    pub client_rate: Option<String>,

    /// per-client burst in bytes (at least 65568). Default 65568.
    #[argh(option, arg_name = "BYTES")]
    pub client_burst: Option<String>,

    /// derper's per-client rate file, JSON {"PerClientRateLimitBytesPerSec":N,
    /// "PerClientRateBurstBytes":N}, re-read on SIGHUP and applied to connected clients;
    /// replaces --client-rate and --client-burst. Default none.
    #[argh(option, arg_name = "FILE")]
    pub rate_config: Option<String>,

    /// cap on the bytes per second read from all DERP connections together, mesh peers
    /// included (what the relay can send on); suffixes as --client-rate; 0 = no limit.
    /// Default no limit.
    #[argh(option, arg_name = "BYTES")]
    pub total_rate: Option<String>,

    /// most clients connected at once; more are closed after the handshake (mesh peers
    /// are never refused); 0 = no limit. Default no limit.
    #[argh(option, arg_name = "N")]
    pub max_clients: Option<String>,

    /// new TLS connections accepted per second (decimals allowed, e.g. 0.5); excess ones
    /// are closed at once; 0 = no limit. Default no limit.
    #[argh(option, arg_name = "N")]
    pub accept_rate: Option<String>,

    /// connections accepted at once before --accept-rate applies. Default: the rate,
    /// rounded up.
    #[argh(option, arg_name = "N")]
    pub accept_burst: Option<String>,

    /// log verbosity: error, warn, info, debug or trace. Default info.
    #[argh(option, arg_name = "LEVEL")]
    pub log_level: Option<String>,

    /// loopback demo: listen on 127.0.0.1:8443 (STUN 127.0.0.1:3478), state dir
    /// ./tinyderp-dev, unless those options are given too.
    #[argh(switch)]
    pub dev: bool,

    /// print the version and exit.
    #[argh(switch)]
    pub version: bool,

    /// ask the router in front (on a double NAT) to forward the DERP and STUN ports here
    /// with PCP, NAT-PMP or UPnP IGD, renew the mappings and remove them on stop.
    /// Default off.
    #[argh(switch)]
    pub port_mapping: bool,

    /// a STUN server on the internet (HOST:PORT) that `tinyderp check` and the
    /// reachability watch ask for this line's public address. Default none.
    #[argh(option, arg_name = "HOST:PORT")]
    pub check_stun_server: Option<String>,
}
