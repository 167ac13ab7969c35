//! A rate paired with the algorithm that enforces it.

use std::fmt;

use super::{Calendar, LimitStatus, State, calendar, gcra, sliding_log, sliding_window};
use crate::time::{MAX_TIMESTAMP, Micros};
use crate::{Error, Rate};

/// The largest limit a sliding log accepts: its state holds one timestamp per admitted unit.
pub const SLIDING_LOG_MAX_LIMIT: u64 = 1_000;

/// How a limit counts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// Generic cell rate algorithm (a token bucket): bursts up to the limit, smooth refill.
    Gcra,
    /// Sliding-window counter: two fixed windows, the previous one weighted by how much of it
    /// still overlaps the sliding window.
    SlidingWindow,
    /// Sliding log: exact, one timestamp per admitted unit; limits up to
    /// [`SLIDING_LOG_MAX_LIMIT`].
    SlidingLog,
    /// Calendar window: a quota per local day, reset at midnight in a time zone.
    Calendar(Calendar),
}

impl Algorithm {
    /// The name used in configuration (`gcra`, `sliding_window`, `sliding_log`, `calendar`).
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Gcra => "gcra",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::SlidingLog => "sliding_log",
            Algorithm::Calendar(_) => "calendar",
        }
    }
}

/// A [`Rate`] enforced by an [`Algorithm`]: what a store evaluates for one key.
///
/// ```
/// use limiter_core::{Limit, Rate, State};
///
/// let limit = Limit::gcra("10/minute".parse::<Rate>()?);
/// let mut state = State::Fresh;
/// let now = 1_700_000_000_000_000;
/// // A fresh bucket admits a burst of 10...
/// for _ in 0..10 {
///     assert!(limit.check(&state, now, 1).is_allowed());
///     limit.apply(&mut state, now, 1);
/// }
/// // ...then denies, and says when one more fits: one emission interval (6 s) later.
/// let denied = limit.check(&state, now, 1);
/// assert_eq!(denied.retry_after, 6_000_000);
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    rate: Rate,
    algorithm: Algorithm,
}

impl Limit {
    /// `rate` as a GCRA token bucket.
    pub fn gcra(rate: Rate) -> Limit {
        Limit {
            rate,
            algorithm: Algorithm::Gcra,
        }
    }

    /// `rate` as a sliding-window counter.
    pub fn sliding_window(rate: Rate) -> Limit {
        Limit {
            rate,
            algorithm: Algorithm::SlidingWindow,
        }
    }

    /// `rate` as a sliding log; an error above [`SLIDING_LOG_MAX_LIMIT`].
    pub fn sliding_log(rate: Rate) -> Result<Limit, Error> {
        Limit::new(rate, Algorithm::SlidingLog)
    }

    /// `rate` as a calendar window; the rate's period must be one day.
    pub fn calendar(rate: Rate, calendar: Calendar) -> Result<Limit, Error> {
        Limit::new(rate, Algorithm::Calendar(calendar))
    }

    /// `rate` under `algorithm`, validated.
    pub fn new(rate: Rate, algorithm: Algorithm) -> Result<Limit, Error> {
        let invalid = |reason: String| Error::InvalidRate {
            input: rate.to_string(),
            reason,
        };
        match &algorithm {
            Algorithm::SlidingLog if rate.limit() > SLIDING_LOG_MAX_LIMIT => {
                return Err(invalid(format!(
                    "a sliding log keeps one timestamp per request, so its limit must be at most \
                     {SLIDING_LOG_MAX_LIMIT}; use sliding_window or gcra for larger limits"
                )));
            }
            Algorithm::Calendar(_) if rate.period().micros() != crate::Unit::Day.micros() => {
                return Err(invalid(
                    "a calendar window counts per local day, so its period must be one day \
                     (such as 500/day)"
                        .into(),
                ));
            }
            _ => {}
        }
        Ok(Limit { rate, algorithm })
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The algorithm.
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// What a request of `cost` units at `now` would get, without changing anything.
    pub fn check(&self, state: &State, now: Micros, cost: u64) -> LimitStatus {
        let now = now.min(MAX_TIMESTAMP);
        match &self.algorithm {
            Algorithm::Gcra => gcra::check(self.rate, state, now, cost),
            Algorithm::SlidingWindow => sliding_window::check(self.rate, state, now, cost),
            Algorithm::SlidingLog => sliding_log::check(self.rate, state, now, cost),
            Algorithm::Calendar(c) => calendar::check(self.rate.limit(), c, state, now, cost),
        }
    }

    /// The figures as they stand at `now`, for a request that was not charged (its batch was
    /// denied by another limit): what remains before any charge, when the budget is whole
    /// again, and an allowing verdict, since this limit itself did not deny.
    pub fn standing(&self, state: &State, now: Micros) -> LimitStatus {
        // Every algorithm reports the figures before a charge for a cost that can never fit.
        let before = self.check(state, now, u64::MAX);
        LimitStatus::allowed(before.limit, before.remaining, before.reset_after)
    }

    /// Commits a request of `cost` units at `now`. Call only after [`check`](Self::check)
    /// allowed the same request on the same state at the same `now`.
    pub fn apply(&self, state: &mut State, now: Micros, cost: u64) {
        let now = now.min(MAX_TIMESTAMP);
        let (limit, period) = (self.rate.limit(), self.rate.period().micros());
        match &self.algorithm {
            Algorithm::Gcra => gcra::apply(limit, period, state, now, cost),
            Algorithm::SlidingWindow => sliding_window::apply(period, state, now, cost),
            Algorithm::SlidingLog => sliding_log::apply(limit, period, state, now, cost),
            Algorithm::Calendar(c) => calendar::apply(c, state, now, cost),
        }
    }

    /// Gives back, at `now`, `amount` units that [`apply`](Self::apply) charged at
    /// `charged_at` (a response the service failed; a batch that spanned Redis Cluster slots
    /// and was denied by a later slot).
    ///
    /// A refund never removes another request's charge: it gives back only what is certainly
    /// the charge's own and still counted (the window it was charged in, the log entries of its
    /// instant, the part of GCRA's queue still ahead of every later request), so it may give
    /// back less than `amount`, never more.
    pub fn refund(&self, state: &mut State, now: Micros, amount: u64, charged_at: Micros) {
        let now = now.min(MAX_TIMESTAMP);
        let charged_at = charged_at.min(MAX_TIMESTAMP);
        let (limit, period) = (self.rate.limit(), self.rate.period().micros());
        match &self.algorithm {
            Algorithm::Gcra => gcra::refund(limit, period, state, now, amount, charged_at),
            Algorithm::SlidingWindow => sliding_window::refund(period, state, amount, charged_at),
            Algorithm::SlidingLog => sliding_log::refund(state, amount, charged_at),
            Algorithm::Calendar(c) => calendar::refund(c, state, amount, charged_at),
        }
    }

    /// The instant from which `state` is indistinguishable from [`State::Fresh`]: a store may
    /// drop the key then (its TTL), and must not before.
    pub fn fresh_at(&self, state: &State) -> Micros {
        let period = self.rate.period().micros();
        match (&self.algorithm, state) {
            (Algorithm::Gcra, State::Gcra { tat }) => *tat,
            (Algorithm::SlidingWindow, State::Window { start, .. }) => {
                start.saturating_add(period.saturating_mul(2))
            }
            (Algorithm::SlidingLog, State::Log { entries }) => {
                entries.last().map_or(0, |last| last.saturating_add(period))
            }
            (Algorithm::Calendar(_), State::Calendar { end, .. }) => *end,
            _ => 0,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.rate, self.algorithm.name())
    }
}
