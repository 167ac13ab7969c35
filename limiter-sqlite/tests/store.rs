//! The store's own behaviour on real SQLite files: persistence, group commit, sweeping,
//! timeouts. The contracts every store shares are in `conformance.rs`.

mod common;

use common::*;

use std::sync::Arc;
use std::time::Duration;

use limiter_core::StoreExt;
use limiter_core::{Batch, Check, EvalOptions, Limit, Micros, Rate, State, Store};
use limiter_sqlite::{SqliteConfig, SqliteStore};
use limiter_testkit::fixtures::hammer;
use rusqlite::Connection;

fn limit(rate: &str) -> Limit {
    Limit::sliding_window(rate.parse::<Rate>().expect("valid rate"))
}

fn batch(checks: &[(&str, &Limit)]) -> Batch {
    Batch::new(
        checks
            .iter()
            .map(|(k, l)| Check::new("policy", key(k), (*l).clone(), 1)),
    )
    .expect("distinct keys")
}

fn stored_state(path: &std::path::Path, name: &str) -> Option<(State, i64)> {
    stored_row(path, &key(name))
        .map(|(bytes, fresh_at)| (State::decode(&bytes).expect("decodable"), fresh_at))
}

fn count_rows(path: &std::path::Path) -> i64 {
    Connection::open(path)
        .expect("open raw")
        .query_row("SELECT count(*) FROM limiter_state", [], |r| r.get(0))
        .expect("count")
}

#[tokio::test]
async fn state_persists_across_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let three = limit("3/hour");
    let b = batch(&[("alice", &three)]);
    {
        let store = SqliteStore::open(&path, config()).await.expect("open");
        for _ in 0..2 {
            assert!(admitted(&store, &b, NOW).await);
        }
    }
    let store = SqliteStore::open(&path, config()).await.expect("reopen");
    assert!(admitted(&store, &b, NOW).await);
    assert!(
        !store
            .evaluate(&b, &EvalOptions::at(NOW))
            .await
            .expect("evaluate")
            .allowed
    );
    drop(store);
    let (state, fresh_at) = stored_state(&path, "alice").expect("row");
    assert_eq!(
        fresh_at,
        i64::try_from(three.fresh_at(&state)).expect("fits")
    );
    assert!(
        matches!(state, State::Window { current: 3, .. }),
        "{state:?}"
    );
}

#[tokio::test]
async fn display_names_the_file_and_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.db");
    let store = SqliteStore::open(&path, config()).await.expect("open");
    assert_eq!(
        store.to_string(),
        format!("SqliteStore({})", path.display())
    );
    assert_eq!(store.path(), Some(path.as_path()));
    let memory = SqliteStore::open_in_memory(config()).await.expect("open");
    assert_eq!(memory.to_string(), "SqliteStore(:memory:)");
    assert_eq!(memory.path(), None);
}

#[tokio::test]
async fn the_file_is_in_wal_mode_at_the_current_schema_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    std::fs::write(&path, b"").expect("an empty file is a new database");
    let _store = SqliteStore::open(&path, config()).await.expect("open");
    let conn = Connection::open(&path).expect("open raw");
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(
        version,
        i64::try_from(limiter_sqlite::SCHEMA_VERSION).expect("small")
    );
    assert_eq!(limiter_sqlite::SCHEMA_VERSION, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tasks_admit_exactly_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path().join("limits.db"), config())
            .await
            .expect("open"),
    );
    let hundred = limit("100/hour");
    let burst = Limit::gcra("1000/minute".parse::<Rate>().expect("rate"));
    let b = batch(&[("shared", &hundred), ("shared-burst", &burst)]);
    let admitted = hammer(&store, 8, 40, NOW, |_| b.clone()).await;
    assert_eq!(admitted, 100);
    let peek = store.peek(&b, &EvalOptions::at(NOW)).await.expect("peek");
    assert!(!peek.allowed);
    // The burst limit was charged exactly once per admitted request, never for a denied one
    // (a denied peek reports what stands).
    assert_eq!(peek.statuses[1].remaining, 1000 - 100);
}

#[tokio::test]
async fn sweep_deletes_only_rows_that_are_fresh_at_the_given_time() {
    let (_dir, path, store) = open_temp(config()).await;
    let minute = Limit::gcra("1/minute".parse::<Rate>().expect("rate"));
    let hour = Limit::gcra("1/hour".parse::<Rate>().expect("rate"));
    let at = EvalOptions::at(NOW);
    assert!(
        store
            .evaluate(&batch(&[("m", &minute), ("h", &hour)]), &at)
            .await
            .expect("ok")
            .allowed
    );
    assert_eq!(count_rows(&path), 2);

    // One microsecond before the minute key is fresh again, nothing goes.
    assert_eq!(store.sweep(NOW + 60_000_000 - 1).await.expect("sweep"), 0);
    assert_eq!(store.sweep(NOW + 60_000_000).await.expect("sweep"), 1);
    assert!(stored_state(&path, "m").is_none());
    let (state, _) = stored_state(&path, "h").expect("the hour key is still live");
    assert_eq!(
        state,
        State::Gcra {
            tat: NOW + 3_600_000_000
        }
    );
    // The hour key still denies: the sweep did not hand it a fresh budget.
    let later = EvalOptions::at(NOW + 60_000_000);
    let outcome = store
        .evaluate(&batch(&[("h", &hour)]), &later)
        .await
        .expect("ok");
    assert!(!outcome.allowed);
}

