//! The emulator's clock: the real time plus an offset that tests can move forward.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// The time as the emulator sees it. Expiry of memberships and access tokens is judged
/// against this clock, so a test can let an hour pass without waiting for it.
#[derive(Debug, Default)]
pub struct Clock {
    offset_millis: AtomicI64,
}

impl Clock {
    /// The emulator's current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_millis.load(Ordering::SeqCst))
    }

    /// Moves the clock forward (or back, for a negative value) by whole seconds.
    pub fn advance(&self, seconds: i64) {
        self.offset_millis
            .fetch_add(seconds.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Puts the clock back to the real time.
    pub fn reset(&self) {
        self.offset_millis.store(0, Ordering::SeqCst);
    }
}

/// Formats a time the way Google's JSON APIs do: RFC 3339, UTC, with a `Z` suffix.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}
