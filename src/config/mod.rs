//! The validated run-time configuration, and every default and bound in one place.
//!
//! [`crate::cli`] collects the raw flag strings; [`Config::from_flags`] checks each one
//! and turns it into a typed value, or fails with a [`ConfigError`] that names the flag
//! and says how to fix it. Nothing after this point re-validates user input. The option
//! reference (every option, its UCI name, default and meaning) is `docs/configuration.md`,
//! generated from [`crate::cli::options`].
//!
//! Layout: [`derper`] rewrites derper's Go-style spellings, [`values`] parses single
//! values (ports, names, durations, byte amounts), [`cidr`] IP ranges, [`admission`] and
//! [`limits`] their option groups, [`error`] the typed refusals. This module depends on
//! [`crate::cli`] for the raw [`Flags`]; `cli` depends on nothing here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use log::LevelFilter;

use crate::admit::AdmitPolicy;
use crate::cli::Flags;
use crate::derpmap::DerpMapParams;

pub mod admission;
pub mod cidr;
pub mod derper;
pub mod error;
pub mod limits;
pub mod mesh;
pub mod values;

pub use cidr::Cidr;
pub use derper::normalize_args;
pub use error::ConfigError;
pub use limits::{parse_rate_config, AcceptRate, ByteRate, Limits, RateConfigError};
pub use values::{parse_bytes, parse_go_bool, parse_go_duration, parse_listen_addr};

use cidr::canonical_ip;
use error::{Bound, Rule, Unsupported, Want};
use values::{
    bounded_list, check_host_port, check_hostname, check_interface_name, check_label, given, not_a,
    parse_decimal, parse_ip, parse_listen_port, parse_log_level, parse_port, parse_port_or_off,
    parse_tcp_duration,
};

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
pub const MAX_ACCEPT_RATE: u64 = 1_000_000;
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
    /// Other relays of the region to dial (`--mesh-with`, `--mesh-pin`).
    pub mesh_peers: Vec<mesh::MeshPeer>,
    /// This server's own pin from the shared `--mesh-pin` list, for the region snippet.
    pub mesh_own_pin: Option<String>,
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
    /// `--port-mapping`: ask the upstream gateway to forward the DERP and STUN ports.
    pub port_mapping: bool,
    /// `--check-stun-server`: an outside STUN server (`HOST:PORT`) the check asks for our
    /// public address.
    pub check_stun_server: Option<String>,
    /// Who may use the relay.
    pub admit: AdmitPolicy,
    /// Uplink limits.
    pub limits: Limits,
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
        let dev = flags.dev;

        let listen = match given(&flags.addr) {
            Some(text) => parse_listen_addr(text)?,
            None if dev => DEV_LISTEN,
            None => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), DEFAULT_DERP_PORT),
        };
        let stun_port = match given(&flags.stun_port) {
            Some(text) => parse_listen_port("--stun-port", text, "turn STUN off")?,
            None => Some(DEFAULT_STUN_PORT),
        };
        let http_port = match given(&flags.http_port) {
            Some(text) => parse_listen_port("--http-port", text, "turn plain HTTP off")?,
            None => None,
        };

        let hostname = match given(&flags.hostname) {
            Some(text) => check_hostname("--hostname", text)?,
            None if flags.hostname.is_some() => {
                return Err(ConfigError::Empty {
                    flag: "--hostname",
                    hint: " (use your DDNS name or public IP, e.g. --hostname myhome.example.net)",
                })
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
        let mesh_peers = mesh::parse_mesh_peers(
            &flags.mesh_with,
            &flags.mesh_pin,
            &hostname,
            listen.port(),
            mesh_psk_file.is_some(),
        )?;
        let mesh_own_pin = mesh::own_pin(&flags.mesh_pin, &hostname);
        let wan_interface = given(&flags.wan_interface)
            .map(|text| check_interface_name("--wan-interface", text))
            .transpose()?;

        if flags.port_mapping && !cfg!(feature = "port-mapping") {
            return Err(ConfigError::Unsupported {
                flag: "--port-mapping",
                what: Unsupported::PortMapping,
            });
        }
        let check_stun_server = given(&flags.check_stun_server)
            .map(|text| check_host_port("--check-stun-server", text))
            .transpose()?;
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
                Cidr::from_str(text).map_err(|error| ConfigError::Cidr {
                    flag: "--metrics-allow",
                    error,
                })
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
            return Err(ConfigError::OutOfRange {
                flag: "--tcp-keepalive",
                bound: Bound::KeepaliveMin,
            });
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
            mesh_peers,
            mesh_own_pin,
            wan_interface,
            derp_map,
            log_level,
            metrics_allow,
            tcp_write_timeout,
            tcp_keepalive,
            tcp_user_timeout,
            dev,
            port_mapping: flags.port_mapping,
            check_stun_server,
            admit: admission::parse_admit(flags)?,
            limits: limits::parse_limits(flags)?,
        })
    }
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

fn parse_cert_config(flags: &Flags, state_dir: &Path) -> Result<CertConfig, ConfigError> {
    let mode = match given(&flags.certmode) {
        None | Some("self-signed") => CertMode::SelfSigned,
        Some("manual") => CertMode::Manual,
        Some(other) => return Err(not_a("--certmode", other, Want::CertMode)),
    };
    let certdir = given(&flags.certdir).map_or_else(|| state_dir.to_path_buf(), PathBuf::from);
    let tls_cert = given(&flags.tls_cert).map(PathBuf::from);
    let tls_key = given(&flags.tls_key).map(PathBuf::from);
    match (mode, &tls_cert, &tls_key) {
        (CertMode::SelfSigned, Some(_), _) => {
            return Err(ConfigError::Combination {
                flag: "--tls-cert",
                rule: Rule::ManualModeOnly,
            })
        }
        (CertMode::SelfSigned, None, Some(_)) => {
            return Err(ConfigError::Combination {
                flag: "--tls-key",
                rule: Rule::ManualModeOnly,
            })
        }
        (CertMode::Manual, Some(_), None) => {
            return Err(ConfigError::Combination {
                flag: "--tls-cert",
                rule: Rule::TlsCertNeedsKey,
            })
        }
        (CertMode::Manual, None, Some(_)) => {
            return Err(ConfigError::Combination {
                flag: "--tls-key",
                rule: Rule::TlsKeyNeedsCert,
            })
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
            _ => return Err(not_a("--region-id", text, Want::RegionId)),
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
        Some(text) => {
            Some(Ipv4Addr::from_str(text).map_err(|_| not_a("--public-ipv4", text, Want::Ipv4))?)
        }
        None => None,
    };
    let ipv6 = match given(&flags.public_ipv6) {
        Some(text) => {
            Some(Ipv6Addr::from_str(text).map_err(|_| not_a("--public-ipv6", text, Want::Ipv6))?)
        }
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

#[cfg(test)]
mod option_table_tests;

#[cfg(test)]
mod tests {
    use super::*;

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
