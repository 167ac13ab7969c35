//! Notifications on SQLite: the outbox and inbox suites on files, four stores on one file
//! writing each notice once with its charge, and a charge that rolls back taking its notices
//! with it.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{NOW, WriteLock, config, stored_row};
use limiter_core::notify::{ClaimRequest, NoticePlan, NotifyKind, NotifyRules, Outbox};
use limiter_core::{
    Batch, Check, EvalOptions, Key, Limit, Limiter, PolicySet, Rate, Request, Store, SubjectKind,
};
use limiter_sqlite::{SqliteConfig, SqliteInbox, SqliteOutbox, SqliteStore};
use limiter_testkit::conformance::outbox::fleet_notifies_once_per_window;
use rusqlite::Connection;

const BUSY: Duration = Duration::from_secs(10);
const HOUR: u64 = 3_600_000_000;

mod outbox {
    use super::*;

    async fn new_outbox() -> Option<(SqliteOutbox, tempfile::TempDir)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = SqliteOutbox::open(dir.path().join("outbox.db"), BUSY)
            .await
            .expect("open");
        Some((outbox, dir))
    }

    limiter_testkit::outbox_suite!(new_outbox);
}

mod inbox {
    use super::*;

    async fn new_inbox() -> Option<(SqliteInbox, tempfile::TempDir)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = SqliteInbox::open(dir.path().join("inbox.db"), BUSY)
            .await
            .expect("open");
        Some((inbox, dir))
    }

    limiter_testkit::inbox_suite!(new_inbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_stores_on_one_file_write_each_notice_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        let store = SqliteStore::open(&path, config()).await.expect("open");
        stores.push(Arc::new(store));
    }
    let outbox = SqliteOutbox::open(&path, BUSY).await.expect("open");
    let found = fleet_notifies_once_per_window(stores, &outbox).await;
    for notice in found.values() {
        assert_eq!(notice.plan.as_deref(), Some("tiny"), "{notice:?}");
        assert_eq!(notice.user.as_deref(), Some("u"), "{notice:?}");
    }
    let stats = outbox.stats(NOW).await.expect("stats");
    assert_eq!(
        (stats.pending, stats.claimed),
        (0, u64::try_from(found.len()).expect("small")),
        "every notice written was claimed once"
    );
}

/// A check of `tenant`'s `plan_sustained` limit of 10/hour costing `cost`, that asks for its
/// notices under the default rules.
fn sustained(tenant: &str, cost: u64) -> Batch {
    let request = Request::new().tenant(tenant).plan("starter");
    let plan = NoticePlan::new(Arc::new(NotifyRules::default()), &request, None);
    let key = Key::new("test", "plan_sustained", SubjectKind::Tenant, tenant);
    let limit = Limit::gcra("10/hour".parse::<Rate>().expect("rate"));
    Batch::new(vec![Check::new("plan_sustained", key, limit, cost)])
        .expect("batch")
        .with_notices(Arc::new(plan))
}

