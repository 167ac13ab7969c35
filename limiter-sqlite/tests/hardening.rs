//! Time bounds and failures of the store: a bounded queue, a default call timeout, a worker
//! that survives a failing job, and stored state that does not decode.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use limiter_core::{
    Batch, BatchOutcome, Check, Error, EvalOptions, Limit, Micros, Rate, Store, StoreExt,
};
use limiter_sqlite::{SqliteConfig, SqliteStore};
use rusqlite::Connection;

fn batch(name: &str, rate: &str) -> Batch {
    let limit = Limit::gcra(rate.parse::<Rate>().expect("valid rate"));
    Batch::new(vec![Check::new("policy", key(name), limit, 1)]).expect("one check")
}

// One runtime thread: the calls spawned below all reach the queue (or their place in line
// for it) while the test sleeps, before the call that must find it full.
#[tokio::test]
async fn bounded_queue_a_full_queue_fails_within_the_timeout_naming_its_capacity() {
    let config = config()
        .with_busy_timeout(Duration::from_secs(10))
        .with_max_group(1)
        .with_queue_capacity(2);
    let (_dir, path, store) = open_temp(config).await;
    let store = Arc::new(store);
    let b = batch("k", "10/hour");
    // The worker is stuck on the first call behind another process's lock, so the queue fills
    // up: the first call (taken or queued) and two more are all the store holds.
    let lock = WriteLock::take(&path);
    let options = EvalOptions::at(NOW).with_timeout(Duration::from_secs(8));
    let waiting = spawn_calls(&store, &b, 3, &options);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let options = EvalOptions::at(NOW).with_timeout(Duration::from_millis(300));
    let err = store.evaluate(&b, &options).await.expect_err("no room");
    assert!(err.is_temporary(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("SqliteConfig::queue_capacity") && message.contains("2 calls"),
        "{message}"
    );
    assert!(message.contains("charged nothing"), "{message}");

    lock.release();
    for call in waiting {
        assert!(call.await.expect("joined").0.expect("answered").allowed);
    }
    // Three calls charged; the one refused for want of room did not (a peek reports what
    // would remain after one more).
    let peek = store.peek(&b, &EvalOptions::at(NOW)).await.expect("peek");
    assert_eq!(peek.statuses[0].remaining, 10 - 3 - 1);
}

#[tokio::test]
async fn bounded_queue_a_capacity_of_zero_is_refused_naming_the_setting() {
    refused(
        config().with_queue_capacity(0),
        "SqliteConfig::queue_capacity",
        "at least 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_call_timeout_bounds_the_wait_behind_a_held_lock() {
    // No timeout configured: the default is the busy timeout plus one second.
    let config = config()
        .with_busy_timeout(Duration::from_millis(100))
        .with_max_group(1);
    assert_eq!(config.call_timeout(), Duration::from_millis(1100));
    let (_dir, path, store) = open_temp(config).await;
    let store = Arc::new(store);
    let b = batch("k", "1000/hour");
    // Another process holds the lock throughout: every group waits the busy timeout in turn,
    // 60 of them one after another (6 s) unless each call's own wait is bounded.
    let lock = WriteLock::take(&path);
    let calls = spawn_calls(&store, &b, 60, &EvalOptions::at(NOW));
    let mut longest = Duration::ZERO;
    for call in calls {
        let (result, waited) = call.await.expect("joined");
        let err = result.expect_err("locked");
        assert!(err.is_temporary(), "{err}");
        longest = longest.max(waited);
    }
    lock.release();
    // About 1.1 s; the margin is for a slow machine, and still far below 6 s.
    assert!(
        longest < Duration::from_secs(4),
        "a call waited {longest:?}"
    );
    // The calls that timed out in the queue were skipped: nothing was charged.
    let peek = store.peek(&b, &EvalOptions::at(NOW)).await.expect("peek");
    assert_eq!(peek.statuses[0].remaining, 1000 - 1);
}

#[tokio::test]
async fn default_call_timeout_caps_a_longer_per_call_timeout_and_honours_a_shorter_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let config = config()
        .with_busy_timeout(Duration::from_secs(10))
        .with_timeout(Some(Duration::from_millis(300)));
    let store = SqliteStore::open(&path, config).await.expect("open");
    let b = batch("k", "10/hour");
    let lock = WriteLock::take(&path);
    for (asked, expected) in [
        (Duration::from_secs(10), Duration::from_millis(300)),
        (Duration::from_millis(50), Duration::from_millis(50)),
    ] {
        let started = std::time::Instant::now();
        let options = EvalOptions::at(NOW).with_timeout(asked);
        let err = store.evaluate(&b, &options).await.expect_err("locked");
        // Far below the 10 s busy timeout that the worker is waiting out.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "asked {asked:?}"
        );
        assert!(
            matches!(err, Error::Timeout { timeout, .. } if timeout == expected),
            "asked {asked:?}: {err}"
        );
    }
    lock.release();
}

