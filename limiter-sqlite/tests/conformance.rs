//! The contracts every store meets, from `limiter_core::conformance_suite!`, run on a real
//! database file and on an in-memory database.

use std::fmt;

use async_trait::async_trait;
use limiter_core::{Batch, BatchOutcome, Error, EvalOptions, Key, Store};
use limiter_sqlite::{SqliteConfig, SqliteStore};

/// The suite injects time through `EvalOptions::now`; a periodic sweep reading the wall clock
/// would not know it, so the worker does not sweep by itself here.
fn config() -> SqliteConfig {
    SqliteConfig::default().with_sweep_interval(None)
}

/// A store on a file in a temporary directory that lives as long as the store.
struct FileStore {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Store for FileStore {
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        self.store.evaluate(batch, options).await
    }
    async fn peek(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        self.store.peek(batch, options).await
    }
    async fn reset(&self, key: &Key) -> Result<(), Error> {
        self.store.reset(key).await
    }
    async fn refund(&self, batch: &Batch, options: &EvalOptions) -> Result<(), Error> {
        self.store.refund(batch, options).await
    }
}

impl fmt::Display for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.store.fmt(f)
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.store, f)
    }
}

mod file {
    use super::*;

    async fn new_store() -> impl Store + 'static {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("conformance.db"), config())
            .await
            .expect("open");
        FileStore { store, _dir: dir }
    }

    limiter_core::conformance_suite!(new_store);
}

mod memory {
    use super::*;

    async fn new_store() -> impl Store + 'static {
        SqliteStore::open_in_memory(config()).await.expect("open")
    }

    limiter_core::conformance_suite!(new_store);
}