/// Every notice in `outbox` (claimed far in the future), as the kinds of each tenant's.
async fn kinds_by_tenant(outbox: &SqliteOutbox) -> BTreeMap<String, Vec<NotifyKind>> {
    let claim = ClaimRequest {
        worker: "check".to_owned(),
        now: NOW + 1000 * HOUR,
        lease: HOUR,
        max: 1000,
    };
    let mut kinds: BTreeMap<String, Vec<NotifyKind>> = BTreeMap::new();
    for claimed in outbox.claim(&claim).await.expect("claim") {
        let tenant = claimed.notice.tenant.clone().expect("a tenant");
        kinds.entry(tenant).or_default().push(claimed.notice.kind());
    }
    for list in kinds.values_mut() {
        list.sort();
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_rolls_back_leaves_no_notice_of_the_call_that_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let store = Arc::new(SqliteStore::open(&path, config()).await.expect("open"));
    // A real SQLite failure in the middle of a decision's notices: the exhaustion of tenant
    // "poison" fails to insert, after its state and its first notices were written.
    Connection::open(&path)
        .expect("open raw")
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON notify_outbox \
             WHEN json_extract(NEW.notice, '$.tenant') = 'poison' \
             AND json_extract(NEW.notice, '$.identity.kind') = 'exhausted' \
             BEGIN SELECT RAISE(ABORT, 'poisoned notice'); END;",
        )
        .expect("trigger");

    // Hold the write lock so that the calls below queue up and run as one group, whose
    // transaction the poisoned call aborts; the worker then runs each call alone.
    let lock = WriteLock::take(&path);
    let tenants = ["t0", "t1", "t2", "poison", "t4", "t5"];
    let mut calls = Vec::new();
    for tenant in tenants {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            // The whole budget at once: approaching, exhausted and restored.
            store
                .evaluate(&sustained(tenant, 10), &EvalOptions::at(NOW))
                .await
        }));
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // let the calls queue up
    lock.release();

    for (tenant, call) in tenants.iter().zip(calls) {
        let result = call.await.expect("task");
        if *tenant == "poison" {
            let err = result.expect_err("the poisoned decision fails");
            assert!(err.to_string().contains("poisoned notice"), "{err}");
            assert!(!err.is_temporary(), "{err}");
        } else {
            assert!(result.expect("the others succeed").allowed, "{tenant}");
        }
    }
    let poisoned_key = Key::new("test", "plan_sustained", SubjectKind::Tenant, "poison");
    assert!(
        stored_row(&path, &poisoned_key).is_none(),
        "the failed call's charge was rolled back with its notices"
    );
    let outbox = SqliteOutbox::open(&path, BUSY).await.expect("open");
    let kinds = kinds_by_tenant(&outbox).await;
    let charged = [
        NotifyKind::Approaching,
        NotifyKind::Exhausted,
        NotifyKind::Restored,
    ];
    let expected: BTreeMap<String, Vec<NotifyKind>> = tenants
        .iter()
        .filter(|t| **t != "poison")
        .map(|t| ((*t).to_owned(), charged.to_vec()))
        .collect();
    assert_eq!(
        kinds, expected,
        "each committed charge has its notices, once; the failed one has none"
    );
}

#[tokio::test]
async fn only_an_admitted_charge_writes_notices() {
    let (_dir, path, store) = common::open_temp(config()).await;
    let at = EvalOptions::at(NOW);
    // A peek charges nothing, and writes nothing.
    let peek = EvalOptions::peek(NOW);
    assert!(
        store
            .evaluate(&sustained("acme", 10), &peek)
            .await
            .expect("peek")
            .allowed
    );
    // Eight of ten: approaching.
    assert!(
        store
            .evaluate(&sustained("acme", 8), &at)
            .await
            .expect("ok")
            .allowed
    );
    // Three more do not fit: denied, nothing written.
    assert!(
        !store
            .evaluate(&sustained("acme", 3), &at)
            .await
            .expect("ok")
            .allowed
    );
    // A refund gives the charge back, and writes nothing either.
    let refund = EvalOptions::refund(NOW, NOW);
    store
        .evaluate(&sustained("acme", 8), &refund)
        .await
        .expect("refund");
    let outbox = SqliteOutbox::open(&path, BUSY).await.expect("open");
    let kinds = kinds_by_tenant(&outbox).await;
    assert_eq!(
        kinds,
        BTreeMap::from([("acme".to_owned(), vec![NotifyKind::Approaching])])
    );
}

#[tokio::test]
async fn a_store_on_a_file_keeps_notices_and_one_in_memory_does_not() {
    let (_dir, _path, file) = common::open_temp(config()).await;
    assert!(file.keeps_notices());
    let memory = SqliteStore::open_in_memory(SqliteConfig::new())
        .await
        .expect("open");
    assert!(!memory.keeps_notices());
    // No outbox could read an in-memory store's notices: a limiter that notifies refuses it.
    let err = Limiter::builder(PolicySet::default(), Arc::new(memory))
        .notify(NotifyRules::default())
        .map(drop)
        .expect_err("refused");
    assert!(err.to_string().contains("SqliteStore(:memory:)"), "{err}");
}

