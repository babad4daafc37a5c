//! Why a command-line option was refused: one enum, so callers can branch on the kind
//! of mistake and logs and metrics can name it by a stable [`ConfigError::label`], while
//! [`std::fmt::Display`] gives the one-line message with the fix.

use crate::text::Quoted;
use std::fmt;

/// An option that failed validation. Every variant names the option by its long flag
/// (`--stun-port`); [`ConfigError::uci_option`] gives the UCI spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The value has the wrong form: `"VALUE" is not WANT`.
    NotA {
        /// The option's long flag.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// What was expected.
        want: Want,
    },
    /// The value is empty where one is required.
    Empty {
        /// The option's long flag.
        flag: &'static str,
        /// Extra advice after "must not be empty" (may be empty).
        hint: &'static str,
    },
    /// The value contains white space where none is allowed.
    Spaces {
        /// The option's long flag.
        flag: &'static str,
        /// The value as given.
        value: String,
    },
    /// The value contains control characters.
    ControlChars {
        /// The option's long flag.
        flag: &'static str,
    },
    /// The value is longer than `max` bytes.
    TooLong {
        /// The option's long flag.
        flag: &'static str,
        /// Longest accepted length.
        max: usize,
        /// What is too long, as the message names it ("" or "name ").
        what: &'static str,
    },
    /// A number outside its bounds.
    OutOfRange {
        /// The option's long flag.
        flag: &'static str,
        /// Which bound.
        bound: Bound,
    },
    /// A repeatable option given more often than allowed.
    TooMany {
        /// The option's long flag.
        flag: &'static str,
        /// How often it was given.
        given: usize,
        /// How often it may be given.
        max: usize,
    },
    /// A single-value option given more than once.
    GivenTwice {
        /// The option's long flag.
        flag: &'static str,
    },
    /// A boolean that is not one of Go's spellings.
    NotBool {
        /// The option's long flag.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// How the message suggests writing it.
        spelling: BoolSpelling,
    },
    /// The option conflicts with, or needs, another one.
    Combination {
        /// The option's long flag.
        flag: &'static str,
        /// The rule broken.
        rule: Rule,
    },
    /// The option exists for derper compatibility but this build cannot do it.
    Unsupported {
        /// The option's long flag.
        flag: &'static str,
        /// What is missing.
        what: Unsupported,
    },
    /// The admission URL parser's own explanation.
    BadUrl {
        /// The option's long flag.
        flag: &'static str,
        /// What is wrong with the URL.
        problem: String,
    },
    /// A malformed or negative duration.
    Duration {
        /// The option's long flag.
        flag: &'static str,
        /// What is wrong with it.
        error: DurationError,
    },
    /// A malformed IP range.
    Cidr {
        /// The option's long flag.
        flag: &'static str,
        /// What is wrong with it.
        error: CidrError,
    },
}

/// What a value should have been, for [`ConfigError::NotA`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A port 1-65535.
    Port,
    /// A port 1-65535 or -1; the text says what -1 does.
    PortOrOff(&'static str),
    /// A DERP map region id.
    RegionId,
    /// `:PORT`, `IP:PORT` or `[IPv6]:PORT`.
    ListenAddr,
    /// A DNS name or IP literal.
    HostName,
    /// An IPv4 or IPv6 address.
    IpAddr,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// `nodekey:` and 64 hex digits.
    NodeKey,
    /// A byte amount with optional suffix.
    ByteAmount,
    /// A client count for `--max-clients`.
    ClientCount,
    /// A connection count for `--accept-burst`.
    ConnectionCount,
    /// Connections per second.
    AcceptRate,
    /// A log level name.
    LogLevel,
    /// A supported certificate mode.
    CertMode,
    /// A network interface name.
    InterfaceName,
    /// A `--mesh-with` entry: `host[:port][/dialhost]`.
    MeshPeer,
    /// A `--mesh-pin` entry: `host=sha256-raw:<64 hex>`.
    MeshPin,
    /// A name that `--mesh-with` lists (for a `--mesh-pin`).
    MeshPinPeer,
    /// `HOST:PORT` or `[IPv6]:PORT`.
    HostPort,
}

