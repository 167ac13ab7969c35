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
    Algorithm, Calendar, Check, Error, Key, LimitStatus, Micros, Mode, State, batch,
};

use crate::error::RedisError;
use crate::subject;

/// The Lua source of the decision script.
pub(crate) const DECIDE_LUA: &str = include_str!("scripts/decide.lua");

/// What the script does with the checks it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScriptMode {
    /// Check all; if every enforced check allows, apply all that allow.
    Consume,
    /// Check all, change nothing.
    Peek,
    /// Give back each check's cost, charged at this instant (the time the charging call
    /// used).
    Refund(Micros),
}

impl ScriptMode {
    /// The code of a reset, which only [`reset_arguments`] sends.
    const RESET: u8 = 4;

    fn code(self) -> u8 {
        match self {
            ScriptMode::Consume => 1,
            ScriptMode::Peek => 2,
            ScriptMode::Refund(_) => 3,
        }
    }
}

/// The time the script computes with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ScriptTime {
    /// The server's clock (the client's estimate of it only places calendar days around it).
    Server,
    /// This instant.
    Injected(Micros),
}

/// With injected time, added to every key's expiry: the store cannot know how fast the
/// caller's clock moves (a frozen test clock does not move at all), so an expiry computed from
/// it alone could drop a live state while the server's clock runs on.
const INJECTED_TTL_GRACE_MS: u64 = 24 * 3_600_000;

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

/// What a give-back puts back for one check it refunds: the state the check's charge read
/// (and when that goes fresh), if the record still holds the state the charge wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Restore {
    /// The state the charge wrote, encoded.
    written: Vec<u8>,
    /// The state before the charge, encoded; empty for none.
    previous: Vec<u8>,
    /// When `previous` goes fresh.
    previous_fresh: Micros,
}

impl Restore {
    /// The restore of `check`, charged at `at` over the state `previous`: the state the
    /// script wrote is the core's [`apply`](limiter_core::Limit::apply) of it (the script is
    /// its twin).
    pub(crate) fn of(check: &Check, previous: &State, at: Micros) -> Restore {
        let mut written_state = previous.clone();
        check.limit.apply(&mut written_state, at, check.cost);
        let mut written = Vec::new();
        written_state.encode(&mut written);
        let mut encoded = Vec::new();
        if *previous != State::Fresh {
            previous.encode(&mut encoded);
        }
        Restore {
            written,
            previous: encoded,
            previous_fresh: check.limit.fresh_at(previous),
        }
    }
}

/// The mode code of a give-back: a refund with a [`Restore`] per check.
const GIVE_BACK: u8 = 5;

/// Added to the mode code for the server's clock.
const SERVER_CLOCK: u8 = 8;

/// Added to a check's algorithm code for a shadow check.
const SHADOW: u8 = 8;

/// Added to a check's algorithm code for the last check of its subject.
const LAST_OF_SUBJECT: u8 = 16;

/// The numbers after a check's field, in a consume or a peek: the script reads them all in one
/// unpack, whatever the algorithm.
const CHARGE_NUMBERS: usize = 6;

