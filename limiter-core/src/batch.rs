//! A batch: the limits of one decision, evaluated all or nothing.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::ops::DerefMut;
use std::sync::Arc;

use crate::algorithm::{Limit, LimitStatus, State};
pub use crate::inline::{INLINE_CHECKS, InlineVec, StatusSink};
use crate::notify::NoticePlan;
use crate::time::Micros;
use crate::{Error, Key};

/// One limit to evaluate for one request: a policy's limit applied to a key, with a cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The policy that asked for it (`plan_burst`).
    pub policy: Arc<str>,
    /// The store key.
    pub key: Key,
    /// The limit.
    pub limit: Arc<Limit>,
    /// The cost of the request, in units of the limit.
    pub cost: u64,
    /// Shadow (dark launch): evaluated and reported, never enforced. A shadow check consumes
    /// when it allows and the batch is admitted, so its counts match what enforcing would see.
    pub shadow: bool,
    /// Whether response headers name this limit (default true). Abuse controls (`ip_burst`,
    /// `scope.auth`) can stay out of `RateLimit-Policy`, so that a client cannot read the exact
    /// quota it must stay under.
    pub in_headers: bool,
}

impl Check {
    /// An enforced check.
    pub fn new(
        policy: impl Into<Arc<str>>,
        key: Key,
        limit: impl Into<Arc<Limit>>,
        cost: u64,
    ) -> Check {
        Check {
            policy: policy.into(),
            key,
            limit: limit.into(),
            cost,
            shadow: false,
            in_headers: true,
        }
    }

    /// The same check in shadow mode.
    pub fn shadow(mut self) -> Check {
        self.shadow = true;
        self
    }
}

/// The checks of one decision, as a policy set resolves them: up to [`INLINE_CHECKS`] of them
/// need no heap.
pub type Checks = InlineVec<Check>;

/// The statuses of one decision's checks, in order: up to [`INLINE_CHECKS`] of them need no
/// heap.
pub type Statuses = InlineVec<LimitStatus>;

/// The checks of one decision; keys are distinct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    checks: Checks,
    /// Present when the limiter notifies and a check's limit notifies: a store that keeps an
    /// outbox writes the charge's notices with the charge.
    notices: Option<Arc<NoticePlan>>,
}

impl Batch {
    /// A batch of `checks`; an error if two checks share a key (a store could not evaluate them
    /// independently and all or nothing at once).
    pub fn new(checks: impl IntoIterator<Item = Check>) -> Result<Batch, Error> {
        let checks: Checks = checks.into_iter().collect();
        if let Some(key) = first_repeated_key(&checks) {
            return Err(Error::InvalidRequest(format!(
                "two checks in one batch share the key {key}; keys must be distinct"
            )));
        }
        Ok(Batch {
            checks,
            notices: None,
        })
    }

    /// The same batch, asking the store to write the notices of its charge ([`NoticePlan`]).
    #[must_use]
    pub fn with_notices(mut self, plan: Arc<NoticePlan>) -> Batch {
        self.notices = Some(plan);
        self
    }

    /// The notices the store is asked to write with the charge, if any.
    pub fn notices(&self) -> Option<&NoticePlan> {
        self.notices.as_deref()
    }

    /// The checks, in the order their statuses are reported.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Whether the batch has no checks.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// The number of checks.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// The checks, taken back.
    pub fn into_checks(self) -> Checks {
        self.checks
    }
}

/// Batches up to this size are checked for repeated keys pair by pair: a decision's few keys
/// are compared without allocating or hashing, on every request.
const PAIRWISE_MAX: usize = 16;

/// The first key that appears twice in `checks`, if any.
fn first_repeated_key(checks: &[Check]) -> Option<&Key> {
    if checks.len() <= PAIRWISE_MAX {
        checks
            .iter()
            .enumerate()
            .find(|(i, c)| checks[i + 1..].iter().any(|d| d.key == c.key))
            .map(|(_, c)| &c.key)
    } else {
        let mut seen = HashSet::with_capacity(checks.len());
        checks.iter().map(|c| &c.key).find(|k| !seen.insert(*k))
    }
}

impl BatchOutcome {
    /// The answer to an empty batch at `at`: admitted, with no statuses. A store answers it
    /// without any I/O.
    pub fn empty(at: Micros) -> BatchOutcome {
        BatchOutcome {
            allowed: true,
            statuses: Vec::new(),
            at,
        }
    }
}

