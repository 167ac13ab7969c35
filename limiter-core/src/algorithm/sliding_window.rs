//! Sliding-window counter: two fixed windows, the previous one weighted.
//!
//! Time is cut into fixed windows of the period `W`, aligned on the Unix epoch. The state
//! counts the units admitted in the current window (`current`) and the one before
//! (`previous`). At `elapsed` microseconds into the current window, the previous window still
//! overlaps the sliding window `(now - W, now]` by `W - elapsed`, so its count is weighted by
//! that share, rounded up to the next of [`WEIGHT_STEPS`] steps (a conservative estimate that
//! keeps every product below 2^53):
//!
//! ```text
//! unit     = ceil(W / WEIGHT_STEPS)          steps = ceil(W / unit)
//! weight   = ceil((W - elapsed) / unit)      estimate = ceil(previous * weight / steps) + current
//! ```
//!
//! A request of cost `c` is admitted if `estimate + c <= N`. So no fixed window ever admits
//! more than `N`, and the weighted estimate never exceeds `N` after an admission.
//!
//! Worked example, `100/hour`: 90 admitted in the window 10:00-11:00 and none since; at 11:15
//! the previous window still counts for `ceil(90 * 0.75) = 68`, so 32 more are admitted; at
//! 11:30, `45` counts, and 55 are admitted in all.

use super::{LimitStatus, State};
use crate::Rate;
use crate::time::Micros;

/// The resolution of the previous window's weight: 2^16 steps per window.
pub const WEIGHT_STEPS: u64 = 1 << 16;

struct View {
    start: Micros,
    elapsed: Micros,
    previous: u64,
    current: u64,
}

/// Reads the state as of `now`: rolls it forward to the window that holds `now`. A state from
/// a later window (a clock that went back) is read as it is, so nothing is forgotten.
fn view(period: Micros, state: &State, now: Micros) -> View {
    let start = now - now % period;
    match *state {
        State::Window {
            start: s,
            previous,
            current,
        } => {
            if s >= start {
                View {
                    start: s,
                    elapsed: now.saturating_sub(s),
                    previous,
                    current,
                }
            } else if s.saturating_add(period) == start {
                View {
                    start,
                    elapsed: now - start,
                    previous: current,
                    current: 0,
                }
            } else {
                View {
                    start,
                    elapsed: now - start,
                    previous: 0,
                    current: 0,
                }
            }
        }
        _ => View {
            start,
            elapsed: now - start,
            previous: 0,
            current: 0,
        },
    }
}

fn weighted(previous: u64, period: Micros, elapsed: Micros) -> u64 {
    let unit = period.div_ceil(WEIGHT_STEPS);
    let steps = period.div_ceil(unit);
    let weight = period.saturating_sub(elapsed).div_ceil(unit);
    previous.saturating_mul(weight).div_ceil(steps)
}

/// Time from `elapsed` into a window until `previous` weighs at most `budget`.
fn wait_for_weight(previous: u64, budget: u64, period: Micros, elapsed: Micros) -> Micros {
    if previous <= budget {
        return 0;
    }
    let unit = period.div_ceil(WEIGHT_STEPS);
    let steps = period.div_ceil(unit);
    // ceil(previous * weight / steps) <= budget  <=>  weight <= budget * steps / previous
    let max_weight = (budget * steps / previous).min(steps);
    // weight = ceil((W - e) / unit) <= max_weight  <=>  e >= W - max_weight * unit
    period
        .saturating_sub(max_weight * unit)
        .saturating_sub(elapsed)
}

pub(super) fn check(rate: Rate, state: &State, now: Micros, cost: u64) -> LimitStatus {
    let (limit, period) = (rate.limit(), rate.period().micros());
    let v = view(period, state, now);
    let used = weighted(v.previous, period, v.elapsed).saturating_add(v.current);
    let reset_after = if v.current > 0 {
        v.start.saturating_add(2 * period).saturating_sub(now)
    } else if v.previous > 0 {
        v.start.saturating_add(period).saturating_sub(now)
    } else {
        0
    };
    let remaining_before = limit.saturating_sub(used);
    if cost > limit {
        return LimitStatus::impossible(limit, remaining_before, reset_after);
    }
    if used.saturating_add(cost) <= limit {
        let reset_after = v.start.saturating_add(2 * period).saturating_sub(now);
        return LimitStatus::allowed(limit, limit - used - cost, reset_after);
    }
    let retry_after = if v.current.saturating_add(cost) <= limit {
        // Wait in this window for the previous one to weigh less.
        wait_for_weight(v.previous, limit - cost - v.current, period, v.elapsed)
    } else {
        // Wait for the next window, where this one becomes the previous.
        let to_next = v.start.saturating_add(period).saturating_sub(now);
        to_next.saturating_add(wait_for_weight(v.current, limit - cost, period, 0))
    };
    LimitStatus::denied(limit, remaining_before, reset_after, retry_after)
}

pub(super) fn apply(period: Micros, state: &mut State, now: Micros, cost: u64) {
    let v = view(period, state, now);
    *state = State::Window {
        start: v.start,
        previous: v.previous,
        current: v.current.saturating_add(cost),
    };
}

/// Gives back `amount` units charged at `charged_at` to the window that holds them: the
/// stored current window if the charge was made in it, the stored previous one if the state
/// has rolled since; a charge older than both has aged out, and nothing is given back. So a
/// refund never removes a later request's charge from the current window.
pub(super) fn refund(period: Micros, state: &mut State, amount: u64, charged_at: Micros) {
    if let State::Window {
        start,
        previous,
        current,
    } = state
    {
        let charged_in = charged_at - charged_at % period;
        if charged_in == *start {
            *current = current.saturating_sub(amount);
        } else if charged_in.saturating_add(period) == *start {
            *previous = previous.saturating_sub(amount);
        }
    }
}
