//! Calendar window: a quota per local day, reset at midnight in a time zone.
//!
//! `500/day` on a calendar admits 500 units between one local midnight and the next, whatever
//! the hour of the first request, and resets exactly at the next midnight of the configured IANA
//! time zone (default UTC). On DST days the local day lasts 23 or 25 hours and the reset follows
//! the wall clock; where a zone skips midnight, the day starts at the first instant that exists.
//!
//! The state is the end of the current day and the units used in it. Time zone arithmetic runs
//! only when a day ends, not on every request.
//!
//! Worked example, `500/day` in `Europe/Paris` on 2026-03-29 (a 23-hour day): 500 requests by
//! 09:00 are admitted, the 501st is denied with retry after 15 hours, and at 2026-03-30 00:00
//! CEST (22:00 UTC on the 29th) the quota is whole again.

use std::fmt;

use jiff::tz::TimeZone;

use super::{LimitStatus, State, Verdict};
use crate::Error;
use crate::time::Micros;

/// The calendar a calendar window counts days in: an IANA time zone.
#[derive(Clone)]
pub struct Calendar {
    name: std::sync::Arc<str>,
    tz: TimeZone,
}

impl Calendar {
    /// Days in UTC.
    pub fn utc() -> Calendar {
        Calendar {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }

    /// Days in the IANA time zone `name` (`Europe/Paris`), from the time zone database bundled
    /// in the crate (no file is read).
    pub fn new(name: &str) -> Result<Calendar, Error> {
        let tz = TimeZone::get(name).map_err(|e| {
            Error::config(
                "time_zone",
                format!("unknown time zone {name:?} ({e}); expected an IANA name such as UTC or Europe/Paris"),
            )
        })?;
        Ok(Calendar {
            name: name.into(),
            tz,
        })
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local day that holds `now`: its first instant and the first instant of the next day,
    /// in microseconds since the epoch.
    pub fn day_bounds(&self, now: Micros) -> (Micros, Micros) {
        // Past what jiff can represent, UTC days; the last one ends at u64::MAX.
        let day_start = now - now % 86_400_000_000;
        let fallback = (day_start, day_start.saturating_add(86_400_000_000));
        let Ok(ts) = jiff::Timestamp::from_microsecond(i64::try_from(now).unwrap_or(i64::MAX))
        else {
            return fallback;
        };
        let zoned = ts.to_zoned_datetime(self.tz.clone());
        let bounds = zoned.start_of_day().and_then(|start| {
            let next = zoned.tomorrow()?.start_of_day()?;
            Ok((start, next))
        });
        match bounds {
            Ok((start, next)) => (
                u64::try_from(start.timestamp().as_microsecond()).unwrap_or(0),
                u64::try_from(next.timestamp().as_microsecond()).unwrap_or(u64::MAX),
            ),
            Err(_) => fallback,
        }
    }
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar::utc()
    }
}

impl PartialEq for Calendar {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Calendar {}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Calendar({})", self.name)
    }
}

/// Units used in the day that holds `now`, and when that day ends. A state whose day has not
/// ended is kept even if `now` looks earlier (a clock that went back).
fn view(calendar: &Calendar, state: &State, now: Micros) -> (u64, Micros) {
    match *state {
        State::Calendar { end, used } if now < end => (used, end),
        _ => (0, calendar.day_bounds(now).1),
    }
}

pub(super) fn check(
    limit: u64,
    calendar: &Calendar,
    state: &State,
    now: Micros,
    cost: u64,
) -> LimitStatus {
    let (used, end) = view(calendar, state, now);
    let to_end = end.saturating_sub(now).max(1);
    let remaining_before = limit.saturating_sub(used);
    let verdict = if cost > limit {
        Verdict::Impossible
    } else if used.saturating_add(cost) <= limit {
        Verdict::Allowed
    } else {
        Verdict::Denied
    };
    LimitStatus {
        verdict,
        limit,
        remaining: if verdict == Verdict::Allowed {
            limit - used - cost
        } else {
            remaining_before
        },
        reset_after: if used > 0 || verdict == Verdict::Allowed {
            to_end
        } else {
            0
        },
        retry_after: if verdict == Verdict::Denied {
            to_end
        } else {
            0
        },
    }
}

pub(super) fn apply(calendar: &Calendar, state: &mut State, now: Micros, cost: u64) {
    let (used, end) = view(calendar, state, now);
    *state = State::Calendar {
        end,
        used: used.saturating_add(cost),
    };
}

/// Gives back `amount` units charged at `charged_at` only to the day they were charged in.
pub(super) fn refund(calendar: &Calendar, state: &mut State, amount: u64, charged_at: Micros) {
    if let State::Calendar { end, used } = state
        && calendar.day_bounds(charged_at).1 == *end
    {
        *used = used.saturating_sub(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Micros = 3_600_000_000;

    fn utc(s: &str) -> Micros {
        let ts: jiff::Timestamp = s.parse().unwrap();
        u64::try_from(ts.as_microsecond()).unwrap()
    }

    #[test]
    fn days_follow_the_wall_clock_across_dst() {
        let paris = Calendar::new("Europe/Paris").unwrap();
        // 2026-03-29: clocks go from 02:00 to 03:00, a 23-hour day.
        let (start, end) = paris.day_bounds(utc("2026-03-29T09:00:00Z"));
        assert_eq!(start, utc("2026-03-28T23:00:00Z"));
        assert_eq!(end, utc("2026-03-29T22:00:00Z"));
        assert_eq!(end - start, 23 * HOUR);
        // 2026-10-25: clocks go back, a 25-hour day.
        let (start, end) = paris.day_bounds(utc("2026-10-25T12:00:00Z"));
        assert_eq!(end - start, 25 * HOUR);
    }

    #[test]
    fn a_zone_that_skips_midnight_starts_the_day_at_the_first_instant() {
        // Santiago springs forward at 24:00 -> 01:00 (2026-09-06), so that day starts at 01:00.
        let santiago = Calendar::new("America/Santiago").unwrap();
        let (start, _) = santiago.day_bounds(utc("2026-09-06T12:00:00Z"));
        assert_eq!(start, utc("2026-09-06T04:00:00Z"));
    }

    #[test]
    fn unknown_zones_are_named() {
        let e = Calendar::new("Mars/Olympus").unwrap_err().to_string();
        assert!(e.contains("unknown time zone \"Mars/Olympus\""), "{e}");
    }
}
