//! Regression tests for the reliability review's Redis findings (M1, M5, L1, L7, L8, and the
//! calendar day on the server's clock), each named after its finding.

mod common;

use std::time::{Duration, Instant};

use common::*;
use limiter_core::{Batch, BatchOutcome, Error, EvalOptions, Limit, Store};
use limiter_redis::{RedisConfig, RedisStore, TimeSource};
use limiter_testkit::redis::{self, RedisServer};

/// A private server: these tests make it sleep, kill it or change its settings.
fn own_server(extra: &[&str]) -> Option<RedisServer> {
    match RedisServer::start_with(extra) {
        Ok(server) => Some(server),
        Err(e) => redis::unavailable("a Redis server", &e.to_string()),
    }
}

/// Makes the server at `port` sleep for `seconds` (on a connection of its own), returning once
/// the sleep has begun.
/// Evaluates `b` with a timeout of `budget` while the server sleeps for 2 s; the result, and
/// how long the call took.
async fn while_asleep(
    server: &RedisServer,
    store: &RedisStore,
    b: &Batch,
    budget: Duration,
) -> (Result<BatchOutcome, Error>, Duration) {
    let sleeper = put_to_sleep(server.port(), "2");
    let started = Instant::now();
    let result = store
        .evaluate(b, &EvalOptions::at(NOW).with_timeout(budget))
        .await;
    let waited = started.elapsed();
    sleeper.join().expect("sleeper");
    (result, waited)
}

