//! The validated run-time configuration, and every default and bound in one place.
//!
//! [`crate::cli`] collects the raw flag strings; [`Config::from_flags`] checks each one
//! and turns it into a typed value, or fails with a [`ConfigError`] that names the flag
//! and says how to fix it. Nothing after this point re-validates user input.
//!
//! # Defaults
//!
//! | setting | default |
//! |---|---|
//! | listen | `[::]:8443` (all interfaces, IPv4 and IPv6) |
//! | STUN | UDP 3478 on the listen IP |
//! | plain HTTP | off |
//! | hostname | `localhost` |
//! | state dir | `/etc/tinyderp` (server key `derper.key`, self-signed cert) |
//! | cert | self-signed, meta cert on |
//! | region | 900 `home` "Home router", node `900a` |
//! | metrics | loopback only |
//! | TCP write timeout / keep-alive / user timeout | 2s / 10m / 15s |
//! | log level | info |
//! | admission | open (no `--allowed-key`, `--verify-clients` or `--verify-client-url`) |
//! | `--socket` | `/var/run/tailscale/tailscaled.sock` (with `--verify-clients`) |
//! | `--verify-client-url-fail-open` | true (as upstream) |
//! | `--verify-client-url-ca` | `/etc/ssl/certs/ca-certificates.crt` (with an https:// URL) |
//! | `--log-refused-keys` | off |
//! | `--client-rate` / `--client-burst` | unlimited / 65568 bytes (the floor) |
//! | `--rate-config` | none (derper's JSON file, re-read on SIGHUP) |
//! | `--total-rate` | unlimited (burst: one second's worth, at least 65568 bytes) |
//! | `--max-clients` | unlimited |
//! | `--accept-rate` / `--accept-burst` | unlimited / the rate rounded up |
//!
//! # Admission and limit flags
//!
//! | flag (UCI option) | meaning |
//! |---|---|
//! | `--allowed-key nodekey:HEX` (`list allowed_key`) | a node key admitted without other checks (repeatable) |
//! | `--verify-clients` (`verify_clients`) | admit nodes the local tailscaled knows (LocalAPI whois) |
//! | `--socket PATH` (`socket`) | tailscaled's LocalAPI socket |
//! | `--verify-client-url URL` (`verify_client_url`) | POST each node key to this http:// URL (https:// with the `https-admission` build feature); only `{"Allow":true}` admits |
//! | `--verify-client-url-ca FILE` (`verify_client_url_ca`) | trusted CAs (PEM) for an https:// URL |
//! | `--verify-client-url-fail-open BOOL` (`verify_client_url_fail_open`) | admit when that URL is unreachable |
//! | `--log-refused-keys` (`log_refused_keys`) | learn mode: log refused keys ready to paste into the allowlist |
//! | `--client-rate BYTES` (`client_rate`) | per-client receive rate, bytes/s (reading is slowed, nothing dropped); mesh peers exempt |
//! | `--client-burst BYTES` (`client_burst`) | per-client burst, bytes |
//! | `--rate-config FILE` (`rate_config`) | derper's per-client rate JSON instead of the two above, re-read on SIGHUP |
//! | `--total-rate BYTES` (`total_rate`) | cap on bytes/s read from all DERP connections together |
//! | `--max-clients N` (`max_clients`) | most connected clients; more are closed after the handshake |
//! | `--accept-rate N` (`accept_rate`) | new TLS connections per second (decimals allowed); excess are closed at once |
//! | `--accept-burst N` (`accept_burst`) | burst of the accept rate |
//!
//! SIGHUP re-reads the certificate and `--rate-config` (applied to connected clients
//! too); every other option needs a restart.
//!
//! Byte amounts take an optional suffix: `k`/`K` (1000), `M` (10^6), `G` (10^9), `Ki`
//! (1024), `Mi`, `Gi`. `0` means unlimited everywhere. STUN is never limited.
//! `--dev` changes the listen address to `127.0.0.1:8443` and the state dir to
//! `./tinyderp-dev` unless those flags are given explicitly.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use log::LevelFilter;

use crate::admit::{
    AdmissionUrl, AdmitPolicy, DEFAULT_CA_FILE, DEFAULT_TAILSCALED_SOCKET, MAX_ALLOWED_KEYS,
};
use crate::cli::Flags;
use crate::derpmap::DerpMapParams;
use crate::proto::key::PublicKey;
use crate::relay::MIN_BYTE_BURST;

