//! Latency samples and their percentiles, with a hard cap on how many are kept.

/// Most latency samples one run keeps; later ones are counted as dropped.
pub const MAX_LATENCY_SAMPLES: usize = 1 << 20;

/// Round-trip times in nanoseconds, bounded by [`MAX_LATENCY_SAMPLES`].
#[derive(Debug, Default)]
pub struct Latencies {
    samples: Vec<u64>,
    /// Samples not kept because the cap was reached.
    pub dropped: u64,
}

/// Percentiles of a run, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// How many samples were measured.
    pub count: usize,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl Latencies {
    /// Records one sample, or counts it as dropped when full.
    pub fn push(&mut self, nanos: u64) {
        if self.samples.len() < MAX_LATENCY_SAMPLES {
            self.samples.push(nanos);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Nearest-rank percentiles of the kept samples.
    pub fn summary(&self) -> LatencySummary {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let micros = |nanos: u64| nanos as f64 / 1000.0;
        LatencySummary {
            count: sorted.len(),
            p50_us: micros(percentile(&sorted, 50.0)),
            p90_us: micros(percentile(&sorted, 90.0)),
            p99_us: micros(percentile(&sorted, 99.0)),
            max_us: micros(sorted.last().copied().unwrap_or(0)),
        }
    }
}

/// Nearest-rank percentile `p` (0 < p <= 100) of an ascending slice; 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_table() {
        let values: Vec<u64> = (1..=100).collect();
        for (p, want) in [(50.0, 50), (90.0, 90), (99.0, 99), (100.0, 100), (0.5, 1)] {
            assert_eq!(percentile(&values, p), want, "p{p}");
        }
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 99.0), 0);
        // Ten samples: p99 is the largest, p50 the fifth.
        let ten: Vec<u64> = (10..=100).step_by(10).collect();
        assert_eq!(percentile(&ten, 99.0), 100);
        assert_eq!(percentile(&ten, 50.0), 50);
    }

    #[test]
    fn summary_in_micros() {
        let mut lat = Latencies::default();
        for nanos in [3000, 1000, 2000, 4000] {
            lat.push(nanos);
        }
        let s = lat.summary();
        assert_eq!(s.count, 4);
        assert_eq!(s.p50_us, 2.0);
        assert_eq!(s.p99_us, 4.0);
        assert_eq!(s.max_us, 4.0);
    }

    #[test]
    fn cap_counts_drops() {
        let mut lat = Latencies::default();
        for _ in 0..MAX_LATENCY_SAMPLES + 3 {
            lat.push(1);
        }
        assert_eq!(lat.summary().count, MAX_LATENCY_SAMPLES);
        assert_eq!(lat.dropped, 3);
    }
}
