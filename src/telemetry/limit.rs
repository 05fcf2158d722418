//! Rate limiting of repeated error logs. An error kind is logged the first time it occurs,
//! then at most once per [`REPEAT_WINDOW`], and each logged line carries a `suppressed` field
//! that counts the occurrences skipped since the previous line.
//!
//! Use [`crate::warn_rate_limited!`] or [`crate::error_rate_limited!`] where one outage would
//! otherwise log the same error for every request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::labels::LabelTable;

/// Shortest time between two logged lines of one error kind.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// Distinct error kinds with their own limit; later kinds share one.
const MAX_KINDS: usize = 64;

static KINDS: LabelTable<KindState, MAX_KINDS> = LabelTable::new();

#[derive(Default)]
struct KindState {
    /// Milliseconds after the epoch of the last logged line, plus one; 0 means never.
    last_logged: AtomicU64,
    suppressed: AtomicU64,
}

/// Logs a `warn` event unless the same `kind` was logged within [`REPEAT_WINDOW`]. The event
/// gets a `suppressed` field with the number of skipped occurrences.
#[macro_export]
macro_rules! warn_rate_limited {
    ($kind:expr, $($event:tt)+) => {
        if let Some(suppressed) = $crate::telemetry::limit::admit($kind) {
            ::tracing::warn!(suppressed, $($event)+);
        }
    };
}

/// Logs an `error` event unless the same `kind` was logged within [`REPEAT_WINDOW`]. The
/// event gets a `suppressed` field with the number of skipped occurrences.
#[macro_export]
macro_rules! error_rate_limited {
    ($kind:expr, $($event:tt)+) => {
        if let Some(suppressed) = $crate::telemetry::limit::admit($kind) {
            ::tracing::error!(suppressed, $($event)+);
        }
    };
}

/// Decides whether an occurrence of `kind` is logged now. Returns the number of
/// occurrences suppressed since the last logged one, or `None` to suppress this one.
pub fn admit(kind: &'static str) -> Option<u64> {
    admit_at(&KINDS, kind, now_stamp(), REPEAT_WINDOW)
}

fn admit_at(
    table: &LabelTable<KindState, MAX_KINDS>,
    kind: &str,
    now: u64,
    window: Duration,
) -> Option<u64> {
    let state = table.get(kind);
    let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let last = state.last_logged.load(Ordering::Acquire);
    let due = last == 0 || now.saturating_sub(last) >= window;
    // Of several threads that find the window over, one wins the exchange and logs.
    let won = due
        && state
            .last_logged
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
    if won {
        Some(state.suppressed.swap(0, Ordering::AcqRel))
    } else {
        state.suppressed.fetch_add(1, Ordering::AcqRel);
        None
    }
}

/// Milliseconds since the first call, plus one so that 0 can mean "never".
fn now_stamp() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX - 1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_window_are_counted_not_logged() {
        let table = LabelTable::new();
        let window = Duration::from_secs(10);
        let steps = [
            (1, Some(0)),
            (2, None),
            (5_000, None),
            (10_001, Some(2)),
            (10_002, None),
            (30_000, Some(1)),
        ];
        for (now, expected) in steps {
            assert_eq!(
                admit_at(&table, "ledger.down", now, window),
                expected,
                "at {now} ms"
            );
        }
    }

    #[test]
    fn kinds_are_limited_separately() {
        let table = LabelTable::new();
        let window = Duration::from_secs(10);
        assert_eq!(admit_at(&table, "a", 1, window), Some(0));
        assert_eq!(admit_at(&table, "b", 2, window), Some(0));
        assert_eq!(admit_at(&table, "a", 3, window), None);
    }

    #[test]
    fn macro_logs_the_first_occurrence() {
        let error = "connection refused";
        warn_rate_limited!("telemetry.limit.test", %error, "test event");
        assert_eq!(
            admit("telemetry.limit.test"),
            None,
            "the macro used the first slot"
        );
    }
}
