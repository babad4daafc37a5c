//! Applying the uplink limits to live connections: the per-client receive rate (which
//! `--rate-config` can change on SIGHUP, for connected clients too) and the server-wide
//! cap, both enforced by delaying the read of the next frame, so a fast sender meets
//! TCP back-pressure instead of losing packets (docs/protocol.md §3.10).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::{parse_rate_config, ByteRate, Limits, MAX_RATE_CONFIG_LEN};
use crate::relay::{TokenBucket, MIN_BYTE_BURST};

use super::metrics::Telemetry;

/// The uplink limits every DERP connection task reads through: the per-client rate in
/// force and the server-wide cap.
pub(crate) struct Pacing {
    /// The per-client receive rate in force (from the flags or `--rate-config`).
    pub client_rate: ClientRate,
    /// The server-wide cap on bytes read from DERP connections, if configured.
    pub total_bucket: Option<Mutex<TokenBucket>>,
}

impl Pacing {
    /// The limits of `limits`, with the per-client rate read from `--rate-config` when set.
    pub fn new(limits: &Limits) -> Result<Pacing, RateConfigError> {
        let client_rate = match &limits.rate_config {
            Some(path) => load_rate_config(path)?,
            None => limits.client_rate,
        };
        let total_bucket = limits.total_rate.map(|rate| {
            Mutex::new(TokenBucket::new(
                rate.bytes_per_sec,
                rate.burst,
                Instant::now(),
            ))
        });
        Ok(Pacing {
            client_rate: ClientRate::new(client_rate),
            total_bucket,
        })
    }
}

/// Why a `--rate-config` file could not be used.
#[derive(Debug)]
pub enum RateConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        err: std::io::Error,
    },
    /// The file's content is not a valid rate config.
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (from the config parser).
        reason: crate::config::RateConfigError,
    },
}

impl RateConfigError {
    /// Short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RateConfigError::Read { .. } => "read",
            RateConfigError::Parse { .. } => "parse",
        }
    }
}

impl fmt::Display for RateConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateConfigError::Read { path, err } => {
                write!(f, "cannot read {}: {err}", path.display())
            }
            RateConfigError::Parse { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for RateConfigError {}

/// The per-client rate currently in force, shared by every connection task and replaced
/// on SIGHUP. A mutex rather than atomics: rate and burst change together, and 32-bit
/// routers have no 64-bit atomics.
#[derive(Debug, Default)]
pub(crate) struct ClientRate {
    current: Mutex<Option<ByteRate>>,
    /// A rate is set: read without the lock on every frame, so a server without a
    /// per-client limit takes no lock per packet.
    on: AtomicBool,
}

impl ClientRate {
    /// A setting holding `rate` (`None` = no limit).
    pub fn new(rate: Option<ByteRate>) -> ClientRate {
        let setting = ClientRate::default();
        setting.set(rate);
        setting
    }

    /// Replaces the setting; connections pick it up before their next frame.
    pub fn set(&self, rate: Option<ByteRate>) {
        let rate = rate.filter(|r| r.bytes_per_sec > 0);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *current = rate;
        self.on.store(rate.is_some(), Ordering::Release);
    }

    /// The current setting.
    pub fn get(&self) -> Option<ByteRate> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        let current = *self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.map(|r| ByteRate {
            bytes_per_sec: r.bytes_per_sec,
            burst: r.burst.max(MIN_BYTE_BURST),
        })
    }
}

/// One connection's pacing state.
pub(crate) struct ReadLimiter {
    /// Mesh peers are exempt from the per-client rate (not from the server cap).
    exempt: bool,
    /// This connection's bucket, created when a rate is first in force.
    own: Option<TokenBucket>,
}

impl ReadLimiter {
    /// A limiter for a new connection.
    pub fn new(is_mesh: bool) -> ReadLimiter {
        ReadLimiter {
            exempt: is_mesh,
            own: None,
        }
    }

