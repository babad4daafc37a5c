//! The uplink limit options (`--client-rate`, `--client-burst`, `--rate-config`,
//! `--total-rate`, `--max-clients`, `--accept-rate`, `--accept-burst`) and derper's
//! per-client rate file format.

use std::fmt;
use std::path::PathBuf;

use super::error::{Bound, ConfigError, Rule, Want};
use super::values::{given, not_a, parse_bytes_flag, parse_decimal};
use super::{ACCEPT_TOKENS_PER_CONN, MAX_ACCEPT_RATE, MAX_MAX_CLIENTS};
use crate::cli::Flags;
use crate::proto::json;
use crate::relay::MIN_BYTE_BURST;

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

/// Uplink limits. `None` everywhere means unlimited.
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

/// Why a `--rate-config` file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateConfigError {
    /// Not a JSON object; the parser's message.
    NotJson(String),
    /// A known field that is not a whole number of bytes.
    NotWhole {
        /// The field name as written.
        name: String,
        /// The value as written.
        value: String,
    },
}

impl fmt::Display for RateConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateConfigError::NotJson(err) => write!(f, "not a JSON object: {err}"),
            RateConfigError::NotWhole { name, value } => {
                write!(f, "{name} must be a whole number of bytes, not {value}")
            }
        }
    }
}

impl std::error::Error for RateConfigError {}

/// Parses derper's `--rate-config` JSON: `{"PerClientRateLimitBytesPerSec": N,
/// "PerClientRateBurstBytes": N}`, both optional (keys matched case-insensitively, as
/// Go does). Rate 0 or absent means no limit; the burst is raised to [`MIN_BYTE_BURST`].
pub fn parse_rate_config(text: &str) -> Result<Option<ByteRate>, RateConfigError> {
    let object = json::parse_object(text.as_bytes())
        .map_err(|err| RateConfigError::NotJson(err.to_string()))?;
    let mut rate = 0u64;
    let mut burst = 0u64;
    // In name order, one value per name (the last), as the serde_json map this replaced.
    for (name, value) in object.sorted() {
        let slot = if name.eq_ignore_ascii_case("PerClientRateLimitBytesPerSec") {
            &mut rate
        } else if name.eq_ignore_ascii_case("PerClientRateBurstBytes") {
            &mut burst
        } else {
            continue;
        };
        *slot = value.as_u64().ok_or_else(|| RateConfigError::NotWhole {
            name: name.to_owned(),
            value: value.to_string(),
        })?;
    }
    Ok((rate > 0).then(|| ByteRate {
        bytes_per_sec: rate,
        burst: burst.max(MIN_BYTE_BURST),
    }))
}