#[tokio::test]
async fn default_call_timeout_of_zero_is_refused_naming_the_setting() {
    refused(
        config().with_timeout(Some(Duration::ZERO)),
        "SqliteConfig::timeout",
        "expected a positive",
    )
    .await;

    let store = SqliteStore::open_in_memory(config()).await.expect("open");
    let options = EvalOptions::at(NOW).with_timeout(Duration::ZERO);
    let err = store
        .evaluate(&batch("k", "10/hour"), &options)
        .await
        .expect_err("refused");
    let message = err.to_string();
    assert!(!err.is_temporary(), "{message}");
    assert!(
        message.contains("EvalOptions::timeout") && message.contains("expected a positive"),
        "{message}"
    );
}

#[tokio::test]
async fn corrupt_state_counts_as_spent_until_its_fresh_at_then_starts_over() {
    let (_dir, path, store) = open_temp(config()).await;
    let b = batch("bad", "10/hour");
    assert!(admitted(&store, &b, NOW).await);
    let raw = Connection::open(&path).expect("open raw");
    let fresh_at: i64 = raw
        .query_row(
            "SELECT fresh_at FROM limiter_state WHERE key = ?1",
            [key("bad").as_str()],
            |r| r.get(0),
        )
        .expect("row");
    let fresh_at = Micros::try_from(fresh_at).expect("positive");
    assert!(
        fresh_at > NOW,
        "one unit spent: the key is fresh again later"
    );
    raw.execute(
        "UPDATE limiter_state SET state = x'ff00ff' WHERE key = ?1",
        [key("bad").as_str()],
    )
    .expect("corrupt");

    // Until fresh_at the key is not a whole budget: the call fails, naming the key and when
    // it starts over.
    for now in [NOW, fresh_at - 1] {
        let err = store
            .evaluate(&b, &EvalOptions::at(now))
            .await
            .expect_err("undecodable state");
        let message = err.to_string();
        assert!(!err.is_temporary(), "{message}");
        assert!(message.contains(key("bad").as_str()), "{message}");
        assert!(
            message.contains(&format!("counts as spent until its fresh_at of {fresh_at}")),
            "{message}"
        );
    }
    // From fresh_at the lost state would be fresh anyway: the key starts over, and the charge
    // replaces the bytes that did not decode.
    let outcome = store
        .evaluate(&b, &EvalOptions::at(fresh_at))
        .await
        .expect("fresh again");
    assert!(outcome.allowed);
    assert_eq!(outcome.statuses[0].remaining, 10 - 1);
    let (bytes, _) = stored_row(&path, &key("bad")).expect("row");
    assert!(limiter_core::State::decode(&bytes).is_some());
}

/// Spawns `n` calls of `b` on `store` with `options`; each answers its result and how long it
/// took.
fn spawn_calls(
    store: &Arc<SqliteStore>,
    b: &Batch,
    n: usize,
    options: &EvalOptions,
) -> Vec<tokio::task::JoinHandle<(Result<BatchOutcome, Error>, Duration)>> {
    (0..n)
        .map(|_| {
            let (store, b, options) = (Arc::clone(store), b.clone(), options.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let result = store.evaluate(&b, &options).await;
                (result, started.elapsed())
            })
        })
        .collect()
}

/// Opening a store with `config` is refused, naming `setting` and saying `expected`.
async fn refused(config: SqliteConfig, setting: &str, expected: &str) {
    let err = SqliteStore::open_in_memory(config)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, Error::InvalidConfig { path, message }
            if path == setting && message.contains(expected)),
        "{err}"
    );
}