/// The keys and the argument of one script call over `checks`: the key of each subject (in
/// order of first appearance), and every number in one binary string. With the server's clock,
/// calendar days are placed around `server_now`, the client's estimate of the server's time,
/// read only when a calendar check needs it. A refund with `restores` (one per check) is a
/// give-back of a charge the script made.
pub(crate) fn arguments<'c, C: Borrow<Check>>(
    mode: ScriptMode,
    time: ScriptTime,
    checks: &'c [C],
    restores: &[Restore],
    days: &DayBounds,
    server_now: &dyn Fn() -> Micros,
) -> Result<Call<'c>, Error> {
    let (clock, now, grace) = match time {
        ScriptTime::Server => (SERVER_CLOCK, 0, 0),
        ScriptTime::Injected(now) => (0, now, INJECTED_TTL_GRACE_MS),
    };
    // Where calendar days are placed: the given time, or the estimate of the server's.
    let client_now = || {
        match time {
            ScriptTime::Server => server_now(),
            ScriptTime::Injected(now) => now,
        }
        .min(MAX_TIMESTAMP)
    };
    let mode_code = match mode {
        ScriptMode::Refund(_) if !restores.is_empty() => GIVE_BACK,
        _ => mode.code(),
    };
    let mut call = Call::new(mode_code + clock, now, grace, checks.len())?;
    for check in checks {
        call.place(&check.borrow().key)?;
    }
    // The checks of each subject in a row, in the batch's order: the script decides subject
    // by subject, and writes a subject's records in this order, so that the next call finds
    // each where it looks first.
    for subject in 0..call.subjects.len() {
        let last = call.places.iter().rposition(|&(s, _)| s == subject);
        for (i, check) in checks.iter().enumerate() {
            if call.places[i].0 != subject {
                continue;
            }
            let check = check.borrow();
            let rate = check.limit.rate();
            let (limit, period) = (rate.limit(), rate.period().micros());
            let cost = check.cost.min(MAX_SENT_COST);
            let (code, numbers): (u8, [u64; CHARGE_NUMBERS]) = match (check.limit.algorithm(), mode)
            {
                // A refund needs the time of the charge, and what locates it: GCRA's
                // interval, the window's or the log's period, the end of the charged day.
                (Algorithm::Gcra, ScriptMode::Refund(at)) => {
                    (1, [cost, period.div_ceil(limit), at, 0, 0, 0])
                }
                (Algorithm::SlidingWindow, ScriptMode::Refund(at)) => {
                    (2, [cost, period, at, 0, 0, 0])
                }
                (Algorithm::SlidingLog, ScriptMode::Refund(at)) => (3, [cost, period, at, 0, 0, 0]),
                (Algorithm::Calendar(calendar), ScriptMode::Refund(at)) => {
                    (4, [cost, calendar.day_bounds(at).1, at, 0, 0, 0])
                }
                (Algorithm::Gcra, _) => {
                    let interval = period.div_ceil(limit);
                    (1, [cost, interval, limit * interval, 0, 0, 0])
                }
                (Algorithm::SlidingWindow, _) => {
                    let unit = period.div_ceil(WEIGHT_STEPS);
                    (2, [cost, limit, period, unit, period.div_ceil(unit), 0])
                }
                (Algorithm::SlidingLog, _) => (3, [cost, limit, period, 0, 0, 0]),
                (Algorithm::Calendar(calendar), _) => {
                    let [a, b, c, d] = days.around(calendar, client_now());
                    (4, [cost, limit, a, b, c, d])
                }
                (other, _) => {
                    return Err(Error::InvalidRequest(format!(
                        "the algorithm {:?} of policy {} is not supported by the Redis store \
                         (expected gcra, sliding_window, sliding_log or calendar)",
                        other.name(),
                        check.policy
                    )));
                }
            };
            let flags = code + SHADOW * u8::from(check.shadow);
            let numbers = match mode {
                ScriptMode::Refund(_) => &numbers[..3],
                ScriptMode::Consume | ScriptMode::Peek => &numbers[..],
            };
            call.check(i, flags, Some(i) == last, numbers);
            if mode_code == GIVE_BACK
                && let Some(restore) = restores.get(i)
            {
                call.restore(restore);
            }
        }
    }
    Ok(call)
}

/// The keys and the argument of a script call that removes `key`'s state from its subject's
/// value (and the value, once it holds no other).
pub(crate) fn reset_arguments(key: &Key) -> Result<Call<'_>, Error> {
    let mut call = Call::new(ScriptMode::RESET, 0, 0, 1)?;
    call.place(key)?;
    call.check(0, 0, true, &[]);
    Ok(call)
}

