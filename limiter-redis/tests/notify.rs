//! The Redis outbox and inbox: their conformance suites on a standalone server and on a
//! cluster, four stores notifying once per window, and notices whose write was lost or failed
//! written by the next decision.
//!
//! Without a server (and without `LIMITER_REQUIRE_REDIS=1`) every test is skipped with a banner.

use std::sync::Arc;

use limiter_core::notify::{ClaimRequest, NotifyKind, NotifyRules, Outbox};
use limiter_core::policy::PolicyKind;
use limiter_core::{Limiter, ManualClock, Micros, PolicySet, Request, Store};
use limiter_redis::fred::interfaces::LuaInterface;
use limiter_redis::{RedisConfig, RedisInbox, RedisOutbox, RedisStore, TimeSource};
use limiter_testkit::conformance::events::trace_policies;
use limiter_testkit::conformance::outbox::fleet_notifies_once_per_window;
use limiter_testkit::fixtures::{BASE_NOW, HOUR, MINUTE};
use limiter_testkit::redis;

/// A store on `url` with injected time (the tests drive the clock).
async fn store(url: &str) -> RedisStore {
    let config = RedisConfig::new(url)
        .with_pool_size(2)
        .with_time_source(TimeSource::Injected);
    RedisStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server {url}: {e}"))
}

async fn outbox_on(url: Option<String>) -> Option<(RedisOutbox, RedisStore)> {
    let store = store(&url?).await;
    let outbox = RedisOutbox::new(&store, &redis::namespace("outbox")).expect("namespace");
    Some((outbox, store))
}

async fn inbox_on(url: Option<String>) -> Option<(RedisInbox, RedisStore)> {
    let store = store(&url?).await;
    let inbox = RedisInbox::new(&store, &redis::namespace("inbox")).expect("namespace");
    Some((inbox, store))
}

mod standalone {
    use limiter_redis::{RedisInbox, RedisOutbox, RedisStore};

    async fn new_outbox() -> Option<(RedisOutbox, RedisStore)> {
        super::outbox_on(limiter_testkit::redis::standalone_url()).await
    }

    async fn new_inbox() -> Option<(RedisInbox, RedisStore)> {
        super::inbox_on(limiter_testkit::redis::standalone_url()).await
    }

    mod outbox {
        limiter_testkit::outbox_suite!(super::new_outbox);
    }

    mod inbox {
        limiter_testkit::inbox_suite!(super::new_inbox);
    }
}

mod cluster {
    use limiter_redis::{RedisInbox, RedisOutbox, RedisStore};

    async fn new_outbox() -> Option<(RedisOutbox, RedisStore)> {
        super::outbox_on(limiter_testkit::redis::cluster_url()).await
    }

    async fn new_inbox() -> Option<(RedisInbox, RedisStore)> {
        super::inbox_on(limiter_testkit::redis::cluster_url()).await
    }

    mod outbox {
        limiter_testkit::outbox_suite!(super::new_outbox);
    }

    mod inbox {
        limiter_testkit::inbox_suite!(super::new_inbox);
    }
}

