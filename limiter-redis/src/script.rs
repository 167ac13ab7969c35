//! The decision script's calling convention: the arguments the client sends, the reply it
//! reads back (documented at the top of `scripts/decide.lua`).

use std::collections::HashMap;
use std::sync::Mutex;

use fred::types::{Key as FredKey, Value};
use limiter_core::time::MAX_TIMESTAMP;
use limiter_core::{Algorithm, Calendar, Check, Error, LimitStatus, Micros, Outcome};

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
    fn arg(self) -> &'static str {
        match self {
            ScriptMode::Consume => "c",
            ScriptMode::Peek => "p",
            ScriptMode::Refund => "r",
        }
    }
}

/// The time the script computes with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ScriptTime {
    /// The server's clock; `client_now` only places calendar days around it.
    Server { client_now: Micros },
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

fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The keys and arguments of one script call over `checks`.
pub(crate) fn arguments(
    mode: ScriptMode,
    time: ScriptTime,
    checks: &[&Check],
    days: &DayBounds,
) -> Result<(Vec<FredKey>, Vec<Value>), Error> {
    let mut keys = Vec::with_capacity(checks.len());
    let mut args = Vec::with_capacity(3 + checks.len() * 9);
    args.push(Value::from_static_str(mode.arg()));
    let client_now = match time {
        ScriptTime::Server { client_now } => {
            args.push(Value::from_static_str("s"));
            args.push(Value::Integer(0));
            client_now
        }
        ScriptTime::Injected(now) => {
            args.push(int(now.min(MAX_TIMESTAMP)));
            args.push(Value::Integer(INJECTED_TTL_GRACE_MS));
            now
        }
    }
    .min(MAX_TIMESTAMP);
    for check in checks {
        keys.push(FredKey::from(check.key.as_str()));
        let rate = check.limit.rate();
        let code = match check.limit.algorithm() {
            Algorithm::Gcra => 1,
            Algorithm::SlidingWindow => 2,
            Algorithm::SlidingLog => 3,
            Algorithm::Calendar(_) => 4,
            other => {
                return Err(Error::InvalidRequest(format!(
                    "the algorithm {:?} of policy {} is not supported by the Redis store \
                     (expected gcra, sliding_window, sliding_log or calendar)",
                    other.name(),
                    check.policy
                )));
            }
        };
        args.push(Value::Integer(code));
        args.push(int(rate.limit()));
        args.push(int(rate.period().micros()));
        args.push(int(check.cost.min(MAX_SENT_COST)));
        args.push(Value::Integer(i64::from(check.shadow)));
        if let Algorithm::Calendar(calendar) = check.limit.algorithm() {
            args.extend(days.around(calendar, client_now).map(int));
        }
    }
    Ok((keys, args))
}

/// Reads a consume or peek reply: whether the batch was admitted, and one status per check.
pub(crate) fn parse_reply(
    reply: Value,
    checks: &[&Check],
) -> Result<(bool, Vec<LimitStatus>), RedisError> {
    let Value::Array(values) = reply else {
        return Err(RedisError::Reply(format!(
            "expected an array, got {reply:?}"
        )));
    };
    if values.len() != 1 + 4 * checks.len() {
        return Err(RedisError::Reply(format!(
            "expected {} integers for {} checks, got {}",
            1 + 4 * checks.len(),
            checks.len(),
            values.len()
        )));
    }
    let mut ints = values.into_iter().map(|v| match v {
        Value::Integer(i) => {
            u64::try_from(i).map_err(|_| RedisError::Reply(format!("negative integer {i}")))
        }
        other => Err(RedisError::Reply(format!(
            "expected an integer, got {other:?}"
        ))),
    });
    let mut next = || {
        ints.next()
            .unwrap_or_else(|| Err(RedisError::Reply("reply too short".into())))
    };
    let admitted = next()? == 1;
    let mut statuses = Vec::with_capacity(checks.len());
    for check in checks {
        let outcome = match next()? {
            0 => Outcome::Allowed,
            1 => Outcome::Denied,
            2 => Outcome::Impossible,
            o => return Err(RedisError::Reply(format!("unknown outcome code {o}"))),
        };
        statuses.push(LimitStatus {
            outcome,
            limit: check.limit.rate().limit(),
            remaining: next()?,
            reset_after: next()?,
            retry_after: next()?,
        });
    }
    Ok((admitted, statuses))
}