/// TCP port of the DERP TLS listener (8443: LuCI's uhttpd usually holds 443 on a router).
pub const DEFAULT_DERP_PORT: u16 = 8443;
/// UDP port of the STUN server (the IANA STUN port, what every DERP map assumes).
pub const DEFAULT_STUN_PORT: u16 = 3478;
/// Default `--hostname`; fine for `--dev`, to be replaced by the DDNS name in production.
pub const DEFAULT_HOSTNAME: &str = "localhost";
/// Where the server key and the generated certificate live (kept across sysupgrade).
pub const DEFAULT_STATE_DIR: &str = "/etc/tinyderp";
/// File name of the server key inside the state dir (derper's name, so keys can move).
pub const SERVER_KEY_FILE_NAME: &str = "derper.key";
/// Default DERP map region id: the first of the ids set aside for user-run relays.
pub const DEFAULT_REGION_ID: u16 = 900;
/// Lowest region id we accept.
pub const MIN_REGION_ID: u16 = 1;
/// Highest region id we accept (upstream allows more; 999 ends the user-relay block).
pub const MAX_REGION_ID: u16 = 999;
/// Default region code shown in client UIs.
pub const DEFAULT_REGION_CODE: &str = "home";
/// Default long region name.
pub const DEFAULT_REGION_NAME: &str = "Home router";
/// Appended to the region id to form the default node name (`900a`).
pub const DEFAULT_NODE_SUFFIX: &str = "a";
/// Default per-frame write deadline for a client connection (upstream's 2s).
pub const DEFAULT_TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default TCP keep-alive period (upstream's 10m).
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(10 * 60);
/// Default Linux TCP_USER_TIMEOUT (upstream's 15s).
pub const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest TCP timing we accept: below Linux's 32767 s cap on the keep-alive idle time.
pub const MAX_TCP_DURATION: Duration = Duration::from_secs(9 * 60 * 60);
/// Shortest non-zero keep-alive period: the kernel counts it in whole seconds.
pub const MIN_TCP_KEEPALIVE: Duration = Duration::from_secs(1);
/// Default log level.
pub const DEFAULT_LOG_LEVEL: LevelFilter = LevelFilter::Info;
/// `--dev` listen address: loopback only, so the demo is never reachable from outside.
pub const DEV_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8443);
/// `--dev` state dir, relative to the working directory.
pub const DEV_STATE_DIR: &str = "./tinyderp-dev";
/// Most `--extra-name` flags accepted (each becomes a certificate SAN).
pub const MAX_EXTRA_NAMES: usize = 16;
/// Most `--extra-ip` flags accepted (each becomes a certificate SAN).
pub const MAX_EXTRA_IPS: usize = 16;
/// Most `--metrics-allow` entries accepted (checked linearly per metrics request).
pub const MAX_METRICS_ALLOW: usize = 32;
/// Longest DNS name (RFC 1035).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035).
pub const MAX_DNS_LABEL_LEN: usize = 63;
/// Longest region code.
pub const MAX_REGION_CODE_LEN: usize = 32;
/// Longest region name.
pub const MAX_REGION_NAME_LEN: usize = 64;
/// Longest node name.
pub const MAX_NODE_NAME_LEN: usize = 32;
/// What "off" is written as for `--stun-port`, `--http-port` and `--public-stun-port`.
pub const PORT_OFF: &str = "-1";
/// Highest `--max-clients` accepted (far above what any router's memory holds).
pub const MAX_MAX_CLIENTS: u64 = 1_000_000;
/// Highest `--accept-rate` in connections per second.
pub const MAX_ACCEPT_RATE: f64 = 1_000_000.0;
/// Accept-rate tokens per connection: the accept bucket counts thousandths of a
/// connection so decimal rates such as 0.5/s work with an integer bucket.
pub const ACCEPT_TOKENS_PER_CONN: u64 = 1000;
/// Longest `--rate-config` file read.
pub const MAX_RATE_CONFIG_LEN: u64 = 4096;

/// The fully validated configuration the server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// DERP TLS listener. `[::]:PORT` means all interfaces; the listener should clear
    /// IPV6_V6ONLY so it also accepts IPv4 (dual stack).
    pub listen: SocketAddr,
    /// UDP STUN listener on the listen IP, or `None` when STUN is off.
    pub stun: Option<SocketAddr>,
    /// Plain-HTTP listener (generate_204, redirect to https) on the listen IP, or `None`.
    pub http: Option<SocketAddr>,
    /// DNS name or IP clients use; first SAN of the self-signed certificate.
    pub hostname: String,
    /// More DNS SANs for the self-signed certificate.
    pub extra_names: Vec<String>,
    /// IP SANs for the self-signed certificate.
    pub extra_ips: Vec<IpAddr>,
    /// Directory for the server key and the generated certificate.
    pub state_dir: PathBuf,
    /// derper-format JSON private key file, created on first start.
    pub server_key: PathBuf,
    /// Where the TLS certificate comes from.
    pub cert: CertConfig,
    /// File holding the 64-hex-digit mesh key (only the path; it is read at start).
    pub mesh_psk_file: Option<PathBuf>,
    /// `--wan-interface`: the internet line's interface for the reachability check
    /// (`None`: the one holding the default route).
    pub wan_interface: Option<String>,
    /// What the printed DERP map snippets say.
    pub derp_map: DerpMapParams,
    /// Log verbosity.
    pub log_level: LevelFilter,
    /// Who may read /debug/varz and the status detail, besides loopback.
    pub metrics_allow: Vec<Cidr>,
    /// Per-frame write deadline for client connections; `None` = no deadline.
    pub tcp_write_timeout: Option<Duration>,
    /// TCP keep-alive period; `None` = keep-alive off.
    pub tcp_keepalive: Option<Duration>,
    /// Linux TCP_USER_TIMEOUT; `None` = kernel default.
    pub tcp_user_timeout: Option<Duration>,
    /// `--dev` was given (loopback demo).
    pub dev: bool,
    /// Who may use the relay.
    pub admit: AdmitPolicy,
    /// Uplink limits.
    pub limits: Limits,
}

/// A byte rate with its burst, both in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRate {
    /// Sustained bytes per second (never 0; 0 on the command line means no limit).
    pub bytes_per_sec: u64,
    /// Bytes that may arrive at once; at least [`MIN_BYTE_BURST`].
    pub burst: u64,
}

/// The accept limit of the TLS listener, as a token bucket counting thousandths of a
/// connection ([`ACCEPT_TOKENS_PER_CONN`] per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptRate {
    /// Thousandths of a connection per second (`--accept-rate 0.5` is 500).
    pub millis_per_sec: u64,
    /// Connections that may arrive at once.
    pub burst: u64,
}

/// Uplink limits (§3.10). `None` everywhere means unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    /// Per-client receive rate from the flags (mesh peers exempt).
    pub client_rate: Option<ByteRate>,
    /// derper's rate JSON file, read at start and on SIGHUP, replacing `client_rate`.
    pub rate_config: Option<PathBuf>,
    /// Cap on bytes read from all DERP connections together.
    pub total_rate: Option<ByteRate>,
    /// Most registered connections; mesh peers are counted but never refused.
    pub max_clients: Option<usize>,
    /// New TLS connections per second.
    pub accept: Option<AcceptRate>,
}