/// What a store answers for a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Whether every enforced (non-shadow) check allowed the request, so that it was admitted
    /// and, in [`Mode::Consume`], charged.
    pub allowed: bool,
    /// One status per check, in the batch's order.
    pub statuses: Vec<LimitStatus>,
    /// The time the store decided at: the call's `now`, or the store's own clock (Redis server
    /// time). A refund of this batch's charge names it as [`Mode::Refund::charged_at`].
    pub at: Micros,
}

/// What a store call does with a batch ([`EvalOptions::mode`](crate::EvalOptions::mode)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Charge every limit if every enforced limit allows; otherwise charge nothing.
    #[default]
    Consume,
    /// Charge nothing; report what the batch would get.
    Peek,
    /// Give back each check's cost, charged at `charged_at` by an earlier [`Mode::Consume`]
    /// call ([`Limit::refund`]); then report what the batch would get, as a peek.
    Refund {
        /// The [`BatchOutcome::at`] of the call that charged.
        charged_at: Micros,
    },
}

/// The all-or-nothing rule, shared by every store that holds [`State`] (memory, SQLite, the
/// reference model), so that they decide identically; a store that decides elsewhere (Redis,
/// in a script) uses it in [`Mode::Peek`] to report what it decided.
///
/// `checks` may be owned or borrowed. `states[i]` is the state of `checks[i].key`, locked by
/// the caller for the duration.
/// Statuses are written to `out` (cleared first). Returns whether the batch is admitted.
/// If it is and `mode` is [`Mode::Consume`], every enforced check, and every shadow check that
/// itself allowed, is applied to its state; in [`Mode::Refund`], every check is first given
/// back its cost; otherwise no state changes.
///
/// A batch that is not admitted charges nothing, so the limits that allowed report the figures
/// as they stand ([`Limit::standing`]), not as they would be after a charge that never happens.
pub fn evaluate<C: Borrow<Check>, S: DerefMut<Target = State>>(
    checks: &[C],
    states: &mut [S],
    now: Micros,
    mode: Mode,
    out: &mut impl StatusSink,
) -> bool {
    debug_assert_eq!(checks.len(), states.len());
    if let Mode::Refund { charged_at } = mode {
        for (check, state) in checks.iter().zip(states.iter_mut()) {
            let check = check.borrow();
            check.limit.refund(state, now, check.cost, charged_at);
        }
    }
    out.clear();
    let mut allowed = true;
    for (check, state) in checks.iter().zip(states.iter()) {
        let check = check.borrow();
        let status = check.limit.check(state, now, check.cost);
        allowed &= check.shadow || status.is_allowed();
        out.push(status);
    }
    if !allowed {
        for ((check, state), status) in checks.iter().zip(states.iter()).zip(out.as_mut()) {
            if status.is_allowed() {
                *status = check.borrow().limit.standing(state, now);
            }
        }
    }
    if allowed && mode == Mode::Consume {
        for ((check, state), status) in checks.iter().zip(states.iter_mut()).zip(out.as_mut()) {
            let check = check.borrow();
            if status.is_allowed() {
                check.limit.apply(state, now, check.cost);
            }
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Rate, SubjectKind};

    fn checks(n: usize, repeat: Option<(usize, usize)>) -> Vec<Check> {
        let limit = Arc::new(Limit::gcra(Rate::per(10, crate::Unit::Minute).unwrap()));
        (0..n)
            .map(|i| {
                let subject = match repeat {
                    Some((a, b)) if i == b => a,
                    _ => i,
                };
                let key = Key::new("n", "p", SubjectKind::User, &subject.to_string());
                Check::new("p", key, Arc::clone(&limit), 1)
            })
            .collect()
    }

    #[test]
    fn repeated_keys_are_refused_in_small_and_large_batches() {
        for n in [2, 5, PAIRWISE_MAX, PAIRWISE_MAX + 1, 40] {
            assert!(Batch::new(checks(n, None)).is_ok(), "{n} distinct keys");
            let err = Batch::new(checks(n, Some((0, n - 1))))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("share the key n:p:{u=0}; keys must be distinct"),
                "{n}: {err}"
            );
        }
        assert!(Batch::new(Vec::new()).is_ok());
    }
}
