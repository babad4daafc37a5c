//! A rate limit for per-connection log lines: one line per failed handshake or refused
//! client is useful, a flood of them from a scanner fills the router's small log ring.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines allowed per window before further lines are only counted.
const LINES_PER_WINDOW: u32 = 20;
/// Length of the window.
const WINDOW: Duration = Duration::from_secs(10);

/// Counts lines per window and reports how many were suppressed when the window rolls.
pub struct RateLimitedLog {
    state: Mutex<WindowState>,
}

struct WindowState {
    started: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimitedLog {
    /// A limiter with an empty window.
    pub fn new() -> RateLimitedLog {
        RateLimitedLog {
            state: Mutex::new(WindowState {
                started: None,
                written: 0,
                suppressed: 0,
            }),
        }
    }

    /// Logs `message` at `level` unless the window's budget is spent.
    pub fn log(&self, level: log::Level, message: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let expired = state
            .started
            .is_none_or(|start| now.duration_since(start) >= WINDOW);
        if expired {
            if state.suppressed > 0 {
                log::log!(
                    level,
                    "({} similar lines suppressed in the last {}s)",
                    state.suppressed,
                    WINDOW.as_secs()
                );
            }
            state.started = Some(now);
            state.written = 0;
            state.suppressed = 0;
        }
        if state.written < LINES_PER_WINDOW {
            state.written = state.written.saturating_add(1);
            log::log!(level, "{message}");
        } else {
            state.suppressed = state.suppressed.saturating_add(1);
        }
    }
}
