//! The notices a [`RedisStore`] writes to its outbox once a decision's script has answered.
//!
//! The charge runs in the subject's slot and the outbox lives in its own, so the two cannot be
//! one atomic step. The gap is closed by proposing again: every decision on a notifying limit
//! proposes the notices its statuses show are owed ([`NoticePlan::reached`]), whether or not it
//! crossed them, and the outbox keeps one notice per id. A notice lost between a charge and its
//! write (a crash, a failed write) is so written by the next decision on that limit in the
//! window, on any instance. To keep that cheap, each process proposes each id at most once
//! ([`Notices`] remembers the ids it wrote for a day), and works out what is owed only when a
//! notifying limit's usage is at or past a threshold.

use std::time::Duration;

use limiter_core::notify::{Notice, NoticePlan};
use limiter_core::{BatchOutcome, Check, LimitStatus};
use moka::sync::Cache;

use crate::RedisStore;
use crate::outbox::{RedisOutbox, Write, namespace_of};

/// How many notice ids a process remembers having written: about 100 bytes each.
const REMEMBERED: u64 = 100_000;

/// How long a process remembers an id: a day, the longest window that notifies by default.
/// An id forgotten earlier (at capacity) is proposed once more, which the outbox ignores.
const REMEMBER_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// The ids of the notices this process has written (or is writing), shared by a store's
/// clones.
#[derive(Clone)]
pub(crate) struct Notices {
    written: Cache<String, ()>,
}

impl Notices {
    pub(crate) fn new() -> Notices {
        Notices {
            written: Cache::builder()
                .max_capacity(REMEMBERED)
                .time_to_live(REMEMBER_FOR)
                .build(),
        }
    }

    /// Writes to the outbox of the batch's namespace the notices `outcome` leads to: those an
    /// admitted charge crossed, and those its statuses show are owed that this process has
    /// not written yet. Waits for the write (at most `timeout`) on a task of its own, so that
    /// a caller who stops waiting does not stop it. A failure is logged, and its ids are
    /// forgotten so that the next decision proposes them again; the decision stands.
    pub(crate) async fn write(
        &self,
        store: &RedisStore,
        plan: &NoticePlan,
        checks: &[Check],
        outcome: &BatchOutcome,
        timeout: Duration,
    ) {
        let Some(first) = checks.first() else {
            return;
        };
        let mut crossed = Vec::new();
        if outcome.allowed {
            plan.crossed(checks, &outcome.statuses, outcome.at, &mut crossed);
        }
        let mut reached = Vec::new();
        if owes(plan, checks, &outcome.statuses) {
            plan.reached(checks, &outcome.statuses, outcome.at, &mut reached);
        }
        if crossed.is_empty() && reached.is_empty() {
            return;
        }
        let crossed: Vec<(String, Notice)> = crossed.into_iter().map(|n| (n.id(), n)).collect();
        for (id, _) in &crossed {
            self.written.insert(id.clone(), ());
        }
        // Each id once per process: the entry is taken before the write, so that concurrent
        // decisions of this process do not propose it twice.
        let proposed: Vec<(String, Notice)> = reached
            .into_iter()
            .map(|n| (n.id(), n))
            .filter(|(id, _)| !crossed.iter().any(|(c, _)| c == id))
            .filter(|(id, _)| self.written.entry(id.clone()).or_insert(()).is_fresh())
            .collect();
        if crossed.is_empty() && proposed.is_empty() {
            return;
        }
        let outbox = RedisOutbox::of(store, namespace_of(&first.key));
        let written = self.written.clone();
        let task = tokio::spawn(async move {
            let notices: Vec<(&Notice, Write)> = crossed
                .iter()
                .map(|(_, n)| (n, Write::Exact))
                .chain(proposed.iter().map(|(_, n)| (n, Write::Proposal)))
                .collect();
            if let Err(error) = outbox.write(&notices, timeout).await {
                for (id, _) in crossed.iter().chain(&proposed) {
                    written.invalidate(id);
                }
                tracing::warn!(
                    outbox = %outbox,
                    notices = crossed.len() + proposed.len(),
                    %error,
                    "could not write notices to the outbox; the next decision on their limits \
                     in their windows proposes them again"
                );
            }
        });
        // The task ends on its own; only a runtime shutting down stops it early.
        let _ = task.await;
    }
}

/// Whether some notifying limit of `checks` is at or past a threshold, or exhausted: the
/// condition for [`NoticePlan::reached`] to give anything, checked first so that decisions
/// below every threshold do no more.
fn owes(plan: &NoticePlan, checks: &[Check], statuses: &[LimitStatus]) -> bool {
    let rules = plan.rules();
    let lowest = rules.thresholds().first().copied();
    checks.iter().zip(statuses).any(|(check, status)| {
        if !rules.notifies(&check.policy) {
            return false;
        }
        let used = status.limit.saturating_sub(status.remaining);
        // As `reached` counts: u128, for any limit a caller passes.
        let at_threshold = lowest.is_some_and(|percent| {
            u128::from(used) * 100 >= u128::from(percent) * u128::from(status.limit)
        });
        at_threshold || (status.remaining == 0 && status.limit > 0)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use limiter_core::notify::NotifyRules;
    use limiter_core::policy::PolicyKind;
    use limiter_core::{Key, Limit, Request};

    use super::*;

    fn daily(limit: u64, remaining: u64) -> (Check, LimitStatus) {
        let key = Key::new(
            "api",
            "plan_daily",
            limiter_core::SubjectKind::Tenant,
            "acme",
        );
        let rate = format!("{limit}/day").parse().expect("rate");
        let check = Check::new("plan_daily", key, Limit::gcra(rate), 1);
        (check, LimitStatus::allowed(limit, remaining, 0))
    }

    fn plan() -> NoticePlan {
        let rules = NotifyRules::new([PolicyKind::PlanDaily], [50, 80]).expect("rules");
        NoticePlan::new(Arc::new(rules), &Request::new().tenant("acme"), None)
    }

    #[test]
    fn owes_exactly_when_reached_gives_notices() {
        let plan = plan();
        for (limit, remaining) in [(10, 10), (10, 6), (10, 5), (10, 1), (10, 0), (3, 2), (3, 1)] {
            let (check, status) = daily(limit, remaining);
            let mut reached = Vec::new();
            plan.reached(std::slice::from_ref(&check), &[status], 0, &mut reached);
            assert_eq!(
                owes(&plan, &[check], &[status]),
                !reached.is_empty(),
                "{remaining} of {limit} left"
            );
        }
    }

    #[test]
    fn a_limit_that_does_not_notify_owes_nothing() {
        let plan = plan();
        let key = Key::new(
            "api",
            "plan_burst",
            limiter_core::SubjectKind::Tenant,
            "acme",
        );
        let check = Check::new(
            "plan_burst",
            key,
            Limit::gcra("10/minute".parse().expect("rate")),
            1,
        );
        assert!(!owes(&plan, &[check], &[LimitStatus::allowed(10, 0, 0)]));
    }
}
