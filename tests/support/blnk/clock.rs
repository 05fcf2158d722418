//! The fake's manual clock. Time moves only when a caller advances or sets it.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

/// A manual clock that also hands out row timestamps.
///
/// Postgres gives every row its own microsecond timestamp, and Blnk's listings sort by it.
/// The fake keeps that property while the clock does not move: each stamp is the clock's time,
/// or one microsecond after the previous stamp when the clock has not moved past it.
#[derive(Debug)]
pub struct Clock {
    now: DateTime<Utc>,
    last_stamp: Option<DateTime<Utc>>,
}

impl Clock {
    /// Starts at the wall-clock time, truncated to microseconds like Postgres timestamps.
    pub fn starting_now() -> Clock {
        Clock {
            now: Utc::now().trunc_subsecs(6),
            last_stamp: None,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Moves the clock forward. A duration too large for chrono saturates at its maximum.
    pub fn advance(&mut self, by: Duration) {
        let delta = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        self.now = self
            .now
            .checked_add_signed(delta)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    /// Sets the clock, also backwards. Stamps issued afterwards start from the new time.
    pub fn set(&mut self, now: DateTime<Utc>) {
        self.now = now;
        self.last_stamp = None;
    }

    /// Returns the clock's time, or the last row stamp when that is later. A read "as of now" uses
    /// it so that it includes every row written while the clock stood still.
    pub fn latest(&self) -> DateTime<Utc> {
        self.last_stamp.map_or(self.now, |last| last.max(self.now))
    }

    /// Returns a timestamp for a new row: the clock's time, kept strictly increasing.
    pub fn stamp(&mut self) -> DateTime<Utc> {
        let stamp = match self.last_stamp {
            Some(last) if last >= self.now => last + TimeDelta::microseconds(1),
            _ => self.now,
        };
        self.last_stamp = Some(stamp);
        stamp
    }
}
