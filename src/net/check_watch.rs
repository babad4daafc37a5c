//! The running server watches its own reachability: it runs the checks of
//! `tinyderp check` shortly after start, on a timer, and when the WAN addresses change;
//! logs one line per step whose result changed; and keeps the last report for the status
//! page and the metrics.
//!
//! The last report lives in a process-wide slot: a process runs one server.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::check::{Report, Status};
use crate::config::Config;

/// Wait after start before the first check, so the listeners are up.
const FIRST_CHECK_DELAY: Duration = Duration::from_secs(3);
/// Time between two checks when nothing changes.
const CHECK_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How often the WAN addresses are read to notice a new address early.
const WAN_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// The last report and when it was made.
struct Last {
    report: Report,
    at: SystemTime,
}

static LAST: Mutex<Option<Last>> = Mutex::new(None);

fn last() -> std::sync::MutexGuard<'static, Option<Last>> {
    LAST.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the public name can be on the internet at all: not for `--dev`, a loopback
/// address, or names RFC 6761 keeps off the internet (localhost, .localhost, .example,
/// .invalid), which is also what keeps the watch quiet in the loopback tests.
pub fn worth_watching(config: &Config) -> bool {
    let name = config
        .derp_map
        .hostname
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let never_public = name == "localhost"
        || [".localhost", ".example", ".invalid"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    !config.dev && !never_public
}

/// The watch task: runs until the server drops it.
pub async fn watch(config: Config) {
    if !worth_watching(&config) {
        log::info!(
            "check: {} is not a public name, reachability watch off",
            config.derp_map.hostname
        );
        return;
    }
    smol::Timer::after(FIRST_CHECK_DELAY).await;
    let mut wan = wan_addresses(&config);
    loop {
        let report = super::check_probe::check(&config).await;
        record(report, SystemTime::now());
        let mut waited = Duration::ZERO;
        while waited < CHECK_INTERVAL {
            smol::Timer::after(WAN_POLL_INTERVAL).await;
            waited = waited.saturating_add(WAN_POLL_INTERVAL);
            let now = wan_addresses(&config);
            if now != wan {
                log::info!(
                    "check: WAN addresses changed ({} -> {}), checking again",
                    join(&wan),
                    join(&now)
                );
                wan = now;
                break;
            }
        }
    }
}

fn join(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        return "none".into();
    }
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn wan_addresses(config: &Config) -> Vec<IpAddr> {
    let view = super::check_probe::wan_view(config.wan_interface.as_deref());
    let mut ips: Vec<IpAddr> = view.v4.into_iter().map(IpAddr::V4).collect();
    ips.extend(view.v6.into_iter().map(IpAddr::V6));
    ips
}

/// Logs the steps that changed and keeps the report.
fn record(report: Report, at: SystemTime) {
    let mut slot = last();
    for line in report.changes_since(slot.as_ref().map(|last| &last.report)) {
        if line.contains(": FAIL ") {
            log::warn!("{line}");
        } else {
            log::info!("{line}");
        }
    }
    *slot = Some(Last { report, at });
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time (days to civil date, proleptic Gregorian).
fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// HTML for the status page: the overall result and its time for everyone, each step's
/// detail (it names addresses) only for those allowed to see metrics.
pub fn status_html(detailed: bool) -> String {
    let slot = last();
    let Some(last) = slot.as_ref() else {
        return "<h2>Reachability check</h2>\n<p>Not run yet.</p>\n".into();
    };
    let mut html = format!(
        "<h2>Reachability check</h2>\n<p>{} at {} (<code>tinyderp check</code> for details)</p>\n",
        last.report.overall().word(),
        utc(unix_secs(last.at))
    );
    if detailed {
        html.push_str("<pre>");
        html.push_str(&crate::proto::http::escape_html(&last.report.render_text()));
        html.push_str("</pre>\n");
    }
    html
}

fn status_value(status: Status) -> i32 {
    match status {
        Status::Skip => -1,
        Status::Ok => 0,
        Status::Warn => 1,
        Status::Fail => 2,
    }
}

/// Prometheus text: each step's status, the overall status and the time of the check.
pub fn render_metrics(out: &mut String) {
    let slot = last();
    let Some(last) = slot.as_ref() else { return };
    let _ = writeln!(
        out,
        "# HELP tinyderp_check_status Last reachability check per step: -1 skipped, 0 ok, 1 warn, 2 fail.\n\
         # TYPE tinyderp_check_status gauge"
    );
    for step in &last.report.steps {
        let _ = writeln!(
            out,
            "tinyderp_check_status{{step=\"{}\"}} {}",
            step.step,
            status_value(step.status)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tinyderp_check_exit_code Exit status tinyderp check would give: 0 ok, 1 warn, 2 fail.\n\
         # TYPE tinyderp_check_exit_code gauge\ntinyderp_check_exit_code {}\n\
         # HELP tinyderp_check_timestamp_seconds Unix time of the last reachability check.\n\
         # TYPE tinyderp_check_timestamp_seconds gauge\ntinyderp_check_timestamp_seconds {}",
        last.report.exit_code(),
        unix_secs(last.at)
    );
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_950_000), "2026-11-29 11:00:00 UTC");
    }
}
