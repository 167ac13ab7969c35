//! Helpers shared by the SQLite store's test files.

use limiter_core::{Batch, EvalOptions, Micros, Store};
use limiter_sqlite::SqliteStore;

/// Whether `store` admits `batch` at `now`; panics if the store fails.
pub(crate) async fn admitted(store: &SqliteStore, batch: &Batch, now: Micros) -> bool {
    store
        .evaluate(batch, &EvalOptions::at(now))
        .await
        .expect("ok")
        .allowed
}
