//! The [`Store`] trait: where limit state lives.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::batch::{Batch, BatchOutcome};
use crate::time::Micros;
use crate::{Error, Key};

/// Options of one store call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvalOptions {
    /// The limiter's `now`, from its injected clock. A store with an authoritative clock of
    /// its own (Redis server time) may use that instead; relative figures in the statuses are
    /// computed against whichever time it used.
    pub now: Micros,
    /// How long the call may take; past it the store answers [`Error::Timeout`].
    pub timeout: Option<Duration>,
}

impl EvalOptions {
    /// Options for a call at `now`.
    pub fn at(now: Micros) -> EvalOptions {
        EvalOptions { now, timeout: None }
    }

    /// The same, with a timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> EvalOptions {
        self.timeout = Some(timeout);
        self
    }
}

/// Where limit state lives: process memory, a SQLite file, Redis.
///
/// The limiter calls it once per decision with every limit that applies. `Display` names the
/// backend and its location in logs and errors (`RedisStore(redis://127.0.0.1:6379)`).
///
/// # Contract
///
/// Every implementation decides exactly as [`batch::evaluate`](crate::batch::evaluate) does on
/// the same states, and must guarantee:
///
/// - **Atomic, all or nothing**: [`evaluate`](Store::evaluate) evaluates all checks of a batch
///   against one consistent snapshot and either charges every check that the rule charges or
///   none; no concurrent call, in this process or any other sharing the store, observes or
///   interleaves with a partial batch.
/// - **Denied charges nothing**: a batch that is not admitted changes no state.
/// - **Exact**: under any concurrency, no limit admits more than its algorithm allows.
/// - **Expiry is garbage collection only**: state may be dropped only once it is
///   indistinguishable from fresh ([`Limit::fresh_at`](crate::Limit::fresh_at)); eviction under
///   memory pressure must never silently hand a live key a fresh budget.
/// - **Errors say whether they are temporary** ([`Error::is_temporary`]); a failed call has
///   charged nothing, or says in its error that it may have.
#[async_trait]
pub trait Store: fmt::Debug + fmt::Display + Send + Sync {
    /// Evaluates `batch` and, if every enforced check allows, charges it. One status per check.
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error>;

    /// Reports what `evaluate` would answer, without charging anything.
    async fn peek(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error>;

    /// Forgets the state of `key`: its next request sees a whole budget.
    async fn reset(&self, key: &Key) -> Result<(), Error>;

    /// Gives back each check's cost to its key, as [`Limit::refund`](crate::Limit::refund)
    /// does; used to undo a charge that a later step of the same decision turned down.
    async fn refund(&self, batch: &Batch, options: &EvalOptions) -> Result<(), Error>;
}

#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        (**self).evaluate(batch, options).await
    }
    async fn peek(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        (**self).peek(batch, options).await
    }
    async fn reset(&self, key: &Key) -> Result<(), Error> {
        (**self).reset(key).await
    }
    async fn refund(&self, batch: &Batch, options: &EvalOptions) -> Result<(), Error> {
        (**self).refund(batch, options).await
    }
}

// The trait must stay dyn-compatible and its futures Send.
const _: fn(&dyn Store) = |_| {};
#[allow(dead_code)]
fn _assert_send_sync<T: Send + Sync>() {}
#[allow(dead_code)]
fn _store_is_send_sync() {
    _assert_send_sync::<Arc<dyn Store>>();
}
