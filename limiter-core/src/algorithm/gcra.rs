//! GCRA, the generic cell rate algorithm: a token bucket kept as one timestamp.
//!
//! `N/P` admits a burst of `N` from a full bucket and refills one unit every emission interval
//! `T = ceil(P / N)` microseconds (rounded up, so that it never admits faster than `N/P`). The
//! state is the theoretical arrival time `tat`; a request of cost `c` at `now` moves it to
//! `tat' = max(tat, now) + c*T` and is admitted if `tat' - now <= N*T`.
//!
//! Worked example, `10/minute`: `T = 6 s`. Ten requests at `t = 0` are admitted (`tat' = 60 s`);
//! the eleventh is denied with retry after 6 s; at `t = 6 s` one more is admitted; at
//! `t = 60 s` the bucket is full again.

use super::{LimitStatus, State};
use crate::Rate;
use crate::time::Micros;

pub(super) fn emission_interval(limit: u64, period: Micros) -> Micros {
    period.div_ceil(limit)
}

fn tat_of(state: &State, now: Micros) -> Micros {
    match state {
        State::Gcra { tat } => (*tat).max(now),
        _ => now,
    }
}

pub(super) fn check(rate: Rate, state: &State, now: Micros, cost: u64) -> LimitStatus {
    let (limit, period) = (rate.limit(), rate.period().micros());
    let t = emission_interval(limit, period);
    let capacity = limit * t;
    let tat = tat_of(state, now);
    let backlog = tat - now;
    let remaining_before = capacity.saturating_sub(backlog) / t;
    if cost > limit {
        return LimitStatus::impossible(limit, remaining_before, backlog);
    }
    let backlog_after = backlog.saturating_add(cost * t);
    if backlog_after <= capacity {
        LimitStatus::allowed(limit, (capacity - backlog_after) / t, backlog_after)
    } else {
        LimitStatus::denied(limit, remaining_before, backlog, backlog_after - capacity)
    }
}

pub(super) fn apply(limit: u64, period: Micros, state: &mut State, now: Micros, cost: u64) {
    let t = emission_interval(limit, period);
    let tat = tat_of(state, now).saturating_add(cost.saturating_mul(t));
    *state = State::Gcra { tat };
}

/// Gives back what is certainly still owed for `amount` units charged at `charged_at`.
///
/// The state keeps one instant for every charge, but the queue it stands for is first in,
/// first out: the charge's units were queued to end at `tat_c >= charged_at + amount*T`, and at
/// `now` at least `charged_at + amount*T - now` of them are still queued, ahead of any later
/// request's. Giving back that much (at most `amount*T`) never touches a later charge; a
/// refund right after its charge gives back everything.
pub(super) fn refund(
    limit: u64,
    period: Micros,
    state: &mut State,
    now: Micros,
    amount: u64,
    charged_at: Micros,
) {
    let t = emission_interval(limit, period);
    if let State::Gcra { tat } = state {
        let charged = amount.saturating_mul(t);
        let owed = charged_at
            .saturating_add(charged)
            .saturating_sub(now)
            .min(charged);
        *tat = tat.saturating_sub(owed);
    }
}