/// A numeric bound, for [`ConfigError::OutOfRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A TCP timing above the longest accepted.
    TcpDurationMax,
    /// A keep-alive period below the shortest.
    KeepaliveMin,
    /// An accept rate above the highest.
    AcceptRateMax,
    /// An accept rate that rounds to nothing.
    AcceptRateMin,
}

/// How a [`ConfigError::NotBool`] message suggests writing the flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolSpelling {
    /// A switch: `--x` alone, or `--x=false`.
    Switch,
    /// A default-true boolean: `--x=true` or `--x=false`.
    Explicit,
    /// No suggestion.
    Plain,
}

/// A rule between options, for [`ConfigError::Combination`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `--tls-cert` without `--tls-key`.
    TlsCertNeedsKey,
    /// `--tls-key` without `--tls-cert`.
    TlsKeyNeedsCert,
    /// `--tls-cert`/`--tls-key` without `--certmode manual`.
    ManualModeOnly,
    /// `--socket` without `--verify-clients`.
    SocketNeedsVerifyClients,
    /// `--verify-client-url-ca` without an https:// URL.
    CaNeedsHttpsUrl,
    /// `--client-burst` without `--client-rate`.
    BurstNeedsRate,
    /// `--rate-config` together with `--client-rate`/`--client-burst`.
    RateConfigReplacesRate,
    /// `--accept-burst` without `--accept-rate`.
    AcceptBurstNeedsRate,
    /// `--mesh-with` without `--mesh-psk-file`.
    MeshNeedsKey,
}

/// Why `--mesh-with` is refused by a build without the `tls-client` feature (the MIPS
/// router packages): dialing a peer needs the TLS client, which costs flash there.
pub const MESH_DIALER_DISABLED: &str = "dialing mesh peers needs tinyderp built with the \
    tls-client cargo feature, which this build leaves out to save flash (see \
    docs/building.md); this relay still accepts mesh peers that dial it with --mesh-psk-file";

/// A feature this build does not have, for [`ConfigError::Unsupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// https:// admission URLs without the `https-admission` cargo feature.
    HttpsAdmission,
    /// Dialing mesh peers (`--mesh-with`) without the `tls-client` cargo feature.
    MeshDialer,
    /// `--port-mapping` without the `port-mapping` cargo feature.
    PortMapping,
}

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Not a Go duration nor whole seconds.
    Malformed(String),
    /// Starts with `-`.
    Negative(String),
}

/// Why an IP range was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// Not `IP/LEN` nor an IP.
    Malformed(String),
    /// An IPv4-mapped IPv6 range.
    Mapped(String),
    /// A prefix length above the address size.
    PrefixLength {
        /// The value as given.
        value: String,
        /// Longest prefix for this family.
        max: u8,
    },
}