/// Four stores, each with connections of its own (four processes' worth), notify through the
/// outbox of the policies' namespace.
async fn fleet(url: Option<String>) {
    let Some(url) = url else {
        return;
    };
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(store(&url).await));
    }
    let worker = store(&url).await;
    let outbox = RedisOutbox::new(&worker, trace_policies().namespace()).expect("namespace");
    let found = fleet_notifies_once_per_window(stores, &outbox).await;
    // Plan limits' notices name the plan, for the upgrade hint.
    for notice in found.values() {
        assert_eq!(notice.plan.as_deref(), Some("tiny"), "{}", notice.identity);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fleet_notifies_once_per_window_on_a_standalone_server() {
    fleet(redis::standalone_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fleet_notifies_once_per_window_on_a_cluster() {
    fleet(redis::cluster_url()).await;
}

/// The daily quota of [`process`]'s plan: 80% of it is 16 requests.
const QUOTA: u64 = 20;

/// One process's view of the server: its own store (and so its own memory of the notices it
/// wrote), a limiter that notifies on the daily quota at 80%, policies in `namespace`.
async fn process(url: &str, namespace: &str, clock: &ManualClock) -> Limiter {
    let mut config = limiter_testkit::conformance::events::trace_config();
    config.namespace = namespace.to_owned();
    let policies = PolicySet::from_config(&config).expect("policies");
    let rules = NotifyRules::new([PolicyKind::PlanDaily], [80]).expect("rules");
    Limiter::builder(policies, store(url).await)
        .clock(clock.clone())
        .notify(rules)
        .expect("the store keeps notices")
        .build()
}

/// Sends `n` requests of tenant `acme`, all of which must be admitted.
async fn send(limiter: &Limiter, n: u64) {
    let request = Request::new().tenant("acme").plan("tiny").user("u");
    for _ in 0..n {
        let decision = limiter.check(&request).await.expect("a decision");
        assert!(decision.is_allowed(), "{decision:?}");
    }
}

/// Runs `script` on the outbox's keys (`KEYS[1]` is its prefix) with `args`.
async fn on_outbox(store: &RedisStore, outbox: &RedisOutbox, script: &str, args: Vec<String>) {
    let _: limiter_redis::fred::types::Value = store
        .pool()
        .eval(script, vec![outbox.prefix().to_owned()], args)
        .await
        .expect("a script on the outbox");
}

/// The ids of the outbox's pending notices.
async fn pending(store: &RedisStore, outbox: &RedisOutbox) -> Vec<String> {
    store
        .pool()
        .eval(
            "return redis.call('ZRANGE', KEYS[1] .. ':pending', 0, -1)",
            vec![outbox.prefix().to_owned()],
            Vec::<String>::new(),
        )
        .await
        .expect("ZRANGE")
}

fn claim_all(now: Micros) -> ClaimRequest {
    ClaimRequest {
        worker: "check".to_owned(),
        now,
        lease: MINUTE,
        max: 100,
    }
}

/// A notice lost between the charge that crossed its threshold and its write (here: deleted
/// from the outbox) is not proposed again by the process that wrote it, but is written by the
/// next decision on that limit in the window from another process.
async fn a_lost_notice_is_written_by_the_next_decision(url: Option<String>) {
    let Some(url) = url else {
        return;
    };
    let namespace = redis::namespace("lost");
    let clock = ManualClock::new(BASE_NOW + HOUR);
    let (a, b) = (
        process(&url, &namespace, &clock).await,
        process(&url, &namespace, &clock).await,
    );
    let reader = store(&url).await;
    let outbox = RedisOutbox::new(&reader, &namespace).expect("namespace");

    send(&a, QUOTA * 8 / 10).await;
    let written = pending(&reader, &outbox).await;
    assert_eq!(written.len(), 1, "the 80% notice: {written:?}");
    let lost = written[0].clone();
    on_outbox(
        &reader,
        &outbox,
        "redis.call('DEL', KEYS[1] .. ':n:' .. ARGV[1]) \
         redis.call('ZREM', KEYS[1] .. ':pending', ARGV[1])",
        vec![lost.clone()],
    )
    .await;

    send(&a, 1).await;
    assert!(
        pending(&reader, &outbox).await.is_empty(),
        "a process proposes each id once"
    );

    send(&b, 1).await;
    assert_eq!(pending(&reader, &outbox).await, std::slice::from_ref(&lost));
    let claimed = outbox
        .claim(&claim_all(BASE_NOW + HOUR))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let notice = &claimed[0].notice;
    assert_eq!(notice.id(), lost);
    assert_eq!(notice.kind(), NotifyKind::Approaching);
    assert_eq!(notice.identity.threshold, Some(80));
    // Written from the later decision's statuses: its usage, not the crossing's.
    assert_eq!(notice.used, QUOTA * 8 / 10 + 2);
    assert_eq!(notice.tenant.as_deref(), Some("acme"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_notice_is_written_by_the_next_decision_on_a_standalone_server() {
    a_lost_notice_is_written_by_the_next_decision(redis::standalone_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_notice_is_written_by_the_next_decision_on_a_cluster() {
    a_lost_notice_is_written_by_the_next_decision(redis::cluster_url()).await;
}

/// A write that fails leaves the decision as it was, and its notices are written by the next
/// decision of the same process.
async fn a_failed_write_is_written_by_the_next_decision(url: Option<String>) {
    let Some(url) = url else {
        return;
    };
    let namespace = redis::namespace("failed");
    let clock = ManualClock::new(BASE_NOW + HOUR);
    let a = process(&url, &namespace, &clock).await;
    let reader = store(&url).await;
    let outbox = RedisOutbox::new(&reader, &namespace).expect("namespace");
    // A key of another type where the pending set goes: every write fails.
    on_outbox(
        &reader,
        &outbox,
        "redis.call('SET', KEYS[1] .. ':pending', 'in the way')",
        Vec::new(),
    )
    .await;
    // The crossing's write fails; the decisions stand.
    send(&a, QUOTA * 8 / 10 + 1).await;
    on_outbox(
        &reader,
        &outbox,
        "redis.call('DEL', KEYS[1] .. ':pending')",
        Vec::new(),
    )
    .await;
    let stats = outbox.stats(BASE_NOW + HOUR).await.expect("stats");
    assert_eq!(stats.pending, 0, "nothing was written: {stats:?}");

    send(&a, 1).await;
    let claimed = outbox
        .claim(&claim_all(BASE_NOW + HOUR))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].notice.kind(), NotifyKind::Approaching);
    assert_eq!(claimed[0].notice.identity.threshold, Some(80));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_write_is_written_by_the_next_decision_on_a_standalone_server() {
    a_failed_write_is_written_by_the_next_decision(redis::standalone_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_write_is_written_by_the_next_decision_on_a_cluster() {
    a_failed_write_is_written_by_the_next_decision(redis::cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_that_would_break_the_keys_are_refused() {
    let Some((outbox, store)) = outbox_on(redis::standalone_url()).await else {
        return;
    };
    // One hash tag for every key of the outbox.
    let prefix = outbox.prefix();
    assert!(
        prefix.starts_with('{') && prefix.ends_with(":notify}") && prefix.matches('{').count() == 1,
        "{prefix}"
    );
    for bad in ["", "a:b", "a{b", "a}b"] {
        let err = RedisOutbox::new(&store, bad).expect_err(bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        let err = RedisInbox::new(&store, bad).expect_err(bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}
