//! The reference model store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use limiter_core::batch::{self, Batch, BatchOutcome, Mode};
use limiter_core::{Error, EvalOptions, Key, State, Store};

/// The reference store: every key's [`State`] in a map behind one mutex, decided by
/// [`batch::evaluate`].
///
/// Plainly correct and nothing more: one lock makes every call atomic, states are never dropped
/// (a state past [`Limit::fresh_at`](limiter_core::Limit::fresh_at) already reads as fresh), and there
/// is no cleverness to get wrong. Backends are tested against it: on the same calls they must
/// answer exactly what it answers.
#[derive(Debug, Default)]
pub struct ModelStore {
    states: Mutex<HashMap<Key, State>>,
}

impl ModelStore {
    /// An empty store.
    pub fn new() -> ModelStore {
        ModelStore::default()
    }

    /// The number of keys holding state.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key holds state.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The state of `key` (fresh if it has none).
    pub fn state(&self, key: &Key) -> State {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, State>> {
        // A panic while holding the lock cannot leave a half-written state: states are replaced
        // only after the decision is complete.
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self, batch: &Batch, options: &EvalOptions) -> BatchOutcome {
        let mut map = self.lock();
        let checks = batch.checks();
        let mut states: Vec<State> = checks
            .iter()
            .map(|c| map.get(&c.key).cloned().unwrap_or_default())
            .collect();
        let mut refs: Vec<&mut State> = states.iter_mut().collect();
        let mut statuses = Vec::with_capacity(checks.len());
        let (now, mode) = (options.now, options.mode);
        let allowed = batch::evaluate(checks, &mut refs, now, mode, &mut statuses);
        let charged = allowed && mode == Mode::Consume;
        if charged || matches!(mode, Mode::Refund { .. }) {
            for (check, state) in checks.iter().zip(states) {
                map.insert(check.key.clone(), state);
            }
        }
        BatchOutcome {
            allowed,
            statuses,
            at: now,
        }
    }
}

#[async_trait]
impl Store for ModelStore {
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        Ok(self.run(batch, options))
    }

    async fn reset(&self, key: &Key) -> Result<(), Error> {
        self.lock().remove(key);
        Ok(())
    }
}

impl fmt::Display for ModelStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ModelStore")
    }
}