#[tokio::test]
async fn the_automatic_sweep_runs_in_the_callers_time_once_per_interval() {
    // Limiter time is in 2001: by the wall clock every row would be fresh long ago.
    let (_dir, path, store) =
        open_temp(SqliteConfig::new().with_sweep_interval(Some(Duration::from_secs(60)))).await;
    let second = Limit::gcra("1/second".parse::<Rate>().expect("rate"));
    let minute = Limit::gcra("1/minute".parse::<Rate>().expect("rate"));
    const S: Micros = 1_000_000;
    // Admits `name` at `at`, then waits for any sweep that call started (a later call is served
    // after it: a barrier), and says which of `rows` are still stored.
    let unused = key("unused");
    let call_at = |name: &'static str, limit: &Limit, at: Micros, rows: &'static [&'static str]| {
        let batch = batch(&[(name, limit)]);
        let (store, path, unused) = (&store, &path, &unused);
        async move {
            assert!(common::admitted(store, &batch, at).await, "{name}");
            store.reset(unused).await.expect("reset");
            rows.iter()
                .map(|row| stored_state(path, row).is_some())
                .collect::<Vec<bool>>()
        }
    };

    // The first call sweeps (nothing yet); "s" is fresh from NOW + 1 s, "m" from NOW + 60 s.
    assert!(common::admitted(&store, &batch(&[("s", &second), ("m", &minute)]), NOW).await);
    // No sweep is due before NOW + 60 s, however long "s" has been fresh.
    let stored = call_at("a", &minute, NOW + 59 * S, &["s"]).await;
    assert_eq!(stored, [true], "swept before the interval");
    // The sweep due at NOW + 61 s drops the rows that have been fresh for a minute, the
    // longest period evaluated: "s", not "m", which a caller a second behind would still see.
    let stored = call_at("b", &minute, NOW + 61 * S, &["s", "m"]).await;
    assert_eq!(
        stored,
        [false, true],
        "the due sweep must drop s and keep m"
    );
    // The next one is due an interval later, at NOW + 121 s.
    let stored = call_at("c", &minute, NOW + 120 * S, &["m"]).await;
    assert_eq!(stored, [true], "swept twice in one interval");
    let stored = call_at("d", &minute, NOW + 121 * S, &["m", "a", "b", "c", "d"]).await;
    assert_eq!(
        stored,
        [false, true, true, true, true],
        "the second sweep must drop m and keep the rows live at the injected time"
    );
}

#[tokio::test]
async fn reset_and_refund_change_the_stored_state() {
    let (_dir, path, store) = open_temp(config()).await;
    let two = limit("2/hour");
    let b = batch(&[("k", &two)]);
    let at = EvalOptions::at(NOW);
    for _ in 0..2 {
        assert!(store.evaluate(&b, &at).await.expect("ok").allowed);
    }
    assert!(!store.evaluate(&b, &at).await.expect("ok").allowed);
    store.refund(&b, &at, NOW).await.expect("refund");
    assert!(matches!(
        stored_state(&path, "k"),
        Some((State::Window { current: 1, .. }, _))
    ));
    assert!(store.evaluate(&b, &at).await.expect("ok").allowed);
    store.reset(&key("k")).await.expect("reset");
    assert!(stored_state(&path, "k").is_none());
    assert_eq!(
        store.peek(&b, &at).await.expect("peek").statuses[0].remaining,
        2 - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_decision_in_a_group_fails_alone_and_charges_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let store = Arc::new(SqliteStore::open(&path, config()).await.expect("open"));
    // A real SQLite failure in the middle of a decision: writing the key "poison" aborts.
    Connection::open(&path)
        .expect("open raw")
        .execute_batch(&format!(
            "CREATE TRIGGER poison BEFORE INSERT ON limiter_state WHEN NEW.key = '{}' \
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
            key("poison").as_str()
        ))
        .expect("trigger");

    let big = limit("1000/hour");
    // Hold the write lock so that the calls below queue up and run as one group.
    let lock = WriteLock::take(&path);
    let mut calls = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let checks: Vec<(String, Limit)> = if i == 3 {
            vec![
                ("first".into(), big.clone()),
                ("poison".into(), big.clone()),
            ]
        } else {
            vec![
                ("first".into(), big.clone()),
                (format!("other{i}"), big.clone()),
            ]
        };
        calls.push(tokio::spawn(async move {
            let refs: Vec<(&str, &Limit)> = checks.iter().map(|(k, l)| (k.as_str(), l)).collect();
            store.evaluate(&batch(&refs), &EvalOptions::at(NOW)).await
        }));
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // let the calls queue up
    lock.release();

    let mut results = Vec::new();
    for c in calls {
        results.push(c.await.expect("task"));
    }
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            let err = r.as_ref().expect_err("the poisoned decision fails");
            assert!(err.to_string().contains("poisoned"), "{err}");
            assert!(!err.is_temporary(), "{err}");
        } else {
            assert!(r.as_ref().expect("the others succeed").allowed);
        }
    }
    // "first" was charged by the five good decisions only: none of the poisoned one's writes
    // survived.
    assert!(matches!(
        stored_state(&path, "first"),
        Some((State::Window { current: 5, .. }, _))
    ));
    assert!(stored_state(&path, "poison").is_none());
}

