//! The command line: flag definitions (whose doc comments are the `--help` text),
//! derper-compatible spellings, and the exit behaviour for help, version and errors.
//!
//! Every flag is collected as a raw string here; [`crate::config::Config::from_flags`]
//! validates it. The flag set is fixed: the OpenWrt init script maps each UCI option
//! `foo_bar` to `--foo-bar`.
//!
//! argh only understands `--name value`. Copied derper command lines use Go's syntax
//! (`-hostname x`, `-certmode=manual`, `-verify-clients=true`), so [`normalize_args`]
//! rewrites those spellings first.

use argh::FromArgs;

use crate::config::Config;

/// Exit status for `--help` and `--version`.
pub const EXIT_OK: i32 = 0;
/// Exit status for a command line that cannot be used (same as Go's flag package).
pub const EXIT_USAGE: i32 = 2;
/// Program name used in help and messages (`argv[0]` may be a full path).
pub const PROGRAM_NAME: &str = "tinyderp";
/// The crate version, printed by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Arguments that show the help (also set in the argh attributes of [`Flags`]).
const HELP_TRIGGERS: &[&str] = &["-h", "--help", "help"];
/// First argument that selects "print DERP map snippets and exit".
pub const DERPMAP_COMMAND: &str = "derpmap";
/// First argument that selects "check that the relay is reachable, report and exit".
pub const CHECK_COMMAND: &str = "check";
/// Option of the check command only: print the report as JSON.
pub const CHECK_JSON: &str = "--json";

/// The raw flags, as argh collects them; see [`crate::config`] for validation and defaults.
#[derive(FromArgs, Debug, Default, Clone, PartialEq)]
#[argh(
    description = "tinyderp: a small Tailscale-compatible DERP relay and STUN server.",
    usage = "[derpmap|check [--json]] [options]",
    help_triggers("-h", "--help", "help"),
    example = "tinyderp --hostname myhome.example.net --state-dir /etc/tinyderp",
    example = "tinyderp derpmap --hostname myhome.example.net",
    example = "tinyderp check --hostname myhome.example.net",
    example = "tinyderp --dev",
    note = "tinyderp derpmap [options] prints the ready-to-paste DERP map snippets\n\
(Tailscale policy file, headscale) and exits; give it the same options as\n\
the server so the snippets match.",
    note = "tinyderp check [--json] [options] checks that the relay is reachable through\n\
its public name (DNS records, WAN address class, firewall, DERP and STUN end to\n\
end) and exits 0 (all OK), 1 (warnings) or 2 (failures).",
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

    /// relays to mesh with (derper syntax); not yet supported by this version.
    #[argh(option, arg_name = "LIST")]
    pub mesh_with: Option<String>,

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
}

/// What the program should do, with its validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the relay.
    Serve(Config),
    /// Print the DERP map snippets (needs the certificate pin) and exit.
    DerpMap(Config),
    /// Check reachability (see [`crate::check`]) and exit; `json` selects JSON output.
    Check {
        /// The server's configuration.
        config: Config,
        /// `--json` was given.
        json: bool,
    },
}

/// The program should exit now, printing `output`: help, version, or a usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliExit {
    /// Process exit status: [`EXIT_OK`] or [`EXIT_USAGE`].
    pub code: i32,
    /// Text to print (no trailing newline needed).
    pub output: String,
    /// Print to stderr (errors) rather than stdout (help, version).
    pub to_stderr: bool,
}

impl CliExit {
    fn usage_error(problem: &str) -> CliExit {
        CliExit {
            code: EXIT_USAGE,
            output: format!("{PROGRAM_NAME}: {problem}"),
            to_stderr: true,
        }
    }

