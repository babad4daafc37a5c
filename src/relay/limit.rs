//! Token buckets for the uplink limits: per-client receive rate, the server-wide cap on
//! relayed bytes, and the accept rate of the TLS listener.
//!
//! Pure and clock-free: the caller passes `now`. A bucket is kept as a generic cell-rate
//! algorithm (GCRA), so its whole state is one `Instant` (the "theoretical arrival time"
//! of the next token) instead of a token count that needs a refill timer. Reserving
//! tokens may put the bucket into debt: the caller is told how long to wait and sleeps,
//! which is how upstream's `rate.Limiter.WaitN` slows reading without dropping anything.

use std::time::{Duration, Instant};

/// Smallest burst of a byte bucket: one maximal frame payload (64 KiB packet + 32-byte
/// key), so any legal frame fits into a full bucket (upstream raises smaller bursts to it).
pub const MIN_BYTE_BURST: u64 = 65_568;

/// Nanoseconds per second, for converting token counts into time.
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A token bucket refilled at `rate` tokens per second, holding at most `burst` tokens.
/// It starts full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens added per second; never zero.
    rate: u64,
    /// Most tokens the bucket holds; never zero.
    burst: u64,
    /// When the bucket would be exactly empty if nothing more were taken; a time in the
    /// past (or `now`) means full.
    empty_at: Instant,
}

impl TokenBucket {
    /// A full bucket. A `rate` or `burst` of zero is raised to one.
    pub fn new(rate: u64, burst: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: rate.max(1),
            burst: burst.max(1),
            empty_at: now,
        }
    }

    /// Tokens per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Capacity in tokens.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Changes rate and burst, keeping the current debt (a reload does not refill).
    pub fn reconfigure(&mut self, rate: u64, burst: u64) {
        self.rate = rate.max(1);
        self.burst = burst.max(1);
    }

    /// Takes `tokens` (at most `burst`; more are clamped to it) whether or not they are
    /// there, and returns how long the caller must wait before using them: zero when
    /// the bucket had enough. Waiting callers queue up in the order they reserved.
    pub fn reserve(&mut self, tokens: u64, now: Instant) -> Duration {
        let (empty_at, wait) = self.plan(tokens, now);
        self.empty_at = empty_at;
        wait
    }

    /// Takes `tokens` only if they are there now; false (and nothing taken) otherwise.
    pub fn try_take(&mut self, tokens: u64, now: Instant) -> bool {
        let (empty_at, wait) = self.plan(tokens, now);
        if !wait.is_zero() {
            return false;
        }
        self.empty_at = empty_at;
        true
    }

    /// The new `empty_at` after taking `tokens`, and the wait until they are covered.
    fn plan(&self, tokens: u64, now: Instant) -> (Instant, Duration) {
        let tokens = tokens.min(self.burst);
        let start = self.empty_at.max(now);
        let empty_at = start.checked_add(self.time_for(tokens)).unwrap_or(start);
        // The bucket holds `burst` tokens' worth of time before `empty_at`.
        let wait = empty_at
            .saturating_duration_since(now)
            .saturating_sub(self.time_for(self.burst));
        (empty_at, wait)
    }

    /// How long the bucket takes to refill `tokens`.
    fn time_for(&self, tokens: u64) -> Duration {
        let nanos = u128::from(tokens)
            .saturating_mul(NANOS_PER_SEC)
            .checked_div(u128::from(self.rate))
            .unwrap_or(0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_full_then_paces_at_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000, 500, t0);
        assert_eq!(
            bucket.reserve(500, t0),
            Duration::ZERO,
            "full burst at once"
        );
        assert_eq!(
            bucket.reserve(100, t0),
            ms(100),
            "then 100 tokens need 100 ms"
        );
        assert_eq!(
            bucket.reserve(100, t0),
            ms(200),
            "and queue behind the first"
        );
        // 200 ms later both debts are paid and the bucket is empty.
        assert_eq!(bucket.reserve(1, t0 + ms(200)), ms(1));
    }

    #[test]
    fn refills_over_time_up_to_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000, 500, t0);
        assert_eq!(bucket.reserve(500, t0), Duration::ZERO);
        // 250 ms refill 250 tokens.
        assert!(bucket.try_take(250, t0 + ms(250)));
        assert!(!bucket.try_take(1, t0 + ms(250)));
        // After a long idle time it holds only `burst`.
        let later = t0 + Duration::from_secs(60);
        assert!(bucket.try_take(500, later));
        assert!(!bucket.try_take(1, later));
    }

    #[test]
    fn try_take_takes_nothing_on_failure() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, t0);
        assert!(bucket.try_take(1, t0));
        assert!(bucket.try_take(1, t0));
        assert!(bucket.try_take(1, t0));
        assert!(!bucket.try_take(1, t0));
        assert!(!bucket.try_take(1, t0 + ms(50)));
        assert!(bucket.try_take(1, t0 + ms(100)));
    }

    #[test]
    fn oversized_requests_are_clamped_to_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000, 100, t0);
        assert_eq!(bucket.reserve(u64::MAX, t0), Duration::ZERO);
        assert_eq!(bucket.reserve(u64::MAX, t0), ms(100));
    }

    #[test]
    fn long_run_average_matches_rate() {
        // 200 KB/s, burst at the floor, 16 KiB frames: after the burst the paced
        // time for N bytes is N / rate.
        let t0 = Instant::now();
        let rate = 200_000;
        let mut bucket = TokenBucket::new(rate, MIN_BYTE_BURST, t0);
        let mut now = t0;
        let mut sent = 0u64;
        while sent < 2_000_000 {
            let wait = bucket.reserve(16_416, now);
            now += wait;
            sent += 16_416;
        }
        let elapsed = now.duration_since(t0).as_secs_f64();
        let expected = (sent - MIN_BYTE_BURST) as f64 / rate as f64;
        assert!((elapsed - expected).abs() < 0.1, "{elapsed} vs {expected}");
    }

    #[test]
    fn zero_rate_or_burst_are_raised_and_huge_values_do_not_overflow() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0, 0, t0);
        assert_eq!((bucket.rate(), bucket.burst()), (1, 1));
        assert!(bucket.try_take(1, t0));
        assert_eq!(bucket.reserve(1, t0), Duration::from_secs(1));
        let mut fast = TokenBucket::new(u64::MAX, u64::MAX, t0);
        assert_eq!(fast.reserve(u64::MAX, t0), Duration::ZERO);
        let mut slow = TokenBucket::new(1, u64::MAX, t0);
        assert_eq!(slow.reserve(u64::MAX, t0), Duration::ZERO);
        let _ = slow.reserve(u64::MAX, t0);
    }

    #[test]
    fn reconfigure_keeps_debt() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000, 100, t0);
        assert_eq!(bucket.reserve(100, t0), Duration::ZERO);
        bucket.reconfigure(2000, 100);
        assert_eq!((bucket.rate(), bucket.burst()), (2000, 100));
        // The bucket stays empty until t0 + 100 ms; at the new rate 100 tokens take 50 ms
        // on top, less the new burst's 50 ms of credit.
        assert_eq!(bucket.reserve(100, t0), ms(100));
    }
}
