//! Latency histograms (nanoseconds, HdrHistogram with 3 significant digits: about 200 KiB
//! each, so clients share a few, see `driver`) and their summary.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies up to this are recorded exactly to 3 significant digits; longer ones are
/// clamped to it (and counted as such).
pub const MAX_LATENCY: Duration = Duration::from_secs(60);

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3).expect("valid histogram bounds")
}

/// Records one latency, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let nanos = (latency.as_nanos() as u64).clamp(histogram.low(), histogram.high());
    histogram.record(nanos).expect("clamped into range");
}

/// A latency distribution in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub min_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let us = |nanos: u64| nanos as f64 / 1_000.0;
        Self {
            count: histogram.len(),
            mean_us: histogram.mean() / 1_000.0,
            min_us: us(histogram.min()),
            p50_us: us(histogram.value_at_quantile(0.50)),
            p90_us: us(histogram.value_at_quantile(0.90)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        }
    }
}

/// `1234.5` µs as `1.23 ms`, for people.
pub fn human_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1_000_000.0)
    } else if us >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{us:.0} µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.002 + 0.001
    }

    #[test]
    fn summary_of_a_uniform_distribution() {
        let mut h = new_histogram();
        for ms in 1..=1_000u64 {
            record(&mut h, Duration::from_micros(ms * 10));
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1_000);
        assert!(close(s.min_us, 10.0), "{s:?}");
        assert!(close(s.p50_us, 5_000.0), "{s:?}");
        assert!(close(s.p90_us, 9_000.0), "{s:?}");
        assert!(close(s.p99_us, 9_900.0), "{s:?}");
        assert!(close(s.p999_us, 9_990.0), "{s:?}");
        assert!(close(s.max_us, 10_000.0), "{s:?}");
        assert!(close(s.mean_us, 5_005.0), "{s:?}");
    }

    #[test]
    fn a_tail_shows_in_p999_and_not_in_p99() {
        let mut h = new_histogram();
        for _ in 0..9_990 {
            record(&mut h, Duration::from_micros(100));
        }
        for _ in 0..10 {
            record(&mut h, Duration::from_millis(50));
        }
        let s = LatencySummary::of(&h);
        assert!(close(s.p99_us, 100.0), "{s:?}");
        assert!(close(s.p999_us, 100.0) || s.p999_us >= 49_000.0, "{s:?}");
        assert!(close(s.max_us, 50_000.0), "{s:?}");
    }

    #[test]
    fn out_of_range_latencies_are_clamped_and_empty_is_zero() {
        let mut h = new_histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(3_600));
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 2);
        assert!(close(s.min_us, 0.001), "{s:?}");
        assert!(s.max_us >= 59_000_000.0, "{s:?}");
        assert_eq!(
            LatencySummary::of(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn merged_histograms_summarise_all_samples() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        record(&mut a, Duration::from_micros(100));
        record(&mut b, Duration::from_micros(300));
        a.add(&b).unwrap();
        let s = LatencySummary::of(&a);
        assert_eq!(s.count, 2);
        assert!(close(s.mean_us, 200.0), "{s:?}");
        assert_eq!(human_us(1_500.0), "1.50 ms");
        assert_eq!(human_us(150.0), "150 µs");
        assert_eq!(human_us(2_500_000.0), "2.50 s");
    }
}
