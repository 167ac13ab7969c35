//! What the Redis store adds to the conformance suite, on a standalone server: one command per
//! decision, key expiry, server time, script reloading, configuration errors.

mod common;

use std::time::Duration;

use common::*;
use fred::interfaces::{ClientLike, KeysInterface};
use limiter_core::StoreExt;
use limiter_core::{Calendar, Limit, Store, Verdict};
use limiter_redis::{RedisConfig, RedisStore, TimeSource};
use limiter_testkit::fixtures::every_algorithm;
use limiter_testkit::redis::{self, RedisServer};

/// A private server, for tests that count its commands or flush its scripts.
fn private_server() -> Option<RedisServer> {
    if std::env::var(redis::URL_VAR).is_ok() {
        // A given server is shared with whatever else uses it: its counters are not ours.
        eprintln!(
            "skipped: needs a private server, and {} is set",
            redis::URL_VAR
        );
        return None;
    }
    match RedisServer::start() {
        Ok(server) => Some(server),
        Err(e) => redis::unavailable("a Redis server", &e.to_string()),
    }
}

#[tokio::test]
async fn display_names_the_server() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store = store(&url, 1).await;
    let shown = store.to_string();
    assert!(shown.starts_with("RedisStore(redis://"), "{shown}");
    if std::env::var(redis::URL_VAR).is_err() {
        assert_eq!(shown, format!("RedisStore({url})"));
    }
    let debug = format!("{store:?}");
    assert!(debug.contains("Injected"), "{debug}");
}

#[tokio::test]
async fn one_command_per_decision_whatever_the_number_of_limits() {
    let Some(server) = private_server() else {
        return;
    };
    let store = store(&server.url(), 2).await;
    let ns = redis::namespace("one_command");
    // The limits of one subject, under every algorithm.
    let checks: Vec<_> = every_algorithm(1_000)
        .into_iter()
        .enumerate()
        .map(|(i, limit)| check(&ns, &format!("p{i}"), "alice", limit, 1))
        .collect();
    let before = server.command(&["INFO", "commandstats"]).expect("INFO");
    let decisions = 25;
    for n in 0..decisions {
        let b = batch(checks.clone());
        let outcome = store.evaluate(&b, &at(NOW + n)).await.expect("evaluate");
        assert!(outcome.allowed);
    }
    let after = server.command(&["INFO", "commandstats"]).expect("INFO");
    let evalsha = command_calls(&after, "evalsha") - command_calls(&before, "evalsha");
    assert_eq!(
        evalsha, decisions,
        "EVALSHA calls for {decisions} decisions of 4 limits"
    );
    // Nothing else went over the wire: every other command ran inside the script, which
    // reads the subject's one key, holding all four limits, and writes it once.
    for other in [
        "eval",
        "script|load",
        "get",
        "mget",
        "set",
        "psetex",
        "time",
    ] {
        let calls = command_calls(&after, other) - command_calls(&before, other);
        let inside = match other {
            "get" | "psetex" => decisions,
            _ => 0,
        };
        assert_eq!(calls, inside, "{other} calls");
    }
}