/// Uplink limit flags.
pub(super) fn parse_limits(flags: &Flags) -> Result<Limits, ConfigError> {
    let client_rate = parse_bytes_flag("--client-rate", &flags.client_rate)?;
    let client_burst = parse_bytes_flag("--client-burst", &flags.client_burst)?;
    let rate_config = given(&flags.rate_config).map(PathBuf::from);
    if rate_config.is_some() && (client_rate.is_some() || client_burst.is_some()) {
        return Err(ConfigError::Combination {
            flag: "--rate-config",
            rule: Rule::RateConfigReplacesRate,
        });
    }
    let client_rate = match (client_rate, client_burst) {
        (Some(rate), burst) if rate > 0 => Some(ByteRate {
            bytes_per_sec: rate,
            burst: burst.unwrap_or(0).max(MIN_BYTE_BURST),
        }),
        (_, Some(burst)) if burst > 0 => {
            return Err(ConfigError::Combination {
                flag: "--client-burst",
                rule: Rule::BurstNeedsRate,
            })
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
            _ => return Err(not_a("--max-clients", text, Want::ClientCount)),
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
            _ => return Err(not_a("--accept-burst", text, Want::ConnectionCount)),
        },
    };
    let accept = match (accept_millis, accept_burst) {
        (Some(millis), burst) => Some(AcceptRate {
            millis_per_sec: millis,
            burst: burst.unwrap_or_else(|| millis.div_ceil(ACCEPT_TOKENS_PER_CONN).max(1)),
        }),
        (None, Some(_)) if given(&flags.accept_rate).is_none() => {
            return Err(ConfigError::Combination {
                flag: "--accept-burst",
                rule: Rule::AcceptBurstNeedsRate,
            })
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
///
/// Read as an exact decimal, rounded half up to thousandths (what `(rate * 1000).round()`
/// on the parsed `f64` gives): a float parser would link about 17 KB of tables and code
/// into the router binary for this one option.
fn parse_accept_rate(text: &str) -> Result<Option<u64>, ConfigError> {
    let bad = || not_a("--accept-rate", text, Want::AcceptRate);
    let lower = text.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "+inf" | "infinity" | "+infinity") {
        return Ok(None);
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || (whole.is_empty() && fraction.is_empty()) {
        return Err(bad());
    }
    let too_high = || ConfigError::OutOfRange {
        flag: "--accept-rate",
        bound: Bound::AcceptRateMax,
    };
    // Whole connections per second; more than seven significant digits is above the maximum.
    let whole = whole.trim_start_matches('0');
    if whole.len() > 7 {
        return Err(too_high());
    }
    let whole: u64 = whole.bytes().fold(0, |n, b| n * 10 + u64::from(b - b'0'));
    let fraction_nonzero = fraction.bytes().any(|b| b != b'0');
    if whole > MAX_ACCEPT_RATE || (whole == MAX_ACCEPT_RATE && fraction_nonzero) {
        return Err(too_high());
    }
    if whole == 0 && !fraction_nonzero {
        return Ok(None);
    }
    let mut fraction = fraction.bytes().map(|b| u64::from(b - b'0'));
    let thousandths = fraction.by_ref().chain([0, 0, 0]).take(3);
    let thousandths = thousandths.fold(0, |n, d| n * 10 + d);
    let round_up = fraction.next().is_some_and(|d| d >= 5);
    let millis = whole * ACCEPT_TOKENS_PER_CONN + thousandths + u64::from(round_up);
    if millis == 0 {
        return Err(ConfigError::OutOfRange {
            flag: "--accept-rate",
            bound: Bound::AcceptRateMin,
        });
    }
    Ok(Some(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float reading `--accept-rate` used to have, to check the exact one against.
    fn accept_rate_by_float(text: &str) -> Result<Option<u64>, ()> {
        if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(());
        }
        let rate: f64 = text.parse().map_err(|_| ())?;
        if rate > 1_000_000.0 {
            return Err(());
        }
        if rate == 0.0 {
            return Ok(None);
        }
        match (rate * ACCEPT_TOKENS_PER_CONN as f64).round() as u64 {
            0 => Err(()),
            millis => Ok(Some(millis)),
        }
    }

    #[test]
    fn accept_rate_reads_like_the_float_parse() {
        let cases = [
            "0",
            "0.0",
            "00",
            ".5",
            "5.",
            "0.5",
            "0.25",
            "1",
            "1.5",
            "2.0004",
            "2.0006",
            "0.001",
            "0.0004",
            "0.0006",
            "0.00099",
            "0.000000001",
            "12.3456",
            "999999.9994",
            "999999.9996",
            "1000000",
            "1000000.0",
            "1000000.1",
            "1000001",
            "00000001000000",
            "123456789",
            "3.14159265358979323846",
            ".",
            "",
            "1.2.3",
            "-1",
            "+1",
            "1e3",
            "0x10",
            " 1",
            "1,5",
            "nan",
        ];
        for text in cases {
            let ours = parse_accept_rate(text).map_err(|_| ());
            assert_eq!(ours, accept_rate_by_float(text), "--accept-rate {text}");
        }
        assert_eq!(parse_accept_rate("+Inf").ok(), Some(None));
        assert!(matches!(
            parse_accept_rate("1000000.5"),
            Err(ConfigError::OutOfRange {
                bound: Bound::AcceptRateMax,
                ..
            })
        ));
        assert!(matches!(
            parse_accept_rate("0.0001"),
            Err(ConfigError::OutOfRange {
                bound: Bound::AcceptRateMin,
                ..
            })
        ));
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
}
