//! Latency histograms with fixed buckets, kept in whole microseconds so that neither
//! recording nor rendering needs floating point.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Maximum number of bucket bounds of a histogram. One more counter counts the `+Inf` bucket.
const MAX_BOUNDS: usize = 24;

/// Bucket bounds of calls to Blnk, in microseconds: 1 ms to 30 s.
pub const LEDGER_BOUNDS: &[u64] = &[
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000,
];

/// Bucket bounds of upstream calls, in microseconds: 10 ms to 30 min, because a stream may
/// last as long as `upstream.max_stream_duration`.
pub const UPSTREAM_BOUNDS: &[u64] = &[
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
    600_000_000,
    1_800_000_000,
];

/// Bucket bounds of tollgate's own share of a request, in microseconds: 50 µs to 1 s.
pub const OVERHEAD_BOUNDS: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// A Prometheus histogram of durations.
pub struct Histogram {
    /// Upper bounds in microseconds, ascending, at most [`MAX_BOUNDS`].
    bounds: &'static [u64],
    /// Observations per bucket (not cumulative); index `bounds.len()` is `+Inf`.
    buckets: [AtomicU64; MAX_BOUNDS + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Creates an empty histogram. Bounds past [`MAX_BOUNDS`] are ignored.
    pub const fn new(bounds: &'static [u64]) -> Histogram {
        let bounds = if bounds.len() > MAX_BOUNDS {
            bounds.split_at(MAX_BOUNDS).0
        } else {
            bounds
        };
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; MAX_BOUNDS + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let index = self.bounds.partition_point(|&bound| bound < micros);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines. `labels` is empty or a list such
    /// as `operation="post_bulk"` without braces.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (index, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[index].load(Ordering::Relaxed);
            let le = micros_as_seconds(*bound);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {cumulative}"
        );

        let sum = micros_as_seconds(self.sum_micros.load(Ordering::Relaxed));
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// Writes a whole number of microseconds as decimal seconds without trailing zeros:
/// 2500 as `0.0025`, 1000000 as `1`.
pub fn micros_as_seconds(micros: u64) -> String {
    decimal(u128::from(micros), 6)
}

/// Writes a whole number of nano-dollars as decimal dollars without trailing zeros.
pub fn nanos_as_dollars(nanos: u64) -> String {
    decimal(u128::from(nanos), 9)
}

/// Writes `units / 10^scale` exactly, dropping trailing zeros of the fraction.
fn decimal(units: u128, scale: u32) -> String {
    let divisor = 10u128.pow(scale);
    let whole = units / divisor;
    let fraction = units % divisor;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = scale as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_and_trimmed() {
        let cases = [
            (0, 6, "0"),
            (2_500, 6, "0.0025"),
            (1_000_000, 6, "1"),
            (1_500_000, 6, "1.5"),
            (1, 9, "0.000000001"),
            (12_345_678_901, 9, "12.345678901"),
            (7_500_000, 9, "0.0075"),
        ];
        for (units, scale, expected) in cases {
            assert_eq!(decimal(units, scale), expected, "{units} at scale {scale}");
        }
    }

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let histogram = Histogram::new(&[1_000, 10_000]);
        for micros in [500, 1_000, 5_000, 20_000] {
            histogram.observe(Duration::from_micros(micros));
        }

        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "op=\"a\"");

        let expected = "x_seconds_bucket{op=\"a\",le=\"0.001\"} 2\n\
                        x_seconds_bucket{op=\"a\",le=\"0.01\"} 3\n\
                        x_seconds_bucket{op=\"a\",le=\"+Inf\"} 4\n\
                        x_seconds_sum{op=\"a\"} 0.0265\n\
                        x_seconds_count{op=\"a\"} 4\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn unlabelled_histogram_has_no_braces_on_sum() {
        let histogram = Histogram::new(&[1_000]);
        histogram.observe(Duration::from_millis(2));
        let mut out = String::new();
        histogram.render(&mut out, "y", "");
        assert!(out.contains("y_bucket{le=\"+Inf\"} 1\n"), "{out}");
        assert!(out.contains("y_sum 0.002\n"), "{out}");
        assert!(out.contains("y_count 1\n"), "{out}");
    }
}