#[tokio::test]
async fn a_flushed_script_cache_is_reloaded() {
    let Some(server) = private_server() else {
        return;
    };
    let store = store(&server.url(), 1).await;
    let ns = redis::namespace("noscript");
    let b = batch(vec![check(
        &ns,
        "p",
        "bob",
        Limit::gcra(rate("2/minute")),
        1,
    )]);
    assert!(store.evaluate(&b, &at(NOW)).await.expect("first").allowed);
    server.command(&["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH");
    // NOSCRIPT means the script did not run: reloading and retrying charges once.
    assert!(admitted(&store, &b, NOW).await);
    let third = store.evaluate(&b, &at(NOW)).await.expect("third");
    assert!(
        !third.allowed,
        "2/minute admitted a third request: {third:?}"
    );
}

#[tokio::test]
async fn keys_expire_when_their_state_is_fresh_again() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store = store(&url, 1).await;
    let ns = redis::namespace("expiry");
    let day_end = Calendar::utc().day_bounds(NOW).1;
    // After a refund: a GCRA bucket full again is fresh from now on, so its key goes after the
    // grace alone; an empty log is fresh at any time, so its record and key go at once; a
    // window or calendar state keeps its window, and its expiry.
    enum Refunded {
        Now,
        Gone,
        Kept,
    }
    let cases = [
        // GCRA 10/minute: one request leaves a backlog of one emission interval, 6 s.
        (Limit::gcra(rate("10/minute")), 6_000, Refunded::Now),
        // Sliding window 100/hour: counts until the end of the next window.
        (
            Limit::sliding_window(rate("100/hour")),
            (NOW - NOW % 3_600_000_000 + 7_200_000_000 - NOW) / 1_000,
            Refunded::Kept,
        ),
        // Sliding log 5/minute: the entry leaves the window a minute later.
        (
            Limit::sliding_log(rate("5/minute")).expect("log"),
            60_000,
            Refunded::Gone,
        ),
        // Calendar: at the next UTC midnight.
        (
            Limit::calendar(rate("500/day"), Calendar::utc()).expect("calendar"),
            (day_end - NOW) / 1_000,
            Refunded::Kept,
        ),
    ];
    for (i, (limit, expected_ms, refunded)) in cases.into_iter().enumerate() {
        // A subject each: a subject's key expires with its latest limit.
        let c = check(
            &ns,
            &format!("p{i}"),
            &format!("carol-{i}"),
            limit.clone(),
            1,
        );
        let b = batch(vec![c.clone()]);
        assert!(admitted(&store, &b, NOW).await);
        let stored = RedisStore::storage_key(&c.key);
        let ttl: i64 = store.pool().pttl(&stored).await.expect("PTTL");
        // With injected time, a day of grace is added to every expiry.
        let expected = i64::try_from(expected_ms).expect("small") + 24 * 3_600_000;
        // Set to the instant the state is fresh again; read a moment later.
        assert!(
            ttl <= expected && ttl > expected - 10_000,
            "{limit}: PTTL {ttl} ms, expected {expected} ms"
        );
        store.refund(&b, &at(NOW), NOW).await.expect("refund");
        let ttl: i64 = store.pool().pttl(&stored).await.expect("PTTL");
        let grace = 24 * 3_600_000;
        let (low, high) = match refunded {
            // At least a millisecond, then the grace.
            Refunded::Now => (grace - 10_000, grace + 1),
            // PTTL answers -2 for a key that does not exist.
            Refunded::Gone => (-2, -2),
            Refunded::Kept => (expected - 10_000, expected),
        };
        assert!(
            (low..=high).contains(&ttl),
            "{limit}: PTTL {ttl} ms after a refund, expected {low}..={high}"
        );
    }
}

#[tokio::test]
async fn a_denied_request_writes_nothing() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store = store(&url, 1).await;
    let ns = redis::namespace("denied_writes");
    let open = check(&ns, "open", "dave", Limit::gcra(rate("10/minute")), 1);
    let shut = check(&ns, "shut", "dave", Limit::gcra(rate("1/minute")), 2);
    let outcome = store
        .evaluate(&batch(vec![open.clone(), shut]), &at(NOW))
        .await
        .expect("evaluate");
    assert!(!outcome.allowed);
    assert_eq!(outcome.statuses[1].verdict, Verdict::Impossible);
    let exists: i64 = store
        .pool()
        .exists(RedisStore::storage_key(&open.key))
        .await
        .expect("EXISTS");
    assert_eq!(exists, 0, "a denied batch created a key");
}

#[tokio::test]
async fn a_decision_over_four_subjects_writes_only_those_it_charges() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store = store(&url, 1).await;
    let ns = redis::namespace("four_subjects");
    let charged: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|subject| check(&ns, "p", subject, Limit::gcra(rate("10/minute")), 1))
        .collect();
    // The fourth subject's one check is a shadow check whose cost never fits: it denies
    // nothing and writes nothing.
    let shadow = check(&ns, "p", "d", Limit::gcra(rate("1/minute")), 2).shadow();
    let mut checks = charged.clone();
    checks.push(shadow.clone());
    let outcome = store
        .evaluate(&batch(checks), &at(NOW))
        .await
        .expect("evaluate");
    assert!(outcome.allowed, "{outcome:?}");
    assert_eq!(outcome.statuses[3].verdict, Verdict::Impossible);
    for c in charged.iter().chain([&shadow]) {
        let exists: i64 = store
            .pool()
            .exists(RedisStore::storage_key(&c.key))
            .await
            .expect("EXISTS");
        assert_eq!(exists, i64::from(!c.shadow), "{}", c.key);
    }
}

