//! A store wrapper that counts calls.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use limiter_core::batch::{Batch, BatchOutcome};
use limiter_core::{Error, EvalOptions, Key, Store};

/// Wraps a store and counts every [`Store`] call made through it, whatever its result; the
/// calls are forwarded unchanged.
///
/// For tests that assert how often the limiter reaches its store (once per decision, never for
/// a bypass).
#[derive(Debug, Default)]
pub struct CountingStore<S> {
    inner: S,
    calls: AtomicU64,
}

impl<S: Store> CountingStore<S> {
    /// Wraps `inner`, with no call counted yet.
    pub fn new(inner: S) -> CountingStore<S> {
        CountingStore {
            inner,
            calls: AtomicU64::new(0),
        }
    }

    /// The number of calls so far (`evaluate` in every mode, and `reset`).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl<S: Store> Store for CountingStore<S> {
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        self.count();
        self.inner.evaluate(batch, options).await
    }

    async fn reset(&self, key: &Key) -> Result<(), Error> {
        self.count();
        self.inner.reset(key).await
    }

    // Counting changes nothing the inner store writes, notices included.
    fn keeps_notices(&self) -> bool {
        self.inner.keeps_notices()
    }
}

impl<S: fmt::Display> fmt::Display for CountingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}
