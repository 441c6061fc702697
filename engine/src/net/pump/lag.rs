//! The send-lag histogram of the pump's own report (`PumpStats::lag`): how late packets left
//! against their schedule, kept per loop in fixed buckets and merged once a second.

use std::time::Duration;

/// Send-lag histogram: 10 µs buckets up to 100 ms, and an overflow bucket.
#[derive(Debug, Clone)]
pub struct LagHistogram {
    buckets: Vec<u64>,
    max_ns: u64,
    count: u64,
}

const LAG_BUCKET_NS: u64 = 10_000;
const LAG_BUCKETS: usize = 10_000;

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            buckets: vec![0; LAG_BUCKETS + 1],
            max_ns: 0,
            count: 0,
        }
    }
}

impl LagHistogram {
    /// Adds one lag.
    pub fn record(&mut self, ns: u64) {
        let b = ((ns / LAG_BUCKET_NS) as usize).min(LAG_BUCKETS);
        self.buckets[b] += 1;
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
    }

    /// Adds another histogram.
    pub fn merge(&mut self, other: &LagHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.max_ns = self.max_ns.max(other.max_ns);
        self.count += other.count;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest lag.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    /// The `q` quantile (upper edge of its bucket).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let target = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= target {
                if i == LAG_BUCKETS {
                    return self.max();
                }
                return Duration::from_nanos((i as u64 + 1) * LAG_BUCKET_NS).min(self.max());
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_histogram_quantiles() {
        let mut h = LagHistogram::default();
        for us in 0..1000u64 {
            h.record(us * 1000);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.quantile(0.5), Duration::from_micros(500));
        assert_eq!(h.quantile(0.99), Duration::from_micros(990));
        assert_eq!(h.max(), Duration::from_micros(999));
        h.record(5_000_000_000);
        assert_eq!(h.quantile(1.0), Duration::from_secs(5));
    }
}