    /// Prints the output, with a trailing newline, to the stream it belongs on.
    pub fn print(&self) {
        let text = self.output.trim_end_matches('\n');
        if self.to_stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// Parses the process arguments, `std::env::args()` as is: `args[0]` is the program
/// name and is ignored. A `derpmap` word among the options (normally first:
/// `tinyderp derpmap [options]`) selects [`Command::DerpMap`].
pub fn parse(args: &[String]) -> Result<Command, CliExit> {
    let rest = args.get(1..).unwrap_or_default();
    let mut normalized = normalize_args(rest).map_err(|problem| CliExit::usage_error(&problem))?;
    let in_flag_position = flag_positions(&normalized);
    // `--help` anywhere shows the help, even after other options (argh would refuse).
    let wants_help = in_flag_position
        .iter()
        .filter_map(|index| normalized.get(*index))
        .any(|token| HELP_TRIGGERS.contains(&token.as_str()));
    if wants_help {
        return Err(help());
    }
    let derpmap_at = in_flag_position.iter().copied().find(|index| {
        normalized
            .get(*index)
            .is_some_and(|token| token == DERPMAP_COMMAND)
    });
    if let Some(index) = derpmap_at {
        normalized.remove(index);
    }
    let check_at = in_flag_position.iter().copied().find(|index| {
        derpmap_at.is_none()
            && normalized
                .get(*index)
                .is_some_and(|token| token == CHECK_COMMAND)
    });
    let mut json = false;
    if let Some(index) = check_at {
        normalized.remove(index);
        if let Some(at) = normalized.iter().position(|token| token == CHECK_JSON) {
            normalized.remove(at);
            json = true;
        }
    }
    let refs: Vec<&str> = normalized.iter().map(String::as_str).collect();
    let flags = Flags::from_args(&[PROGRAM_NAME], &refs).map_err(|early| match early.status {
        Ok(()) => CliExit {
            code: EXIT_OK,
            output: early.output,
            to_stderr: false,
        },
        Err(()) => CliExit::usage_error(&one_line(&early.output)),
    })?;
    if flags.version {
        return Err(CliExit {
            code: EXIT_OK,
            output: format!("{PROGRAM_NAME} {VERSION}"),
            to_stderr: false,
        });
    }
    let config =
        Config::from_flags(&flags).map_err(|err| CliExit::usage_error(&err.to_string()))?;
    Ok(if derpmap_at.is_some() {
        Command::DerpMap(config)
    } else if check_at.is_some() {
        Command::Check { config, json }
    } else {
        Command::Serve(config)
    })
}

/// The full `--help` text, as an exit with status 0 on stdout.
fn help() -> CliExit {
    let output = match Flags::from_args(&[PROGRAM_NAME], &["--help"]) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    };
    CliExit {
        code: EXIT_OK,
        output,
        to_stderr: false,
    }
}

/// Indexes of normalized arguments that stand where a flag or a command word may stand:
/// not the value of an option, and not after `--`.
fn flag_positions(normalized: &[String]) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut tokens = normalized.iter().enumerate();
    while let Some((index, token)) = tokens.next() {
        if token == "--" {
            break;
        }
        positions.push(index);
        let takes_value = KNOWN_FLAGS
            .iter()
            .any(|(_, long, arity)| long == token && *arity != Arity::Switch);
        if takes_value {
            tokens.next();
        }
    }
    positions
}

/// argh's error text as one line, with a pointer to the help.
fn one_line(text: &str) -> String {
    let joined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!(
        "{} (see {PROGRAM_NAME} --help)",
        joined.join(" ").trim_end_matches('.')
    )
}

/// Whether a known flag takes a value (once or repeatedly) or is a switch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    /// Takes one value and may be given once.
    Value,
    /// Takes one value and may be given any number of times.
    Repeated,
    /// Takes no value (`=true`/`=false` allowed, as in Go).
    Switch,
    /// A boolean whose default is true, so it must be able to say false: `--x` and
    /// `--x=BOOL` as in Go, and also `--x BOOL` when the next word is a Go boolean (or
    /// empty, an unset UCI option, which keeps the default). Passed to argh as
    /// `--x BOOL`; may be given once.
    Bool,
}

/// Every spelling we accept (without dashes), the `--long` name argh knows it by, and
/// its arity. Includes derper's one-letter flags and its `-tcp-keepalive-time`.
const KNOWN_FLAGS: &[(&str, &str, Arity)] = &[
    ("a", "--addr", Arity::Value),
    ("addr", "--addr", Arity::Value),
    ("stun-port", "--stun-port", Arity::Value),
    ("http-port", "--http-port", Arity::Value),
    ("hostname", "--hostname", Arity::Value),
    ("extra-name", "--extra-name", Arity::Repeated),
    ("extra-ip", "--extra-ip", Arity::Repeated),
    ("state-dir", "--state-dir", Arity::Value),
    ("c", "--server-key", Arity::Value),
    ("server-key", "--server-key", Arity::Value),
    ("certmode", "--certmode", Arity::Value),
    ("certdir", "--certdir", Arity::Value),
    ("tls-cert", "--tls-cert", Arity::Value),
    ("tls-key", "--tls-key", Arity::Value),
    ("no-meta-cert", "--no-meta-cert", Arity::Switch),
    ("region-id", "--region-id", Arity::Value),
    ("region-code", "--region-code", Arity::Value),
    ("region-name", "--region-name", Arity::Value),
    ("node-name", "--node-name", Arity::Value),
    ("public-derp-port", "--public-derp-port", Arity::Value),
    ("public-stun-port", "--public-stun-port", Arity::Value),
    ("public-ipv4", "--public-ipv4", Arity::Value),
    ("public-ipv6", "--public-ipv6", Arity::Value),
    ("metrics-allow", "--metrics-allow", Arity::Repeated),
    ("tcp-write-timeout", "--tcp-write-timeout", Arity::Value),
    ("tcp-keepalive", "--tcp-keepalive", Arity::Value),
    ("tcp-keepalive-time", "--tcp-keepalive", Arity::Value),
    ("tcp-user-timeout", "--tcp-user-timeout", Arity::Value),
    ("mesh-psk-file", "--mesh-psk-file", Arity::Value),
    ("mesh-with", "--mesh-with", Arity::Value),
    ("allowed-key", "--allowed-key", Arity::Repeated),
    ("verify-clients", "--verify-clients", Arity::Switch),
    ("socket", "--socket", Arity::Value),
    ("verify-client-url", "--verify-client-url", Arity::Value),
    (
        "verify-client-url-fail-open",
        "--verify-client-url-fail-open",
        Arity::Bool,
    ),
    (
        "verify-client-url-ca",
        "--verify-client-url-ca",
        Arity::Value,
    ),
    ("log-refused-keys", "--log-refused-keys", Arity::Switch),
    ("client-rate", "--client-rate", Arity::Value),
    ("client-burst", "--client-burst", Arity::Value),
    ("rate-config", "--rate-config", Arity::Value),
    ("total-rate", "--total-rate", Arity::Value),
    ("max-clients", "--max-clients", Arity::Value),
    ("accept-rate", "--accept-rate", Arity::Value),
    ("accept-connection-limit", "--accept-rate", Arity::Value),
    ("accept-burst", "--accept-burst", Arity::Value),
    ("accept-connection-burst", "--accept-burst", Arity::Value),
    ("log-level", "--log-level", Arity::Value),
    ("dev", "--dev", Arity::Switch),
    ("version", "--version", Arity::Switch),
    ("h", "--help", Arity::Switch),
    ("help", "--help", Arity::Switch),
];

