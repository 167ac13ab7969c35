//! What one limit says about one request.

use std::time::Duration;

use crate::time::{Micros, duration};

/// The verdict of one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The request fits.
    Allowed,
    /// The request does not fit now; it will after `retry_after`.
    Denied,
    /// The request can never fit: its cost exceeds what the limit admits in a whole period.
    /// Waiting does not help (governor's `InsufficientCapacity`).
    Impossible,
}

/// The status of one limit for one request.
///
/// All spans are microseconds, relative to the `now` of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitStatus {
    /// The verdict.
    pub verdict: Verdict,
    /// The limit: requests (cost units) per period.
    pub limit: u64,
    /// Units left after this request (if allowed) or before it (if not).
    pub remaining: u64,
    /// Time until the limit's budget is whole again (its state indistinguishable from fresh).
    pub reset_after: Micros,
    /// When denied, the time until the same request would be allowed (always at least 1 µs);
    /// 0 when allowed or impossible.
    pub retry_after: Micros,
}

impl LimitStatus {
    /// An admitting status.
    pub fn allowed(limit: u64, remaining: u64, reset_after: Micros) -> LimitStatus {
        LimitStatus {
            verdict: Verdict::Allowed,
            limit,
            remaining,
            reset_after,
            retry_after: 0,
        }
    }

    /// A "not yet" status: the same request fits after `retry_after` (at least 1 µs).
    pub fn denied(
        limit: u64,
        remaining: u64,
        reset_after: Micros,
        retry_after: Micros,
    ) -> LimitStatus {
        LimitStatus {
            verdict: Verdict::Denied,
            limit,
            remaining,
            reset_after,
            retry_after: retry_after.max(1),
        }
    }

    /// A "never" status: the cost exceeds what the limit admits in a whole period.
    pub fn impossible(limit: u64, remaining: u64, reset_after: Micros) -> LimitStatus {
        LimitStatus {
            verdict: Verdict::Impossible,
            limit,
            remaining,
            reset_after,
            retry_after: 0,
        }
    }

    /// Whether the limit admits the request.
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allowed
    }

    /// [`reset_after`](Self::reset_after) as a [`Duration`].
    pub fn reset_after(&self) -> Duration {
        duration(self.reset_after)
    }

    /// [`retry_after`](Self::retry_after) as a [`Duration`], `None` unless denied.
    pub fn retry_after(&self) -> Option<Duration> {
        (self.verdict == Verdict::Denied).then(|| duration(self.retry_after))
    }
}
