//! The driver every contract uses: one store, one namespace.

use limiter_core::batch::{Batch, BatchOutcome, Check};
use limiter_core::time::Micros;
use limiter_core::{EvalOptions, Key, Limit, LimitStatus, Store, SubjectKind, Verdict};

/// Drives one store for one contract: every key it makes is in the contract's namespace.
pub(crate) struct Run<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) namespace: &'a str,
}

impl Run<'_> {
    pub(crate) fn key(&self, name: &str) -> Key {
        Key::new(self.namespace, name, SubjectKind::User, "subject")
    }

    pub(crate) fn check(&self, name: &str, limit: &Limit, cost: u64) -> Check {
        Check::new(name, self.key(name), limit.clone(), cost)
    }

    /// One store call over `checks`, which must succeed.
    async fn call(&self, checks: &[Check], options: EvalOptions) -> BatchOutcome {
        let batch = batch(checks);
        let mode = options.mode;
        self.store
            .evaluate(&batch, &options)
            .await
            .unwrap_or_else(|e| panic!("{}: {mode:?} failed: {e}\nbatch: {batch:?}", self.store))
    }

    pub(crate) async fn evaluate(&self, checks: &[Check], now: Micros) -> BatchOutcome {
        self.call(checks, EvalOptions::at(now)).await
    }

    pub(crate) async fn peek(&self, checks: &[Check], now: Micros) -> BatchOutcome {
        self.call(checks, EvalOptions::peek(now)).await
    }

    pub(crate) async fn refund(&self, checks: &[Check], now: Micros, charged_at: Micros) {
        self.call(checks, EvalOptions::refund(now, charged_at))
            .await;
    }

    pub(crate) async fn reset(&self, key: &Key) {
        self.store
            .reset(key)
            .await
            .unwrap_or_else(|e| panic!("{}: reset of {key} failed: {e}", self.store));
    }

    /// Evaluates `check` alone at `now`.
    pub(crate) async fn one(&self, check: &Check, now: Micros) -> LimitStatus {
        let outcome = self.evaluate(std::slice::from_ref(check), now).await;
        assert_eq!(
            outcome.statuses.len(),
            1,
            "{}: one status per check expected, got {outcome:?}",
            self.store
        );
        assert_eq!(
            outcome.allowed,
            outcome.statuses[0].is_allowed() || check.shadow,
            "{}: the batch's verdict must follow its only enforced check: {outcome:?}",
            self.store
        );
        outcome.statuses[0]
    }

    /// Peeks at `check` alone at `now`.
    pub(crate) async fn peek_one(&self, check: &Check, now: Micros) -> LimitStatus {
        let outcome = self.peek(std::slice::from_ref(check), now).await;
        assert_eq!(outcome.statuses.len(), 1, "{}: {outcome:?}", self.store);
        outcome.statuses[0]
    }

    /// Evaluates `check` at `now` until it is denied (at most `max` times); returns how many
    /// were admitted and the first denial.
    pub(crate) async fn admit_all(
        &self,
        check: &Check,
        now: Micros,
        max: u64,
    ) -> (u64, LimitStatus) {
        for admitted in 0..=max {
            let status = self.one(check, now).await;
            if !status.is_allowed() {
                return (admitted, status);
            }
        }
        panic!(
            "{}: {} admitted more than {max} requests of cost {} at one instant",
            self.store, check.limit, check.cost
        );
    }

    /// Asserts that `check` admits exactly `expected` requests at `now`, then denies.
    pub(crate) async fn admits_exactly(
        &self,
        check: &Check,
        now: Micros,
        expected: u64,
        context: &str,
    ) {
        let (admitted, denied) = self.admit_all(check, now, expected + 1).await;
        assert_eq!(
            admitted, expected,
            "{}: {} ({context}) admitted {admitted} requests of cost {}, expected exactly \
             {expected}; then {denied:?}",
            self.store, check.limit, check.cost
        );
        assert_eq!(
            denied.verdict,
            Verdict::Denied,
            "{}: {context}: {denied:?}",
            self.store
        );
    }
}

pub(crate) fn batch(checks: &[Check]) -> Batch {
    Batch::new(checks.to_vec()).expect("contract batches have distinct keys")
}