#[tokio::test]
async fn state_of_another_algorithm_reads_as_fresh() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store = store(&url, 1).await;
    let ns = redis::namespace("algorithm_change");
    let gcra = check(&ns, "p", "erin", Limit::gcra(rate("1/hour")), 1);
    assert!(
        store
            .evaluate(&batch(vec![gcra.clone()]), &at(NOW))
            .await
            .expect("gcra")
            .allowed
    );
    assert!(
        !store
            .evaluate(&batch(vec![gcra]), &at(NOW))
            .await
            .expect("gcra")
            .allowed
    );
    // The policy now counts with a sliding window under the same key.
    let window = check(&ns, "p", "erin", Limit::sliding_window(rate("1/hour")), 1);
    let outcome = store
        .evaluate(&batch(vec![window]), &at(NOW))
        .await
        .expect("window");
    assert!(outcome.allowed, "{outcome:?}");
}

#[tokio::test]
async fn server_time_is_the_default() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let config = RedisConfig::new(url.clone());
    assert_eq!(config.time_source, TimeSource::Server);
    let store = connect(config).await;
    let ns = redis::namespace("server_time");
    let gcra = check(&ns, "burst", "frank", Limit::gcra(rate("10/minute")), 1);
    // Another subject: a subject's key expires with its latest limit, here the day's end.
    let daily = check(
        &ns,
        "daily",
        "frank-daily",
        Limit::calendar(
            rate("500/day"),
            Calendar::new("Europe/Paris").expect("zone"),
        )
        .expect("calendar"),
        1,
    );
    let b = batch(vec![gcra.clone(), daily]);
    // The caller's `now` is ignored: a client clock at the epoch changes nothing.
    let outcome = store.evaluate(&b, &at(0)).await.expect("evaluate");
    assert!(outcome.allowed, "{outcome:?}");
    // Relative to the server's time: one emission interval of backlog, and the rest of the
    // server's local day in Paris.
    assert_eq!(outcome.statuses[0].reset_after, 6_000_000);
    assert_eq!(outcome.statuses[0].remaining, 9);
    let to_midnight = outcome.statuses[1].reset_after;
    assert!(
        to_midnight > 0 && to_midnight <= 25 * 3_600_000_000,
        "{to_midnight}"
    );
    assert_eq!(outcome.statuses[1].remaining, 499);
    // On the server's clock, the key goes exactly when the bucket is full again.
    let ttl: i64 = store
        .pool()
        .pttl(RedisStore::storage_key(&gcra.key))
        .await
        .expect("PTTL");
    assert!(ttl <= 6_000 && ttl > 0, "PTTL {ttl} ms");
    let server_now = server_seconds(&store).await;
    let end = Calendar::new("Europe/Paris")
        .expect("zone")
        .day_bounds(server_now)
        .1;
    // The day the script picked is the server's, to within the second TIME was read in.
    assert!(
        end.abs_diff(server_now + to_midnight) <= 2_000_000,
        "{end} vs {}",
        server_now + to_midnight
    );
}

