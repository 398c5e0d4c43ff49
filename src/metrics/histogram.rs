//! The fixed histogram buckets of request durations and queue waits.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets, in microseconds (Prometheus' `le`, in seconds: 1 ms .. 60 s).
/// A last, unbounded bucket (`+Inf`) follows.
pub const BOUNDS_US: [u64; 15] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000, 30_000_000, 60_000_000,
];

/// Number of buckets, the unbounded one included.
pub const BUCKETS: usize = BOUNDS_US.len() + 1;

/// The bucket a value of `us` microseconds falls in (the first whose bound is >= it).
pub fn bucket(us: u64) -> usize {
    BOUNDS_US.iter().position(|&b| us <= b).unwrap_or(BOUNDS_US.len())
}

/// A histogram in shared memory: per-bucket counts (not cumulative) and the sum.
#[repr(C)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, us: u64) {
        self.counts[bucket(us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn read(&self) -> HistogramValues {
        HistogramValues {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a histogram's values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramValues {
    pub counts: [u64; BUCKETS],
    pub sum_us: u64,
}

impl HistogramValues {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn add(&mut self, other: &HistogramValues) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    /// (upper bound in seconds or None for +Inf, cumulative count) per bucket.
    pub fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut total = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total += c;
                (BOUNDS_US.get(i).map(|&b| b as f64 / 1e6), total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_inclusive() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_001), 1);
        assert_eq!(bucket(60_000_000), 14);
        assert_eq!(bucket(u64::MAX), 15);
    }

    #[test]
    fn cumulative_counts_end_at_the_total() {
        let mut v = HistogramValues::default();
        v.counts[0] = 2;
        v.counts[3] = 1;
        v.counts[15] = 4;
        let c = v.cumulative();
        assert_eq!(c[0], (Some(0.001), 2));
        assert_eq!(c[3], (Some(0.01), 3));
        assert_eq!(c[14].1, 3);
        assert_eq!(c[15], (None, 7));
        assert_eq!(v.count(), 7);
    }
}
