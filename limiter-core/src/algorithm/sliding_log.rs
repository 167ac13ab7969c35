//! Sliding log: the exact count of units admitted in the last period.
//!
//! The state keeps the admission time of every unit still in the window (one entry per unit of
//! cost, oldest first), so it is exact but grows with the limit; limits are capped at
//! [`SLIDING_LOG_MAX_LIMIT`](super::SLIDING_LOG_MAX_LIMIT). A unit admitted at `t` counts while
//! `now < t + W`. A request of cost `c` is admitted if `live + c <= N`.
//!
//! Worked example, `5/minute`: five logins at 10:00:00, 10:00:10, ..., 10:00:40 are admitted;
//! a sixth at 10:00:50 is denied with retry after 10 s, when the first one leaves the window.

use super::{LimitStatus, State};
use crate::Rate;
use crate::time::Micros;

fn live(state: &State, period: Micros, now: Micros) -> &[Micros] {
    match state {
        State::Log { entries } => {
            let first_live = entries.partition_point(|&t| t.saturating_add(period) <= now);
            &entries[first_live..]
        }
        _ => &[],
    }
}

pub(super) fn check(rate: Rate, state: &State, now: Micros, cost: u64) -> LimitStatus {
    let (limit, period) = (rate.limit(), rate.period().micros());
    let live = live(state, period, now);
    let count = live.len() as u64;
    let reset_after = live
        .last()
        .map_or(0, |t| t.saturating_add(period).saturating_sub(now));
    let remaining_before = limit.saturating_sub(count);
    if cost > limit {
        return LimitStatus::impossible(limit, remaining_before, reset_after);
    }
    if count + cost <= limit {
        return LimitStatus::allowed(limit, limit - count - cost, reset_after.max(period));
    }
    // The oldest `count + cost - limit` live units must leave the window first.
    let must_leave = count + cost - limit;
    let index = usize::try_from(must_leave - 1).unwrap_or(usize::MAX);
    let retry_after = live
        .get(index)
        .map_or(period, |t| t.saturating_add(period).saturating_sub(now));
    LimitStatus::denied(limit, remaining_before, reset_after, retry_after)
}

pub(super) fn apply(limit: u64, period: Micros, state: &mut State, now: Micros, cost: u64) {
    if !matches!(state, State::Log { .. }) {
        *state = State::Log {
            entries: Vec::new(),
        };
    }
    if let State::Log { entries } = state {
        let first_live = entries.partition_point(|&t| t.saturating_add(period) <= now);
        entries.drain(..first_live);
        // A clock that went back still appends at the end: the entry then leaves the window
        // later than it would have, never earlier.
        let at = entries.last().map_or(now, |&last| last.max(now));
        // An admitted cost is at most the limit; a larger one (apply without check) is held
        // to it, so that no call can ask for an unbounded log.
        let n = usize::try_from(cost.min(limit)).unwrap_or(usize::MAX);
        entries.extend(std::iter::repeat_n(at, n));
    }
}

/// Removes up to `amount` entries stamped `charged_at`: entries of one instant are
/// interchangeable, and a later request's entries are never touched. Entries that already left
/// the window, or that a clock gone back stamped later, stay: nothing is given back that is not
/// certainly the charge's own. Entries are in time order (`apply` never appends an earlier one),
/// so the charge's instant is one run of them.
pub(super) fn refund(state: &mut State, amount: u64, charged_at: Micros) {
    if let State::Log { entries } = state {
        let end = entries.partition_point(|&t| t <= charged_at);
        let start = entries[..end].partition_point(|&t| t < charged_at);
        let n = usize::try_from(amount)
            .unwrap_or(usize::MAX)
            .min(end - start);
        entries.drain(end - n..end);
    }
}