impl Config {
    /// Where the certificate comes from: a self-signed one for the hostname (an IP
    /// literal becomes an IP SAN) plus extra names and IPs, or derper-style manual files.
    pub fn cert_source(&self) -> crate::cert::CertSource {
        match self.cert.mode {
            CertMode::SelfSigned => {
                let mut names = Vec::new();
                let mut ips = Vec::new();
                match self.hostname.parse::<IpAddr>() {
                    Ok(ip) => ips.push(ip),
                    Err(_) => names.push(self.hostname.clone()),
                }
                names.extend(self.extra_names.iter().cloned());
                ips.extend(self.extra_ips.iter().copied());
                crate::cert::CertSource::SelfSigned {
                    dir: self.cert.certdir.clone(),
                    names,
                    ips,
                }
            }
            CertMode::Manual => {
                let (cert, key) = self.cert.manual_files(&self.hostname);
                crate::cert::CertSource::Manual { cert, key }
            }
        }
    }

    /// True when `ip` may read metrics and the detailed status: loopback always, plus
    /// every `--metrics-allow` range.
    pub fn metrics_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_loopback() || self.metrics_allow.iter().any(|cidr| cidr.contains(ip))
    }

    /// Checks every flag and builds the configuration.
    pub fn from_flags(flags: &Flags) -> Result<Config, ConfigError> {
        refuse_unsupported(flags)?;
        let dev = flags.dev;

        let listen = match given(&flags.addr) {
            Some(text) => parse_listen_addr(text)?,
            None if dev => DEV_LISTEN,
            None => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), DEFAULT_DERP_PORT),
        };
        let stun_port = match given(&flags.stun_port) {
            Some(text) => parse_port_or_off("--stun-port", text, "turn STUN off")?,
            None => Some(DEFAULT_STUN_PORT),
        };
        let http_port = match given(&flags.http_port) {
            Some(text) => parse_port_or_off("--http-port", text, "turn plain HTTP off")?,
            None => None,
        };

        let hostname = match given(&flags.hostname) {
            Some(text) => check_hostname("--hostname", text)?,
            None if flags.hostname.is_some() => {
                return Err(ConfigError::new(
                    "--hostname",
                    "must not be empty (use your DDNS name or public IP, e.g. --hostname myhome.example.net)",
                ))
            }
            None => String::from(DEFAULT_HOSTNAME),
        };
        let extra_names =
            bounded_list("--extra-name", &flags.extra_name, MAX_EXTRA_NAMES, |text| {
                check_hostname("--extra-name", text)
            })?;
        let extra_ips = bounded_list("--extra-ip", &flags.extra_ip, MAX_EXTRA_IPS, |text| {
            parse_ip("--extra-ip", text)
        })?;

        let state_dir = match given(&flags.state_dir) {
            Some(text) => PathBuf::from(text),
            None if dev => PathBuf::from(DEV_STATE_DIR),
            None => PathBuf::from(DEFAULT_STATE_DIR),
        };
        let server_key = given(&flags.server_key)
            .map_or_else(|| state_dir.join(SERVER_KEY_FILE_NAME), PathBuf::from);
        let cert = parse_cert_config(flags, &state_dir)?;
        let mesh_psk_file = given(&flags.mesh_psk_file).map(PathBuf::from);
        let wan_interface = given(&flags.wan_interface).map(str::to_string);

        let derp_map = parse_derp_map(flags, &hostname, listen.port(), stun_port)?;

        let log_level = match given(&flags.log_level) {
            Some(text) => parse_log_level(text)?,
            None => DEFAULT_LOG_LEVEL,
        };
        let metrics_allow = bounded_list(
            "--metrics-allow",
            &flags.metrics_allow,
            MAX_METRICS_ALLOW,
            |text| {
                Cidr::from_str(text).map_err(|problem| ConfigError::new("--metrics-allow", problem))
            },
        )?;

        let tcp_write_timeout = parse_tcp_duration(
            "--tcp-write-timeout",
            &flags.tcp_write_timeout,
            DEFAULT_TCP_WRITE_TIMEOUT,
        )?;
        let tcp_keepalive = parse_tcp_duration(
            "--tcp-keepalive",
            &flags.tcp_keepalive,
            DEFAULT_TCP_KEEPALIVE,
        )?;
        if tcp_keepalive.is_some_and(|period| period < MIN_TCP_KEEPALIVE) {
            return Err(ConfigError::new(
                "--tcp-keepalive",
                format!(
                    "must be at least {}s (or 0 to turn keep-alive off)",
                    MIN_TCP_KEEPALIVE.as_secs()
                ),
            ));
        }
        let tcp_user_timeout = parse_tcp_duration(
            "--tcp-user-timeout",
            &flags.tcp_user_timeout,
            DEFAULT_TCP_USER_TIMEOUT,
        )?;

        Ok(Config {
            listen,
            stun: stun_port.map(|port| SocketAddr::new(listen.ip(), port)),
            http: http_port.map(|port| SocketAddr::new(listen.ip(), port)),
            hostname,
            extra_names,
            extra_ips,
            state_dir,
            server_key,
            cert,
            mesh_psk_file,
            wan_interface,
            derp_map,
            log_level,
            metrics_allow,
            tcp_write_timeout,
            tcp_keepalive,
            tcp_user_timeout,
            dev,
            admit: parse_admit(flags)?,
            limits: parse_limits(flags)?,
        })
    }
}