/// A script call: the subjects' keys, the packed argument, and where each check's state is
/// in the reply (its subject, and its field in that subject's value).
pub(crate) struct Call<'c> {
    subjects: Vec<String>,
    arg: Vec<u8>,
    places: Vec<(usize, &'c str)>,
}

impl<'c> Call<'c> {
    /// A call with the header `'<Bddd'`: the mode code (plus the clock's), the given time,
    /// the expiry margin in milliseconds, and the number of checks.
    fn new(mode: u8, now: Micros, grace: u64, checks: usize) -> Result<Call<'c>, Error> {
        if checks > usize::from(u16::MAX) {
            return Err(Error::InvalidRequest(format!(
                "a batch of {checks} checks; the Redis store takes at most {} per call",
                u16::MAX
            )));
        }
        let mut arg = Vec::with_capacity(HEADER_SIZE + (CHECK_SIZE + 16) * checks);
        arg.push(mode);
        for word in [now.min(MAX_TIMESTAMP), grace, checks as u64] {
            arg.extend_from_slice(&number(word));
        }
        Ok(Call {
            subjects: Vec::with_capacity(checks),
            arg,
            places: Vec::with_capacity(checks),
        })
    }

    /// Places the next check, of `key`: its subject (added if new) and its field.
    fn place(&mut self, key: &'c Key) -> Result<(), Error> {
        let (subject, field) = subject::locate(key);
        if field.len() > usize::from(u16::MAX) {
            return Err(Error::InvalidRequest(format!(
                "the policy of key {key} is {} bytes long; the Redis store takes at most {}",
                field.len(),
                u16::MAX
            )));
        }
        let index = match self.subjects.iter().position(|s| subject.is(s)) {
            Some(i) => i,
            None => {
                self.subjects.push(subject.to_string());
                self.subjects.len() - 1
            }
        };
        self.places.push((index, field));
        Ok(())
    }

    /// Appends the check placed `i`th: its flags (the algorithm, shadow, the last of its
    /// subject), its field, and its numbers.
    fn check(&mut self, i: usize, flags: u8, last: bool, numbers: &[u64]) {
        let field = self.places[i].1;
        self.arg.push(flags + LAST_OF_SUBJECT * u8::from(last));
        // At most u16::MAX bytes: checked when placed.
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        self.arg.extend_from_slice(&len.to_le_bytes());
        self.arg.extend_from_slice(field.as_bytes());
        for &word in numbers {
            self.arg.extend_from_slice(&number(word));
        }
    }

    /// Appends a give-back's restore to the check before it: `'<dI4c0I4c0'`.
    fn restore(&mut self, restore: &Restore) {
        self.arg.extend_from_slice(&number(restore.previous_fresh));
        for state in [&restore.written, &restore.previous] {
            // A state's size is bounded by the sliding log's largest limit.
            let len = u32::try_from(state.len()).unwrap_or(u32::MAX);
            self.arg.extend_from_slice(&len.to_le_bytes());
            self.arg.extend_from_slice(state);
        }
    }

    /// The keys and the argument to send, and where each check's state is in the reply.
    pub(crate) fn finish(self) -> (Vec<FredKey>, Value, Vec<(usize, &'c str)>) {
        let keys = self.subjects.into_iter().map(FredKey::from).collect();
        (keys, Value::Bytes(Bytes::from(self.arg)), self.places)
    }
}

/// A number of the argument, as the script reads it: a little-endian double. Every number the
/// client sends is an integer below 2^53 (times up to `MAX_TIMESTAMP`, costs up to
/// `MAX_SENT_COST`, limits up to 10^9 and periods of at most a few years, in microseconds),
/// which a double holds exactly; Lua's struct library reads a double several times faster than
/// an 8-byte integer.
fn number(value: u64) -> [u8; 8] {
    // Exact below 2^53, which every value sent stays under.
    #[allow(clippy::cast_precision_loss)]
    let value = value as f64;
    value.to_le_bytes()
}

