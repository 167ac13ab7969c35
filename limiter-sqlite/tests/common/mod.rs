//! Helpers shared by the SQLite store's test files.

#![allow(dead_code)]

use limiter_core::{Batch, EvalOptions, Key, Micros, Store, SubjectKind};
use limiter_sqlite::{SqliteConfig, SqliteStore};
use rusqlite::Connection;

/// 2001-09-09: far from today, so that nothing here can follow the wall clock.
pub(crate) const NOW: Micros = 1_000_000_000_000_000;

/// The key of `name` in the tests' namespace.
pub(crate) fn key(name: &str) -> Key {
    Key::new("test", "policy", SubjectKind::User, name)
}

/// A store whose worker never sweeps by itself.
pub(crate) fn config() -> SqliteConfig {
    SqliteConfig::default().with_sweep_interval(None)
}

/// A store on a new file in a temporary directory, with `config`; the directory lives as long
/// as the returned guard.
pub(crate) async fn open_temp(
    config: SqliteConfig,
) -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let store = SqliteStore::open(&path, config).await.expect("open");
    (dir, path, store)
}

/// Whether `store` admits `batch` at `now`; panics if the store fails.
pub(crate) async fn admitted(store: &SqliteStore, batch: &Batch, now: Micros) -> bool {
    store
        .evaluate(batch, &EvalOptions::at(now))
        .await
        .expect("ok")
        .allowed
}

/// Another process's write transaction on the file: the store's worker waits for it until it
/// is released.
pub(crate) struct WriteLock(Connection);

impl WriteLock {
    pub(crate) fn take(path: &std::path::Path) -> WriteLock {
        let conn = Connection::open(path).expect("open raw");
        conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
        WriteLock(conn)
    }

    pub(crate) fn release(self) {
        self.0.execute_batch("COMMIT").expect("unlock");
    }
}

/// The raw state stored under `key`, and its `fresh_at`, read from the file itself.
pub(crate) fn stored_row(path: &std::path::Path, key: &Key) -> Option<(Vec<u8>, i64)> {
    Connection::open(path)
        .expect("open raw")
        .query_row(
            "SELECT state, fresh_at FROM limiter_state WHERE key = ?1",
            [key.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
}