/// Admission flags: allowlist, local tailscaled, admission URL, learn mode.
fn parse_admit(flags: &Flags) -> Result<AdmitPolicy, ConfigError> {
    let mut allowed_keys = bounded_list(
        "--allowed-key",
        &flags.allowed_key,
        MAX_ALLOWED_KEYS,
        parse_allowed_key,
    )?;
    allowed_keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    allowed_keys.dedup();
    let socket = given(&flags.socket).map(PathBuf::from);
    let tailscaled_socket = match (flags.verify_clients, socket) {
        (true, socket) => Some(socket.unwrap_or_else(|| PathBuf::from(DEFAULT_TAILSCALED_SOCKET))),
        (false, Some(_)) => {
            return Err(ConfigError::new(
                "--socket",
                "only applies with --verify-clients (add it, or drop --socket)",
            ))
        }
        (false, None) => None,
    };
    let url = match given(&flags.verify_client_url) {
        Some(text) => Some(
            AdmissionUrl::from_str(text)
                .map_err(|problem| ConfigError::new("--verify-client-url", problem))?,
        ),
        None => None,
    };
    if !cfg!(feature = "https-admission") && url.as_ref().is_some_and(|url| url.tls) {
        return Err(ConfigError::new(
            "--verify-client-url",
            crate::admit::HTTPS_ADMISSION_DISABLED.to_string(),
        ));
    }
    let url_fail_open = match given(&flags.verify_client_url_fail_open) {
        None => true,
        Some(text) => parse_go_bool(text).ok_or_else(|| {
            ConfigError::new(
                "--verify-client-url-fail-open",
                format!("{text:?} is not true or false"),
            )
        })?,
    };
    let url_ca_file = match (&url, given(&flags.verify_client_url_ca)) {
        (Some(url), ca) if url.tls => Some(PathBuf::from(ca.unwrap_or(DEFAULT_CA_FILE))),
        (_, Some(_)) => {
            return Err(ConfigError::new(
                "--verify-client-url-ca",
                "only applies to an https:// --verify-client-url",
            ))
        }
        (_, None) => None,
    };
    Ok(AdmitPolicy {
        allowed_keys,
        tailscaled_socket,
        url,
        url_fail_open,
        url_ca_file,
        log_refused_keys: flags.log_refused_keys,
    })
}

/// `nodekey:<64 hex>` (as tailscale and our learn mode print it), or the bare 64 hex.
fn parse_allowed_key(text: &str) -> Result<PublicKey, ConfigError> {
    let bytes = crate::proto::key::parse_hex_32(
        text.strip_prefix(crate::proto::key::NODE_KEY_PREFIX)
            .unwrap_or(text),
    );
    match bytes.and_then(|b| PublicKey::from_slice(&b)) {
        Some(key) if !key.is_zero() => Ok(key),
        _ => Err(ConfigError::new(
            "--allowed-key",
            format!("{text:?} is not a node key (use nodekey: and 64 hex digits, as --log-refused-keys prints them)"),
        )),
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Byte-amount suffixes and their multipliers.
const BYTE_SUFFIXES: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("k", 1_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("", 1),
];

/// Parses a byte amount: a whole number with an optional suffix (see the module docs).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let digits_len = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_len);
    let value: u64 = parse_decimal(digits)?;
    let multiplier = BYTE_SUFFIXES
        .iter()
        .find(|(name, _)| *name == suffix)
        .map(|(_, m)| *m)?;
    value.checked_mul(multiplier)
}

fn parse_bytes_flag(
    flag: &'static str,
    value: &Option<String>,
) -> Result<Option<u64>, ConfigError> {
    match given(value) {
        None => Ok(None),
        Some(text) => parse_bytes(text).map(Some).ok_or_else(|| {
            ConfigError::new(
                flag,
                format!("{text:?} is not a byte amount (use e.g. 200000, 200k, 1M or 512Ki; 0 = no limit)"),
            )
        }),
    }
}

/// Parses derper's `--rate-config` JSON: `{"PerClientRateLimitBytesPerSec": N,
/// "PerClientRateBurstBytes": N}`, both optional (keys matched case-insensitively, as
/// Go does). Rate 0 or absent means no limit; the burst is raised to [`MIN_BYTE_BURST`].
pub fn parse_rate_config(text: &str) -> Result<Option<ByteRate>, String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|err| format!("not a JSON object: {err}"))?;
    let mut rate = 0u64;
    let mut burst = 0u64;
    for (name, value) in &object {
        let slot = if name.eq_ignore_ascii_case("PerClientRateLimitBytesPerSec") {
            &mut rate
        } else if name.eq_ignore_ascii_case("PerClientRateBurstBytes") {
            &mut burst
        } else {
            continue;
        };
        *slot = value
            .as_u64()
            .ok_or_else(|| format!("{name} must be a whole number of bytes, not {value}"))?;
    }
    Ok((rate > 0).then(|| ByteRate {
        bytes_per_sec: rate,
        burst: burst.max(MIN_BYTE_BURST),
    }))
}

/// Uplink limit flags.
fn parse_limits(flags: &Flags) -> Result<Limits, ConfigError> {
    let client_rate = parse_bytes_flag("--client-rate", &flags.client_rate)?;
    let client_burst = parse_bytes_flag("--client-burst", &flags.client_burst)?;
    let rate_config = given(&flags.rate_config).map(PathBuf::from);
    if rate_config.is_some() && (client_rate.is_some() || client_burst.is_some()) {
        return Err(ConfigError::new(
            "--rate-config",
            "replaces --client-rate and --client-burst; give one or the other",
        ));
    }
    let client_rate = match (client_rate, client_burst) {
        (Some(rate), burst) if rate > 0 => Some(ByteRate {
            bytes_per_sec: rate,
            burst: burst.unwrap_or(0).max(MIN_BYTE_BURST),
        }),
        (_, Some(burst)) if burst > 0 => {
            return Err(ConfigError::new(
                "--client-burst",
                "needs --client-rate (the burst of an unlimited rate means nothing)",
            ))
        }
        _ => None,
    };
    let total_rate = parse_bytes_flag("--total-rate", &flags.total_rate)?
        .filter(|rate| *rate > 0)
        .map(|rate| ByteRate {
            bytes_per_sec: rate,
            burst: rate.max(MIN_BYTE_BURST),
        });
    let max_clients = match given(&flags.max_clients) {
        None => None,
        Some(text) => match parse_decimal::<u64>(text) {
            Some(0) => None,
            Some(n) if n <= MAX_MAX_CLIENTS => usize::try_from(n).ok(),
            _ => {
                return Err(ConfigError::new(
                    "--max-clients",
                    format!(
                    "{text:?} is not a client count (use 1-{MAX_MAX_CLIENTS}, or 0 for no limit)"
                ),
                ))
            }
        },
    };
    let accept_millis = match given(&flags.accept_rate) {
        None => None,
        Some(text) => parse_accept_rate(text)?,
    };
    let accept_burst = match given(&flags.accept_burst) {
        None => None,
        Some(text) => match parse_decimal::<u64>(text) {
            Some(n) if (1..=MAX_MAX_CLIENTS).contains(&n) => Some(n),
            _ => {
                return Err(ConfigError::new(
                    "--accept-burst",
                    format!("{text:?} is not a connection count (use 1-{MAX_MAX_CLIENTS})"),
                ))
            }
        },
    };
    let accept = match (accept_millis, accept_burst) {
        (Some(millis), burst) => Some(AcceptRate {
            millis_per_sec: millis,
            burst: burst.unwrap_or_else(|| millis.div_ceil(ACCEPT_TOKENS_PER_CONN).max(1)),
        }),
        (None, Some(_)) if given(&flags.accept_rate).is_none() => {
            return Err(ConfigError::new("--accept-burst", "needs --accept-rate"))
        }
        (None, _) => None,
    };
    Ok(Limits {
        client_rate,
        rate_config,
        total_rate,
        max_clients,
        accept,
    })
}

