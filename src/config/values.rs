//! Parsers for single option values: numbers, ports, addresses, names, labels, log
//! levels, Go booleans, byte amounts and Go durations. Each takes the flag it parses, so
//! its [`ConfigError`] names the option.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use log::LevelFilter;

use super::error::{Bound, ConfigError, DurationError, Want};
use super::{MAX_DNS_LABEL_LEN, MAX_HOSTNAME_LEN, MAX_TCP_DURATION, PORT_OFF};

/// The flag's value, treating an empty string (an empty UCI option) as not given.
pub(super) fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// Parses a plain unsigned decimal (no sign, no spaces) that fits in `T`.
pub(super) fn parse_decimal<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `"VALUE" is not WANT` for `flag`.
pub(super) fn not_a(flag: &'static str, text: &str, want: Want) -> ConfigError {
    ConfigError::NotA {
        flag,
        value: String::from(text),
        want,
    }
}

/// Parses `:PORT`, `IP:PORT` or `[IPv6]:PORT`; `:PORT` means every interface, both
/// IPv4 and IPv6 (`[::]:PORT`). Port 0 binds a free port the kernel picks; the bound
/// address is logged at start (the tests read it from there).
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    const FLAG: &str = "--addr";
    let bad = || not_a(FLAG, text, Want::ListenAddr);
    let addr = match text.strip_prefix(':') {
        Some(port) => {
            let port: u16 = parse_decimal(port).ok_or_else(bad)?;
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
        }
        None => SocketAddr::from_str(text).map_err(|_| bad())?,
    };
    Ok(addr)
}

/// Parses a port 1-65535.
pub(super) fn parse_port(flag: &'static str, text: &str) -> Result<u16, ConfigError> {
    match parse_decimal::<u16>(text) {
        Some(port) if port != 0 => Ok(port),
        _ => Err(not_a(flag, text, Want::Port)),
    }
}

/// Parses the port of a listener: like [`parse_port_or_off`], and 0 for any free port
/// (the bound address is logged at start; tests use it instead of picking ports).
pub(super) fn parse_listen_port(
    flag: &'static str,
    text: &str,
    off_means: &'static str,
) -> Result<Option<u16>, ConfigError> {
    if text == "0" {
        return Ok(Some(0));
    }
    parse_port_or_off(flag, text, off_means)
}

/// Parses a port 1-65535, or `-1` for "off" (returned as `None`).
pub(super) fn parse_port_or_off(
    flag: &'static str,
    text: &str,
    off_means: &'static str,
) -> Result<Option<u16>, ConfigError> {
    if text == PORT_OFF {
        return Ok(None);
    }
    match parse_decimal::<u16>(text) {
        Some(port) if port != 0 => Ok(Some(port)),
        _ => Err(not_a(flag, text, Want::PortOrOff(off_means))),
    }
}

/// Longest Linux interface name (`IFNAMSIZ` less the terminating NUL).
const MAX_INTERFACE_NAME_LEN: usize = 15;

/// Accepts a Linux network interface name: 1-15 characters, no white space, `/` or `:`.
pub(super) fn check_interface_name(flag: &'static str, text: &str) -> Result<String, ConfigError> {
    let usable = !text.is_empty()
        && text.len() <= MAX_INTERFACE_NAME_LEN
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if usable {
        Ok(String::from(text))
    } else {
        Err(not_a(flag, text, Want::InterfaceName))
    }
}

/// Checks `HOST:PORT` (a DNS name or IPv4 address, or `[IPv6]`, and a port 1-65535);
/// the name is resolved when it is used.
pub(super) fn check_host_port(flag: &'static str, text: &str) -> Result<String, ConfigError> {
    let usable = text.rsplit_once(':').is_some_and(|(host, port)| {
        let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => {
                !host.is_empty()
                    && host.len() <= 253
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            }
        };
        host_ok && port.parse::<u16>().is_ok_and(|port| port != 0)
    });
    if usable {
        Ok(String::from(text))
    } else {
        Err(not_a(flag, text, Want::HostPort))
    }
}

/// Parses an IPv4 or IPv6 address.
pub(super) fn parse_ip(flag: &'static str, text: &str) -> Result<IpAddr, ConfigError> {
    IpAddr::from_str(text).map_err(|_| not_a(flag, text, Want::IpAddr))
}

