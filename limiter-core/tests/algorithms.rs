//! Properties of the four algorithms over the whole accepted parameter domain: any rate that
//! parses, instants up to `MAX_TIMESTAMP`, any state the algorithms can reach, costs up to and
//! beyond the limit.
//!
//! Case counts are modest so that the suite stays fast in debug builds; set
//! `LIMITER_PROPTEST_CASES` to run more of every property.

use std::sync::Arc;

use limiter_core::algorithm::{SLIDING_LOG_MAX_LIMIT, WEIGHT_STEPS};
use limiter_core::batch::{self, Check, Mode};
use limiter_core::time::{MAX_TIMESTAMP, Micros};
use limiter_core::{
    Algorithm, Calendar, Key, Limit, LimitStatus, MAX_LIMIT, MAX_PERIOD_MICROS, Period, Rate,
    State, SubjectKind, Unit, Verdict,
};
use limiter_testkit::fixtures::proptest_cases;
use limiter_testkit::strategies;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const SECOND: Micros = 1_000_000;
const DAY: Micros = 86_400 * SECOND;

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: proptest_cases(default_cases),
        // Integration tests have no lib.rs beside them for proptest's default location.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/algorithms.txt",
        ))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Histories: reachable states

/// One request of a history: time moves forward by `advance` (then back by `back`, a clock
/// that went back), and a request of `cost` is made; it is applied if allowed.
#[derive(Debug, Clone)]
struct Req {
    advance: Micros,
    back: Micros,
    cost: u64,
}

/// Costs for a limit of `n`: mostly 1, often large shares of the limit, sometimes above it
/// (up to `u64::MAX`).
fn cost(n: u64) -> BoxedStrategy<u64> {
    prop_oneof![
        4 => Just(1),
        3 => 1..=n,
        2 => (n / 2).max(1)..=n,
        1 => Just(n),
        1 => (n + 1)..=n.saturating_mul(3).max(n + 1),
        1 => Just(u64::MAX),
    ]
    .boxed()
}

/// A history of up to `len` requests for `limit`; time goes back now and then if `backwards`.
fn history(limit: &Limit, len: usize, backwards: bool) -> BoxedStrategy<Vec<Req>> {
    let n = limit.rate().limit();
    let period = limit.rate().period().micros();
    let interval = (period / n).max(1);
    let advance = prop_oneof![
        3 => Just(0),
        3 => 0..=2 * interval,
        2 => 0..=period,
        1 => period..=3 * period,
    ];
    let back = if backwards {
        prop_oneof![6 => Just(0), 1 => 0..=period].boxed()
    } else {
        Just(0).boxed()
    };
    let req = (advance, back, cost(n)).prop_map(|(advance, back, cost)| Req {
        advance,
        back,
        cost,
    });
    prop::collection::vec(req, 0..=len).boxed()
}

/// One evaluated request of a history.
#[derive(Debug, Clone)]
struct Evaluated {
    /// The instant the algorithm saw (clamped to `MAX_TIMESTAMP`, as the algorithms do).
    at: Micros,
    cost: u64,
    status: LimitStatus,
}

/// Replays `history` from a fresh state at `start`; returns every evaluation, the final state
/// and the final instant (unclamped).
fn replay(limit: &Limit, start: Micros, history: &[Req]) -> (Vec<Evaluated>, State, Micros) {
    let mut state = State::Fresh;
    let mut now = start;
    let mut out = Vec::with_capacity(history.len());
    for req in history {
        now = now.saturating_add(req.advance).saturating_sub(req.back);
        let status = limit.check(&state, now, req.cost);
        if status.is_allowed() {
            limit.apply(&mut state, now, req.cost);
        }
        out.push(Evaluated {
            at: now.min(MAX_TIMESTAMP),
            cost: req.cost,
            status,
        });
    }
    (out, state, now)
}

fn admitted(evaluated: &[Evaluated]) -> Vec<(Micros, u64)> {
    evaluated
        .iter()
        .filter(|e| e.status.is_allowed())
        .map(|e| (e.at, e.cost))
        .collect()
}