/// The size of the argument's header: mode and clock, time, expiry margin, number of checks.
const HEADER_SIZE: usize = 25;

/// The size of one check of a consume in the argument, before its field's bytes: flags, the
/// field's length, and its numbers.
const CHECK_SIZE: usize = 3 + 8 * CHARGE_NUMBERS;

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

/// What one script call answered: whether the batch was admitted (and, for consume, charged),
/// one status per check, and the time the script used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) admitted: bool,
    pub(crate) statuses: Vec<LimitStatus>,
    pub(crate) at: Micros,
    /// The states the script read (left, for a refund), from which a batch that spans slots
    /// reports what stands when another slot denied it.
    pub(crate) states: Vec<State>,
}

/// Reads a reply (`'<BI8'` admitted and the time used, then each subject's value before the
/// call, or after it for a refund, length-prefixed), finding each check's state at its
/// `places` (subject, field).
///
/// The statuses come from [`batch::evaluate`] over the states the script read, at the time it
/// used: the numbers the core itself computes for them. The verdict of a consume is the
/// script's, which decided and charged atomically; a peek's is the core's.
pub(crate) fn parse_reply<C: Borrow<Check>>(
    reply: Value,
    mode: ScriptMode,
    checks: &[C],
    places: &[(usize, &str)],
) -> Result<Reply, RedisError> {
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
    let subjects = places.iter().map(|&(s, _)| s + 1).max().unwrap_or(0);
    // Each subject's value, its records read once to find a malformed one.
    let mut values = Vec::with_capacity(subjects);
    for _ in 0..subjects {
        let len = take(&mut rest, 4, "a value's length")?;
        let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4]));
        let value = take(
            &mut rest,
            usize::try_from(len).unwrap_or(usize::MAX),
            "a value",
        )?;
        let mut records = value;
        while !records.is_empty() {
            record(&mut records)?;
        }
        values.push(value);
    }
    if !rest.is_empty() {
        return Err(RedisError::Reply(format!(
            "{} bytes left over after the values of {subjects} subjects",
            rest.len(),
        )));
    }
    let mut states: Vec<State> = places
        .iter()
        .map(|&(subject, field)| {
            // Anything that is not a state of the core's encoding (an absent one included)
            // reads as fresh, as the script reads it.
            State::decode(state_of(values[subject], field)).unwrap_or_default()
        })
        .collect();
    let mut refs: Vec<&mut State> = states.iter_mut().collect();
    let mut statuses = Vec::with_capacity(checks.len());
    let core_admitted = batch::evaluate(checks, &mut refs, now, Mode::Peek, &mut statuses);
    let admitted = match mode {
        ScriptMode::Consume => script_admitted,
        ScriptMode::Peek | ScriptMode::Refund(_) => core_admitted,
    };
    Ok(Reply {
        admitted,
        statuses,
        at: now,
        states,
    })
}

/// Splits the next record off a subject's value (`'<I2c0I8I4c0'`: field, fresh instant,
/// state): its field and its state.
fn record<'v>(value: &mut &'v [u8]) -> Result<(&'v [u8], &'v [u8]), RedisError> {
    let len = take(value, 2, "a field's length")?;
    let field = take(
        value,
        usize::from(u16::from_le_bytes([len[0], len[1]])),
        "a field",
    )?;
    take(value, 8, "a record's fresh instant")?;
    let len = take(value, 4, "a state's length")?;
    let len = u32::from_le_bytes(len.try_into().unwrap_or([0; 4]));
    let state = take(value, usize::try_from(len).unwrap_or(usize::MAX), "a state")?;
    Ok((field, state))
}

