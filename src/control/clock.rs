//! One clock for a run: the database's. A worker's own clock may be off (a
//! machine without NTP, a VM resumed), and the times it reports — the
//! seconds of its timeline — would then put its requests minutes away from
//! the others'. So each worker measures how far its clock is from the
//! database's when it registers and with every heartbeat (the database's
//! `clock_timestamp()` against the midpoint of the round trip), and moves its
//! timeline onto the database's clock before it uploads. A worker whose clock
//! was off by [`SKEW_REPORTED`] or more is named in the verdict.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How far off a worker's clock must be for the verdict to say so.
pub const SKEW_REPORTED: Duration = Duration::from_secs(1);

/// The database's clock minus this worker's, in milliseconds, as last measured.
#[derive(Debug, Default, Clone)]
pub struct ClockOffset(Arc<AtomicI64>);

impl ClockOffset {
    /// Records the database's time `database`, read between `sent` and
    /// `answered` on this worker's clock.
    pub fn measured(&self, sent: SystemTime, database: DateTime<Utc>, answered: SystemTime) {
        let round_trip = answered.duration_since(sent).unwrap_or_default();
        let midpoint = DateTime::<Utc>::from(sent + round_trip / 2);
        self.0.store((database - midpoint).num_milliseconds(), Ordering::Relaxed);
    }

    pub fn millis(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Whether a clock `offset_ms` off the database's (the database's minus its
/// own) is off by `SKEW_REPORTED` or more: worth a word in the verdict.
pub fn is_skewed(offset_ms: i64) -> bool {
    offset_ms.unsigned_abs() >= SKEW_REPORTED.as_millis() as u64
}

/// What the verdict says of `worker`'s clock, `offset_ms` off the database's.
pub fn describe(worker: &str, offset_ms: i64) -> String {
    let direction = if offset_ms < 0 { "ahead of" } else { "behind" };
    format!(
        "{worker}'s clock was {:.1} s {direction} the database's; its times were put on the database's clock",
        offset_ms.unsigned_abs() as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_taken_against_the_middle_of_the_round_trip() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let answered = sent + Duration::from_millis(40);
        // The database read 90 s less than this worker, at the middle of the trip.
        let database = DateTime::<Utc>::from(sent + Duration::from_millis(20)) - chrono::Duration::seconds(90);
        let offset = ClockOffset::default();
        offset.measured(sent, database, answered);
        assert_eq!(offset.millis(), -90_000);
    }

    #[test]
    fn only_a_skew_of_a_second_or_more_is_reported_and_its_direction_named() {
        assert!(!is_skewed(999) && !is_skewed(-999));
        assert!(is_skewed(1_000) && is_skewed(-1_000));
        assert_eq!(
            describe("w (pid 1)", -90_000),
            "w (pid 1)'s clock was 90.0 s ahead of the database's; its times were put on the database's clock"
        );
        assert!(describe("w", 1_500).contains("1.5 s behind"));
    }
}
