//! A preallocated log-linear latency histogram: recording is one index computation and one
//! relaxed atomic add, never an allocation.
//!
//! Values below 64 ns get a bucket each; above, every power of two is split into 32 equal
//! buckets, so a bucket's width is at most 1/32 (about 3%) of its value. 1920 buckets cover
//! every u64 value.

use std::sync::atomic::{AtomicU64, Ordering};

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets for every u64: 2*SUB exact ones, then SUB per power of two from 2^(SUB_BITS+1) up.
pub const BUCKETS: usize = (64 - SUB_BITS as usize) * (1 << SUB_BITS) + (1 << SUB_BITS);

/// The bucket a value falls in.
pub fn index(v: u64) -> usize {
    let i = if v < 2 * SUB {
        v
    } else {
        let e = 63 - v.leading_zeros(); // floor(log2 v) >= SUB_BITS + 1
        let shift = e - SUB_BITS;
        // v >> shift is in [SUB, 2*SUB).
        u64::from(shift) * SUB + (v >> shift)
    };
    // i < BUCKETS always.
    usize::try_from(i).unwrap_or(BUCKETS - 1)
}

/// The smallest value of a bucket.
pub fn lower_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let mant = i % SUB + SUB;
    mant << shift
}

/// The largest value of a bucket.
pub fn upper_bound(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        return u64::MAX;
    }
    lower_bound(i + 1) - 1
}

/// Latencies in nanoseconds.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, ns: u64) {
        self.buckets[index(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ns, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&self, other: &Histogram) {
        for (a, b) in self.buckets.iter().zip(other.buckets.iter()) {
            let n = b.load(Ordering::Relaxed);
            if n != 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(other.count.load(Ordering::Relaxed), Ordering::Relaxed);
        self.sum.fetch_add(other.sum.load(Ordering::Relaxed), Ordering::Relaxed);
        self.max.fetch_max(other.max.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn mean(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        self.sum.load(Ordering::Relaxed) as f64 / n as f64
    }

    /// The value below which a fraction `q` (0..=1) of the recorded values lie: the midpoint of
    /// the bucket holding that rank, never above the largest value seen. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        // The rank (1-based) of the value asked for.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // in 0..=n by the clamp
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                let lo = lower_bound(i);
                let hi = upper_bound(i);
                return (lo + (hi - lo) / 2).min(self.max());
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_every_value() {
        assert_eq!(index(0), 0);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        for i in 0..BUCKETS - 1 {
            assert_eq!(upper_bound(i) + 1, lower_bound(i + 1), "gap after bucket {i}");
            assert_eq!(index(lower_bound(i)), i);
            assert_eq!(index(upper_bound(i)), i);
        }
    }

    #[test]
    fn bucket_width_is_within_one_32nd_of_the_value() {
        for v in [64u64, 100, 1_000, 12_345, 1_000_000, 987_654_321, 1 << 40] {
            let i = index(v);
            let width = upper_bound(i) - lower_bound(i) + 1;
            assert!(width * 32 <= lower_bound(i), "bucket of {v} is {width} wide");
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let h = Histogram::new();
        // 1..=1000 us, one each.
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.03, "p50 {p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.03, "p99 {p99}");
        assert_eq!(h.quantile(1.0), 1_000_000, "p100 is capped at the max seen");
        assert!((h.mean() - 500_500.0).abs() < 1.0);
    }

    #[test]
    fn empty_and_merged() {
        let a = Histogram::new();
        assert_eq!(a.quantile(0.5), 0);
        assert_eq!(a.mean(), 0.0);
        let b = Histogram::new();
        b.record(10);
        b.record(20);
        a.record(30);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 30);
        assert_eq!(a.quantile(0.5), 20);
    }
}