/// Parses `--accept-rate` (connections per second, decimals allowed; `0` or `+Inf`,
/// derper's default, mean unlimited) into thousandths per second.
fn parse_accept_rate(text: &str) -> Result<Option<u64>, ConfigError> {
    let bad = || {
        ConfigError::new(
            "--accept-rate",
            format!(
                "{text:?} is not a rate (use connections per second, e.g. 10 or 0.5; 0 = no limit)"
            ),
        )
    };
    let lower = text.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "+inf" | "infinity" | "+infinity") {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let rate: f64 = text.parse().map_err(|_| bad())?;
    if !rate.is_finite() || rate > MAX_ACCEPT_RATE {
        return Err(ConfigError::new(
            "--accept-rate",
            format!("must be at most {MAX_ACCEPT_RATE} (or 0 for no limit)"),
        ));
    }
    if rate == 0.0 {
        return Ok(None);
    }
    let millis = (rate * ACCEPT_TOKENS_PER_CONN as f64).round() as u64;
    if millis == 0 {
        return Err(ConfigError::new(
            "--accept-rate",
            "must be at least 0.001 connections per second (or 0 for no limit)",
        ));
    }
    Ok(Some(millis))
}

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertConfig {
    /// Generate-once self-signed, or files supplied by the owner.
    pub mode: CertMode,
    /// Self-signed: where files are generated. Manual: where `<hostname>.crt/.key` are read.
    pub certdir: PathBuf,
    /// Manual mode: explicit certificate chain file instead of `<certdir>/<hostname>.crt`.
    pub tls_cert: Option<PathBuf>,
    /// Manual mode: explicit private key file instead of `<certdir>/<hostname>.key`.
    pub tls_key: Option<PathBuf>,
    /// Send the Ed25519-signed meta certificate after the leaf (fast start). Off for
    /// v1.82.x clients, which reject a pinned leaf followed by any other certificate.
    pub meta_cert: bool,
}

impl CertConfig {
    /// Manual mode's certificate and key paths: the explicit `--tls-cert`/`--tls-key`, or
    /// derper's naming `<certdir>/<base>.crt` and `.key`, where `<base>` is the hostname
    /// with every character other than `A-Z a-z 0-9 . -` removed.
    pub fn manual_files(&self, hostname: &str) -> (PathBuf, PathBuf) {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            return (cert.clone(), key.clone());
        }
        let base: String = hostname
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
            .collect();
        (
            self.certdir.join(format!("{base}.crt")),
            self.certdir.join(format!("{base}.key")),
        )
    }
}

/// `--certmode`: how the TLS certificate is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertMode {
    /// Generate an ECDSA P-256 certificate once and keep it (the pin never changes).
    SelfSigned,
    /// Load PEM files supplied by the owner (e.g. from acme.sh on the router).
    Manual,
}

/// A flag that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The flag's long spelling, e.g. `--stun-port`.
    pub flag: &'static str,
    /// What is wrong and how to fix it, in one line.
    pub problem: String,
}

