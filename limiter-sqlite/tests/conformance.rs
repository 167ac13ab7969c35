//! The contracts every store meets, from `limiter_testkit::conformance_suite!`, run on a real
//! database file and on an in-memory database, with the default options: automatic sweeps on,
//! so that the differential test also checks that a sweep never changes a decision.

use limiter_core::Store;
use limiter_sqlite::{SqliteConfig, SqliteStore};

mod file {
    use super::*;

    /// A store on a file in a temporary directory, which lives as long as the store.
    async fn new_store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("conformance.db"), SqliteConfig::new())
            .await
            .expect("open");
        (store, dir)
    }

    limiter_testkit::conformance_suite!(guarded new_store);
}

mod memory {
    use super::*;

    async fn new_store() -> impl Store + 'static {
        SqliteStore::open_in_memory(SqliteConfig::new())
            .await
            .expect("open")
    }

    limiter_testkit::conformance_suite!(new_store);
}
