//! Percentiles and medians over nanosecond samples.

/// The median and 99th percentile of one sample set, in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
}

/// Sorts `samples` and returns their percentiles by the nearest-rank method. An empty set
/// gives zeros.
pub fn percentiles(samples: &mut [u64]) -> Percentiles {
    samples.sort_unstable();
    Percentiles {
        p50: nearest_rank(samples, 50),
        p99: nearest_rank(samples, 99),
    }
}

/// Returns the smallest sample such that at least `percent` percent of the samples are at or below it.
fn nearest_rank(sorted: &[u64], percent: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let count = sorted.len() as u64;
    let rank = (percent * count).div_ceil(100).max(1);
    sorted[usize::try_from(rank - 1).unwrap_or(0).min(sorted.len() - 1)]
}

/// Returns the median of signed values (the lower middle one for an even count); 0 when empty.
pub fn median(values: &[i64]) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => 0,
        len => sorted[(len - 1) / 2],
    }
}

/// Converts unsigned nanoseconds for signed arithmetic, saturating.
pub fn signed(nanos: u64) -> i64 {
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        let found = percentiles(&mut samples);
        assert_eq!(found.p50, 50);
        assert_eq!(found.p99, 99);
        let mut one = vec![7];
        assert_eq!(percentiles(&mut one).p99, 7);
        assert_eq!(percentiles(&mut []).p50, 0);
    }

    #[test]
    fn median_of_rounds() {
        assert_eq!(median(&[3, -1, 2]), 2);
        assert_eq!(median(&[4, 1, 3, 2]), 2);
        assert_eq!(median(&[]), 0);
    }
}