/// Go's `strconv.ParseBool` spellings.
const GO_TRUE: &[&str] = &["1", "t", "T", "true", "TRUE", "True"];
const GO_FALSE: &[&str] = &["0", "f", "F", "false", "FALSE", "False"];

/// Rewrites Go-style spellings into the `--long value` form argh parses:
/// `-name` -> `--name`, `--name=value` -> `--name value`, `-a`/`-c` -> `--addr`/
/// `--server-key`, `-switch=true` -> `--switch`, `-switch=false` -> nothing. The token
/// after a value flag is passed through untouched, so `--http-port -1` works. A
/// single-value flag given twice is an error. Unknown flags are left as they are for
/// argh to report.
pub fn normalize_args(args: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(args.len());
    let mut seen_once: Vec<&str> = Vec::new();
    let mut tokens = args.iter();
    while let Some(token) = tokens.next() {
        if token == "--" {
            out.push(token.clone());
            out.extend(tokens.by_ref().cloned());
            break;
        }
        let Some(body) = token.strip_prefix("--").or_else(|| token.strip_prefix('-')) else {
            out.push(token.clone());
            continue;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let Some(&(_, long, arity)) = KNOWN_FLAGS.iter().find(|(known, _, _)| *known == name)
        else {
            out.push(token.clone());
            continue;
        };
        if arity == Arity::Value || arity == Arity::Bool {
            if seen_once.contains(&long) {
                return Err(format!("{long}: given more than once (give it once)"));
            }
            seen_once.push(long);
        }
        match (arity, inline_value) {
            (Arity::Value | Arity::Repeated, Some(value)) => {
                out.push(String::from(long));
                out.push(String::from(value));
            }
            (Arity::Value | Arity::Repeated, None) => {
                out.push(String::from(long));
                if let Some(value) = tokens.next() {
                    out.push(value.clone());
                }
            }
            (Arity::Switch, None) => out.push(String::from(long)),
            (Arity::Bool, value) => {
                let value = match value {
                    Some(value) => value,
                    None => match tokens.as_slice().first() {
                        // An empty UCI option: leave the default.
                        Some(next) if next.is_empty() => {
                            tokens.next();
                            continue;
                        }
                        Some(next)
                            if GO_TRUE.contains(&next.as_str())
                                || GO_FALSE.contains(&next.as_str()) =>
                        {
                            tokens.next();
                            next.as_str()
                        }
                        _ => "true",
                    },
                };
                if !(GO_TRUE.contains(&value) || GO_FALSE.contains(&value)) {
                    return Err(format!(
                        "{long}: {value:?} is not true or false (write {long}=true or {long}=false)"
                    ));
                }
                out.push(String::from(long));
                out.push(String::from(value));
            }
            (Arity::Switch, Some(value)) if GO_TRUE.contains(&value) => {
                out.push(String::from(long));
            }
            (Arity::Switch, Some(value)) if GO_FALSE.contains(&value) => {}
            (Arity::Switch, Some(value)) => {
                return Err(format!(
                    "{long}: {value:?} is not true or false (write {long} alone, or {long}=false)"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CertMode, Cidr};
    use std::net::SocketAddr;
    use std::time::Duration;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| String::from(*s)).collect()
    }

    fn argv(args: &[&str]) -> Vec<String> {
        let mut all = vec![String::from("/usr/sbin/tinyderp")];
        all.extend(strings(args));
        all
    }

    fn serve(args: &[&str]) -> Config {
        match parse(&argv(args)) {
            Ok(Command::Serve(config)) => config,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse(&argv(args)) {
            Err(exit) => {
                assert_eq!(exit.code, EXIT_USAGE, "{args:?}");
                assert!(exit.to_stderr);
                assert_eq!(exit.output.lines().count(), 1, "{:?}", exit.output);
                exit.output
            }
            Ok(command) => panic!("{args:?} should fail, got {command:?}"),
        }
    }

    #[test]
    fn normalize_table() {
        let table: &[(&[&str], &[&str])] = &[
            (&["-hostname", "x"], &["--hostname", "x"]),
            (&["-certmode=manual"], &["--certmode", "manual"]),
            (&["--certmode=manual"], &["--certmode", "manual"]),
            (&["-a", ":443"], &["--addr", ":443"]),
            (&["-a=:443"], &["--addr", ":443"]),
            (&["-c", "k.json"], &["--server-key", "k.json"]),
            (&["--stun-port", "3478"], &["--stun-port", "3478"]),
            (&["-stun-port=3478"], &["--stun-port", "3478"]),
            (&["-verify-clients"], &["--verify-clients"]),
            (&["-verify-clients=true"], &["--verify-clients"]),
            (&["-verify-clients=false"], &[]),
            (&["--dev=1", "--no-meta-cert=F"], &["--dev"]),
            (&["-http-port=-1"], &["--http-port", "-1"]),
            (&["--http-port", "-1"], &["--http-port", "-1"]),
            (
                &["-stun-port", "-1", "-dev"],
                &["--stun-port", "-1", "--dev"],
            ),
            (&["--mesh-with="], &["--mesh-with", ""]),
            (&["-tcp-keepalive-time=5m"], &["--tcp-keepalive", "5m"]),
            (&["-hostname", "-dev"], &["--hostname", "-dev"]),
            (&["-h"], &["--help"]),
            (&["-help"], &["--help"]),
            (&["-version"], &["--version"]),
            (&["-bogus=1", "x"], &["-bogus=1", "x"]),
            (&["--", "-hostname"], &["--", "-hostname"]),
            (&["--hostname"], &["--hostname"]),
        ];
        for (input, expected) in table {
            assert_eq!(
                normalize_args(&strings(input)).unwrap(),
                strings(expected),
                "{input:?}"
            );
        }
        let err = normalize_args(&strings(&["-verify-clients=yes"])).unwrap_err();
        assert!(err.starts_with("--verify-clients: \"yes\""), "{err}");
    }

    #[test]
    fn defaults() {
        let config = serve(&[]);
        assert_eq!(config.listen, "[::]:8443".parse::<SocketAddr>().unwrap());
        assert_eq!(config.stun, Some("[::]:3478".parse().unwrap()));
        assert_eq!(config.http, None);
        assert_eq!(config.hostname, "localhost");
        assert!(config.extra_names.is_empty() && config.extra_ips.is_empty());
        assert_eq!(config.state_dir.to_str(), Some("/etc/tinyderp"));
        assert_eq!(config.server_key.to_str(), Some("/etc/tinyderp/derper.key"));
        assert_eq!(config.cert.mode, CertMode::SelfSigned);
        assert_eq!(config.cert.certdir.to_str(), Some("/etc/tinyderp"));
        assert!(config.cert.meta_cert);
        assert_eq!(config.mesh_psk_file, None);
        assert_eq!(config.derp_map.region_id, 900);
        assert_eq!(config.derp_map.region_code, "home");
        assert_eq!(config.derp_map.region_name, "Home router");
        assert_eq!(config.derp_map.node_name, "900a");
        assert_eq!(config.derp_map.hostname, "localhost");
        assert_eq!(config.derp_map.derp_port, 8443);
        assert_eq!(config.derp_map.stun_port, Some(3478));
        assert_eq!(config.log_level, log::LevelFilter::Info);
        assert!(config.metrics_allow.is_empty());
        assert_eq!(config.tcp_write_timeout, Some(Duration::from_secs(2)));
        assert_eq!(config.tcp_keepalive, Some(Duration::from_secs(600)));
        assert_eq!(config.tcp_user_timeout, Some(Duration::from_secs(15)));
        assert!(!config.dev);
        assert!(config.metrics_allowed("127.0.0.1".parse().unwrap()));
        assert!(config.metrics_allowed("::1".parse().unwrap()));
        assert!(config.metrics_allowed("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!config.metrics_allowed("192.168.1.2".parse().unwrap()));
    }

    #[test]
    fn every_flag_maps_to_config() {
        let config = serve(&[
            "-a",
            "192.168.1.1:443",
            "--stun-port",
            "3479",
            "--http-port",
            "80",
            "--hostname",
            "myhome.example.net",
            "--extra-name",
            "derp.lan",
            "--extra-name",
            "router.lan",
            "--extra-ip",
            "192.168.1.1",
            "--extra-ip",
            "fd00::1",
            "--state-dir",
            "/srv/td",
            "-c",
            "/srv/key.json",
            "--certmode",
            "manual",
            "--certdir",
            "/srv/certs",
            "--tls-cert",
            "/srv/c.pem",
            "--tls-key",
            "/srv/k.pem",
            "--no-meta-cert",
            "--region-id",
            "901",
            "--region-code",
            "gran",
            "--region-name",
            "Grandma's house",
            "--node-name",
            "gran1",
            "--public-derp-port",
            "443",
            "--public-stun-port",
            "13478",
            "--public-ipv4",
            "203.0.113.10",
            "--public-ipv6",
            "2001:db8::10",
            "--metrics-allow",
            "192.168.1.0/24",
            "--metrics-allow",
            "fd00::/8",
            "--tcp-write-timeout",
            "0",
            "--tcp-keepalive",
            "1m30s",
            "--tcp-user-timeout",
            "30",
            "--mesh-psk-file",
            "/srv/mesh.key",
            "--log-level",
            "DEBUG",
        ]);
        assert_eq!(
            config.listen,
            "192.168.1.1:443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.stun, Some("192.168.1.1:3479".parse().unwrap()));
        assert_eq!(config.http, Some("192.168.1.1:80".parse().unwrap()));
        assert_eq!(config.hostname, "myhome.example.net");
        assert_eq!(config.extra_names, ["derp.lan", "router.lan"]);
        assert_eq!(
            config.extra_ips,
            [
                "192.168.1.1".parse::<std::net::IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
        assert_eq!(config.state_dir.to_str(), Some("/srv/td"));
        assert_eq!(config.server_key.to_str(), Some("/srv/key.json"));
        assert_eq!(config.cert.mode, CertMode::Manual);
        assert_eq!(config.cert.certdir.to_str(), Some("/srv/certs"));
        assert_eq!(
            config.cert.tls_cert.as_deref().and_then(|p| p.to_str()),
            Some("/srv/c.pem")
        );
        assert_eq!(
            config.cert.tls_key.as_deref().and_then(|p| p.to_str()),
            Some("/srv/k.pem")
        );
        assert!(!config.cert.meta_cert);
        let map = &config.derp_map;
        assert_eq!(
            (
                map.region_id,
                map.region_code.as_str(),
                map.region_name.as_str()
            ),
            (901, "gran", "Grandma's house")
        );
        assert_eq!(map.node_name, "gran1");
        assert_eq!(map.hostname, "myhome.example.net");
        assert_eq!((map.derp_port, map.stun_port), (443, Some(13478)));
        assert_eq!(map.ipv4, Some("203.0.113.10".parse().unwrap()));
        assert_eq!(map.ipv6, Some("2001:db8::10".parse().unwrap()));
        assert_eq!(
            config.metrics_allow,
            [
                "192.168.1.0/24".parse::<Cidr>().unwrap(),
                "fd00::/8".parse().unwrap()
            ]
        );
        assert!(config.metrics_allowed("192.168.1.77".parse().unwrap()));
        assert!(!config.metrics_allowed("10.0.0.1".parse().unwrap()));
        assert_eq!(config.tcp_write_timeout, None);
        assert_eq!(config.tcp_keepalive, Some(Duration::from_secs(90)));
        assert_eq!(config.tcp_user_timeout, Some(Duration::from_secs(30)));
        assert_eq!(
            config.mesh_psk_file.as_deref().and_then(|p| p.to_str()),
            Some("/srv/mesh.key")
        );
        assert_eq!(config.log_level, log::LevelFilter::Debug);
    }

    #[test]
    fn derper_spellings_are_accepted() {
        let config = serve(&[
            "-hostname",
            "203.0.113.10",
            "-certmode=manual",
            "-a",
            ":443",
            "-c",
            "/k",
            "-stun-port=3478",
            "-http-port=-1",
            "-verify-clients=false",
            "--certdir=/certs",
        ]);
        assert_eq!(config.hostname, "203.0.113.10");
        assert_eq!(config.cert.mode, CertMode::Manual);
        assert_eq!(config.listen, "[::]:443".parse::<SocketAddr>().unwrap());
        assert_eq!(config.server_key.to_str(), Some("/k"));
        assert_eq!(config.stun.map(|a| a.port()), Some(3478));
        assert_eq!(config.http, None);
        assert_eq!(config.cert.certdir.to_str(), Some("/certs"));
    }

    #[test]
    fn ports_can_be_turned_off() {
        let config = serve(&["--stun-port", "-1", "--http-port", "-1"]);
        assert_eq!((config.stun, config.http), (None, None));
        assert_eq!(config.derp_map.stun_port, None);
        let config = serve(&["--stun-port=-1", "--public-stun-port", "3478"]);
        assert_eq!(config.derp_map.stun_port, Some(3478));
    }

    #[test]
    fn dev_defaults_and_overrides() {
        let config = serve(&["--dev"]);
        assert!(config.dev);
        assert_eq!(
            config.listen,
            "127.0.0.1:8443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.stun, Some("127.0.0.1:3478".parse().unwrap()));
        assert_eq!(config.state_dir.to_str(), Some("./tinyderp-dev"));
        assert_eq!(
            config.server_key.to_str(),
            Some("./tinyderp-dev/derper.key")
        );
        assert_eq!(config.hostname, "localhost");
        let config = serve(&[
            "-dev",
            "-a",
            "[::1]:9443",
            "--state-dir",
            "/tmp/x",
            "--hostname",
            "h.lan",
        ]);
        assert_eq!(config.listen, "[::1]:9443".parse::<SocketAddr>().unwrap());
        assert_eq!(config.stun, Some("[::1]:3478".parse().unwrap()));
        assert_eq!(config.state_dir.to_str(), Some("/tmp/x"));
        assert_eq!(config.hostname, "h.lan");
    }

    #[test]
    fn derpmap_command() {
        for args in [
            &["derpmap", "-hostname", "myhome.example.net"][..],
            &["-hostname", "myhome.example.net", "derpmap"][..],
        ] {
            match parse(&argv(args)) {
                Ok(Command::DerpMap(config)) => assert_eq!(config.hostname, "myhome.example.net"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
        // As an option's value, "derpmap" is just a value.
        match parse(&argv(&["--region-code", "derpmap"])) {
            Ok(Command::Serve(config)) => assert_eq!(config.derp_map.region_code, "derpmap"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            error(&["derpmap", "derpmap"]),
            "tinyderp: Unrecognized argument: derpmap (see tinyderp --help)"
        );
    }

    #[test]
    fn help_and_version() {
        let help = parse(&argv(&["--help"])).unwrap_err();
        assert_eq!((help.code, help.to_stderr), (EXIT_OK, false));
        for flag in [
            "--addr",
            "--stun-port",
            "--http-port",
            "--hostname",
            "--extra-name",
            "--extra-ip",
            "--state-dir",
            "--server-key",
            "--certmode",
            "--certdir",
            "--tls-cert",
            "--tls-key",
            "--no-meta-cert",
            "--region-id",
            "--region-code",
            "--region-name",
            "--node-name",
            "--public-derp-port",
            "--public-stun-port",
            "--public-ipv4",
            "--public-ipv6",
            "--metrics-allow",
            "--tcp-write-timeout",
            "--tcp-keepalive",
            "--tcp-user-timeout",
            "--mesh-psk-file",
            "--mesh-with",
            "--verify-clients",
            "--verify-client-url",
            "--allowed-key",
            "--socket",
            "--verify-client-url-fail-open",
            "--verify-client-url-ca",
            "--log-refused-keys",
            "--client-rate",
            "--client-burst",
            "--rate-config",
            "--total-rate",
            "--max-clients",
            "--accept-rate",
            "--accept-burst",
            "--log-level",
            "--dev",
            "--version",
            "derpmap",
        ] {
            assert!(help.output.contains(flag), "help lacks {flag}");
        }
        assert!(help.output.contains("Default :8443"));
        assert!(help.output.contains("900-999"));
        assert_eq!(parse(&argv(&["-h"])).unwrap_err().output, help.output);
        assert_eq!(
            parse(&argv(&["--dev", "--help"])).unwrap_err().output,
            help.output
        );
        assert_eq!(
            parse(&argv(&["--help", "--bogus"])).unwrap_err().output,
            help.output
        );
        assert_eq!(
            parse(&argv(&["derpmap", "--help"])).unwrap_err().output,
            help.output
        );

        let version = parse(&argv(&["--version"])).unwrap_err();
        assert_eq!(
            version,
            CliExit {
                code: EXIT_OK,
                output: format!("tinyderp {VERSION}"),
                to_stderr: false
            }
        );
        assert_eq!(parse(&argv(&["-version"])).unwrap_err(), version);
    }

    #[test]
    fn errors_are_one_clear_line() {
        let table: &[(&[&str], &str)] = &[
            (
                &["--stun-port", "abc"],
                "tinyderp: --stun-port: \"abc\" is not a port number (use 1-65535, or -1 to turn STUN off)",
            ),
            (
                &["--http-port", "0"],
                "tinyderp: --http-port: \"0\" is not a port number (use 1-65535, or -1 to turn plain HTTP off)",
            ),
            (&["--public-derp-port", "-1"], "tinyderp: --public-derp-port: \"-1\" is not a port number (use 1-65535)"),
            (
                &["--region-id", "1000"],
                "tinyderp: --region-id: \"1000\" is not a region id (use 1-999; 900-999 are for user-run relays)",
            ),
            (&["--region-id", "0"], "tinyderp: --region-id: \"0\" is not a region id (use 1-999; 900-999 are for user-run relays)"),
            (&["--hostname", "my home"], "tinyderp: --hostname: \"my home\" must not contain spaces"),
            (
                &["--hostname", ""],
                "tinyderp: --hostname: must not be empty (use your DDNS name or public IP, e.g. --hostname myhome.example.net)",
            ),
            (
                &["--certmode", "manual", "--tls-cert", "/c.pem"],
                "tinyderp: --tls-cert: needs --tls-key too (give both, or neither to use <certdir>/<hostname>.crt/.key)",
            ),
            (
                &["--certmode", "manual", "--tls-key", "/k.pem"],
                "tinyderp: --tls-key: needs --tls-cert too (give both, or neither to use <certdir>/<hostname>.crt/.key)",
            ),
            (
                &["--tls-cert", "/c.pem", "--tls-key", "/k.pem"],
                "tinyderp: --tls-cert: only applies with --certmode manual (add it, or drop --tls-cert)",
            ),
            (
                &["-certmode=letsencrypt"],
                "tinyderp: --certmode: \"letsencrypt\" is not supported (use self-signed or manual; tinyderp has no built-in ACME)",
            ),
            (
                &["--mesh-with", "a.example,b.example"],
                "tinyderp: --mesh-with: not yet supported by this version of tinyderp; remove the option (run one node per region for now)",
            ),
            (
                &["--socket", "/run/ts.sock"],
                "tinyderp: --socket: only applies with --verify-clients (add it, or drop --socket)",
            ),
            (
                &["--verify-client-url", "http://admit.example/x", "--verify-client-url-ca", "/ca.pem"],
                "tinyderp: --verify-client-url-ca: only applies to an https:// --verify-client-url",
            ),
            (
                &["--verify-client-url", "admit.example"],
                "tinyderp: --verify-client-url: \"admit.example\" is not an http:// or https:// URL (e.g. http://127.0.0.1:9000/admit)",
            ),
            (
                &["--verify-client-url-fail-open=maybe"],
                "tinyderp: --verify-client-url-fail-open: \"maybe\" is not true or false (write --verify-client-url-fail-open=true or --verify-client-url-fail-open=false)",
            ),
            (
                &["--allowed-key", "nodekey:12"],
                "tinyderp: --allowed-key: \"nodekey:12\" is not a node key (use nodekey: and 64 hex digits, as --log-refused-keys prints them)",
            ),
            (
                &["--client-rate", "fast"],
                "tinyderp: --client-rate: \"fast\" is not a byte amount (use e.g. 200000, 200k, 1M or 512Ki; 0 = no limit)",
            ),
            (
                &["--client-burst", "1M"],
                "tinyderp: --client-burst: needs --client-rate (the burst of an unlimited rate means nothing)",
            ),
            (
                &["--rate-config", "/r.json", "--client-rate", "1M"],
                "tinyderp: --rate-config: replaces --client-rate and --client-burst; give one or the other",
            ),
            (
                &["--max-clients", "-5"],
                "tinyderp: --max-clients: \"-5\" is not a client count (use 1-1000000, or 0 for no limit)",
            ),
            (
                &["--accept-rate", "-1"],
                "tinyderp: --accept-rate: \"-1\" is not a rate (use connections per second, e.g. 10 or 0.5; 0 = no limit)",
            ),
            (
                &["--accept-rate", "0.0001"],
                "tinyderp: --accept-rate: must be at least 0.001 connections per second (or 0 for no limit)",
            ),
            (&["--accept-burst", "5"], "tinyderp: --accept-burst: needs --accept-rate"),
            (&["--accept-rate", "5", "--accept-burst", "0"], "tinyderp: --accept-burst: \"0\" is not a connection count (use 1-1000000)"),
            (
                &["--log-level", "loud"],
                "tinyderp: --log-level: \"loud\" is not a log level (use error, warn, info, debug or trace)",
            ),
            (
                &["--tcp-write-timeout", "2 s"],
                "tinyderp: --tcp-write-timeout: \"2 s\" is not a duration (use e.g. 2s, 10m, 1m30s, 500ms, or seconds)",
            ),
            (&["--tcp-user-timeout", "10h"], "tinyderp: --tcp-user-timeout: must be at most 9h"),
            (&["--tcp-keepalive", "500ms"], "tinyderp: --tcp-keepalive: must be at least 1s (or 0 to turn keep-alive off)"),
            (&["--public-ipv4", "2001:db8::1"], "tinyderp: --public-ipv4: \"2001:db8::1\" is not an IPv4 address"),
            (&["--extra-ip", "router"], "tinyderp: --extra-ip: \"router\" is not an IP address"),
            (
                &["--metrics-allow", "lan"],
                "tinyderp: --metrics-allow: \"lan\" is not an IP range (use e.g. 192.168.1.0/24, fd00::/8 or 192.168.1.10)",
            ),
            (&["--region-code", "my home"], "tinyderp: --region-code: \"my home\" must not contain spaces"),
            (&["--node-name", ""], "tinyderp: --node-name: must not be empty"),
            (
                &["-verify-clients=maybe"],
                "tinyderp: --verify-clients: \"maybe\" is not true or false (write --verify-clients alone, or --verify-clients=false)",
            ),
            (&["--bogus"], "tinyderp: Unrecognized argument: --bogus (see tinyderp --help)"),
            (&["serve"], "tinyderp: Unrecognized argument: serve (see tinyderp --help)"),
            (&["--hostname"], "tinyderp: No value provided for option '--hostname' (see tinyderp --help)"),
            (&["--hostname", "a", "-hostname=b"], "tinyderp: --hostname: given more than once (give it once)"),
        ];
        for (args, expected) in table {
            assert_eq!(error(args), *expected, "{args:?}");
        }
        let too_many: Vec<&str> = (0..=crate::config::MAX_EXTRA_IPS)
            .flat_map(|_| ["--extra-ip", "10.0.0.1"])
            .collect();
        assert_eq!(
            error(&too_many),
            "tinyderp: --extra-ip: given 17 times; at most 16 are allowed"
        );
    }

    #[test]
    fn admission_flags() {
        use crate::admit::DEFAULT_TAILSCALED_SOCKET;
        let config = serve(&[]);
        assert!(config.admit.is_open());
        assert!(config.admit.url_fail_open);
        let a = format!("nodekey:{}", "ab".repeat(32));
        let b = "CD".repeat(32);
        let config = serve(&[
            "--allowed-key",
            &a,
            "--allowed-key",
            &b,
            "--allowed-key",
            &a,
            "-verify-clients",
            "--verify-client-url=http://127.0.0.1:9000/admit",
            "--verify-client-url-fail-open=false",
            "--log-refused-keys",
        ]);
        let admit = &config.admit;
        let keys: Vec<String> = admit.allowed_keys.iter().map(|k| k.to_string()).collect();
        assert_eq!(keys, [a.clone(), format!("nodekey:{}", "cd".repeat(32))]);
        assert_eq!(
            admit.tailscaled_socket.as_deref().and_then(|p| p.to_str()),
            Some(DEFAULT_TAILSCALED_SOCKET)
        );
        let url = admit.url.as_ref().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("127.0.0.1", 9000, "/admit")
        );
        assert!(!admit.url_fail_open);
        assert!(admit.log_refused_keys);
        assert_eq!(admit.url_ca_file, None);
        if cfg!(feature = "https-admission") {
            let config = serve(&["--verify-client-url", "https://admit.example/x"]);
            assert_eq!(
                config.admit.url_ca_file.as_deref().and_then(|p| p.to_str()),
                Some(crate::admit::DEFAULT_CA_FILE)
            );
            let config = serve(&[
                "--verify-client-url",
                "https://admit.example/x",
                "--verify-client-url-ca",
                "/etc/my-ca.pem",
            ]);
            assert_eq!(
                config.admit.url_ca_file.as_deref().and_then(|p| p.to_str()),
                Some("/etc/my-ca.pem")
            );
        } else {
            let line = error(&["--verify-client-url", "https://admit.example/x"]);
            assert!(line.contains("https-admission cargo feature"), "{line}");
        }
        let config = serve(&["--verify-clients", "--socket", "/run/ts.sock"]);
        assert_eq!(
            config
                .admit
                .tailscaled_socket
                .as_deref()
                .and_then(|p| p.to_str()),
            Some("/run/ts.sock")
        );
        // Every spelling of the default-true boolean.
        for (args, expected) in [
            (&["--verify-client-url-fail-open"][..], true),
            (&["-verify-client-url-fail-open=0"][..], false),
            (&["--verify-client-url-fail-open", "false"][..], false),
            (&["--verify-client-url-fail-open", "F", "--dev"][..], false),
            (&["--verify-client-url-fail-open=true"][..], true),
            (&["--verify-client-url-fail-open", "--dev"][..], true),
            (&["--verify-client-url-fail-open", ""][..], true),
        ] {
            assert_eq!(serve(args).admit.url_fail_open, expected, "{args:?}");
        }
    }

    #[test]
    fn limit_flags() {
        use crate::config::{AcceptRate, ByteRate, Limits};
        assert_eq!(serve(&[]).limits, Limits::default());
        let config = serve(&[
            "--client-rate",
            "200k",
            "--total-rate",
            "1Mi",
            "--max-clients",
            "50",
            "--accept-rate",
            "0.5",
        ]);
        assert_eq!(
            config.limits,
            Limits {
                client_rate: Some(ByteRate {
                    bytes_per_sec: 200_000,
                    burst: 65_568
                }),
                rate_config: None,
                total_rate: Some(ByteRate {
                    bytes_per_sec: 1 << 20,
                    burst: 1 << 20
                }),
                max_clients: Some(50),
                accept: Some(AcceptRate {
                    millis_per_sec: 500,
                    burst: 1
                }),
            }
        );
        let config = serve(&[
            "--client-rate",
            "1M",
            "--client-burst",
            "4M",
            "-accept-connection-limit=12.5",
            "-accept-connection-burst=40",
            "--max-clients",
            "0",
            "--total-rate",
            "0",
        ]);
        assert_eq!(
            config.limits.client_rate,
            Some(ByteRate {
                bytes_per_sec: 1_000_000,
                burst: 4_000_000
            })
        );
        assert_eq!(
            config.limits.accept,
            Some(AcceptRate {
                millis_per_sec: 12_500,
                burst: 40
            })
        );
        assert_eq!(
            (config.limits.max_clients, config.limits.total_rate),
            (None, None)
        );
        let config = serve(&[
            "--client-rate",
            "100",
            "--client-burst",
            "10",
            "--accept-rate",
            "+Inf",
        ]);
        assert_eq!(
            config.limits.client_rate.map(|r| r.burst),
            Some(65_568),
            "burst floor"
        );
        assert_eq!(config.limits.accept, None);
        let config = serve(&[
            "--rate-config",
            "/etc/tinyderp/rate.json",
            "--accept-rate",
            "3",
        ]);
        assert_eq!(
            config
                .limits
                .rate_config
                .as_deref()
                .and_then(|p| p.to_str()),
            Some("/etc/tinyderp/rate.json")
        );
        assert_eq!(
            config.limits.accept,
            Some(AcceptRate {
                millis_per_sec: 3000,
                burst: 3
            })
        );
    }

    #[test]
    fn empty_uci_values_mean_unset() {
        let config = serve(&[
            "--mesh-with",
            "",
            "--verify-client-url",
            "",
            "--tls-cert",
            "",
            "--public-ipv4",
            "",
            "--mesh-psk-file",
            "",
            "--stun-port",
            "",
            "--socket",
            "",
            "--client-rate",
            "",
            "--max-clients",
            "",
            "--accept-rate",
            "",
        ]);
        assert_eq!(config.mesh_psk_file, None);
        assert!(config.admit.is_open());
        assert_eq!(config.limits, crate::config::Limits::default());
        assert_eq!(config.derp_map.ipv4, None);
        assert_eq!(config.stun.map(|a| a.port()), Some(3478));
    }
}