/// Accepts an IP literal or a DNS name (letters, digits, `-`, `_`, dot-separated labels).
pub(super) fn check_hostname(flag: &'static str, text: &str) -> Result<String, ConfigError> {
    if IpAddr::from_str(text).is_ok() {
        return Ok(String::from(text));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(ConfigError::Spaces {
            flag,
            value: String::from(text),
        });
    }
    if text.len() > MAX_HOSTNAME_LEN {
        return Err(ConfigError::TooLong {
            flag,
            max: MAX_HOSTNAME_LEN,
            what: "name ",
        });
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_DNS_LABEL_LEN
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !text.split('.').all(label_ok) {
        return Err(not_a(flag, text, Want::HostName));
    }
    Ok(String::from(text))
}

/// Checks a short display string: non-empty, at most `max_len` bytes, no control
/// characters, and (for codes and names that appear in commands) optionally no spaces.
pub(super) fn check_label(
    flag: &'static str,
    text: &str,
    max_len: usize,
    spaces_allowed: bool,
) -> Result<String, ConfigError> {
    if text.is_empty() {
        return Err(ConfigError::Empty { flag, hint: "" });
    }
    if text.len() > max_len {
        return Err(ConfigError::TooLong {
            flag,
            max: max_len,
            what: "",
        });
    }
    if text.chars().any(char::is_control) {
        return Err(ConfigError::ControlChars { flag });
    }
    if !spaces_allowed && text.chars().any(char::is_whitespace) {
        return Err(ConfigError::Spaces {
            flag,
            value: String::from(text),
        });
    }
    Ok(String::from(text))
}

/// Validates each entry of a repeatable flag and refuses more than `max` entries.
pub(super) fn bounded_list<T>(
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
        return Err(ConfigError::TooMany {
            flag,
            given: values.len(),
            max,
        });
    }
    values.into_iter().map(parse).collect()
}

/// Parses `--log-level` (case-insensitive; `warning` and `off` too).
pub(super) fn parse_log_level(text: &str) -> Result<LevelFilter, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "off" => Ok(LevelFilter::Off),
        "error" => Ok(LevelFilter::Error),
        "warn" | "warning" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        _ => Err(not_a("--log-level", text, Want::LogLevel)),
    }
}

/// Go's `strconv.ParseBool` spellings of true.
pub(super) const GO_TRUE: &[&str] = &["1", "t", "T", "true", "TRUE", "True"];
/// Go's `strconv.ParseBool` spellings of false.
pub(super) const GO_FALSE: &[&str] = &["0", "f", "F", "false", "FALSE", "False"];

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    if GO_TRUE.contains(&text) {
        Some(true)
    } else if GO_FALSE.contains(&text) {
        Some(false)
    } else {
        None
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

/// Parses a byte amount: a whole number with an optional suffix `k`/`K` (1000), `M`,
/// `G`, `Ki` (1024), `Mi` or `Gi`.
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

/// A byte-amount flag, `None` when not given.
pub(super) fn parse_bytes_flag(
    flag: &'static str,
    value: &Option<String>,
) -> Result<Option<u64>, ConfigError> {
    match given(value) {
        None => Ok(None),
        Some(text) => parse_bytes(text)
            .map(Some)
            .ok_or_else(|| not_a(flag, text, Want::ByteAmount)),
    }
}

/// Parses a TCP timing flag; `0` turns the feature off (`None`).
pub(super) fn parse_tcp_duration(
    flag: &'static str,
    value: &Option<String>,
    default: Duration,
) -> Result<Option<Duration>, ConfigError> {
    let duration = match given(value) {
        None => default,
        Some(text) => {
            parse_go_duration(text).map_err(|error| ConfigError::Duration { flag, error })?
        }
    };
    if duration > MAX_TCP_DURATION {
        return Err(ConfigError::OutOfRange {
            flag,
            bound: Bound::TcpDurationMax,
        });
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
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError::Malformed(String::from(text));
    if text.starts_with('-') {
        return Err(DurationError::Negative(String::from(text)));
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
    fn listen_addresses() {
        let table: &[(&str, &str)] = &[
            (":8443", "[::]:8443"),
            ("192.168.1.1:443", "192.168.1.1:443"),
            ("[::1]:9000", "[::1]:9000"),
            ("0.0.0.0:8443", "0.0.0.0:8443"),
            ("127.0.0.1:0", "127.0.0.1:0"),
        ];
        for (text, expected) in table {
            assert_eq!(parse_listen_addr(text).unwrap().to_string(), *expected);
        }
        for text in [
            "8443",
            ":",
            ":https",
            "::1:80",
            "localhost:8443",
            ":70000",
            ":-1",
        ] {
            let err = parse_listen_addr(text).unwrap_err();
            assert_eq!(err.flag(), "--addr", "{text}");
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
}