    /// Waits until a frame with `payload_len` bytes may be read: first this client's own
    /// rate, then the server-wide cap. At most one frame's worth (65568 bytes) is
    /// charged per frame, as upstream.
    pub async fn before_frame(&mut self, pacing: &Pacing, telemetry: &Telemetry, payload_len: u32) {
        let cost = u64::from(payload_len).min(MIN_BYTE_BURST);
        if cost == 0 {
            return;
        }
        if !self.exempt {
            match pacing.client_rate.get() {
                None => self.own = None,
                Some(rate) => {
                    let now = Instant::now();
                    let bucket = self.own.get_or_insert_with(|| {
                        TokenBucket::new(rate.bytes_per_sec, rate.burst, now)
                    });
                    if bucket.rate() != rate.bytes_per_sec || bucket.burst() != rate.burst {
                        bucket.reconfigure(rate.bytes_per_sec, rate.burst);
                    }
                    let wait = bucket.reserve(cost, now);
                    if !wait.is_zero() {
                        {
                            let mut metrics = telemetry.metrics();
                            metrics.client_rate_waits = metrics.client_rate_waits.saturating_add(1);
                        }
                        smol::Timer::after(wait).await;
                    }
                }
            }
        }
        if let Some(total) = &pacing.total_bucket {
            let wait = total
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .reserve(cost, Instant::now());
            if !wait.is_zero() {
                {
                    let mut metrics = telemetry.metrics();
                    metrics.total_rate_waits = metrics.total_rate_waits.saturating_add(1);
                }
                smol::Timer::after(wait).await;
            }
        }
    }
}

/// Reads and parses a `--rate-config` file.
pub(crate) fn load_rate_config(path: &Path) -> Result<Option<ByteRate>, RateConfigError> {
    use std::io::Read;
    let read_error = |err| RateConfigError::Read {
        path: path.to_path_buf(),
        err,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_RATE_CONFIG_LEN)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    parse_rate_config(&text).map_err(|reason| RateConfigError::Parse {
        path: path.to_path_buf(),
        reason,
    })
}

/// The log line for the per-client rate in force (upstream's wording, plus "off").
pub(crate) fn describe_client_rate(rate: Option<ByteRate>) -> String {
    match rate {
        Some(rate) => format!(
            "rate config applied: client-rate={} bytes/sec, client-burst={} bytes",
            rate.bytes_per_sec, rate.burst
        ),
        None => String::from("rate config applied: no per-client rate limit"),
    }
}

/// SIGHUP: re-reads `--rate-config` from `path`; a bad file keeps the old setting.
pub(crate) fn reload_rate_config(pacing: &Pacing, path: &Path) {
    match load_rate_config(path) {
        Ok(rate) => {
            pacing.client_rate.set(rate);
            log::info!("SIGHUP: {}", describe_client_rate(rate));
        }
        Err(err) => log::error!("SIGHUP: rate config not reloaded, keeping the old one: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_rate_setting_round_trips_and_off_is_none() {
        let setting = ClientRate::new(None);
        assert_eq!(setting.get(), None);
        let rate = ByteRate {
            bytes_per_sec: 200_000,
            burst: 100_000,
        };
        setting.set(Some(rate));
        assert_eq!(setting.get(), Some(rate));
        setting.set(None);
        assert_eq!(setting.get(), None);
    }

    #[test]
    fn rate_config_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rate.json");
        let missing = load_rate_config(&path).unwrap_err();
        assert_eq!(missing.label(), "read");
        let missing = missing.to_string();
        assert!(
            missing.starts_with("cannot read ") && missing.contains("rate.json"),
            "{missing}"
        );
        std::fs::write(&path, "[1]").unwrap();
        let bad = load_rate_config(&path).unwrap_err();
        assert_eq!(bad.label(), "parse");
        let bad = bad.to_string();
        assert!(bad.contains("rate.json: not a JSON object"), "{bad}");
        std::fs::write(&path, r#"{"PerClientRateLimitBytesPerSec": 5000}"#).unwrap();
        assert_eq!(
            load_rate_config(&path).unwrap(),
            Some(ByteRate {
                bytes_per_sec: 5000,
                burst: MIN_BYTE_BURST
            })
        );
        assert_eq!(
            describe_client_rate(load_rate_config(&path).unwrap()),
            "rate config applied: client-rate=5000 bytes/sec, client-burst=65568 bytes"
        );
        // A huge file is cut at the read limit and so fails to parse instead of eating memory.
        std::fs::write(&path, " ".repeat(2 * MAX_RATE_CONFIG_LEN as usize) + "{}").unwrap();
        assert!(load_rate_config(&path).is_err());
    }
}