impl ConfigError {
    /// The option's long flag, e.g. `--max-clients`.
    pub fn flag(&self) -> &'static str {
        match self {
            ConfigError::NotA { flag, .. }
            | ConfigError::Empty { flag, .. }
            | ConfigError::Spaces { flag, .. }
            | ConfigError::ControlChars { flag }
            | ConfigError::TooLong { flag, .. }
            | ConfigError::OutOfRange { flag, .. }
            | ConfigError::TooMany { flag, .. }
            | ConfigError::GivenTwice { flag }
            | ConfigError::NotBool { flag, .. }
            | ConfigError::Combination { flag, .. }
            | ConfigError::Unsupported { flag, .. }
            | ConfigError::BadUrl { flag, .. }
            | ConfigError::Duration { flag, .. }
            | ConfigError::Cidr { flag, .. } => flag,
        }
    }

    /// The option's UCI name (`--max-clients` is `max_clients`).
    pub fn uci_option(&self) -> String {
        self.flag().trim_start_matches('-').replace('-', "_")
    }

    /// A short stable name of the kind of mistake, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ConfigError::NotA { .. } => "invalid_value",
            ConfigError::Empty { .. } => "empty",
            ConfigError::Spaces { .. } => "spaces",
            ConfigError::ControlChars { .. } => "control_chars",
            ConfigError::TooLong { .. } => "too_long",
            ConfigError::OutOfRange { .. } => "out_of_range",
            ConfigError::TooMany { .. } => "too_many",
            ConfigError::GivenTwice { .. } => "given_twice",
            ConfigError::NotBool { .. } => "not_bool",
            ConfigError::Combination { .. } => "combination",
            ConfigError::Unsupported { .. } => "unsupported",
            ConfigError::BadUrl { .. } => "bad_url",
            ConfigError::Duration { .. } => "bad_duration",
            ConfigError::Cidr { .. } => "bad_cidr",
        }
    }

    /// What is wrong and how to fix it, without the flag.
    fn problem(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotA { value, want, .. } => write!(f, "{} is not {want}", Quoted(value)),
            ConfigError::Empty { hint, .. } => write!(f, "must not be empty{hint}"),
            ConfigError::Spaces { value, .. } => {
                write!(f, "{} must not contain spaces", Quoted(value))
            }
            ConfigError::ControlChars { .. } => f.write_str("must not contain control characters"),
            ConfigError::TooLong { max, what, .. } => {
                write!(f, "{what}is longer than {max} characters")
            }
            ConfigError::OutOfRange { bound, .. } => fmt::Display::fmt(bound, f),
            ConfigError::TooMany { given, max, .. } => {
                write!(f, "given {given} times; at most {max} are allowed")
            }
            ConfigError::GivenTwice { .. } => f.write_str("given more than once (give it once)"),
            ConfigError::NotBool {
                flag,
                value,
                spelling,
            } => {
                write!(f, "{} is not true or false", Quoted(value))?;
                match spelling {
                    BoolSpelling::Switch => write!(f, " (write {flag} alone, or {flag}=false)"),
                    BoolSpelling::Explicit => write!(f, " (write {flag}=true or {flag}=false)"),
                    BoolSpelling::Plain => Ok(()),
                }
            }
            ConfigError::Combination { flag, rule } => rule.describe(flag, f),
            ConfigError::Unsupported { what, .. } => match what {
                Unsupported::HttpsAdmission => f.write_str(crate::admit::HTTPS_ADMISSION_DISABLED),
                Unsupported::MeshDialer => f.write_str(MESH_DIALER_DISABLED),
                Unsupported::PortMapping => f.write_str(
                    "needs tinyderp built with the port-mapping cargo feature; forward the \
                     ports on the router in front by hand",
                ),
            },
            ConfigError::BadUrl { problem, .. } => f.write_str(problem),
            ConfigError::Duration { error, .. } => fmt::Display::fmt(error, f),
            ConfigError::Cidr { error, .. } => fmt::Display::fmt(error, f),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.flag())?;
        self.problem(f)
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::{MAX_MAX_CLIENTS, MAX_REGION_ID, MIN_REGION_ID};
        match self {
            Want::Port => f.write_str("a port number (use 1-65535)"),
            Want::HostPort => {
                f.write_str("HOST:PORT (e.g. stun.example.net:3478 or [2001:db8::1]:3478)")
            }
            Want::InterfaceName => f.write_str(
                "an interface name (1-15 characters, no spaces or '/'; e.g. eth1, pppoe-wan)",
            ),
            Want::PortOrOff(off_means) => {
                write!(f, "a port number (use 1-65535, or -1 to {off_means})")
            }
            Want::RegionId => write!(
                f,
                "a region id (use {MIN_REGION_ID}-{MAX_REGION_ID}; 900-999 are for user-run relays)"
            ),
            Want::ListenAddr => {
                f.write_str("a listen address (use :PORT, IP:PORT or [IPv6]:PORT, e.g. :8443)")
            }
            Want::HostName => f.write_str(
                "a DNS name or IP address (use e.g. myhome.example.net or 203.0.113.10)",
            ),
            Want::IpAddr => f.write_str("an IP address"),
            Want::Ipv4 => f.write_str("an IPv4 address"),
            Want::Ipv6 => f.write_str("an IPv6 address"),
            Want::NodeKey => f.write_str(
                "a node key (use nodekey: and 64 hex digits, as --log-refused-keys prints them)",
            ),
            Want::ByteAmount => {
                f.write_str("a byte amount (use e.g. 200000, 200k, 1M or 512Ki; 0 = no limit)")
            }
            Want::ClientCount => write!(
                f,
                "a client count (use 1-{MAX_MAX_CLIENTS}, or 0 for no limit)"
            ),
            Want::ConnectionCount => {
                write!(f, "a connection count (use 1-{MAX_MAX_CLIENTS})")
            }
            Want::AcceptRate => {
                f.write_str("a rate (use connections per second, e.g. 10 or 0.5; 0 = no limit)")
            }
            Want::LogLevel => f.write_str("a log level (use error, warn, info, debug or trace)"),
            Want::CertMode => {
                f.write_str("supported (use self-signed or manual; tinyderp has no built-in ACME)")
            }
            Want::MeshPeer => f.write_str(
                "a relay (use host, host:port or host:port/dialhost, comma-separated)",
            ),
            Want::MeshPin => f.write_str(
                "a relay pin (use host=sha256-raw: and 64 hex digits, as `tinyderp derpmap` prints the pin)",
            ),
            Want::MeshPinPeer => {
                f.write_str("a relay listed in --mesh-with (pin the name as written there, without port)")
            }
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::{MAX_ACCEPT_RATE, MAX_TCP_DURATION, MIN_TCP_KEEPALIVE};
        match self {
            Bound::TcpDurationMax => {
                write!(f, "must be at most {}h", MAX_TCP_DURATION.as_secs() / 3600)
            }
            Bound::KeepaliveMin => write!(
                f,
                "must be at least {}s (or 0 to turn keep-alive off)",
                MIN_TCP_KEEPALIVE.as_secs()
            ),
            Bound::AcceptRateMax => {
                write!(f, "must be at most {MAX_ACCEPT_RATE} (or 0 for no limit)")
            }
            Bound::AcceptRateMin => {
                f.write_str("must be at least 0.001 connections per second (or 0 for no limit)")
            }
        }
    }
}

