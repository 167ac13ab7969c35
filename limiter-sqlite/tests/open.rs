//! Opening: a new or empty file, and every kind of bad input, each on a real file. A refused
//! file is left exactly as it was.

mod common;

use std::path::Path;
use std::time::Duration;

use limiter_core::StoreExt;
use limiter_core::{Batch, Check, EvalOptions, Key, Limit, Rate, Store, SubjectKind};
use limiter_sqlite::{SCHEMA_VERSION, SqliteConfig, SqliteStore};
use rusqlite::Connection;

fn config() -> SqliteConfig {
    SqliteConfig::default()
        .with_sweep_interval(None)
        .with_busy_timeout(Duration::from_millis(200))
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Asserts that opening `path` fails with a permanent error whose message names the path and
/// contains every one of `expected`.
async fn refused(path: &Path, expected: &[&str]) -> limiter_core::Error {
    let err = SqliteStore::open(path, config())
        .await
        .expect_err("opening must fail");
    let message = err.to_string();
    assert!(
        message.contains(&shown(path)),
        "the path is not named: {message}"
    );
    for e in expected {
        assert!(message.contains(e), "{e:?} not in: {message}");
    }
    err
}

fn one_request() -> Batch {
    let limit = Limit::sliding_window("5/hour".parse::<Rate>().expect("rate"));
    let key = Key::new("test", "open", SubjectKind::User, "u");
    Batch::new(vec![Check::new("open", key, limit, 1)]).expect("batch")
}

#[tokio::test]
async fn a_missing_file_is_created_and_an_empty_one_is_initialised() {
    let dir = tempfile::tempdir().expect("tempdir");
    for path in [dir.path().join("new.db"), dir.path().join("empty.db")] {
        if path.ends_with("empty.db") {
            std::fs::write(&path, b"").expect("create empty file");
        }
        let store = SqliteStore::open(&path, config()).await.expect("open");
        assert!(common::admitted(&store, &one_request(), 1).await);
        drop(store);
        let version: i64 = Connection::open(&path)
            .expect("raw")
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, i64::try_from(SCHEMA_VERSION).expect("small"));
    }
}

#[tokio::test]
async fn processes_opening_one_new_file_at_once_all_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("race.db");
    let opens: Vec<_> = (0..4)
        .map(|_| SqliteStore::open(&path, config().with_busy_timeout(Duration::from_secs(5))))
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("every open succeeds"));
    }
    for store in &stores {
        store
            .evaluate(&one_request(), &EvalOptions::at(1))
            .await
            .expect("usable");
    }
    let peek = stores[0]
        .peek(&one_request(), &EvalOptions::at(1))
        .await
        .expect("peek");
    assert_eq!(
        peek.statuses[0].remaining,
        5 - 4 - 1,
        "all four share one table"
    );
}

#[tokio::test]
async fn a_path_in_a_missing_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("limits.db");
    let err = refused(
        &path,
        &[
            "cannot open or create",
            "expected a writable file path whose directory exists",
        ],
    )
    .await;
    assert!(!err.is_temporary());
    assert!(!path.exists());
}

#[tokio::test]
async fn a_path_under_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, b"not a directory").expect("write");
    let path = file.join("limits.db");
    let err = refused(
        &path,
        &["cannot open or create", "expected a writable file path"],
    )
    .await;
    assert!(!err.is_temporary());
    assert_eq!(std::fs::read(&file).expect("read"), b"not a directory");
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = refused(dir.path(), &["expected"]).await;
    assert!(!err.is_temporary());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.db");
    let content: Vec<u8> = b"These are my notes, not a database.\n".repeat(200);
    std::fs::write(&path, &content).expect("write");
    let err = refused(
        &path,
        &[
            "is not a SQLite database",
            "expected a SQLite database file",
        ],
    )
    .await;
    assert!(!err.is_temporary());
    assert_eq!(
        std::fs::read(&path).expect("read"),
        content,
        "the file was changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("notes.db")]);
}

#[tokio::test]
async fn a_database_from_a_newer_schema_version_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.db");
    let newer = i64::try_from(SCHEMA_VERSION + 1).expect("small");
    {
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch(
            "CREATE TABLE limiter_state_v2 (key TEXT PRIMARY KEY, data BLOB);
             INSERT INTO limiter_state_v2 VALUES ('k', x'0102');",
        )
        .expect("schema");
        conn.pragma_update(None, "user_version", newer)
            .expect("version");
    }
    let before = std::fs::read(&path).expect("read");
    let err = refused(
        &path,
        &[
            &format!("schema version {newer}"),
            &format!("expected a version from 0 to {SCHEMA_VERSION}"),
            "left untouched",
        ],
    )
    .await;
    assert!(!err.is_temporary());
    assert_eq!(
        std::fs::read(&path).expect("read"),
        before,
        "the file was changed"
    );
}

#[tokio::test]
async fn a_negative_schema_version_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("odd.db");
    Connection::open(&path)
        .expect("raw")
        .pragma_update(None, "user_version", -3)
        .expect("version");
    let before = std::fs::read(&path).expect("read");
    refused(&path, &["schema version -3"]).await;
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[tokio::test]
async fn another_application_at_the_current_version_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    {
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY);")
            .expect("schema");
        conn.pragma_update(
            None,
            "user_version",
            i64::try_from(SCHEMA_VERSION).expect("small"),
        )
        .expect("version");
    }
    let before = std::fs::read(&path).expect("read");
    refused(
        &path,
        &[
            "no usable table limiter_state",
            "expected a database written by limiter-sqlite",
        ],
    )
    .await;
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[tokio::test]
async fn a_database_locked_beyond_the_busy_timeout_is_a_temporary_error_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("locked.db");
    // Another process holds an exclusive lock in the middle of writing its own data.
    let other = Connection::open(&path).expect("raw");
    other
        .execute_batch(
            "CREATE TABLE notes (body TEXT);
             BEGIN EXCLUSIVE;
             INSERT INTO notes VALUES ('kept');",
        )
        .expect("lock");
    let err = SqliteStore::open(&path, config())
        .await
        .expect_err("locked");
    assert!(err.is_temporary(), "{err}");
    let message = err.to_string();
    assert!(message.contains(&shown(&path)), "{message}");
    assert!(message.contains("busy timeout of 200ms"), "{message}");
    assert!(
        message.contains("raise SqliteConfig::busy_timeout"),
        "{message}"
    );

    // Once the lock is released, the other writer's data is there and the store opens.
    other.execute_batch("COMMIT").expect("unlock");
    drop(other);
    let store = SqliteStore::open(&path, config())
        .await
        .expect("open after unlock");
    assert!(common::admitted(&store, &one_request(), 1).await);
    drop(store);
    let kept: String = Connection::open(&path)
        .expect("raw")
        .query_row("SELECT body FROM notes", [], |r| r.get(0))
        .expect("the other writer's row survived");
    assert_eq!(kept, "kept");
}

#[tokio::test]
async fn a_group_size_of_zero_is_refused() {
    let err = SqliteStore::open_in_memory(config().with_max_group(0))
        .await
        .expect_err("invalid");
    assert!(err.to_string().contains("max_group"), "{err}");
    assert!(err.to_string().contains("expected at least 1"), "{err}");
}

#[tokio::test]
async fn a_sweep_interval_of_zero_is_refused() {
    let err = SqliteStore::open_in_memory(config().with_sweep_interval(Some(Duration::ZERO)))
        .await
        .expect_err("invalid");
    assert!(err.to_string().contains("sweep_interval"), "{err}");
    assert!(
        err.to_string().contains("expected a positive interval"),
        "{err}"
    );
}