impl ConfigError {
    fn new(flag: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            flag,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// An IP range such as `192.168.1.0/24` or `fd00::/8`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address with the host bits cleared.
    network: IpAddr,
    /// Number of leading bits that must match (0-32 for IPv4, 0-128 for IPv6).
    prefix_len: u8,
}

impl Cidr {
    /// The network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// True when `ip` lies in this range. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
    /// what a dual-stack listener reports for IPv4 peers) are matched as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical_ip(ip)) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                mask_v4(u32::from(ip), self.prefix_len) == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                mask_v6(u128::from(ip), self.prefix_len) == u128::from(network)
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// Parses `IP/LEN` or a bare `IP` (a single host). Host bits are cleared, as in
    /// Go's `netip.Prefix.Masked`.
    fn from_str(text: &str) -> Result<Cidr, String> {
        let bad = || {
            format!(
                "{text:?} is not an IP range (use e.g. 192.168.1.0/24, fd00::/8 or 192.168.1.10)"
            )
        };
        let (ip_text, len_text) = match text.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (text, None),
        };
        let ip = IpAddr::from_str(ip_text).map_err(|_| bad())?;
        if let IpAddr::V6(v6) = ip {
            if v6.to_ipv4_mapped().is_some() {
                return Err(format!(
                    "{text:?}: write IPv4 ranges as IPv4, e.g. 10.1.0.0/16"
                ));
            }
        }
        let max_len: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len_text {
            None => max_len,
            Some(len) if len.bytes().all(|b| b.is_ascii_digit()) && !len.is_empty() => {
                match len.parse::<u8>() {
                    Ok(len) if len <= max_len => len,
                    _ => return Err(format!("{text:?}: prefix length must be 0-{max_len}")),
                }
            }
            Some(_) => return Err(bad()),
        };
        let network = match ip {
            IpAddr::V4(ip) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(ip), prefix_len))),
            IpAddr::V6(ip) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(ip), prefix_len))),
        };
        Ok(Cidr {
            network,
            prefix_len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Keeps the top `prefix_len` bits of an IPv4 address.
fn mask_v4(bits: u32, prefix_len: u8) -> u32 {
    let host_bits = 32u32.saturating_sub(u32::from(prefix_len));
    bits & u32::MAX.checked_shl(host_bits).unwrap_or(0)
}

/// Keeps the top `prefix_len` bits of an IPv6 address.
fn mask_v6(bits: u128, prefix_len: u8) -> u128 {
    let host_bits = 128u32.saturating_sub(u32::from(prefix_len));
    bits & u128::MAX.checked_shl(host_bits).unwrap_or(0)
}

/// IPv4-mapped IPv6 addresses become plain IPv4; everything else is unchanged.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The flag's value, treating an empty string (an empty UCI option) as not given.
fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// Flags accepted for derper compatibility whose feature is not built yet.
fn refuse_unsupported(flags: &Flags) -> Result<(), ConfigError> {
    const NOT_YET: &str = "not yet supported by this version of tinyderp; remove the option";
    if given(&flags.mesh_with).is_some() {
        return Err(ConfigError::new(
            "--mesh-with",
            format!("{NOT_YET} (run one node per region for now)"),
        ));
    }
    Ok(())
}

/// Parses `:PORT`, `IP:PORT` or `[IPv6]:PORT`; `:PORT` means every interface, both
/// IPv4 and IPv6 (`[::]:PORT`).
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    let bad = || {
        ConfigError::new(
            "--addr",
            format!(
                "{text:?} is not a listen address (use :PORT, IP:PORT or [IPv6]:PORT, e.g. :8443)"
            ),
        )
    };
    let addr = match text.strip_prefix(':') {
        Some(port) => {
            let port: u16 = parse_decimal(port).ok_or_else(bad)?;
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
        }
        None => SocketAddr::from_str(text).map_err(|_| bad())?,
    };
    if addr.port() == 0 {
        return Err(ConfigError::new(
            "--addr",
            format!("{text:?}: port must be 1-65535"),
        ));
    }
    Ok(addr)
}

/// Parses a plain unsigned decimal (no sign, no spaces) that fits in `T`.
fn parse_decimal<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses a port 1-65535.
fn parse_port(flag: &'static str, text: &str) -> Result<u16, ConfigError> {
    match parse_decimal::<u16>(text) {
        Some(port) if port != 0 => Ok(port),
        _ => Err(ConfigError::new(
            flag,
            format!("{text:?} is not a port number (use 1-65535)"),
        )),
    }
}

/// Parses a port 1-65535, or `-1` for "off" (returned as `None`).
fn parse_port_or_off(
    flag: &'static str,
    text: &str,
    off_means: &str,
) -> Result<Option<u16>, ConfigError> {
    if text == PORT_OFF {
        return Ok(None);
    }
    match parse_decimal::<u16>(text) {
        Some(port) if port != 0 => Ok(Some(port)),
        _ => Err(ConfigError::new(
            flag,
            format!("{text:?} is not a port number (use 1-65535, or -1 to {off_means})"),
        )),
    }
}

/// Parses an IPv4 or IPv6 address.
fn parse_ip(flag: &'static str, text: &str) -> Result<IpAddr, ConfigError> {
    IpAddr::from_str(text)
        .map_err(|_| ConfigError::new(flag, format!("{text:?} is not an IP address")))
}

/// Accepts an IP literal or a DNS name (letters, digits, `-`, `_`, dot-separated labels).
fn check_hostname(flag: &'static str, text: &str) -> Result<String, ConfigError> {
    if IpAddr::from_str(text).is_ok() {
        return Ok(String::from(text));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(ConfigError::new(
            flag,
            format!("{text:?} must not contain spaces"),
        ));
    }
    if text.len() > MAX_HOSTNAME_LEN {
        return Err(ConfigError::new(
            flag,
            format!("name is longer than {MAX_HOSTNAME_LEN} characters"),
        ));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_DNS_LABEL_LEN
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !text.split('.').all(label_ok) {
        return Err(ConfigError::new(
            flag,
            format!(
                "{text:?} is not a DNS name or IP address (use e.g. myhome.example.net or 203.0.113.10)"
            ),
        ));
    }
    Ok(String::from(text))
}

/// Checks a short display string: non-empty, at most `max_len` bytes, no control
/// characters, and (for codes and names that appear in commands) optionally no spaces.
fn check_label(
    flag: &'static str,
    text: &str,
    max_len: usize,
    spaces_allowed: bool,
) -> Result<String, ConfigError> {
    if text.is_empty() {
        return Err(ConfigError::new(flag, "must not be empty"));
    }
    if text.len() > max_len {
        return Err(ConfigError::new(
            flag,
            format!("is longer than {max_len} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ConfigError::new(
            flag,
            "must not contain control characters",
        ));
    }
    if !spaces_allowed && text.chars().any(char::is_whitespace) {
        return Err(ConfigError::new(
            flag,
            format!("{text:?} must not contain spaces"),
        ));
    }
    Ok(String::from(text))
}

/// Validates each entry of a repeatable flag and refuses more than `max` entries.
fn bounded_list<T>(
    flag: &'static str,
    values: &[String],
    max: usize,
    parse: impl Fn(&str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let values: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    if values.len() > max {
        return Err(ConfigError::new(
            flag,
            format!("given {} times; at most {max} are allowed", values.len()),
        ));
    }
    values.into_iter().map(parse).collect()
}

fn parse_cert_config(flags: &Flags, state_dir: &Path) -> Result<CertConfig, ConfigError> {
    let mode = match given(&flags.certmode) {
        None | Some("self-signed") => CertMode::SelfSigned,
        Some("manual") => CertMode::Manual,
        Some(other) => {
            return Err(ConfigError::new(
                "--certmode",
                format!("{other:?} is not supported (use self-signed or manual; tinyderp has no built-in ACME)"),
            ))
        }
    };
    let certdir = given(&flags.certdir).map_or_else(|| state_dir.to_path_buf(), PathBuf::from);
    let tls_cert = given(&flags.tls_cert).map(PathBuf::from);
    let tls_key = given(&flags.tls_key).map(PathBuf::from);
    match (mode, &tls_cert, &tls_key) {
        (CertMode::SelfSigned, Some(_), _) => {
            return Err(ConfigError::new(
                "--tls-cert",
                "only applies with --certmode manual (add it, or drop --tls-cert)",
            ))
        }
        (CertMode::SelfSigned, None, Some(_)) => {
            return Err(ConfigError::new(
                "--tls-key",
                "only applies with --certmode manual (add it, or drop --tls-key)",
            ))
        }
        (CertMode::Manual, Some(_), None) => {
            return Err(ConfigError::new(
                "--tls-cert",
                "needs --tls-key too (give both, or neither to use <certdir>/<hostname>.crt/.key)",
            ))
        }
        (CertMode::Manual, None, Some(_)) => {
            return Err(ConfigError::new(
                "--tls-key",
                "needs --tls-cert too (give both, or neither to use <certdir>/<hostname>.crt/.key)",
            ))
        }
        _ => {}
    }
    Ok(CertConfig {
        mode,
        certdir,
        tls_cert,
        tls_key,
        meta_cert: !flags.no_meta_cert,
    })
}

fn parse_derp_map(
    flags: &Flags,
    hostname: &str,
    listen_port: u16,
    stun_port: Option<u16>,
) -> Result<DerpMapParams, ConfigError> {
    let region_id = match given(&flags.region_id) {
        None => DEFAULT_REGION_ID,
        Some(text) => match parse_decimal::<u16>(text) {
            Some(id) if (MIN_REGION_ID..=MAX_REGION_ID).contains(&id) => id,
            _ => {
                return Err(ConfigError::new(
                    "--region-id",
                    format!("{text:?} is not a region id (use {MIN_REGION_ID}-{MAX_REGION_ID}; 900-999 are for user-run relays)"),
                ))
            }
        },
    };
    let region_code = match flags.region_code.as_deref() {
        None => String::from(DEFAULT_REGION_CODE),
        Some(text) => check_label("--region-code", text.trim(), MAX_REGION_CODE_LEN, false)?,
    };
    let region_name = match flags.region_name.as_deref() {
        None => String::from(DEFAULT_REGION_NAME),
        Some(text) => check_label("--region-name", text.trim(), MAX_REGION_NAME_LEN, true)?,
    };
    let node_name = match flags.node_name.as_deref() {
        None => format!("{region_id}{DEFAULT_NODE_SUFFIX}"),
        Some(text) => check_label("--node-name", text.trim(), MAX_NODE_NAME_LEN, false)?,
    };
    let derp_port = match given(&flags.public_derp_port) {
        Some(text) => parse_port("--public-derp-port", text)?,
        None => listen_port,
    };
    let stun_port = match given(&flags.public_stun_port) {
        Some(text) => {
            parse_port_or_off("--public-stun-port", text, "tell clients there is no STUN")?
        }
        None => stun_port,
    };
    let ipv4 = match given(&flags.public_ipv4) {
        Some(text) => Some(Ipv4Addr::from_str(text).map_err(|_| {
            ConfigError::new("--public-ipv4", format!("{text:?} is not an IPv4 address"))
        })?),
        None => None,
    };
    let ipv6 = match given(&flags.public_ipv6) {
        Some(text) => Some(Ipv6Addr::from_str(text).map_err(|_| {
            ConfigError::new("--public-ipv6", format!("{text:?} is not an IPv6 address"))
        })?),
        None => None,
    };
    Ok(DerpMapParams {
        region_id,
        region_code,
        region_name,
        node_name,
        hostname: String::from(hostname),
        derp_port,
        stun_port,
        ipv4,
        ipv6,
    })
}

fn parse_log_level(text: &str) -> Result<LevelFilter, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "off" => Ok(LevelFilter::Off),
        "error" => Ok(LevelFilter::Error),
        "warn" | "warning" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err(ConfigError::new(
            "--log-level",
            format!("{text:?} is not a log level (use error, warn, info, debug or trace)"),
        )),
    }
}

/// Parses a TCP timing flag; `0` turns the feature off (`None`).
fn parse_tcp_duration(
    flag: &'static str,
    value: &Option<String>,
    default: Duration,
) -> Result<Option<Duration>, ConfigError> {
    let duration = match given(value) {
        None => default,
        Some(text) => parse_go_duration(text).map_err(|problem| ConfigError::new(flag, problem))?,
    };
    if duration > MAX_TCP_DURATION {
        let hours = MAX_TCP_DURATION.as_secs() / 3600;
        return Err(ConfigError::new(flag, format!("must be at most {hours}h")));
    }
    Ok(Some(duration).filter(|d| !d.is_zero()))
}

/// Nanoseconds per Go duration unit.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // U+00B5 micro sign, as Go accepts
    ("\u{3bc}s", 1_000), // U+03BC Greek small mu, as Go accepts
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration (`2s`, `10m`, `1m30s`, `1.5h`, `500ms`) or plain whole seconds
/// (`15`). Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (use e.g. 2s, 10m, 1m30s, 500ms, or seconds)");
    if text.starts_with('-') {
        return Err(format!("{text:?} must not be negative"));
    }
    if let Some(seconds) = parse_decimal::<u64>(text) {
        return Ok(Duration::from_secs(seconds));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        rest = after;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let unit_nanos = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(bad)?;
        let whole_value: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut part = whole_value.checked_mul(unit_nanos).ok_or_else(bad)?;
        // Each fraction digit adds digit * unit / 10^position; digits past nanosecond
        // precision contribute nothing and are ignored.
        let mut scale = unit_nanos;
        for digit in fraction.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            part = part
                .checked_add(u128::from(digit - b'0') * scale)
                .ok_or_else(bad)?;
        }
        total_nanos = total_nanos.checked_add(part).ok_or_else(bad)?;
    }
    let seconds = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| bad())?;
    let nanos = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let table: &[(&str, Duration)] = &[
            ("2s", Duration::from_secs(2)),
            ("10m", Duration::from_secs(600)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            ("2h45m3s", Duration::from_secs(2 * 3600 + 45 * 60 + 3)),
            ("15", Duration::from_secs(15)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("250us", Duration::from_micros(250)),
            ("250\u{b5}s", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            (".5s", Duration::from_millis(500)),
            ("1.000000001s", Duration::from_nanos(1_000_000_001)),
            ("+3s", Duration::from_secs(3)),
        ];
        for (text, expected) in table {
            assert_eq!(parse_go_duration(text), Ok(*expected), "{text}");
        }
        for text in [
            "",
            "s",
            "5x",
            "1.2.3s",
            "-2s",
            "1m-3s",
            ".s",
            "3 s",
            "99999999999999999999999999999999999999h",
        ] {
            assert!(parse_go_duration(text).is_err(), "{text:?} should fail");
        }
    }

    #[test]
    fn byte_amounts() {
        let table: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("200000", Some(200_000)),
            ("200k", Some(200_000)),
            ("200K", Some(200_000)),
            ("3M", Some(3_000_000)),
            ("1G", Some(1_000_000_000)),
            ("512Ki", Some(524_288)),
            ("2Mi", Some(2_097_152)),
            ("1Gi", Some(1_073_741_824)),
            ("", None),
            ("k", None),
            ("1.5M", None),
            ("-1", None),
            ("1 M", None),
            ("1MB", None),
            ("99999999999999999999", None),
            ("18446744073709551615Ki", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_bytes(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn rate_config_files() {
        assert_eq!(
            parse_rate_config(
                r#"{"PerClientRateLimitBytesPerSec": 1250000, "PerClientRateBurstBytes": 2500000}"#
            ),
            Ok(Some(ByteRate {
                bytes_per_sec: 1_250_000,
                burst: 2_500_000
            }))
        );
        assert_eq!(
            parse_rate_config(r#"{"perclientratelimitbytespersec": 1000}"#),
            Ok(Some(ByteRate {
                bytes_per_sec: 1000,
                burst: MIN_BYTE_BURST
            }))
        );
        assert_eq!(parse_rate_config("{}"), Ok(None));
        assert_eq!(
            parse_rate_config(r#"{"PerClientRateLimitBytesPerSec": 0, "Other": "x"}"#),
            Ok(None)
        );
        for bad in [
            "",
            "[]",
            "{\"PerClientRateLimitBytesPerSec\": -1}",
            "{\"PerClientRateBurstBytes\": 1.5}",
            "{\"PerClientRateLimitBytesPerSec\": \"1\"}",
        ] {
            assert!(parse_rate_config(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn go_bools() {
        for text in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_go_bool(text), Some(true));
        }
        for text in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_go_bool(text), Some(false));
        }
        for text in ["yes", "", "tRUE", "2"] {
            assert_eq!(parse_go_bool(text), None);
        }
    }

    #[test]
    fn cidr_parse_contains_and_display() {
        let lan: Cidr = "192.168.1.77/24".parse().unwrap();
        assert_eq!(lan.to_string(), "192.168.1.0/24");
        assert!(lan.contains("192.168.1.200".parse().unwrap()));
        assert!(lan.contains("::ffff:192.168.1.5".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        assert!(!lan.contains("fd00::1".parse().unwrap()));

        let host: Cidr = "10.0.0.1".parse().unwrap();
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains("10.0.0.1".parse().unwrap()));
        assert!(!host.contains("10.0.0.2".parse().unwrap()));

        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("2001:db8::1".parse().unwrap()));

        let ula: Cidr = "fd00::/8".parse().unwrap();
        assert!(ula.contains("fdab:1::2".parse().unwrap()));
        assert!(!ula.contains("fe80::1".parse().unwrap()));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains("2001:db8::1".parse().unwrap()));

        assert!(
            "::ffff:10.1.0.0/112".parse::<Cidr>().is_err(),
            "mapped ranges are refused"
        );
        for text in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/x",
            "lan",
            "10.0.0.0/+8",
        ] {
            assert!(text.parse::<Cidr>().is_err(), "{text:?} should fail");
        }
    }

    #[test]
    fn listen_addresses() {
        let table: &[(&str, &str)] = &[
            (":8443", "[::]:8443"),
            ("192.168.1.1:443", "192.168.1.1:443"),
            ("[::1]:9000", "[::1]:9000"),
            ("0.0.0.0:8443", "0.0.0.0:8443"),
        ];
        for (text, expected) in table {
            assert_eq!(parse_listen_addr(text).unwrap().to_string(), *expected);
        }
        for text in [
            "8443",
            ":0",
            ":",
            ":https",
            "::1:80",
            "localhost:8443",
            ":70000",
            ":-1",
        ] {
            let err = parse_listen_addr(text).unwrap_err();
            assert_eq!(err.flag, "--addr", "{text}");
        }
    }

    #[test]
    fn hostnames() {
        for ok in [
            "localhost",
            "myhome.example.net",
            "203.0.113.10",
            "2001:db8::1",
            "a_b.example",
        ] {
            assert_eq!(check_hostname("--hostname", ok).unwrap(), ok);
        }
        for bad in [
            "my home",
            "a..b",
            "example.com.",
            "[::1]",
            "x/y",
            &"a".repeat(64),
        ] {
            assert!(check_hostname("--hostname", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manual_file_naming_follows_derper() {
        let cert = CertConfig {
            mode: CertMode::Manual,
            certdir: PathBuf::from("/etc/tinyderp"),
            tls_cert: None,
            tls_key: None,
            meta_cert: true,
        };
        assert_eq!(
            cert.manual_files("2001:db8::1"),
            (
                PathBuf::from("/etc/tinyderp/2001db81.crt"),
                PathBuf::from("/etc/tinyderp/2001db81.key")
            )
        );
        assert_eq!(
            cert.manual_files("derp.example.com").0,
            PathBuf::from("/etc/tinyderp/derp.example.com.crt")
        );
        let explicit = CertConfig {
            tls_cert: Some(PathBuf::from("/a.pem")),
            tls_key: Some(PathBuf::from("/b.pem")),
            ..cert
        };
        assert_eq!(
            explicit.manual_files("x"),
            (PathBuf::from("/a.pem"), PathBuf::from("/b.pem"))
        );
    }
}