/// The state of `field`'s record in a subject's value whose records were read whole; empty
/// if it has none.
fn state_of<'v>(mut value: &'v [u8], field: &str) -> &'v [u8] {
    while !value.is_empty() {
        match record(&mut value) {
            Ok((f, state)) if f == field.as_bytes() => return state,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    &[]
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiter_core::{Key, Limit, SubjectKind, Verdict};

    const NOW: Micros = 1_780_000_000_000_000;

    fn key(policy: &str) -> Key {
        Key::new("t", policy, SubjectKind::User, "u")
    }

    fn check(limit: Limit, cost: u64) -> Check {
        Check::new("p", key("p"), limit, cost)
    }

    fn gcra(rate: &str) -> Limit {
        Limit::gcra(rate.parse().expect("rate"))
    }

    /// A subject's record of `state` under `field`, as the script writes it (fresh at 0: the
    /// client reads no further than the state).
    fn record(field: &str, state: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(field.len())
            .expect("short")
            .to_le_bytes()
            .to_vec();
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(&0_u64.to_le_bytes());
        out.extend_from_slice(&u32::try_from(state.len()).expect("short").to_le_bytes());
        out.extend_from_slice(state);
        out
    }

    /// The place of `checks` in a reply: subject 0, field `p`.
    const P: &[(usize, &str)] = &[(0, "p")];

    /// A reply as the script writes it: the verdict, the time, each subject's value.
    fn reply(admitted: u8, now: Micros, values: &[&[u8]]) -> Value {
        let mut out = vec![admitted];
        out.extend_from_slice(&now.to_le_bytes());
        for value in values {
            let len = u32::try_from(value.len()).expect("short value");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(value);
        }
        Value::Bytes(Bytes::from(out))
    }

    /// The double at `at` in `arg`, as the script reads it.
    fn double(arg: &[u8], at: usize) -> f64 {
        f64::from_le_bytes(arg[at..at + 8].try_into().expect("8 bytes"))
    }

    #[test]
    fn the_argument_packs_the_header_and_each_subjects_checks_in_a_row() {
        // Two limits of one subject, and one of another between them.
        let other = Key::new("t", "q", SubjectKind::Tenant, "acme");
        let checks = [
            check(gcra("10/second"), 3),
            Check::new("q", other, gcra("1/second"), 1),
            Check::new("p2", key("p2"), gcra("7/minute"), 1).shadow(),
        ];
        let days = DayBounds::default();
        let (keys, arg, places) = arguments(
            ScriptMode::Consume,
            ScriptTime::Injected(NOW),
            &checks,
            &[],
            &days,
            &|| unreachable!("injected time"),
        )
        .expect("arguments")
        .finish();
        assert_eq!(places, [(0, "p"), (1, "q"), (0, "p2")]);
        assert_eq!(
            keys,
            [FredKey::from("t:{u=u}"), FredKey::from("t:{t=acme}")]
        );
        let Value::Bytes(arg) = arg else {
            panic!("expected bytes, got {arg:?}")
        };
        assert_eq!(arg.len(), HEADER_SIZE + 3 * CHECK_SIZE + 1 + 2 + 1);
        assert_eq!(arg[0], 1, "consume, given time");
        assert_eq!(double(&arg, 1), NOW as f64);
        assert_eq!(double(&arg, 9), 86_400_000.0, "a day of margin");
        assert_eq!(double(&arg, 17), 3.0, "three checks");
        // The user's two checks come first ("p", then "p2"), then the tenant's ("q").
        let starts = [
            HEADER_SIZE,
            HEADER_SIZE + CHECK_SIZE + 1,
            HEADER_SIZE + 2 * CHECK_SIZE + 3,
        ];
        let numbers = |start: usize, field: usize| -> Vec<f64> {
            (0..CHARGE_NUMBERS)
                .map(|i| double(&arg, start + 3 + field + 8 * i))
                .collect()
        };
        // GCRA, enforced, not the user's last; 10/second: one unit every 100 ms, a capacity
        // of ten.
        assert_eq!(&arg[starts[0]..starts[0] + 4], &[1, 1, 0, b'p']);
        assert_eq!(
            numbers(starts[0], 1),
            [3.0, 100_000.0, 1_000_000.0, 0.0, 0.0, 0.0]
        );
        // GCRA, shadow, the user's last; 7/minute: the interval rounds up, so the capacity
        // is 7 of them.
        assert_eq!(
            &arg[starts[1]..starts[1] + 5],
            &[1 + 8 + 16, 2, 0, b'p', b'2']
        );
        assert_eq!(
            numbers(starts[1], 2)[..3],
            [1.0, 8_571_429.0, 7.0 * 8_571_429.0]
        );
        // The tenant's one check, its last.
        assert_eq!(&arg[starts[2]..starts[2] + 4], &[1 + 16, 1, 0, b'q']);
        assert_eq!(starts[2] + CHECK_SIZE + 1, arg.len());
    }

    #[test]
    fn statuses_are_the_cores_over_the_states_read() {
        let limit = gcra("10/second");
        let checks = [check(limit.clone(), 1)];
        let mut state = State::Gcra { tat: NOW + 400_000 };
        let mut encoded = Vec::new();
        state.encode(&mut encoded);
        let Reply {
            admitted,
            statuses,
            at,
            ..
        } = parse_reply(
            reply(1, NOW, &[&record("p", &encoded)]),
            ScriptMode::Consume,
            &checks,
            P,
        )
        .expect("reply");
        assert!(admitted);
        assert_eq!(at, NOW);
        let expected = limit.check(&state, NOW, 1);
        assert_eq!(statuses, vec![expected]);
        assert_eq!(statuses[0].remaining, 5);
        // An absent subject, a subject without the check's field, or bytes that are no
        // state, read as fresh.
        let absent = Vec::new();
        let other_field = record("q", &encoded);
        let no_state = record("p", b"G1732650000000000");
        for value in [&absent, &other_field, &no_state] {
            let statuses = parse_reply(reply(1, NOW, &[value]), ScriptMode::Consume, &checks, P)
                .expect("reply")
                .statuses;
            assert_eq!(statuses[0].remaining, 9, "{value:?}");
        }
        // A peek's verdict is the core's: a full bucket denies.
        state = State::Gcra {
            tat: NOW + 1_000_000,
        };
        encoded.clear();
        state.encode(&mut encoded);
        let Reply {
            admitted, statuses, ..
        } = parse_reply(
            reply(0, NOW, &[&record("q", b""), &record("p", &encoded)]),
            ScriptMode::Peek,
            &checks,
            &[(1, "p")],
        )
        .expect("reply");
        assert!(!admitted);
        assert_eq!(statuses[0].verdict, Verdict::Denied);
        assert_eq!(statuses[0].retry_after, 100_000);
    }

    #[test]
    fn a_malformed_reply_is_an_error_that_says_what_is_wrong() {
        let checks = [check(gcra("10/second"), 1)];
        let cases = [
            (
                Value::Integer(1),
                "expected a binary string, got Integer(1)",
            ),
            (
                Value::Bytes(Bytes::from_static(&[1, 2])),
                "the time needs 8",
            ),
            (reply(1, NOW, &[]), "a value's length needs 4"),
            (
                {
                    let Value::Bytes(b) = reply(1, NOW, &[&[1; 9]]) else {
                        unreachable!()
                    };
                    Value::Bytes(Bytes::copy_from_slice(&b[..b.len() - 1]))
                },
                "a value needs 9",
            ),
            (reply(1, NOW, &[&[], &[]]), "4 bytes left over"),
            (reply(1, NOW, &[&[1; 9]]), "a field needs 257"),
            (
                reply(1, NOW, &[&record("p", &[1; 9])[..20]]),
                "a state needs 9",
            ),
        ];
        for (value, expected) in cases {
            let e = parse_reply(value, ScriptMode::Consume, &checks, P).expect_err("malformed");
            let RedisError::Reply(message) = e else {
                panic!("expected a reply error, got {e:?}")
            };
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }
}
