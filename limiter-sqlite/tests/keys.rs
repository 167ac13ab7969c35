//! The SQLite key store: the key conformance suite on a file, and the report's case across two
//! limiters sharing that file.

use std::sync::Arc;

use limiter_core::api_key::{KeyAdmin, KeyFormat, NewKey};
use limiter_core::{Limiter, ManualClock, PolicySet};
use limiter_memory::{CachedKeyStore, KeyCacheConfig};
use limiter_sqlite::{SqliteConfig, SqliteKeyStore, SqliteStore};
use limiter_testkit::CountingStore;
use limiter_testkit::scenarios::bypass_key_case;

const NOW: u64 = 1_790_000_000_000_000;

async fn new_store() -> (SqliteKeyStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("keys.db"), SqliteConfig::new())
        .await
        .expect("open");
    (SqliteKeyStore::new(Arc::new(store)), dir)
}

limiter_testkit::key_store_suite!(guarded new_store);

fn format() -> KeyFormat {
    KeyFormat::new("acme_live").expect("prefix")
}

/// One process's view of the file: its own store and worker, a key cache of the default bound,
/// and a limiter whose limit-store calls are counted.
struct Process {
    limiter: Limiter,
    limits: Arc<CountingStore<Arc<SqliteStore>>>,
    keys: SqliteKeyStore,
}

async fn process(path: &std::path::Path, clock: &ManualClock) -> Process {
    let store = Arc::new(
        SqliteStore::open(path, SqliteConfig::new())
            .await
            .expect("open"),
    );
    let keys = SqliteKeyStore::new(store.clone());
    let limits = Arc::new(CountingStore::new(store));
    let cached = CachedKeyStore::new(keys.clone(), KeyCacheConfig::new()).with_clock(clock.clone());
    let limiter = Limiter::builder(PolicySet::default(), limits.clone())
        .clock(clock.clone())
        .keys(format(), cached)
        .build();
    Process {
        limiter,
        limits,
        keys,
    }
}

#[tokio::test]
async fn the_reports_case_on_a_shared_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let clock = ManualClock::new(NOW);
    let (a, b) = (process(&path, &clock).await, process(&path, &clock).await);
    let admin = KeyAdmin::new(format(), Arc::new(a.keys.clone()));
    let limits = Arc::clone(&a.limits);
    bypass_key_case(&a.limiter, || limits.calls(), &b.limiter, &admin, &clock).await;
}

#[tokio::test]
async fn keys_survive_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let record = {
        let store = SqliteStore::open(&path, SqliteConfig::new())
            .await
            .expect("open");
        let admin = KeyAdmin::new(format(), Arc::new(SqliteKeyStore::new(Arc::new(store))));
        let issued = admin
            .create(NewKey::new("acme", "ci").user("u-1"), NOW)
            .await
            .expect("create");
        admin
            .revoke("acme", &issued.record.id, NOW + 5)
            .await
            .expect("revoke")
    };
    let store = SqliteStore::open(&path, SqliteConfig::new())
        .await
        .expect("reopen");
    let keys = SqliteKeyStore::new(Arc::new(store));
    let admin = KeyAdmin::new(format(), Arc::new(keys));
    assert_eq!(admin.list("acme").await.expect("list"), vec![record]);
}

#[tokio::test]
async fn a_version_1_file_gains_the_keys_table_and_keeps_its_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open raw");
        conn.execute_batch(include_str!("../src/migrations/0001_limiter_state.sql"))
            .expect("version 1");
        conn.pragma_update(None, "user_version", 1)
            .expect("set version");
        conn.execute(
            "INSERT INTO limiter_state (key, state, fresh_at) VALUES ('k', x'00', 7)",
            [],
        )
        .expect("a row");
    }
    let store = SqliteStore::open(&path, SqliteConfig::new())
        .await
        .expect("migrate");
    let admin = KeyAdmin::new(format(), Arc::new(SqliteKeyStore::new(Arc::new(store))));
    admin
        .create(NewKey::new("acme", "ci"), NOW)
        .await
        .expect("create");
    let conn = rusqlite::Connection::open(&path).expect("open raw");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(
        version,
        i64::try_from(limiter_sqlite::SCHEMA_VERSION).expect("small")
    );
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM limiter_state", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 1, "the limits survive the migration");
}
