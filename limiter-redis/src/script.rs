//! The decision script's calling convention: the arguments the client sends, the reply it
//! reads back (documented at the top of `scripts/decide.lua`), and the statuses the client
//! derives from that reply with limiter-core.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Mutex;

use fred::bytes::Bytes;
use fred::types::{Key as FredKey, Value};
use limiter_core::algorithm::WEIGHT_STEPS;
use limiter_core::time::MAX_TIMESTAMP;
use limiter_core::{
    Algorithm, Calendar, Check, Clock, Error, LimitStatus, Micros, Mode, State, SystemClock, batch,
};

use crate::error::RedisError;

/// The Lua source of the decision script.
pub(crate) const DECIDE_LUA: &str = include_str!("scripts/decide.lua");

/// What the script does with the checks it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptMode {
    /// Check all; if every enforced check allows, apply all that allow.
    Consume,
    /// Check all, change nothing.
    Peek,
    /// Give back each check's cost.
    Refund,
}

impl ScriptMode {
    fn code(self) -> u8 {
        match self {
            ScriptMode::Consume => 1,
            ScriptMode::Peek => 2,
            ScriptMode::Refund => 3,
        }
    }
}

/// The time the script computes with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ScriptTime {
    /// The server's clock (the client's own only places calendar days around it).
    Server,
    /// This instant.
    Injected(Micros),
}

/// With injected time, added to every key's expiry: the store cannot know how fast the
/// caller's clock moves (a frozen test clock does not move at all), so an expiry computed from
/// it alone could drop a live state while the server's clock runs on.
const INJECTED_TTL_GRACE_MS: i64 = 24 * 3_600_000;

/// Costs above this are sent as this: every algorithm answers `Impossible` for any cost above
/// its limit (at most 10^9), and a refund this large empties any state, so the script sees the
/// same result while every number it parses stays exact in a double.
const MAX_SENT_COST: u64 = 1 << 52;

/// The local-day bounds sent for calendar checks, cached per time zone: they change once a day.
#[derive(Debug, Default)]
pub(crate) struct DayBounds {
    cache: Mutex<HashMap<String, [Micros; 4]>>,
}

impl DayBounds {
    /// The starts of the previous, current and next local days around `now`, and the end of the
    /// next one.
    fn around(&self, calendar: &Calendar, now: Micros) -> [Micros; 4] {
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(calendar.name()).copied());
        if let Some(b) = cached.filter(|b| b[1] <= now && now < b[2]) {
            return b;
        }
        let (start, end) = calendar.day_bounds(now);
        let previous = calendar.day_bounds(start.saturating_sub(1)).0;
        let next_end = calendar.day_bounds(end).1;
        let bounds = [previous, start, end, next_end];
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(calendar.name().to_owned(), bounds);
        }
        bounds
    }
}

