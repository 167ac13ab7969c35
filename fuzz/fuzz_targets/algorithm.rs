//! Arbitrary limits, states, instants and costs: `check`, `apply` and `refund` never panic,
//! a denied request never changes the state, `remaining` never exceeds the limit, and a
//! state's encoding round-trips.
//!
//! States come both from arbitrary bytes through `State::decode` (what a store reads back,
//! corrupted or not) and from a history of requests (states the algorithms reach).
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use limiter_core::batch::{self, Check, Mode};
use limiter_core::{
    Algorithm, Calendar, Key, Limit, MAX_LIMIT, MAX_PERIOD_MICROS, Period, Rate, State,
    SubjectKind, Unit,
};

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
];

#[derive(Arbitrary, Debug)]
enum Algo {
    Gcra,
    SlidingWindow,
    SlidingLog,
    Calendar(u8),
}

/// Any state `State::decode` accepts, built directly so that the fuzzer need not find the
/// encoding first.
#[derive(Arbitrary, Debug)]
enum Words {
    Fresh,
    Gcra(u64),
    Window(u64, u64, u64),
    Log(Vec<u64>),
    Calendar(u64, u64),
}

impl Words {
    fn state(&self) -> State {
        match self {
            Words::Fresh => State::Fresh,
            Words::Gcra(tat) => State::Gcra { tat: *tat },
            Words::Window(start, previous, current) => State::Window {
                start: *start,
                previous: *previous,
                current: *current,
            },
            Words::Log(entries) => {
                let mut entries = entries.clone();
                entries.sort_unstable();
                State::Log { entries }
            }
            Words::Calendar(end, used) => State::Calendar {
                end: *end,
                used: *used,
            },
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Start {
    /// Bytes a store read back.
    Decoded(Vec<u8>),
    /// A state a store could read back, however unlikely.
    Words(Words),
    /// Requests `(advance, cost)` from a fresh state.
    History(Vec<(u32, u16)>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    algo: Algo,
    limit: u64,
    count: u32,
    unit: u8,
    start: Start,
    base: u64,
    now: u64,
    cost: u64,
    refund: u64,
    charged_at: u64,
}

fn limit_of(input: &Input) -> Option<Limit> {
    let unit = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day][usize::from(input.unit % 4)];
    let max_count = u32::try_from(MAX_PERIOD_MICROS / unit.micros()).ok()?;
    let period = Period::new(1 + input.count % max_count, unit)?;
    let n = 1 + input.limit % MAX_LIMIT.min(period.micros());
    match input.algo {
        Algo::Gcra => Some(Limit::gcra(Rate::new(n, period).ok()?)),
        Algo::SlidingWindow => Some(Limit::sliding_window(Rate::new(n, period).ok()?)),
        Algo::SlidingLog => {
            let n = 1 + input.limit % 1_000u64.min(period.micros());
            Limit::sliding_log(Rate::new(n, period).ok()?).ok()
        }
        Algo::Calendar(zone) => {
            let calendar = Calendar::new(ZONES[usize::from(zone) % ZONES.len()]).ok()?;
            Limit::calendar(
                Rate::per(1 + input.limit % MAX_LIMIT, Unit::Day).ok()?,
                calendar,
            )
            .ok()
        }
    }
}

fn check_invariants(limit: &Limit, state: &State, now: u64, cost: u64) -> bool {
    let n = limit.rate().limit();
    let status = limit.check(state, now, cost);
    assert!(
        status.remaining <= n,
        "{limit}: {state:?} at {now} cost {cost}: {status:?}"
    );
    assert_eq!(status.limit, n);
    if status.is_allowed() {
        let mut applied = state.clone();
        limit.apply(&mut applied, now, cost);
    } else {
        let key = Key::new("fuzz", "p", SubjectKind::User, "s");
        let checks = [Check::new("p", key, limit.clone(), cost)];
        let mut after = state.clone();
        let mut out = Vec::new();
        let admitted = batch::evaluate(&checks, &mut [&mut after], now, Mode::Consume, &mut out);
        assert!(!admitted);
        assert_eq!(&after, state, "{limit}: a denied request changed the state");
    }
    status.is_allowed()
}

fuzz_target!(|input: Input| {
    let Some(limit) = limit_of(&input) else {
        return;
    };
    let n = limit.rate().limit();
    let mut state = match &input.start {
        Start::Decoded(bytes) => match State::decode(bytes) {
            Some(state) => state,
            None => return,
        },
        Start::Words(words) => words.state(),
        Start::History(requests) => {
            let mut state = State::Fresh;
            let mut now = input.base;
            for &(advance, cost) in requests.iter().take(64) {
                now = now.saturating_add(u64::from(advance));
                let cost = 1 + u64::from(cost) % n;
                if check_invariants(&limit, &state, now, cost) {
                    limit.apply(&mut state, now, cost);
                }
            }
            state
        }
    };
    let mut bytes = Vec::new();
    state.encode(&mut bytes);
    assert_eq!(State::decode(&bytes).as_ref(), Some(&state));

    // The smallest and the largest possible costs, then any cost (impossible ones too); apply
    // only what was allowed.
    check_invariants(&limit, &state, input.now, 1);
    check_invariants(&limit, &state, input.now, n);
    if check_invariants(&limit, &state, input.now, input.cost) {
        limit.apply(&mut state, input.now, input.cost);
    }
    limit.refund(&mut state, input.now, input.refund, input.charged_at);
    let _ = limit.fresh_at(&state);
    let standing = limit.standing(&state, input.now);
    assert!(
        standing.is_allowed() && standing.remaining <= n,
        "{limit}: {standing:?}"
    );
    check_invariants(&limit, &state, input.now, 1);
    // Calendar bounds over the whole u64 range, past what time zones can represent.
    if let Algorithm::Calendar(calendar) = limit.algorithm() {
        for now in [input.now, input.base, input.charged_at, u64::MAX] {
            let (start, end) = calendar.day_bounds(now);
            assert!(
                start <= now && (now < end || end == u64::MAX),
                "{calendar:?} at {now}: [{start}, {end})"
            );
        }
    }
});