#[tokio::test]
async fn a_corrupt_row_fails_its_decision_with_the_key_named() {
    let (_dir, path, store) = open_temp(config()).await;
    let ten = limit("10/hour");
    assert!(admitted(&store, &batch(&[("bad", &ten)]), NOW).await);
    Connection::open(&path)
        .expect("open raw")
        .execute(
            "UPDATE limiter_state SET state = x'09' WHERE key = ?1",
            [key("bad").as_str()],
        )
        .expect("corrupt");
    let err = store
        .evaluate(
            &batch(&[("good", &ten), ("bad", &ten)]),
            &EvalOptions::at(NOW),
        )
        .await
        .expect_err("undecodable state");
    let message = err.to_string();
    assert!(
        message.contains(key("bad").as_str()) && message.contains("cannot be decoded"),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!err.is_temporary());
    assert!(
        stored_state(&path, "good").is_none(),
        "a failed decision charged a key"
    );
    // Resetting the key starts it over.
    store.reset(&key("bad")).await.expect("reset");
    assert!(admitted(&store, &batch(&[("bad", &ten)]), NOW).await);
}

#[tokio::test]
async fn a_call_that_times_out_waiting_for_the_lock_is_never_charged() {
    let (_dir, path, store) = open_temp(config().with_busy_timeout(Duration::from_secs(10))).await;
    let ten = limit("10/hour");
    let b = batch(&[("k", &ten)]);
    // Another process holds the lock: the worker waits for it; the caller gives up first.
    let lock = WriteLock::take(&path);
    // The first times out waiting behind the lock; the second is queued while the worker is
    // stuck on the first, and its caller is gone when the worker gets to it, so it is skipped.
    for call in ["first", "second"] {
        let error = store
            .evaluate(
                &b,
                &EvalOptions::at(NOW).with_timeout(Duration::from_millis(50)),
            )
            .await
            .expect_err("times out");
        assert!(
            matches!(error, limiter_core::Error::Timeout { .. }),
            "{call}: {error}"
        );
        assert!(error.is_temporary());
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{call}: {error}"
        );
    }
    lock.release();
    let peek = store.peek(&b, &EvalOptions::at(NOW)).await.expect("peek");
    // The first call had already been taken up by the worker, so it may have been charged;
    // the second never (a peek reports what would remain after one more).
    assert!(
        peek.statuses[0].remaining >= 10 - 1 - 1,
        "{:?}",
        peek.statuses[0]
    );
}

#[tokio::test]
async fn a_lock_held_beyond_the_busy_timeout_is_a_temporary_error_that_charges_nothing() {
    let (_dir, path, store) =
        open_temp(config().with_busy_timeout(Duration::from_millis(100))).await;
    let ten = limit("10/hour");
    let b = batch(&[("k", &ten)]);
    let lock = WriteLock::take(&path);
    let err = store
        .evaluate(&b, &EvalOptions::at(NOW))
        .await
        .expect_err("busy");
    assert!(err.is_temporary(), "{err}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("busy timeout of 100ms"), "{message}");
    lock.release();
    let outcome = store.evaluate(&b, &EvalOptions::at(NOW)).await.expect("ok");
    assert_eq!(
        outcome.statuses[0].remaining, 9,
        "the failed call charged nothing"
    );
}

#[tokio::test]
async fn in_memory_stores_are_private() {
    let a = SqliteStore::open_in_memory(config()).await.expect("open");
    let b = SqliteStore::open_in_memory(config()).await.expect("open");
    let one = limit("1/hour");
    let req = batch(&[("k", &one)]);
    assert!(common::admitted(&a, &req, NOW).await);
    assert!(!common::admitted(&a, &req, NOW).await);
    assert!(common::admitted(&b, &req, NOW).await);
}

#[tokio::test]
async fn the_wal_is_checkpointed_into_the_database_while_the_store_is_open() {
    let (_dir, path, store) = open_temp(config()).await;
    let schema_only = std::fs::metadata(&path).expect("db file").len();
    let ten = limit("10/hour");
    // Enough rows written for several checkpoints, each row on a key of its own.
    for i in 0..3_000 {
        let b = batch(&[(&format!("key-{i}"), &ten)]);
        assert!(common::admitted(&store, &b, NOW).await);
    }
    // The checkpointer runs on a thread of its own: wait (in real time) for its copy to reach
    // the database file. Nothing reaches it before a checkpoint, as long as the store is open.
    let mut polls = 0;
    while std::fs::metadata(&path).expect("db file").len() < schema_only + 64 * 1024 {
        polls += 1;
        assert!(
            polls < 2_000,
            "no checkpoint copied the WAL into {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(store);
}