/// The keys and the argument of one script call over `checks`: every number in one binary
/// string.
pub(crate) fn arguments<C: Borrow<Check>>(
    mode: ScriptMode,
    time: ScriptTime,
    checks: &[C],
    days: &DayBounds,
) -> Result<(Vec<FredKey>, Value), Error> {
    let mut keys = Vec::with_capacity(checks.len());
    let (clock, now, grace) = match time {
        ScriptTime::Server => (1, 0, 0),
        ScriptTime::Injected(now) => (0, now, INJECTED_TTL_GRACE_MS),
    };
    // Where calendar days are placed: the given time, or the client's clock, read only when a
    // calendar check needs it.
    let client_now = || {
        match time {
            ScriptTime::Server => SystemClock.now(),
            ScriptTime::Injected(now) => now,
        }
        .min(MAX_TIMESTAMP)
    };
    let mut arg = Vec::with_capacity(HEADER_SIZE + CHECK_SIZE * checks.len());
    arg.extend_from_slice(&[mode.code(), clock]);
    arg.extend_from_slice(&now.min(MAX_TIMESTAMP).to_le_bytes());
    arg.extend_from_slice(&grace.to_le_bytes());
    for check in checks {
        let check = check.borrow();
        keys.push(FredKey::from(check.key.as_str()));
        let rate = check.limit.rate();
        let (limit, period) = (rate.limit(), rate.period().micros());
        let (code, derived) = match check.limit.algorithm() {
            Algorithm::Gcra => {
                let interval = period.div_ceil(limit);
                (1, [interval, limit * interval, 0, 0])
            }
            Algorithm::SlidingWindow => {
                let unit = period.div_ceil(WEIGHT_STEPS);
                (2, [period, unit, period.div_ceil(unit), 0])
            }
            Algorithm::SlidingLog => (3, [period, 0, 0, 0]),
            Algorithm::Calendar(calendar) => (4, days.around(calendar, client_now())),
            other => {
                return Err(Error::InvalidRequest(format!(
                    "the algorithm {:?} of policy {} is not supported by the Redis store \
                     (expected gcra, sliding_window, sliding_log or calendar)",
                    other.name(),
                    check.policy
                )));
            }
        };
        arg.extend_from_slice(&[code, u8::from(check.shadow)]);
        for word in [check.cost.min(MAX_SENT_COST), limit]
            .into_iter()
            .chain(derived)
        {
            arg.extend_from_slice(&word.to_le_bytes());
        }
    }
    Ok((keys, Value::Bytes(Bytes::from(arg))))
}

/// The size of the argument's header: mode, clock, time, expiry margin.
const HEADER_SIZE: usize = 18;

/// The size of one check in the argument: algorithm, shadow, cost, limit and four derived
/// numbers.
const CHECK_SIZE: usize = 50;

/// Splits `n` bytes off the front of `bytes`.
fn take<'a>(bytes: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], RedisError> {
    if bytes.len() < n {
        return Err(RedisError::Reply(format!(
            "reply too short: {} bytes left where {what} needs {n}",
            bytes.len()
        )));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn le_u64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]))
}

/// Reads a consume or peek reply (`'<BI8'` admitted and the time used, then each key's value
/// before the call, length-prefixed): whether the batch was admitted (and, for consume,
/// charged), and one status per check.
///
/// The statuses come from [`batch::evaluate`] over the states the script read, at the time it
/// used: the numbers the core itself computes for them. The verdict of a consume is the
/// script's, which decided and charged atomically; a peek's is the core's.
pub(crate) fn parse_reply<C: Borrow<Check>>(
    reply: Value,
    mode: ScriptMode,
    checks: &[C],
) -> Result<(bool, Vec<LimitStatus>), RedisError> {
    let bytes = match &reply {
        Value::Bytes(bytes) => &bytes[..],
        Value::String(text) => text.as_bytes(),
        other => {
            return Err(RedisError::Reply(format!(
                "expected a binary string, got {other:?}"
            )));
        }
    };
    let mut rest = bytes;
    let script_admitted = take(&mut rest, 1, "the verdict")?[0] == 1;
    let now = le_u64(take(&mut rest, 8, "the time")?);
    let mut states = Vec::with_capacity(checks.len());
    for _ in checks {
        let len = take(&mut rest, 4, "a value's length")?;
        let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4]));
        let value = take(
            &mut rest,
            usize::try_from(len).unwrap_or(usize::MAX),
            "a value",
        )?;
        // Anything that is not a state of the core's encoding (an absent key included) reads
        // as fresh, as the script reads it.
        states.push(State::decode(value).unwrap_or_default());
    }
    if !rest.is_empty() {
        return Err(RedisError::Reply(format!(
            "{} bytes left over after the values of {} checks",
            rest.len(),
            checks.len()
        )));
    }
    let mut refs: Vec<&mut State> = states.iter_mut().collect();
    let mut statuses = Vec::with_capacity(checks.len());
    let core_admitted = batch::evaluate(checks, &mut refs, now, Mode::Peek, &mut statuses);
    let admitted = match mode {
        ScriptMode::Consume => script_admitted,
        ScriptMode::Peek | ScriptMode::Refund => core_admitted,
    };
    Ok((admitted, statuses))
}
