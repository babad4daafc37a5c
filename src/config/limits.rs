//! The uplink limit options (`--client-rate`, `--client-burst`, `--rate-config`,
//! `--total-rate`, `--max-clients`, `--accept-rate`, `--accept-burst`) and derper's
//! per-client rate file format.

use std::fmt;
use std::path::PathBuf;

use super::error::{Bound, ConfigError, Rule, Want};
use super::values::{given, not_a, parse_bytes_flag, parse_decimal};
use super::{ACCEPT_TOKENS_PER_CONN, MAX_ACCEPT_RATE, MAX_MAX_CLIENTS};
use crate::cli::Flags;
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
    // from_slice, not from_str: the same result (the text is UTF-8 already), and the one
    // deserializer instance every other JSON reader uses (from_str links a second, ~8 KB).
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(text.as_bytes())
            .map_err(|err| RateConfigError::NotJson(err.to_string()))?;
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
        *slot = value.as_u64().ok_or_else(|| RateConfigError::NotWhole {
            name: name.clone(),
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
fn parse_accept_rate(text: &str) -> Result<Option<u64>, ConfigError> {
    let bad = || not_a("--accept-rate", text, Want::AcceptRate);
    let lower = text.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "+inf" | "infinity" | "+infinity") {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let rate: f64 = text.parse().map_err(|_| bad())?;
    if !rate.is_finite() || rate > MAX_ACCEPT_RATE {
        return Err(ConfigError::OutOfRange {
            flag: "--accept-rate",
            bound: Bound::AcceptRateMax,
        });
    }
    if rate == 0.0 {
        return Ok(None);
    }
    let millis = (rate * ACCEPT_TOKENS_PER_CONN as f64).round() as u64;
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
