//! Counters owned by the I/O edge (TLS, HTTP, handshakes, STUN), rendered next to the
//! relay's own counters on `/debug/varz` in Prometheus text format.

use std::fmt::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::logging::RateLimitedLog;

/// Distinct labels a labelled counter keeps; labels are static strings from our own code,
/// so this is a guard against a programming slip, not against input.
const MAX_LABELS: usize = 64;

/// A counter split by a static label, in a fixed-capacity table (no allocation, a
/// known upper bound on memory).
#[derive(Default, Debug)]
pub(crate) struct Labelled {
    counts: heapless::LinearMap<&'static str, u64, MAX_LABELS>,
    /// Increments refused because the label table was full.
    pub overflow: u64,
}

impl Labelled {
    /// Adds one under `label`.
    pub fn bump(&mut self, label: &'static str) {
        if let Some(count) = self.counts.get_mut(&label) {
            *count = count.saturating_add(1);
        } else if self.counts.insert(label, 1).is_err() {
            self.overflow = self.overflow.saturating_add(1);
        }
    }

    /// Current value for `label`.
    #[cfg(test)]
    pub fn get(&self, label: &str) -> u64 {
        self.counts
            .iter()
            .find(|(name, _)| **name == label)
            .map_or(0, |(_, count)| *count)
    }

    fn render(&self, out: &mut String, name: &str, label_name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let mut rows: Vec<_> = self.counts.iter().collect();
        rows.sort();
        for (label, count) in rows {
            let _ = writeln!(out, "{name}{{{label_name}=\"{label}\"}} {count}");
        }
    }
}

/// The I/O edge's counters.
#[derive(Default, Debug)]
pub(crate) struct NetMetrics {
    /// TCP connections accepted on any listener.
    pub tcp_accepts: u64,
    /// accept() failures (e.g. EMFILE), each followed by a short pause.
    pub accept_errors: u64,
    /// TLS handshakes that completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out, by reason.
    pub tls_failures: Labelled,
    /// HTTP requests by route.
    pub http_requests: Labelled,
    /// DERP logins that failed, by reason.
    pub derp_handshake_failures: Labelled,
    /// STUN datagrams by disposition (success, not_stun, …).
    pub stun_requests: Labelled,
    /// Answered STUN requests by address family.
    pub stun_family: Labelled,
    /// Clients admitted, by how (open, allowlist, checked, fail_open).
    pub admission_allowed: Labelled,
    /// Clients closed right after the handshake, by reason (admission or max_clients).
    pub admission_refused: Labelled,
    /// TLS connections closed at once because the accept rate was exceeded.
    pub accept_rate_limited: u64,
    /// Frames whose read waited for the per-client rate.
    pub client_rate_waits: u64,
    /// Frames whose read waited for the server-wide rate cap.
    pub total_rate_waits: u64,
}

impl NetMetrics {
    /// Appends these counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let plain = [
            (
                "tinyderp_tcp_accepts_total",
                "TCP connections accepted",
                self.tcp_accepts,
            ),
            (
                "tinyderp_accept_errors_total",
                "accept() failures such as EMFILE",
                self.accept_errors,
            ),
            (
                "tinyderp_tls_handshakes_total",
                "TLS handshakes completed",
                self.tls_handshakes,
            ),
            (
                "tinyderp_accept_rate_limited_total",
                "TLS connections closed at once by --accept-rate",
                self.accept_rate_limited,
            ),
            (
                "tinyderp_client_rate_waits_total",
                "frame reads delayed by the per-client rate",
                self.client_rate_waits,
            ),
            (
                "tinyderp_total_rate_waits_total",
                "frame reads delayed by --total-rate",
                self.total_rate_waits,
            ),
        ];
        for (name, help, value) in plain {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        self.tls_failures.render(
            out,
            "tinyderp_tls_handshake_failures_total",
            "reason",
            "TLS handshakes that failed",
        );
        self.http_requests.render(
            out,
            "tinyderp_http_requests_total",
            "route",
            "HTTP requests by route",
        );
        self.derp_handshake_failures.render(
            out,
            "tinyderp_derp_handshake_failures_total",
            "reason",
            "DERP logins refused or failed, by reason",
        );
        self.stun_requests.render(
            out,
            "tinyderp_stun_requests_total",
            "disposition",
            "STUN datagrams by disposition",
        );
        self.stun_family.render(
            out,
            "tinyderp_stun_responses_total",
            "family",
            "STUN answers by address family",
        );
        self.admission_allowed.render(
            out,
            "tinyderp_clients_admitted_total",
            "how",
            "clients admitted, by the check that let them in",
        );
        self.admission_refused.render(
            out,
            "tinyderp_clients_refused_total",
            "reason",
            "clients closed after the handshake by admission or --max-clients",
        );
    }
}

/// What every task reports through: the I/O counters, the rate-limited log for
/// per-connection failures, and the start time (uptime).
pub(crate) struct Telemetry {
    /// Counters owned by the I/O edge.
    metrics: Mutex<NetMetrics>,
    /// Rate-limited log for per-connection failures.
    pub conn_log: RateLimitedLog,
    /// Start time, for uptime.
    pub started: Instant,
}

impl Telemetry {
    /// Zero counters, an empty log window, started now.
    pub fn new() -> Telemetry {
        Telemetry {
            metrics: Mutex::new(NetMetrics::default()),
            conn_log: RateLimitedLog::new(),
            started: Instant::now(),
        }
    }

    /// Locks the I/O counters.
    pub fn metrics(&self) -> MutexGuard<'_, NetMetrics> {
        self.metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_counts_and_renders() {
        let mut metrics = NetMetrics::default();
        metrics.stun_requests.bump("success");
        metrics.stun_requests.bump("success");
        metrics.stun_requests.bump("not_stun");
        assert_eq!(metrics.stun_requests.get("success"), 2);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("tinyderp_stun_requests_total{disposition=\"success\"} 2\n"));
        assert!(out.contains("tinyderp_stun_requests_total{disposition=\"not_stun\"} 1\n"));
        assert!(out.contains("tinyderp_tcp_accepts_total 0\n"));
    }

    #[test]
    fn label_table_is_bounded() {
        let mut counter = Labelled::default();
        let labels: Vec<&'static str> = (0..MAX_LABELS + 5)
            .map(|i| &*Box::leak(format!("l{i}").into_boxed_str()))
            .collect();
        for label in labels {
            counter.bump(label);
        }
        assert_eq!(counter.overflow, 5);
    }
}