#[tokio::test]
async fn invalid_configuration_is_named() {
    let e = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:1").with_pool_size(0))
        .await
        .expect_err("a pool of 0");
    assert!(e.to_string().contains("pool_size is 0"), "{e}");
    let e = RedisStore::connect(RedisConfig::new("http://user:hunter2@nowhere"))
        .await
        .expect_err("a bad scheme");
    let message = e.to_string();
    assert!(message.contains("invalid Redis URL"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_temporary_error() {
    // A port nothing listens on (bound, then released): connecting fails, and may succeed
    // later, so the error is temporary.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = RedisConfig::new(format!("redis://127.0.0.1:{port}"))
        .with_connect_timeout(Duration::from_millis(500));
    let e = RedisStore::connect(config)
        .await
        .expect_err("nothing listens");
    assert!(e.is_temporary(), "{e}");
}

#[tokio::test]
async fn quitting_the_pool_fails_calls_without_hanging() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store = store(&url, 1).await;
    let _ = store.pool().quit().await;
    let ns = redis::namespace("quit");
    let b = batch(vec![check(
        &ns,
        "p",
        "gina",
        Limit::gcra(rate("1/minute")),
        1,
    )]);
    let result = tokio::time::timeout(Duration::from_secs(10), store.evaluate(&b, &at(NOW))).await;
    let result = result.expect("a call on a closed pool hung");
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_reset_forgets_one_limit_and_keeps_its_subjects_others() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store = store(&url, 1).await;
    let ns = redis::namespace("reset_one");
    let burst = check(&ns, "burst", "hana", Limit::gcra(rate("2/minute")), 1);
    let daily = check(
        &ns,
        "daily",
        "hana",
        Limit::calendar(rate("500/day"), Calendar::utc()).expect("calendar"),
        1,
    );
    let stored = RedisStore::storage_key(&burst.key);
    assert_eq!(
        stored,
        RedisStore::storage_key(&daily.key),
        "one key per subject"
    );
    let both = batch(vec![burst.clone(), daily.clone()]);
    assert!(admitted(&store, &both, NOW).await);
    assert!(admitted(&store, &both, NOW).await);
    assert!(!admitted(&store, &both, NOW).await, "burst is spent");
    let ttl_before: i64 = store.pool().pttl(&stored).await.expect("PTTL");

    store.reset(&burst.key).await.expect("reset");
    let outcome = store.peek(&both, &at(NOW)).await.expect("peek");
    assert_eq!(
        outcome.statuses[0].remaining, 1,
        "burst forgotten: {outcome:?}"
    );
    assert_eq!(
        outcome.statuses[1].remaining, 497,
        "daily kept: {outcome:?}"
    );
    // What is left expires no earlier than the whole did.
    let ttl_after: i64 = store.pool().pttl(&stored).await.expect("PTTL");
    assert!(
        ttl_after <= ttl_before && ttl_after > ttl_before - 10_000,
        "{ttl_after}"
    );

    // The last limit of a subject goes with its key.
    store.reset(&daily.key).await.expect("reset");
    let exists: i64 = store.pool().exists(&stored).await.expect("EXISTS");
    assert_eq!(exists, 0);
    // Resetting what is not there is no error.
    store.reset(&daily.key).await.expect("reset of nothing");
}

#[tokio::test]
async fn on_the_servers_clock_a_key_keeps_its_ttl_until_a_record_goes_fresh_later() {
    let Some(server) = private_server() else {
        return;
    };
    let store = connect(RedisConfig::new(server.url()).with_pool_size(1)).await;
    let ns = redis::namespace("keep_ttl");
    // A subject whose latest record is the day's: a burst charge never goes fresh later.
    let burst = check(&ns, "burst", "ivy", Limit::gcra(rate("100/minute")), 1);
    let daily = check(
        &ns,
        "daily",
        "ivy",
        Limit::calendar(rate("500/day"), Calendar::utc()).expect("calendar"),
        1,
    );
    let both = batch(vec![burst.clone(), daily]);
    // A subject of one GCRA limit: each charge goes fresh later than the one before.
    let lone = batch(vec![check(
        &ns,
        "burst",
        "jay",
        Limit::gcra(rate("100/minute")),
        1,
    )]);
    // Writes that set the TTL, and writes that keep it (SET KEEPTTL, or SETRANGE where the
    // value keeps its size).
    let writes = || {
        let info = server.command(&["INFO", "commandstats"]).expect("INFO");
        (
            command_calls(&info, "psetex"),
            command_calls(&info, "set") + command_calls(&info, "setrange"),
        )
    };
    let stored = RedisStore::storage_key(&burst.key);
    let (psetex, set) = writes();
    for _ in 0..3 {
        assert!(admitted(&store, &both, 0).await);
        assert!(admitted(&store, &lone, 0).await);
    }
    let (psetex_after, set_after) = writes();
    // The day's subject: its TTL set once, then kept; the lone limit's renewed each time.
    assert_eq!((psetex_after - psetex, set_after - set), (1 + 3, 2));
    // Kept, the TTL still reaches the end of the server's day.
    let ttl: i64 = store.pool().pttl(&stored).await.expect("PTTL");
    let server_now = server_seconds(&store).await;
    let to_midnight = Calendar::utc().day_bounds(server_now).1 - server_now;
    let to_midnight = i64::try_from(to_midnight / 1_000).expect("small");
    assert!(
        ttl > to_midnight - 60_000 && ttl <= to_midnight + 1_000,
        "PTTL {ttl} ms, {to_midnight} ms to midnight"
    );
    // The records are the ones charged: three of each.
    let outcome = store.peek(&both, &at(0)).await.expect("peek");
    assert_eq!(outcome.statuses[0].remaining, 96, "{outcome:?}");
    assert_eq!(outcome.statuses[1].remaining, 496, "{outcome:?}");
}
