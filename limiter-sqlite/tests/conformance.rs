//! The contracts every store meets, from `limiter_testkit::conformance_suite!`, run on a real
//! database file and on an in-memory database.

use limiter_core::Store;
use limiter_sqlite::{SqliteConfig, SqliteStore};

/// The suite injects time through `EvalOptions::now`; a periodic sweep reading the wall clock
/// would not know it, so the worker does not sweep by itself here.
fn config() -> SqliteConfig {
    SqliteConfig::default().with_sweep_interval(None)
}

mod file {
    use super::*;

    /// A store on a file in a temporary directory, which lives as long as the store.
    async fn new_store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("conformance.db"), config())
            .await
            .expect("open");
        (store, dir)
    }

    limiter_testkit::conformance_suite!(guarded new_store);
}

mod memory {
    use super::*;

    async fn new_store() -> impl Store + 'static {
        SqliteStore::open_in_memory(config()).await.expect("open")
    }

    limiter_testkit::conformance_suite!(new_store);
}
