//! Latency percentiles.
//!
//! Every sample is kept (microseconds, `u64`) and percentiles are exact,
//! by the **nearest-rank** method: the p-th percentile of n sorted samples
//! is the sample at rank `ceil(p / 100 * n)` (1-based), so it is always a
//! value that was actually measured, p100 is the maximum, and p50 of an
//! even count is the lower middle sample (no interpolation). Keeping every
//! sample costs 8 bytes each: 100k connections or a million echoes are a
//! few MB, cheaper than being wrong about a tail.

use serde::{Deserialize, Serialize};

/// The nearest-rank `p`-th percentile (`0 < p <= 100`) of `sorted`
/// (ascending). `None` when there are no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Smallest sample, µs.
    pub min_us: u64,
    /// Median (nearest rank), µs.
    pub p50_us: u64,
    /// 90th percentile (nearest rank), µs.
    pub p90_us: u64,
    /// 99th percentile (nearest rank), µs.
    pub p99_us: u64,
    /// Largest sample, µs.
    pub max_us: u64,
    /// Arithmetic mean, µs.
    pub mean_us: f64,
}

impl Summary {
    /// Summarises `samples` (sorted in place). `None` when empty.
    pub fn of(samples: &mut [u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        Some(Self {
            count: samples.len(),
            min_us: samples[0],
            p50_us: percentile(samples, 50.0)?,
            p90_us: percentile(samples, 90.0)?,
            p99_us: percentile(samples, 99.0)?,
            max_us: *samples.last()?,
            mean_us: sum as f64 / samples.len() as f64,
        })
    }
}

/// Milliseconds, for display.
pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_a_textbook_example() {
        // The classic example: 15, 20, 35, 40, 50.
        let s = [15, 20, 35, 40, 50];
        assert_eq!(percentile(&s, 5.0), Some(15));
        assert_eq!(percentile(&s, 30.0), Some(20));
        assert_eq!(percentile(&s, 40.0), Some(20));
        assert_eq!(percentile(&s, 50.0), Some(35));
        assert_eq!(percentile(&s, 100.0), Some(50));
    }

    #[test]
    fn percentiles_of_one_to_a_hundred() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&s, 50.0), Some(50));
        assert_eq!(percentile(&s, 90.0), Some(90));
        assert_eq!(percentile(&s, 99.0), Some(99));
        assert_eq!(percentile(&s, 99.9), Some(100));
        assert_eq!(percentile(&s, 0.0), Some(1), "p0 is the minimum");
    }

    #[test]
    fn a_single_sample_is_every_percentile() {
        assert_eq!(percentile(&[7], 1.0), Some(7));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn even_counts_take_the_lower_middle() {
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
    }

    #[test]
    fn tail_of_a_thousand_is_a_real_sample() {
        // 990 fast samples and 10 slow ones: p99 is still fast, p99.1 is slow.
        let mut s = vec![100u64; 990];
        s.extend([10_000u64; 10]);
        let sum = Summary::of(&mut s).unwrap();
        assert_eq!(sum.p99_us, 100);
        assert_eq!(percentile(&s, 99.1), Some(10_000));
        assert_eq!(sum.max_us, 10_000);
        assert_eq!(sum.count, 1000);
        assert!((sum.mean_us - 199.0).abs() < 1e-9);
    }

    #[test]
    fn summary_sorts_its_input() {
        let mut s = vec![5, 3, 9, 1, 7];
        let sum = Summary::of(&mut s).unwrap();
        assert_eq!(
            (sum.min_us, sum.p50_us, sum.p90_us, sum.max_us),
            (1, 5, 9, 9)
        );
        assert_eq!(s, vec![1, 3, 5, 7, 9]);
        assert!(Summary::of(&mut []).is_none());
    }
}
