//! Traffic traces: operations on a small pool of keys over time.

use proptest::prelude::*;
use proptest::sample::select;

use limiter_core::batch::{Batch, Check};
use limiter_core::time::Micros;
use limiter_core::{Key, SubjectKind};

use super::*;

/// One operation of a traffic trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// [`Store::evaluate`](limiter_core::Store::evaluate).
    Evaluate(Batch),
    /// [`StoreExt::peek`](limiter_core::StoreExt::peek).
    Peek(Batch),
    /// [`Store::evaluate`](limiter_core::Store::evaluate) in [`Mode::Refund`](limiter_core::Mode::Refund), charged at the same instant.
    Refund(Batch),
    /// [`Store::reset`](limiter_core::Store::reset).
    Reset(Key),
}

/// One step of a traffic trace: time moves forward by `advance`, then back by `back` (a clock
/// that went back, as a host with a skewed clock sharing the store; usually 0), then `op`
/// runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Microseconds since the previous step (or the trace's start).
    pub advance: Micros,
    /// Microseconds time then goes back.
    pub back: Micros,
    /// What runs.
    pub op: Op,
}

/// A traffic trace: operations on a small pool of keys, at instants that mostly move forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The namespace of every key.
    pub namespace: String,
    /// The instant before the first step.
    pub start: Micros,
    /// The steps.
    pub steps: Vec<Step>,
}

impl Trace {
    /// The steps with the instant each runs at.
    pub fn timed_steps(&self) -> impl Iterator<Item = (Micros, &Op)> {
        self.steps.iter().scan(self.start, |now, step| {
            *now = now.saturating_add(step.advance).saturating_sub(step.back);
            Some((*now, &step.op))
        })
    }

    /// The same trace with every key moved to `namespace`, so that one generated trace can be
    /// replayed on a shared store without meeting the state an earlier replay left.
    pub fn in_namespace(&self, namespace: &str) -> Trace {
        let rekey = |key: &Key| renamespace(key, namespace);
        let rebatch = |batch: &Batch| {
            let checks = batch.checks().iter().map(|c| Check {
                key: rekey(&c.key),
                ..c.clone()
            });
            // Renaming every key alike keeps them distinct.
            Batch::new(checks).unwrap_or_default()
        };
        Trace {
            namespace: namespace.to_owned(),
            start: self.start,
            steps: self
                .steps
                .iter()
                .map(|s| Step {
                    advance: s.advance,
                    back: s.back,
                    op: match &s.op {
                        Op::Evaluate(b) => Op::Evaluate(rebatch(b)),
                        Op::Peek(b) => Op::Peek(rebatch(b)),
                        Op::Refund(b) => Op::Refund(rebatch(b)),
                        Op::Reset(k) => Op::Reset(rekey(k)),
                    },
                })
                .collect(),
        }
    }
}

/// `key` with its namespace (the escaped text before the first `:`) replaced.
fn renamespace(key: &Key, namespace: &str) -> Key {
    let escaped = Key::new(namespace, "", SubjectKind::User, "");
    let prefix = escaped.as_str().split(':').next().unwrap_or_default();
    let rest = key.as_str().find(':').map_or("", |i| &key.as_str()[i..]);
    Key::from_raw(format!("{prefix}{rest}"))
}

/// How far time moves before one step, given the periods of the pool: often not at all (so
/// limits are reached), often a fraction of a period, sometimes past whole windows; and, one
/// step in twelve, how far it then goes back (up to a quarter period).
fn advance(periods: Vec<Micros>) -> BoxedStrategy<(Micros, Micros)> {
    select(periods)
        .prop_flat_map(|period| {
            let forward = prop_oneof![
                3 => Just(0),
                3 => 0..=period / 8,
                2 => 0..=period,
                1 => period..=3 * period,
            ];
            let back = prop_oneof![11 => Just(0), 1 => 1..=(period / 4).max(1)];
            (forward, back)
        })
        .boxed()
}

/// A traffic trace in `namespace`: 1 to 40 steps over a [`key_pool`], starting at an
/// [`instant`]. Each step moves time (now and then backwards), then evaluates (most often),
/// peeks at, refunds or resets.
pub fn trace(namespace: &str) -> BoxedStrategy<Trace> {
    let namespace = namespace.to_owned();
    (key_pool(&namespace), instant())
        .prop_flat_map(move |(pool, start)| {
            let periods: Vec<Micros> = pool
                .iter()
                .map(|k| k.limit.rate().period().micros())
                .collect();
            let keys: Vec<Key> = pool.iter().map(|k| k.key.clone()).collect();
            let op = prop_oneof![
                6 => batch_from(pool.clone()).prop_map(Op::Evaluate),
                2 => batch_from(pool.clone()).prop_map(Op::Peek),
                1 => batch_from(pool).prop_map(Op::Refund),
                1 => select(keys).prop_map(Op::Reset),
            ];
            let step =
                (advance(periods), op).prop_map(|((advance, back), op)| Step { advance, back, op });
            (
                Just(namespace.clone()),
                Just(start),
                prop::collection::vec(step, 1..=40),
            )
        })
        .prop_map(|(namespace, start, steps)| Trace {
            namespace,
            start,
            steps,
        })
        .boxed()
}