/// A limit, a start instant that leaves room for a few periods before `MAX_TIMESTAMP`, and a
/// history with time moving forward only.
fn forward_case(len: usize) -> BoxedStrategy<(Limit, Micros, Vec<Req>)> {
    strategies::limit()
        .prop_flat_map(move |limit| {
            let period = limit.rate().period().micros();
            let steps = u64::try_from(len).expect("small");
            let latest = MAX_TIMESTAMP - 4 * steps * period.max(DAY);
            let start = prop_oneof![strategies::instant(), 0..=latest, Just(latest)];
            let history = history(&limit, len, false);
            (Just(limit), start, history)
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// (a) No window of an algorithm's definition admits more than the limit

fn emission_interval(limit: &Limit) -> Micros {
    limit
        .rate()
        .period()
        .micros()
        .div_ceil(limit.rate().limit())
}

fn local_date(calendar: &Calendar, at: Micros) -> jiff::civil::Date {
    let tz = jiff::tz::TimeZone::get(calendar.name()).expect("generated zones exist");
    let ts = jiff::Timestamp::from_microsecond(i64::try_from(at).expect("instants fit i64"))
        .expect("instants are valid timestamps");
    ts.to_zoned_datetime(tz).date()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn no_window_admits_more_than_the_limit((limit, start, history) in forward_case(48)) {
        let (evaluated, state, _) = replay(&limit, start, &history);
        let n = limit.rate().limit();
        let period = limit.rate().period().micros();
        for e in &evaluated {
            prop_assert!(e.status.remaining <= n, "remaining above the limit: {e:?}");
            prop_assert_eq!(e.status.limit, n);
            match e.status.verdict {
                Verdict::Allowed => prop_assert_eq!(e.status.retry_after, 0),
                Verdict::Denied => prop_assert!(e.status.retry_after >= 1, "{e:?}"),
                Verdict::Impossible => {
                    prop_assert!(e.cost > n && e.status.retry_after == 0, "{e:?}")
                }
            }
            prop_assert_eq!(e.cost > n, e.status.verdict == Verdict::Impossible, "{:?}", e);
        }
        let admitted = admitted(&evaluated);
        match limit.algorithm() {
            Algorithm::Gcra => {
                // Any interval [t_i, t_j] admits at most N + floor((t_j - t_i) / T).
                let t = emission_interval(&limit);
                for i in 0..admitted.len() {
                    let mut sum = 0u64;
                    for j in i..admitted.len() {
                        sum += admitted[j].1;
                        let bound = n + (admitted[j].0 - admitted[i].0) / t;
                        prop_assert!(
                            sum <= bound,
                            "{limit}: {sum} units admitted in [{}, {}], at most {bound} allowed",
                            admitted[i].0,
                            admitted[j].0
                        );
                    }
                }
            }
            Algorithm::SlidingWindow => {
                let mut per_window = std::collections::BTreeMap::<Micros, u64>::new();
                for &(at, cost) in &admitted {
                    *per_window.entry(at / period).or_default() += cost;
                }
                for (window, sum) in per_window {
                    prop_assert!(sum <= n, "{limit}: fixed window {window} admitted {sum}");
                }
                // The weighted estimate never exceeds N after an admission.
                let mut replayed = State::Fresh;
                for e in &evaluated {
                    if e.status.is_allowed() {
                        limit.apply(&mut replayed, e.at, e.cost);
                        let used = exact::window_used(n, period, &replayed, e.at);
                        prop_assert!(used <= n, "{limit}: estimate {used} after admission at {}", e.at);
                    }
                }
                prop_assert_eq!(replayed, state);
            }
            Algorithm::SlidingLog => {
                // Every half-open interval [t_i, t_i + W) admits at most N.
                for (i, &(from, _)) in admitted.iter().enumerate() {
                    let sum: u64 = admitted[i..]
                        .iter()
                        .take_while(|(at, _)| *at < from + period)
                        .map(|(_, c)| c)
                        .sum();
                    prop_assert!(sum <= n, "{limit}: {sum} admitted in [{from}, {from} + W)");
                }
            }
            Algorithm::Calendar(calendar) => {
                let mut per_day = std::collections::BTreeMap::<jiff::civil::Date, u64>::new();
                for &(at, cost) in &admitted {
                    *per_day.entry(local_date(calendar, at)).or_default() += cost;
                }
                for (day, sum) in per_day {
                    prop_assert!(sum <= n, "{limit}: local day {day} admitted {sum}");
                }
            }
            other => prop_assert!(false, "unknown algorithm {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) GCRA burst and refill match the documented numbers

fn gcra_case() -> BoxedStrategy<(Rate, Micros)> {
    let latest = MAX_TIMESTAMP - 4 * MAX_PERIOD_MICROS;
    (
        strategies::rate(),
        prop_oneof![strategies::instant(), 0..=latest, Just(latest)],
    )
        .boxed()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn gcra_bursts_the_limit_and_refills_one_unit_per_emission_interval((rate, now) in gcra_case()) {
        let limit = Limit::gcra(rate);
        let n = rate.limit();
        // The documented emission interval: T = ceil(P / N).
        let t = rate.period().micros().div_ceil(n);
        let mut state = State::Fresh;

        // A fresh bucket takes the whole burst at once...
        let burst = limit.check(&state, now, n);
        prop_assert_eq!(burst.verdict, Verdict::Allowed);
        prop_assert_eq!(burst.remaining, 0);
        prop_assert_eq!(burst.reset_after, n * t);
        limit.apply(&mut state, now, n);
        // ...then the next unit waits exactly one emission interval.
        let denied = limit.check(&state, now, 1);
        prop_assert_eq!(denied.verdict, Verdict::Denied);
        prop_assert_eq!(denied.retry_after, t);
        if t > 1 {
            prop_assert_eq!(limit.check(&state, now + t - 1, 1).verdict, Verdict::Denied);
        }
        let refilled = limit.check(&state, now + t, 1);
        prop_assert_eq!(refilled.verdict, Verdict::Allowed);
        prop_assert_eq!(refilled.remaining, 0);
        limit.apply(&mut state, now + t, 1);
        // A whole burst fits again N intervals after the last admission, not a microsecond
        // earlier.
        let full = now + t + n * t;
        prop_assert_eq!(limit.check(&state, full - 1, n).verdict, Verdict::Denied);
        prop_assert_eq!(limit.check(&state, full, n).verdict, Verdict::Allowed);
        prop_assert_eq!(limit.fresh_at(&state), full);
    }

    #[test]
    fn gcra_admits_exactly_the_limit_one_by_one(n in 1..=300u64, unit_index in 0..4usize, now in strategies::instant()) {
        let unit = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day][unit_index];
        let limit = Limit::gcra(Rate::per(n, unit).expect("valid rate"));
        let mut state = State::Fresh;
        for i in 0..n {
            let status = limit.check(&state, now, 1);
            prop_assert!(status.is_allowed(), "request {} of {n}: {status:?}", i + 1);
            prop_assert_eq!(status.remaining, n - 1 - i);
            limit.apply(&mut state, now, 1);
        }
        prop_assert_eq!(limit.check(&state, now, 1).verdict, Verdict::Denied);
    }
}

#[test]
fn gcra_ten_per_minute_matches_the_worked_example() {
    let limit = Limit::gcra("10/minute".parse().expect("valid rate"));
    let now = 1_795_651_200_000_000;
    let mut state = State::Fresh;
    for _ in 0..10 {
        assert!(limit.check(&state, now, 1).is_allowed());
        limit.apply(&mut state, now, 1);
    }
    let denied = limit.check(&state, now, 1);
    assert_eq!(
        (denied.verdict, denied.retry_after),
        (Verdict::Denied, 6 * SECOND)
    );
    assert!(limit.check(&state, now + 6 * SECOND, 1).is_allowed());
    limit.apply(&mut state, now + 6 * SECOND, 1);
    assert!(!limit.check(&state, now + 6 * SECOND, 1).is_allowed());
    assert!(limit.check(&state, now + 66 * SECOND, 10).is_allowed());
}

// ---------------------------------------------------------------------------------------------
// (c) All or nothing, (f) denied requests never change state

/// Up to five limits, each with a reachable state (time may have gone back), a cost and a
/// shadow flag, and the instant of the batch.
/// One check of a generated batch: its limit, the history that reached its state, its cost and
/// whether it is in shadow mode.
type Member = (Limit, Vec<Req>, u64, bool);

fn batch_case() -> BoxedStrategy<(Vec<Member>, Micros)> {
    let member = strategies::limit().prop_flat_map(|limit| {
        let n = limit.rate().limit();
        let history = history(&limit, 12, true);
        (Just(limit), history, cost(n), prop::bool::weighted(0.2))
    });
    (
        prop::collection::vec(member, 1..=5),
        strategies::any_instant(),
    )
        .boxed()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn batches_are_all_or_nothing((members, start) in batch_case()) {
        let mut checks = Vec::new();
        let mut states = Vec::new();
        let mut now = start;
        for (i, (limit, history, cost, shadow)) in members.iter().enumerate() {
            let (_, state, end) = replay(limit, start, history);
            now = now.max(end);
            let key = Key::new("props", &format!("p{i}"), SubjectKind::User, "s");
            let check = Check::new(format!("p{i}"), key, Arc::new(limit.clone()), *cost);
            checks.push(if *shadow { check.shadow() } else { check });
            states.push(state);
        }
        let before = states.clone();
        let expected: Vec<LimitStatus> = checks
            .iter()
            .zip(&states)
            .map(|(c, s)| c.limit.check(s, now, c.cost))
            .collect();
        let expected_allowed = checks.iter().zip(&expected).all(|(c, s)| c.shadow || s.is_allowed());
        // A denied batch charges nothing: the limits that allowed report what stands.
        let reported: Vec<LimitStatus> = checks
            .iter()
            .zip(&states)
            .zip(&expected)
            .map(|((c, s), status)| if expected_allowed || !status.is_allowed() {
                *status
            } else {
                c.limit.standing(s, now)
            })
            .collect();

        // Peek charges nothing.
        let mut peeked = states.clone();
        let mut refs: Vec<&mut State> = peeked.iter_mut().collect();
        let mut out = Vec::new();
        let allowed = batch::evaluate(&checks, &mut refs, now, Mode::Peek, &mut out);
        prop_assert_eq!(allowed, expected_allowed);
        prop_assert_eq!(&out, &reported);
        prop_assert_eq!(&peeked, &before);

        let mut refs: Vec<&mut State> = states.iter_mut().collect();
        let allowed = batch::evaluate(&checks, &mut refs, now, Mode::Consume, &mut out);
        prop_assert_eq!(allowed, expected_allowed);
        prop_assert_eq!(&out, &reported);
        for (i, (check, status)) in checks.iter().zip(&expected).enumerate() {
            let mut alone = before[i].clone();
            if allowed && status.is_allowed() {
                check.limit.apply(&mut alone, now, check.cost);
            }
            // Denied: every state bit-identical. Admitted: each charged as alone, except the
            // shadow checks that denied.
            prop_assert_eq!(&states[i], &alone, "check {} of an {} batch", i, if allowed { "admitted" } else { "denied" });
        }
    }

    #[test]
    fn denied_requests_never_change_state(
        (limit, history, now, cost) in strategies::limit().prop_flat_map(|limit| {
            let n = limit.rate().limit();
            (Just(limit.clone()), history(&limit, 24, true), strategies::any_instant(), cost(n))
        })
    ) {
        let (_, state, _) = replay(&limit, now.saturating_sub(DAY), &history);
        let status = limit.check(&state, now, cost);
        prop_assert_eq!(limit.check(&state, now, cost), status, "check is pure");
        if !status.is_allowed() {
            let key = Key::new("props", "p", SubjectKind::User, "s");
            let checks = [Check::new("p", key, Arc::new(limit.clone()), cost)];
            let mut after = state.clone();
            let mut out = Vec::new();
            let allowed = batch::evaluate(&checks, &mut [&mut after], now, Mode::Consume, &mut out);
            prop_assert!(!allowed);
            prop_assert_eq!(&after, &state);
            prop_assert_eq!(out[0], status);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Every intermediate value stays below 2^53

/// The algorithms' arithmetic, re-implemented with checked operations that assert every
/// operand and result is below 2^53 (exactly representable as a double, as in the Redis Lua
/// twin). Equality with `Limit::check`/`apply`/`refund` on the same inputs shows that these
/// are the crate's formulas, so the bound holds for them.
mod exact {
    use limiter_core::time::{MAX_TIMESTAMP, Micros};
    use limiter_core::{Algorithm, Limit, LimitStatus, State, Verdict};

    use super::WEIGHT_STEPS;

    const BOUND: u64 = 1 << 53;

    fn ok(v: u64) -> u64 {
        assert!(v < BOUND, "intermediate value {v} is not below 2^53");
        v
    }
    fn add(a: u64, b: u64) -> u64 {
        ok(ok(a).checked_add(ok(b)).expect("no overflow"))
    }
    fn sub(a: u64, b: u64) -> u64 {
        ok(ok(a).checked_sub(ok(b)).expect("no underflow"))
    }
    fn sat_sub(a: u64, b: u64) -> u64 {
        ok(ok(a).saturating_sub(ok(b)))
    }
    fn mul(a: u64, b: u64) -> u64 {
        ok(ok(a).checked_mul(ok(b)).expect("no overflow"))
    }
    fn div(a: u64, b: u64) -> u64 {
        ok(ok(a).checked_div(ok(b)).expect("no division by zero"))
    }
    fn div_ceil(a: u64, b: u64) -> u64 {
        assert!(b > 0, "division by zero");
        ok(ok(a).div_ceil(ok(b)))
    }
    fn rem(a: u64, b: u64) -> u64 {
        ok(ok(a).checked_rem(ok(b)).expect("no division by zero"))
    }

    fn status(verdict: Verdict, limit: u64, remaining: u64, reset: u64, retry: u64) -> LimitStatus {
        LimitStatus {
            verdict,
            limit: ok(limit),
            remaining: ok(remaining),
            reset_after: ok(reset),
            retry_after: ok(retry),
        }
    }

    /// `check`, re-implemented. `cost` is only compared until it is known not to exceed the
    /// limit, so it may be any `u64`.
    pub(super) fn check(limit: &Limit, state: &State, now: Micros, cost: u64) -> LimitStatus {
        let now = ok(now.min(MAX_TIMESTAMP));
        let n = ok(limit.rate().limit());
        let period = ok(limit.rate().period().micros());
        match limit.algorithm() {
            Algorithm::Gcra => gcra_check(n, period, state, now, cost),
            Algorithm::SlidingWindow => window_check(n, period, state, now, cost),
            Algorithm::SlidingLog => log_check(n, period, state, now, cost),
            Algorithm::Calendar(_) => calendar_check(limit, n, state, now, cost),
            other => panic!("unknown algorithm {other:?}"),
        }
    }

    /// `apply`, re-implemented; `cost` does not exceed the limit (it was allowed).
    pub(super) fn apply(limit: &Limit, state: &State, now: Micros, cost: u64) -> State {
        let now = ok(now.min(MAX_TIMESTAMP));
        let n = ok(limit.rate().limit());
        let period = ok(limit.rate().period().micros());
        assert!(cost <= n, "apply only follows an allowed check");
        match limit.algorithm() {
            Algorithm::Gcra => {
                let t = div_ceil(period, n);
                State::Gcra {
                    tat: add(gcra_tat(state, now), mul(cost, t)),
                }
            }
            Algorithm::SlidingWindow => {
                let v = window_view(period, state, now);
                State::Window {
                    start: v.start,
                    previous: v.previous,
                    current: add(v.current, cost),
                }
            }
            Algorithm::SlidingLog => {
                let mut entries: Vec<Micros> = log_live(period, state, now).to_vec();
                let at = entries.last().map_or(now, |&last| last.max(now));
                entries.extend(std::iter::repeat_n(
                    ok(at),
                    usize::try_from(cost).expect("small"),
                ));
                State::Log { entries }
            }
            Algorithm::Calendar(_) => {
                let (used, end) = calendar_view(limit, state, now);
                State::Calendar {
                    end,
                    used: add(used, cost),
                }
            }
            other => panic!("unknown algorithm {other:?}"),
        }
    }

    /// `refund`, re-implemented, for an `amount` that was charged (at most the limit) at
    /// `charged_at`.
    pub(super) fn refund(
        limit: &Limit,
        state: &State,
        now: Micros,
        amount: u64,
        charged_at: Micros,
    ) -> State {
        let now = ok(now.min(MAX_TIMESTAMP));
        let charged_at = ok(charged_at.min(MAX_TIMESTAMP));
        let n = ok(limit.rate().limit());
        let period = ok(limit.rate().period().micros());
        assert!(amount <= n, "a refund gives back what one request took");
        match (limit.algorithm(), state) {
            (Algorithm::Gcra, State::Gcra { tat }) => {
                let t = div_ceil(period, n);
                let charged = mul(amount, t);
                let owed = sat_sub(add(charged_at, charged), now).min(charged);
                State::Gcra {
                    tat: sat_sub(*tat, owed),
                }
            }
            (
                Algorithm::SlidingWindow,
                State::Window {
                    start,
                    previous,
                    current,
                },
            ) => {
                let charged_in = sub(charged_at, rem(charged_at, period));
                let (previous, current) = if charged_in == *start {
                    (*previous, sat_sub(*current, amount))
                } else if add(charged_in, period) == *start {
                    (sat_sub(*previous, amount), *current)
                } else {
                    (*previous, *current)
                };
                State::Window {
                    start: *start,
                    previous,
                    current,
                }
            }
            (Algorithm::SlidingLog, State::Log { entries }) => {
                let mut entries = entries.clone();
                let mut left = amount;
                let mut i = entries.len();
                while left > 0 && i > 0 {
                    i -= 1;
                    if entries[i] == charged_at {
                        entries.remove(i);
                        left -= 1;
                    } else if entries[i] < charged_at {
                        break;
                    }
                }
                State::Log { entries }
            }
            (Algorithm::Calendar(c), State::Calendar { end, used }) => State::Calendar {
                end: *end,
                used: if c.day_bounds(charged_at).1 == *end {
                    sat_sub(*used, amount)
                } else {
                    *used
                },
            },
            _ => state.clone(),
        }
    }

    fn gcra_tat(state: &State, now: Micros) -> Micros {
        match state {
            State::Gcra { tat } => ok(*tat).max(now),
            _ => now,
        }
    }

    fn gcra_check(n: u64, period: u64, state: &State, now: Micros, cost: u64) -> LimitStatus {
        let t = div_ceil(period, n);
        let capacity = mul(n, t);
        let tat = gcra_tat(state, now);
        let backlog = sub(tat, now);
        let remaining_before = div(sat_sub(capacity, backlog), t);
        if cost > n {
            return status(Verdict::Impossible, n, remaining_before, backlog, 0);
        }
        let backlog_after = add(backlog, mul(cost, t));
        if backlog_after <= capacity {
            let remaining = div(sub(capacity, backlog_after), t);
            status(Verdict::Allowed, n, remaining, backlog_after, 0)
        } else {
            let retry = sub(backlog_after, capacity);
            status(Verdict::Denied, n, remaining_before, backlog, retry)
        }
    }

    struct View {
        start: Micros,
        elapsed: Micros,
        previous: u64,
        current: u64,
    }

    fn window_view(period: u64, state: &State, now: Micros) -> View {
        let start = sub(now, rem(now, period));
        let rolled = |previous, current| View {
            start,
            elapsed: sub(now, start),
            previous,
            current,
        };
        match *state {
            State::Window {
                start: s,
                previous,
                current,
            } => {
                if ok(s) >= start {
                    View {
                        start: s,
                        elapsed: sat_sub(now, s),
                        previous: ok(previous),
                        current: ok(current),
                    }
                } else if add(s, period) == start {
                    rolled(ok(current), 0)
                } else {
                    rolled(0, 0)
                }
            }
            _ => rolled(0, 0),
        }
    }

    fn weighted(previous: u64, period: u64, elapsed: u64) -> u64 {
        let unit = div_ceil(period, WEIGHT_STEPS);
        let steps = div_ceil(period, unit);
        let weight = div_ceil(sat_sub(period, elapsed), unit);
        div_ceil(mul(previous, weight), steps)
    }

    fn wait_for_weight(previous: u64, budget: u64, period: u64, elapsed: u64) -> u64 {
        if previous <= budget {
            return 0;
        }
        let unit = div_ceil(period, WEIGHT_STEPS);
        let steps = div_ceil(period, unit);
        let max_weight = div(mul(budget, steps), previous).min(steps);
        sat_sub(sat_sub(period, mul(max_weight, unit)), elapsed)
    }

    /// The sliding window's weighted estimate of the units used at `now`.
    pub(super) fn window_used(_n: u64, period: u64, state: &State, now: Micros) -> u64 {
        let v = window_view(period, state, ok(now));
        add(weighted(v.previous, period, v.elapsed), v.current)
    }

    fn window_check(n: u64, period: u64, state: &State, now: Micros, cost: u64) -> LimitStatus {
        let v = window_view(period, state, now);
        let used = add(weighted(v.previous, period, v.elapsed), v.current);
        let reset_after = if v.current > 0 {
            sat_sub(add(v.start, mul(2, period)), now)
        } else if v.previous > 0 {
            sat_sub(add(v.start, period), now)
        } else {
            0
        };
        let remaining_before = sat_sub(n, used);
        if cost > n {
            return status(Verdict::Impossible, n, remaining_before, reset_after, 0);
        }
        if add(used, cost) <= n {
            let reset = sat_sub(add(v.start, mul(2, period)), now);
            return status(Verdict::Allowed, n, sub(sub(n, used), cost), reset, 0);
        }
        let retry = if add(v.current, cost) <= n {
            wait_for_weight(v.previous, sub(sub(n, cost), v.current), period, v.elapsed)
        } else {
            let to_next = sat_sub(add(v.start, period), now);
            add(to_next, wait_for_weight(v.current, sub(n, cost), period, 0))
        };
        status(
            Verdict::Denied,
            n,
            remaining_before,
            reset_after,
            retry.max(1),
        )
    }

    fn log_live(period: u64, state: &State, now: Micros) -> &[Micros] {
        match state {
            State::Log { entries } => {
                let first = entries.partition_point(|&t| add(t, period) <= now);
                &entries[first..]
            }
            _ => &[],
        }
    }

    fn log_check(n: u64, period: u64, state: &State, now: Micros, cost: u64) -> LimitStatus {
        let live = log_live(period, state, now);
        let count = ok(u64::try_from(live.len()).expect("small"));
        let reset_after = live.last().map_or(0, |&t| sat_sub(add(t, period), now));
        let remaining_before = sat_sub(n, count);
        if cost > n {
            return status(Verdict::Impossible, n, remaining_before, reset_after, 0);
        }
        if add(count, cost) <= n {
            let remaining = sub(sub(n, count), cost);
            return status(Verdict::Allowed, n, remaining, reset_after.max(period), 0);
        }
        let must_leave = sub(add(count, cost), n);
        let index = usize::try_from(sub(must_leave, 1)).expect("small");
        let retry = live
            .get(index)
            .map_or(period, |&t| sat_sub(add(t, period), now));
        status(
            Verdict::Denied,
            n,
            remaining_before,
            reset_after,
            retry.max(1),
        )
    }

    fn calendar_view(limit: &Limit, state: &State, now: Micros) -> (u64, Micros) {
        let Algorithm::Calendar(calendar) = limit.algorithm() else {
            unreachable!("a calendar limit")
        };
        match *state {
            State::Calendar { end, used } if now < ok(end) => (ok(used), end),
            _ => (0, ok(calendar.day_bounds(now).1)),
        }
    }

    fn calendar_check(limit: &Limit, n: u64, state: &State, now: Micros, cost: u64) -> LimitStatus {
        let (used, end) = calendar_view(limit, state, now);
        let to_end = sat_sub(end, now).max(1);
        let remaining_before = sat_sub(n, used);
        let verdict = if cost > n {
            Verdict::Impossible
        } else if add(used, cost) <= n {
            Verdict::Allowed
        } else {
            Verdict::Denied
        };
        let remaining = if verdict == Verdict::Allowed {
            sub(sub(n, used), cost)
        } else {
            remaining_before
        };
        let reset = if used > 0 || verdict == Verdict::Allowed {
            to_end
        } else {
            0
        };
        let retry = if verdict == Verdict::Denied {
            to_end
        } else {
            0
        };
        status(verdict, n, remaining, reset, retry)
    }
}

/// Limits at the domain's extremes: limits of 1 and 10^9 (1,000 for sliding logs), periods of
/// one second and 366 days, and anything in between.
fn extreme_limit() -> BoxedStrategy<Limit> {
    let period = prop_oneof![
        2 => Just(Period::new(366, Unit::Day)),
        1 => Just(Period::new(1, Unit::Second)),
        1 => Just(Period::new(1, Unit::Day)),
        2 => strategies::period().prop_map(Some),
    ]
    .prop_filter_map("valid period", |p| p);
    let limit_for = |max: u64| prop_oneof![2 => Just(max), 1 => Just(1), 1 => 1..=max];
    let rate = period
        .clone()
        .prop_flat_map(move |p| (Just(p), limit_for(MAX_LIMIT.min(p.micros()))))
        .prop_filter_map("valid rate", |(p, l)| Rate::new(l, p).ok());
    let log_rate = period
        .prop_flat_map(move |p| (Just(p), limit_for(SLIDING_LOG_MAX_LIMIT.min(p.micros()))))
        .prop_filter_map("valid rate", |(p, l)| Rate::new(l, p).ok());
    prop_oneof![
        rate.clone().prop_map(Limit::gcra),
        rate.prop_map(Limit::sliding_window),
        log_rate.prop_filter_map("valid log", |r| Limit::sliding_log(r).ok()),
        (
            prop_oneof![2 => Just(MAX_LIMIT), 1 => 1..=MAX_LIMIT],
            strategies::calendar()
        )
            .prop_filter_map("valid calendar", |(l, c)| {
                Limit::calendar(Rate::per(l, Unit::Day).ok()?, c).ok()
            }),
    ]
    .boxed()
}

/// Instants near `MAX_TIMESTAMP` (and past it, where the algorithms clamp), or anywhere.
fn extreme_instant() -> BoxedStrategy<Micros> {
    prop_oneof![
        3 => (0..=3 * MAX_PERIOD_MICROS).prop_map(|d| MAX_TIMESTAMP - d),
        1 => Just(MAX_TIMESTAMP),
        1 => MAX_TIMESTAMP..=u64::MAX,
        2 => strategies::any_instant(),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn every_intermediate_value_stays_below_2_pow_53(
        (limit, start, history, now, cost, refund) in extreme_limit().prop_flat_map(|limit| {
            let n = limit.rate().limit();
            (
                Just(limit.clone()),
                extreme_instant(),
                history(&limit, 12, true),
                extreme_instant(),
                cost(n),
                1..=n,
            )
        })
    ) {
        // Replay the history through the re-implementation, checking each step against the
        // crate, so that the state reached is one the crate reaches too.
        let mut state = State::Fresh;
        let mut at = start;
        for req in &history {
            at = at.saturating_add(req.advance).saturating_sub(req.back);
            let status = exact::check(&limit, &state, at, req.cost);
            prop_assert_eq!(status, limit.check(&state, at, req.cost), "check at {} cost {}", at, req.cost);
            if status.is_allowed() {
                let next = exact::apply(&limit, &state, at, req.cost);
                limit.apply(&mut state, at, req.cost);
                prop_assert_eq!(&next, &state, "apply at {} cost {}", at, req.cost);
            }
        }
        let status = exact::check(&limit, &state, now, cost);
        prop_assert_eq!(status, limit.check(&state, now, cost));
        if status.is_allowed() {
            let next = exact::apply(&limit, &state, now, cost);
            limit.apply(&mut state, now, cost);
            prop_assert_eq!(&next, &state);
        }
        let refunded = exact::refund(&limit, &state, now, refund, now);
        limit.refund(&mut state, now, refund, now);
        prop_assert_eq!(&refunded, &state);
        // And once more after the refund, at the latest instant.
        let status = exact::check(&limit, &state, MAX_TIMESTAMP, refund);
        prop_assert_eq!(status, limit.check(&state, MAX_TIMESTAMP, refund));
    }
}

// ---------------------------------------------------------------------------------------------
// (e) Rate: Display and FromStr round-trip

fn unit_spelling() -> BoxedStrategy<(String, Option<Unit>)> {
    let known = [
        ("s", Unit::Second),
        ("sec", Unit::Second),
        ("second", Unit::Second),
        ("seconds", Unit::Second),
        ("m", Unit::Minute),
        ("min", Unit::Minute),
        ("minute", Unit::Minute),
        ("minutes", Unit::Minute),
        ("h", Unit::Hour),
        ("hour", Unit::Hour),
        ("hours", Unit::Hour),
        ("d", Unit::Day),
        ("day", Unit::Day),
        ("days", Unit::Day),
    ];
    prop_oneof![
        4 => prop::sample::select(known.to_vec()).prop_map(|(s, u)| (s.to_owned(), Some(u))),
        1 => prop::sample::select(vec!["", "fortnight", "ms", "w", "y", "5"]).prop_map(|s| (s.to_owned(), None)),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn rate_display_parses_back_to_the_same_rate(rate in strategies::rate()) {
        let shown = rate.to_string();
        let parsed: Rate = shown.parse().map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
        prop_assert_eq!(parsed, rate);
        prop_assert_eq!(parsed.to_string(), shown);
    }

    #[test]
    fn rate_spellings_mean_what_they_say(
        limit in prop_oneof![1..=100u64, 0..=u64::MAX, Just(MAX_LIMIT), Just(MAX_LIMIT + 1)],
        count in prop::option::of(prop_oneof![0..=400u32, any::<u32>()]),
        (spelling, unit) in unit_spelling(),
        spaces in prop::sample::select(vec![("", "", ""), (" ", " ", ""), ("", "", " "), (" ", "  ", " ")]),
    ) {
        let count_text = count.map(|c| c.to_string()).unwrap_or_default();
        let input = format!("{}{limit}{}/{}{count_text}{}{spelling}", spaces.0, spaces.1, spaces.0, spaces.2);
        let expected = unit
            .and_then(|u| Period::new(count.unwrap_or(1), u))
            .and_then(|p| Rate::new(limit, p).ok());
        match (input.parse::<Rate>(), expected) {
            (Ok(got), Some(expected)) => prop_assert_eq!(got, expected),
            (Err(e), None) => {
                let message = e.to_string();
                let quoted = format!("invalid rate {input:?}");
                prop_assert!(message.starts_with(&quoted), "{}", message);
            }
            (got, expected) => prop_assert!(false, "{input:?}: parsed {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn any_string_parses_or_errs_and_parsed_rates_round_trip(input in "\\PC{0,24}|[0-9 ]{1,12}/[0-9 ]{0,6}[a-zA-Z]{0,8}") {
        if let Ok(rate) = input.parse::<Rate>() {
            prop_assert!((1..=MAX_LIMIT).contains(&rate.limit()));
            prop_assert!(rate.period().micros() <= MAX_PERIOD_MICROS);
            prop_assert_eq!(rate.to_string().parse::<Rate>().ok(), Some(rate));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (g) State encode/decode round-trip

fn any_state() -> BoxedStrategy<State> {
    let word = prop_oneof![any::<u64>(), 0..=MAX_TIMESTAMP, Just(0), Just(u64::MAX)];
    prop_oneof![
        Just(State::Fresh),
        word.clone().prop_map(|tat| State::Gcra { tat }),
        (word.clone(), word.clone(), word.clone()).prop_map(|(start, previous, current)| {
            State::Window {
                start,
                previous,
                current,
            }
        }),
        prop::collection::vec(word.clone(), 0..=64).prop_map(|mut entries| {
            entries.sort_unstable();
            State::Log { entries }
        }),
        (word.clone(), word).prop_map(|(end, used)| State::Calendar { end, used }),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn state_encoding_round_trips(state in any_state(), prefix in prop::collection::vec(any::<u8>(), 0..4)) {
        let mut buf = prefix.clone();
        state.encode(&mut buf);
        prop_assert_eq!(&buf[..prefix.len()], &prefix[..], "encode appends");
        prop_assert_eq!(State::decode(&buf[prefix.len()..]), Some(state));
    }

    #[test]
    fn decoding_any_bytes_never_panics_and_is_canonical(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        if let Some(state) = State::decode(&bytes) {
            let mut again = Vec::new();
            state.encode(&mut again);
            prop_assert_eq!(again, bytes);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Store contracts that rest on the algorithms: expiry and refunds

proptest! {
    #![proptest_config(config(256))]

    /// From `fresh_at(state)` on, a state answers exactly as a fresh one: a store may drop it
    /// then (its TTL), and nothing changes.
    #[test]
    fn a_state_past_fresh_at_is_indistinguishable_from_fresh(
        ((limit, start, history), later, cost) in (forward_case(24), 0..=2 * MAX_PERIOD_MICROS, 1..=3u64)
    ) {
        let (_, state, _) = replay(&limit, start, &history);
        let at = limit.fresh_at(&state).saturating_add(later % (2 * limit.rate().period().micros()));
        prop_assume!(at <= MAX_TIMESTAMP);
        let cost = cost.min(limit.rate().limit());
        prop_assert_eq!(limit.check(&state, at, cost), limit.check(&State::Fresh, at, cost), "state {:?} at {}", state, at);
    }

    /// A charge refunded at once leaves no trace, and a refund never gives back more than was
    /// taken: `remaining` never exceeds the limit.
    #[test]
    fn a_refunded_charge_leaves_no_trace(
        ((limit, start, history), cost, extra, laters) in forward_case(24).prop_flat_map(|case| {
            let n = case.0.rate().limit();
            let period = case.0.rate().period().micros();
            (Just(case), 1..=n, 0..=n, prop::collection::vec(0..=3 * period, 1..6))
        })
    ) {
        let (_, before, now) = replay(&limit, start, &history);
        let mut now = now.min(MAX_TIMESTAMP);
        let status = limit.check(&before, now, cost);
        if !status.is_allowed() {
            // Wait until it fits, rather than discard the case.
            now = (now + status.retry_after).min(MAX_TIMESTAMP);
        }
        prop_assume!(limit.check(&before, now, cost).is_allowed());
        let mut charged = before.clone();
        limit.apply(&mut charged, now, cost);
        let mut refunded = charged.clone();
        limit.refund(&mut refunded, now, cost, now);
        let mut over_refunded = charged.clone();
        limit.refund(&mut over_refunded, now, cost + extra, now);
        for later in laters {
            let at = now.saturating_add(later).min(MAX_TIMESTAMP);
            for probe in [1, cost, limit.rate().limit()] {
                let original = limit.check(&before, at, probe);
                prop_assert_eq!(limit.check(&refunded, at, probe), original, "refund of {} at +{}", cost, later);
                let over = limit.check(&over_refunded, at, probe);
                prop_assert!(over.remaining <= limit.rate().limit(), "{over:?}");
                // Giving back more can only leave more room than never charging did.
                prop_assert!(over.is_allowed() || !original.is_allowed(), "{over:?} vs {original:?}");
                if over.verdict == original.verdict {
                    prop_assert!(over.remaining >= original.remaining, "over-refund took more: {over:?} vs {original:?}");
                }
            }
        }
    }
}