impl Rule {
    /// The rule's message for `flag`.
    fn describe(self, flag: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PAIR: &str = "(give both, or neither to use <certdir>/<hostname>.crt/.key)";
        match self {
            Rule::TlsCertNeedsKey => write!(f, "needs --tls-key too {PAIR}"),
            Rule::TlsKeyNeedsCert => write!(f, "needs --tls-cert too {PAIR}"),
            Rule::ManualModeOnly => write!(
                f,
                "only applies with --certmode manual (add it, or drop {flag})"
            ),
            Rule::SocketNeedsVerifyClients => write!(
                f,
                "only applies with --verify-clients (add it, or drop {flag})"
            ),
            Rule::CaNeedsHttpsUrl => f.write_str("only applies to an https:// --verify-client-url"),
            Rule::BurstNeedsRate => {
                f.write_str("needs --client-rate (the burst of an unlimited rate means nothing)")
            }
            Rule::RateConfigReplacesRate => {
                f.write_str("replaces --client-rate and --client-burst; give one or the other")
            }
            Rule::AcceptBurstNeedsRate => f.write_str("needs --accept-rate"),
            Rule::MeshNeedsKey => {
                f.write_str("needs --mesh-psk-file (the key every relay of the region shares)")
            }
        }
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Malformed(text) => write!(
                f,
                "{} is not a duration (use e.g. 2s, 10m, 1m30s, 500ms, or seconds)",
                Quoted(text)
            ),
            DurationError::Negative(text) => write!(f, "{} must not be negative", Quoted(text)),
        }
    }
}

impl std::error::Error for DurationError {}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Malformed(text) => write!(
                f,
                "{} is not an IP range (use e.g. 192.168.1.0/24, fd00::/8 or 192.168.1.10)",
                Quoted(text)
            ),
            CidrError::Mapped(text) => {
                write!(
                    f,
                    "{}: write IPv4 ranges as IPv4, e.g. 10.1.0.0/16",
                    Quoted(text)
                )
            }
            CidrError::PrefixLength { value, max } => {
                write!(f, "{}: prefix length must be 0-{max}", Quoted(value))
            }
        }
    }
}

impl std::error::Error for CidrError {}
