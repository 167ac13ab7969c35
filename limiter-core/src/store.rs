//! The [`Store`] trait: where limit state lives.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::batch::{Batch, BatchOutcome, Mode, Statuses};
use crate::time::Micros;
use crate::{Error, Key};

/// Options of one store call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvalOptions {
    /// The limiter's `now`, from its injected clock. A store with an authoritative clock of
    /// its own (Redis server time) may use that instead; relative figures in the statuses are
    /// computed against whichever time it used, which it reports in [`BatchOutcome::at`].
    pub now: Micros,
    /// How long the call may take; past it the store answers [`Error::Timeout`].
    pub timeout: Option<Duration>,
    /// Charge, only report, or give back a charge ([`Mode::Consume`] by default).
    pub mode: Mode,
}

impl EvalOptions {
    /// Options for a call at `now` that charges an admitted batch.
    pub fn at(now: Micros) -> EvalOptions {
        EvalOptions {
            now,
            timeout: None,
            mode: Mode::Consume,
        }
    }

    /// Options for a call at `now` that only reports.
    pub fn peek(now: Micros) -> EvalOptions {
        EvalOptions::at(now).with_mode(Mode::Peek)
    }

    /// Options for a call at `now` that gives back what a call at `charged_at` charged.
    pub fn refund(now: Micros, charged_at: Micros) -> EvalOptions {
        EvalOptions::at(now).with_mode(Mode::Refund { charged_at })
    }

    /// The same, with a timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> EvalOptions {
        self.timeout = Some(timeout);
        self
    }

    /// The same, in `mode`.
    pub fn with_mode(mut self, mode: Mode) -> EvalOptions {
        self.mode = mode;
        self
    }
}

/// Where limit state lives: process memory, a SQLite file, Redis.
///
/// The limiter calls it once per decision with every limit that applies. `Display` names the
/// backend and its location in logs and errors (`RedisStore(redis://127.0.0.1:6379)`).
///
/// # Two methods
///
/// An implementor writes [`evaluate`](Store::evaluate) and [`reset`](Store::reset), nothing
/// else (a store in process memory may also answer [`evaluate_now`](Store::evaluate_now)). Peeking and giving back a charge are modes of `evaluate`
/// ([`EvalOptions::mode`]), not methods of their own, for two reasons:
///
/// - every backend decides all three with the same code path: the same keys to lock or
///   load, the same [`batch::evaluate`](crate::batch::evaluate) (which applies the mode), the
///   same state to write back (nothing, for a peek). Separate methods were split by the engine
///   and joined again in every backend;
/// - a refund must be as atomic as a charge, and name the time of the charge it undoes
///   ([`Mode::Refund`]), so that it never removes another request's charge. It stays a store
///   operation because users need it ([`Limiter::refund`](crate::Limiter::refund): a response
///   the service failed), and so does the Redis Cluster store, which undoes the charges of
///   earlier slots when a later slot denies.
///
/// [`StoreExt`] offers `peek` and `refund` as conveniences over `evaluate`, for every store.
///
/// # Contract
///
/// Every implementation decides exactly as [`batch::evaluate`](crate::batch::evaluate) does on
/// the same states, in the call's mode, and must guarantee:
///
/// - **Atomic, all or nothing**: [`evaluate`](Store::evaluate) evaluates all checks of a batch
///   against one consistent snapshot and either charges every check that the rule charges or
///   none; no concurrent call, in this process or any other sharing the store, observes or
///   interleaves with a partial batch. A refund is atomic in the same way.
/// - **Denied charges nothing**: a batch that is not admitted changes no state; a peek changes
///   none either.
/// - **Exact**: under any concurrency, no limit admits more than its algorithm allows.
/// - **Expiry is garbage collection only**: state may be dropped only once it is
///   indistinguishable from fresh ([`Limit::fresh_at`](crate::Limit::fresh_at)); eviction under
///   memory pressure must never silently hand a live key a fresh budget.
/// - **Errors say whether they are temporary** ([`Error::is_temporary`]); a failed call has
///   charged nothing, or says in its error that it may have.
#[async_trait]
pub trait Store: fmt::Debug + fmt::Display + Send + Sync {
    /// Evaluates `batch` in `options.mode`: charges it if every enforced check allows
    /// ([`Mode::Consume`]), only reports ([`Mode::Peek`]), or gives back an earlier charge
    /// first ([`Mode::Refund`]). One status per check.
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error>;

    /// Forgets the state of `key`: its next request sees a whole budget.
    async fn reset(&self, key: &Key) -> Result<(), Error>;

    /// Evaluates `batch` at once, as [`evaluate`](Store::evaluate) would, if the store can
    /// answer without waiting (a store in process memory can; one across a network cannot):
    /// `Some` with whether the batch was admitted, its statuses written to `out` (cleared
    /// first) and any charge made at `options.now`; `None` to be asked through `evaluate`.
    ///
    /// The engine asks here first: `evaluate`'s future is boxed, and a decision that needs no
    /// I/O should cost no allocation. The default answers `None`; a wrapper that forwards
    /// `evaluate` to an inner store forwards this too, or leaves the default.
    fn evaluate_now(
        &self,
        batch: &Batch,
        options: &EvalOptions,
        out: &mut Statuses,
    ) -> Option<Result<bool, Error>> {
        let _ = (batch, options, out);
        None
    }

    /// Whether the store writes the notices a batch asks for ([`Batch::notices`]) to an
    /// outbox with the charge. A limiter that notifies needs such a store
    /// ([`LimiterBuilder::notify`](crate::LimiterBuilder::notify)); the default is `false`.
    fn keeps_notices(&self) -> bool {
        false
    }
}

#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        (**self).evaluate(batch, options).await
    }
    async fn reset(&self, key: &Key) -> Result<(), Error> {
        (**self).reset(key).await
    }
    fn evaluate_now(
        &self,
        batch: &Batch,
        options: &EvalOptions,
        out: &mut Statuses,
    ) -> Option<Result<bool, Error>> {
        (**self).evaluate_now(batch, options, out)
    }
    fn keeps_notices(&self) -> bool {
        (**self).keeps_notices()
    }
}

/// Conveniences over [`Store::evaluate`] for every store.
pub trait StoreExt: Store {
    /// Reports what `evaluate` would answer at `options.now`, without charging anything.
    fn peek<'a>(
        &'a self,
        batch: &'a Batch,
        options: &EvalOptions,
    ) -> impl Future<Output = Result<BatchOutcome, Error>> + Send + 'a {
        let options = options.clone().with_mode(Mode::Peek);
        async move { self.evaluate(batch, &options).await }
    }

    /// Gives back, at `options.now`, what a [`Mode::Consume`] call that answered at
    /// `charged_at` charged for `batch` ([`Limit::refund`](crate::Limit::refund)).
    fn refund<'a>(
        &'a self,
        batch: &'a Batch,
        options: &EvalOptions,
        charged_at: Micros,
    ) -> impl Future<Output = Result<BatchOutcome, Error>> + Send + 'a {
        let options = options.clone().with_mode(Mode::Refund { charged_at });
        async move { self.evaluate(batch, &options).await }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

// The trait must stay dyn-compatible and its futures Send.
const _: fn(&dyn Store) = |_| {};
#[allow(dead_code)]
fn _assert_send_sync<T: Send + Sync>() {}
#[allow(dead_code)]
fn _store_is_send_sync() {
    _assert_send_sync::<Arc<dyn Store>>();
}