#[tokio::test]
async fn a_version_3_file_gains_the_outbox_and_inbox_and_keeps_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    {
        let conn = Connection::open(&path).expect("open raw");
        for sql in [
            include_str!("../src/migrations/0001_limiter_state.sql"),
            include_str!("../src/migrations/0002_api_keys.sql"),
            include_str!("../src/migrations/0003_events.sql"),
        ] {
            conn.execute_batch(sql).expect("an earlier version");
        }
        conn.pragma_update(None, "user_version", 3)
            .expect("set version");
        conn.execute_batch(
            "INSERT INTO limiter_state (key, state, fresh_at) VALUES ('k', x'00', 7); \
             INSERT INTO api_keys (hash, tenant, id, name, start, active, bypass, created_at) \
                 VALUES (x'01', 'acme', 'key_1', 'ci', 'acme_live_abcd', 1, 0, 5); \
             INSERT INTO limit_events (at, kind, tenant, lim, remaining, retry_after, \
                 window_start, period) VALUES (9, 'denied', 'acme', 10, 0, 1, 0, 60);",
        )
        .expect("data of every earlier version");
    }
    let store = SqliteStore::open(&path, config()).await.expect("migrate");
    assert!(
        store
            .evaluate(&sustained("acme", 8), &EvalOptions::at(NOW))
            .await
            .expect("a charge that notifies")
            .allowed
    );
    let outbox = SqliteOutbox::open(&path, BUSY).await.expect("open");
    assert_eq!(
        kinds_by_tenant(&outbox).await,
        BTreeMap::from([("acme".to_owned(), vec![NotifyKind::Approaching])])
    );

    let conn = Connection::open(&path).expect("open raw");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 4);
    assert_eq!(limiter_sqlite::SCHEMA_VERSION, 4);
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(
        count("limiter_state WHERE key = 'k' AND fresh_at = 7"),
        1,
        "limits"
    );
    assert_eq!(count("api_keys WHERE id = 'key_1'"), 1, "keys");
    assert_eq!(count("limit_events WHERE at = 9"), 1, "events");
    assert_eq!(count("notify_inbox"), 0);
}

#[tokio::test]
async fn a_notice_that_no_longer_decodes_is_given_up_on_without_blocking_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let outbox = SqliteOutbox::open(&path, BUSY).await.expect("open");
    let good: Vec<_> = ["acme", "bolt"]
        .iter()
        .map(|t| limiter_testkit::conformance::outbox::notice(t, NotifyKind::Exhausted, NOW + 1))
        .collect();
    assert_eq!(outbox.enqueue(&good).await.expect("enqueue"), 2);
    // Due first, and not a notice.
    Connection::open(&path)
        .expect("open raw")
        .execute(
            "INSERT INTO notify_outbox (id, notice, state, due) \
             VALUES ('ntf_broken', '{\"not\": \"a notice\"}', 'pending', ?1)",
            [i64::try_from(NOW).expect("small")],
        )
        .expect("a row written by something else");
    let claim = ClaimRequest {
        worker: "w".to_owned(),
        now: NOW + HOUR,
        lease: HOUR,
        max: 2,
    };
    let claimed = outbox.claim(&claim).await.expect("claim");
    let mut tenants: Vec<_> = claimed
        .iter()
        .map(|c| c.notice.tenant.clone().expect("a tenant"))
        .collect();
    tenants.sort();
    assert_eq!(tenants, ["acme", "bolt"], "the broken row took no place");
    let stats = outbox.stats(NOW + HOUR).await.expect("stats");
    assert_eq!((stats.claimed, stats.failed), (2, 1));
    let error: String = Connection::open(&path)
        .expect("open raw")
        .query_row(
            "SELECT last_error FROM notify_outbox WHERE id = 'ntf_broken'",
            [],
            |r| r.get(0),
        )
        .expect("the reason is kept");
    assert!(error.contains("does not decode"), "{error}");
}