fn put_to_sleep(port: u16, seconds: &str) -> std::thread::JoinHandle<()> {
    let address = format!("127.0.0.1:{port}");
    let seconds = seconds.to_owned();
    let sleeper = std::thread::spawn(move || {
        let _ = redis::command(&address, &["DEBUG", "SLEEP", &seconds]);
    });
    // Orchestration only: let the server fall asleep before the call is sent.
    std::thread::sleep(Duration::from_millis(100));
    sleeper
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m1_a_per_call_timeout_below_command_timeout_is_honoured() {
    let Some(server) = own_server(&[]) else {
        return;
    };
    let store = connect(
        RedisConfig::new(server.url())
            .with_pool_size(1)
            .with_command_timeout(Duration::from_secs(5))
            .with_time_source(TimeSource::Injected),
    )
    .await;
    let ns = redis::namespace("m1");
    let b = ten_per_minute(&ns);
    let budget = Duration::from_millis(200);

    // The server is asleep for 2 s: the call must give up after its own 200 ms, not wait the
    // pool's 5 s (nor the 2 s the server sleeps).
    let (result, waited) = while_asleep(&server, &store, &b, budget).await;
    match result {
        Err(Error::Timeout { timeout, .. }) => assert_eq!(timeout, budget),
        other => panic!("expected a timeout of {budget:?} after {waited:?}, got {other:?}"),
    }
    assert!(waited < Duration::from_secs(1), "waited {waited:?}");

    // The same with a lost script cache: the reload and retry are inside the one deadline.
    server.command(&["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH");
    let (result, waited) = while_asleep(&server, &store, &b, budget).await;
    assert!(
        matches!(result, Err(Error::Timeout { .. })),
        "after {waited:?}: {result:?}"
    );
    assert!(waited < Duration::from_secs(1), "waited {waited:?}");

    // Once the server answers again, so does the store (reloading its script).
    let outcome = store.evaluate(&b, &at(NOW)).await.expect("awake");
    assert!(outcome.statuses[0].remaining <= 9, "{outcome:?}");
}

#[tokio::test]
async fn l8_a_zero_timeout_is_rejected() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let e = RedisStore::connect(RedisConfig::new(url.clone()).with_command_timeout(Duration::ZERO))
        .await
        .expect_err("a command timeout of 0");
    assert_refuses_zero(&e, "command_timeout");

    let store = store(&url, 1).await;
    let ns = redis::namespace("l8_zero");
    let b = ten_per_minute(&ns);
    let e = store
        .evaluate(&b, &EvalOptions::at(NOW).with_timeout(Duration::ZERO))
        .await
        .expect_err("a per-call timeout of 0");
    assert_refuses_zero(&e, "EvalOptions::timeout");
}

#[tokio::test]
async fn l7_credentials_never_appear_in_debug_display_or_errors() {
    let Some(server) = own_server(&[]) else {
        return;
    };
    server
        .command(&[
            "ACL", "SETUSER", "user", "on", ">secret", "~*", "&*", "+@all",
        ])
        .expect("ACL SETUSER");
    let address = format!("127.0.0.1:{}", server.port());
    let url = format!("redis://user:secret@{address}");
    let leaks = |text: &str| text.contains("secret") || text.contains("user:");

    let config = RedisConfig::new(url.clone()).with_time_source(TimeSource::Injected);
    let shown = format!("{config:?}");
    assert!(!leaks(&shown), "RedisConfig's Debug leaks: {shown}");
    assert!(shown.contains(&format!("redis://***@{address}")), "{shown}");

    let store = connect(config).await;
    for shown in [store.to_string(), format!("{store:?}")] {
        assert!(!leaks(&shown), "the store leaks: {shown}");
        assert!(shown.contains(&address), "{shown}");
    }

    // A wrong password, a malformed URL and a call on a dead server: no error repeats them.
    let wrong = RedisStore::connect(RedisConfig::new(format!(
        "redis://user:wrong-secret@{address}"
    )))
    .await
    .expect_err("a wrong password");
    let bad = RedisStore::connect(RedisConfig::new(format!(
        "redis-cluster://user:secret@{address}?node=not-a-node"
    )))
    .await
    .expect_err("a malformed node");
    let mut server = server;
    server.kill();
    let ns = redis::namespace("l7");
    let b = ten_per_minute(&ns);
    let dead = store
        .evaluate(
            &b,
            &EvalOptions::at(NOW).with_timeout(Duration::from_millis(300)),
        )
        .await
        .expect_err("a dead server");
    for e in [wrong, bad, dead] {
        let text = format!("{e} {e:?}");
        assert!(!leaks(&text), "an error leaks: {text}");
    }
}

/// A zero timeout is refused for good, naming the setting and what is expected.
fn assert_refuses_zero(e: &Error, setting: &str) {
    let message = e.to_string();
    assert!(
        message.contains(&format!("{setting} is 0s")) && message.contains("expected a positive"),
        "{message}"
    );
    assert!(!e.is_temporary(), "{e}");
}

/// What an eviction refusal says: the setting, the value, and both ways out.
fn assert_names_the_policy(e: &Error, policy: &str) {
    let message = e.to_string();
    for expected in [
        format!("maxmemory-policy {policy}"),
        "CONFIG SET maxmemory-policy noeviction".to_owned(),
        "with_evicting_policy_allowed(true)".to_owned(),
    ] {
        assert!(message.contains(&expected), "{message} lacks {expected:?}");
    }
    assert!(!e.is_temporary(), "{e}");
}

#[tokio::test]
async fn m5_an_evicting_maxmemory_policy_is_refused() {
    let Some(server) = own_server(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"])
    else {
        return;
    };
    let config = || RedisConfig::new(server.url()).with_pool_size(1);
    let e = RedisStore::connect(config())
        .await
        .expect_err("allkeys-lru evicts limiter keys");
    assert_names_the_policy(&e, "allkeys-lru");
    // Every limiter key has a TTL: volatile-* policies evict them as well.
    server
        .command(&["CONFIG", "SET", "maxmemory-policy", "volatile-ttl"])
        .expect("CONFIG SET");
    let e = RedisStore::connect(config())
        .await
        .expect_err("volatile-ttl evicts limiter keys");
    assert_names_the_policy(&e, "volatile-ttl");
    // Allowed explicitly, the store connects.
    RedisStore::connect(config().with_evicting_policy_allowed(true))
        .await
        .expect("evictions allowed");
    // Under noeviction, it connects without being told.
    server
        .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .expect("CONFIG SET");
    RedisStore::connect(config()).await.expect("noeviction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m5_an_evicting_policy_on_any_cluster_node_is_refused() {
    if std::env::var(redis::CLUSTER_URL_VAR).is_ok() {
        eprintln!("skipped: changes a node's settings, and a shared cluster is given");
        return;
    }
    let cluster = match redis::RedisCluster::start() {
        Ok(cluster) => cluster,
        Err(e) => return redis::unavailable("a Redis Cluster", &e.to_string()).unwrap_or(()),
    };
    let node = &cluster.nodes()[2];
    node.command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"])
        .expect("CONFIG SET");
    let e = RedisStore::connect(RedisConfig::new(cluster.url()).with_pool_size(1))
        .await
        .expect_err("one node evicts");
    assert_names_the_policy(&e, "allkeys-lfu");
    let port = format!(":{}", node.port());
    assert!(e.to_string().contains(&port), "{e} does not name the node");
    let store = RedisStore::connect(
        RedisConfig::new(cluster.url())
            .with_pool_size(1)
            .with_evicting_policy_allowed(true),
    )
    .await
    .expect("evictions allowed");
    assert!(store.is_clustered());
}

#[tokio::test]
async fn m5_a_disabled_config_command_is_named() {
    // As on managed services that rename CONFIG away.
    let Some(server) = own_server(&["--rename-command", "CONFIG", ""]) else {
        return;
    };
    let config = || RedisConfig::new(server.url()).with_pool_size(1);
    let e = RedisStore::connect(config())
        .await
        .expect_err("the policy cannot be read");
    let message = e.to_string();
    for expected in [
        "cannot read maxmemory-policy",
        "CONFIG may be disabled or renamed",
        "with_evicting_policy_allowed(true)",
    ] {
        assert!(message.contains(expected), "{message} lacks {expected:?}");
    }
    assert!(!e.is_temporary(), "{e}");
    RedisStore::connect(config().with_evicting_policy_allowed(true))
        .await
        .expect("the check skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_disconnection_fails_fast_then_decisions_reach_the_server_again() {
    use fred::interfaces::ClientLike;
    let Some(mut server) = own_server(&[]) else {
        return;
    };
    // A long command timeout: a call that waited for it is plain to see.
    let command_timeout = Duration::from_secs(5);
    let store = connect(
        RedisConfig::new(server.url())
            .with_pool_size(2)
            .with_command_timeout(command_timeout)
            .with_reconnect(fred::types::config::ReconnectPolicy::new_constant(0, 100))
            .with_time_source(TimeSource::Injected),
    )
    .await;
    let ns = redis::namespace("fail_fast");
    let b = ten_per_minute(&ns);
    store.evaluate(&b, &at(NOW)).await.expect("connected");

    server.kill();
    let pool = store.pool().clone();
    until("the client knows the server is gone", || {
        pool.clients().iter().all(|c| !c.is_connected())
    })
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        let e = store
            .evaluate(&b, &at(NOW))
            .await
            .expect_err("no connection");
        let waited = started.elapsed();
        assert!(e.is_temporary(), "{e}");
        assert!(e.to_string().contains("not connected"), "{e}");
        // A behaviour bound, not a speed one: the call did not wait for the command timeout.
        assert!(
            waited < Duration::from_secs(1),
            "a call on a known-dead connection waited {waited:?} (command timeout {command_timeout:?})"
        );
    }

    let mut server = tokio::task::spawn_blocking(move || {
        server.restart().expect("restart");
        server
    })
    .await
    .expect("restart task");
    until("the client reconnects", || {
        pool.clients().iter().any(|c| c.is_connected())
    })
    .await;
    // The first decision once connected goes to the (new, empty) server.
    let outcome = store.evaluate(&b, &at(NOW)).await.expect("reconnected");
    assert_eq!(outcome.statuses[0].remaining, 9, "{outcome:?}");
    let info = server.command(&["INFO", "commandstats"]).expect("INFO");
    assert!(command_calls(&info, "evalsha") >= 1, "{info}");
    server.kill();
}

#[tokio::test]
async fn calendar_days_follow_the_servers_clock_with_a_skewed_client() {
    use limiter_core::{Calendar, ManualClock};
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let probe = store(&url, 1).await;
    let server_now = server_seconds(&probe).await;
    let day = 24 * 3_600_000_000;
    let paris = Calendar::new("Europe/Paris").expect("zone");
    let ns = redis::namespace("skewed_client");
    // Hosts whose clocks are days behind and ahead of the server's.
    for (subject, client_now) in [
        ("behind", server_now - 3 * day),
        ("ahead", server_now + 2 * day),
    ] {
        let store = connect(
            RedisConfig::new(url.clone())
                .with_pool_size(1)
                .with_client_clock(ManualClock::new(client_now)),
        )
        .await;
        let daily = check(
            &ns,
            "daily",
            subject,
            Limit::calendar(rate("500/day"), paris.clone()).expect("calendar"),
            1,
        );
        let b = batch(vec![daily]);
        for expected in [499, 498] {
            let outcome = store
                .evaluate(&b, &at(client_now))
                .await
                .unwrap_or_else(|e| panic!("{subject}: {e}"));
            assert!(outcome.allowed, "{subject}: {outcome:?}");
            assert_eq!(outcome.statuses[0].remaining, expected, "{subject}");
            // The day is the server's: it ends at the server's next local midnight.
            let end = paris.day_bounds(outcome.at).1;
            assert_eq!(
                outcome.at + outcome.statuses[0].reset_after,
                end,
                "{subject}"
            );
            assert!(outcome.at.abs_diff(server_now) < 60_000_000, "{subject}");
        }
    }
}

/// A stored value that is no limiter state is not read as fresh (a whole budget): the call
/// fails with a permanent error naming the key, which the limiter never turns into an
/// admission, until the key expires or is deleted.
#[tokio::test]
async fn a_corrupt_state_counts_as_spent_and_is_reported() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let ns = redis::namespace("corrupt");
    let store = store(&url, 2).await;
    let address = redis::addresses(&url)
        .into_iter()
        .next()
        .expect("an address");
    let check = check(&ns, "p", "victim", Limit::gcra(rate("10/minute")), 1);
    // The subject's key, which holds all its limits.
    let key = RedisStore::storage_key(&check.key);
    redis::command(&address, &["SET", &key, "not a state", "PX", "60000"]).expect("SET");
    let b = batch(vec![check]);

    let error = store
        .evaluate(&b, &at(NOW))
        .await
        .expect_err("a corrupt state");
    assert!(!error.is_temporary(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&key) && text.contains("counts as spent"),
        "{text}"
    );

    // Through a limiter that fails open, the corrupt key refuses the request: a permanent
    // failure is returned, never admitted.
    let mut config = limiter_core::policy::Config::default();
    config.namespace = ns.clone();
    let policies = limiter_core::PolicySet::from_config(&config).expect("valid");
    let limiter = limiter_core::Limiter::builder(policies, store.clone())
        .fail_mode(limiter_core::FailMode::Open)
        .build();
    let request = limiter_core::Request::new()
        .user("victim")
        .ip([192, 0, 2, 1].into());
    let burst_key =
        limiter_core::Key::new(&ns, "plan_burst", limiter_core::SubjectKind::User, "victim");
    let burst_key = RedisStore::storage_key(&burst_key);
    redis::command(&address, &["SET", &burst_key, "garbage", "PX", "60000"]).expect("SET");
    let refused = limiter.check(&request).await.expect_err("not admitted");
    assert!(refused.to_string().contains(&burst_key), "{refused}");

    redis::command(&address, &["DEL", &key]).expect("DEL");
    assert!(admitted(&store, &b, NOW).await);
}
