//! A fixed-capacity map from label values to counters that the request path reads without
//! taking a lock.
//!
//! Each slot is a `OnceLock`, so a lookup is a few atomic loads. A label is added once, to
//! the first free slot of its probe sequence, and never removed. When every slot is taken
//! the value is counted under [`OVERFLOW_LABEL`], which keeps the number of series bounded
//! however many distinct values arrive.

use std::sync::OnceLock;

/// The label value of everything that found no slot of its own.
pub const OVERFLOW_LABEL: &str = "other";

/// Counters of type `T` for at most `N` label values plus the overflow entry.
pub struct LabelTable<T, const N: usize> {
    slots: [OnceLock<Labelled<T>>; N],
    overflow: OnceLock<T>,
}

struct Labelled<T> {
    label: Box<str>,
    value: T,
}

impl<T: Default, const N: usize> LabelTable<T, N> {
    pub const fn new() -> Self {
        LabelTable {
            slots: [const { OnceLock::new() }; N],
            overflow: OnceLock::new(),
        }
    }

    /// Returns the counters of `label`, adding the label when it is new and a slot is free.
    pub fn get(&self, label: &str) -> &T {
        if label == OVERFLOW_LABEL || N == 0 {
            return self.overflow();
        }
        let start = fnv1a(label.as_bytes()) % N;
        for step in 0..N {
            let slot = &self.slots[(start + step) % N];
            // Two threads may race for the same free slot. The loser finds the winner's
            // label there and moves on to the next slot.
            let entry = slot.get_or_init(|| Labelled {
                label: label.into(),
                value: T::default(),
            });
            if *entry.label == *label {
                return &entry.value;
            }
        }
        self.overflow()
    }

    /// Returns every label with its counters, sorted by label, and the overflow entry last
    /// when it was used.
    pub fn entries(&self) -> Vec<(&str, &T)> {
        let mut entries: Vec<(&str, &T)> = self
            .slots
            .iter()
            .filter_map(OnceLock::get)
            .map(|entry| (&*entry.label, &entry.value))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if let Some(overflow) = self.overflow.get() {
            entries.push((OVERFLOW_LABEL, overflow));
        }
        entries
    }

    fn overflow(&self) -> &T {
        self.overflow.get_or_init(T::default)
    }
}

/// Hashes `bytes` with 64-bit FNV-1a, for the first slot to probe.
fn fnv1a(bytes: &[u8]) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // Truncation on 32-bit targets only changes which slot is probed first.
    hash as usize
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn same_label_returns_same_counter() {
        let table: LabelTable<AtomicU64, 8> = LabelTable::new();
        table.get("gpt-4o").fetch_add(2, Ordering::Relaxed);
        table.get("gpt-4o").fetch_add(3, Ordering::Relaxed);
        table.get("gpt-4o-mini").fetch_add(1, Ordering::Relaxed);

        let entries: Vec<(&str, u64)> = table
            .entries()
            .into_iter()
            .map(|(label, value)| (label, value.load(Ordering::Relaxed)))
            .collect();
        assert_eq!(entries, vec![("gpt-4o", 5), ("gpt-4o-mini", 1)]);
    }

    #[test]
    fn full_table_counts_under_other() {
        let table: LabelTable<AtomicU64, 2> = LabelTable::new();
        for label in ["a", "b", "c", "d", "a"] {
            table.get(label).fetch_add(1, Ordering::Relaxed);
        }

        let entries: Vec<(&str, u64)> = table
            .entries()
            .into_iter()
            .map(|(label, value)| (label, value.load(Ordering::Relaxed)))
            .collect();
        assert_eq!(entries, vec![("a", 2), ("b", 1), ("other", 2)]);
    }

    #[test]
    fn label_named_other_is_the_overflow() {
        let table: LabelTable<AtomicU64, 4> = LabelTable::new();
        table.get("other").fetch_add(1, Ordering::Relaxed);
        assert_eq!(table.entries().len(), 1);
        assert_eq!(table.entries()[0].0, "other");
    }

    #[test]
    fn concurrent_inserts_keep_one_entry_per_label() {
        let table: LabelTable<AtomicU64, 16> = LabelTable::new();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for round in 0..1000 {
                        let label = ["x", "y", "z"][round % 3];
                        table.get(label).fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let total: u64 = table
            .entries()
            .iter()
            .map(|(_, value)| value.load(Ordering::Relaxed))
            .sum();
        assert_eq!(table.entries().len(), 3);
        assert_eq!(total, 4000);
    }
}
