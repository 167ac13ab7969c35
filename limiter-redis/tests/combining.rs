//! Consumes that wait for a call go together in one script call (`RedisConfig::max_combined`):
//! each is still decided on its own, atomically, as it would be alone. Each test runs on a server
//! of its own, whose command counts are this test's alone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use limiter_core::{Batch, EvalOptions, Limit, Mode, Store};
use limiter_redis::{RedisConfig, RedisStore, TimeSource};
use limiter_testkit::redis::{self, RedisServer};

const TASKS: usize = 64;
const PER_TASK: usize = 8;

fn own_server() -> Option<RedisServer> {
    match RedisServer::start() {
        Ok(server) => Some(server),
        Err(e) => redis::unavailable("a Redis server", &e.to_string()),
    }
}

/// A store on `server` with injected time, one call of consumes in flight (so that the others
/// wait and go together), and at most `most` per call.
async fn combining_store(server: &RedisServer, most: usize) -> RedisStore {
    connect(
        RedisConfig::new(server.url())
            .with_pool_size(4)
            .with_time_source(TimeSource::Injected)
            .with_max_calls_in_flight(1)
            .with_max_combined(most),
    )
    .await
}

fn evalsha_calls(server: &RedisServer) -> u64 {
    let info = redis::command(
        &format!("127.0.0.1:{}", server.port()),
        &["INFO", "commandstats"],
    )
    .expect("INFO commandstats");
    command_calls(&info, "evalsha")
}

/// What the limit of `batch`'s check `i` has left at `NOW`: a peek of that check alone, at a
/// cost of 0 (a peek reports what would be left after its own cost).
async fn remaining(store: &RedisStore, batch: &Batch, i: usize) -> u64 {
    let mut check = batch.checks()[i].clone();
    check.cost = 0;
    let peek = EvalOptions::at(NOW).with_mode(Mode::Peek);
    store
        .evaluate(&common::batch(vec![check]), &peek)
        .await
        .expect("peek")
        .statuses[0]
        .remaining
}

/// 64 tasks at one instant, each with a user of its own under one tenant: the tenant's limit
/// is the tighter, so exactly it is admitted, and every user is charged exactly what its task
/// was admitted (a denied consume charges none of its limits, even when it shares its call with
/// admitted ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumes_that_go_together_admit_exactly_what_they_would_alone() {
    let Some(server) = own_server() else {
        return;
    };
    let store = Arc::new(combining_store(&server, 16).await);
    const TENANT_LIMIT: u64 = 100;
    const USER_LIMIT: u64 = 1000;
    let batches: Vec<Arc<Batch>> = (0..TASKS)
        .map(|t| {
            Arc::new(batch(vec![
                check(
                    "ns",
                    "tenant",
                    "acme",
                    Limit::sliding_window(rate(&format!("{TENANT_LIMIT}/hour"))),
                    1,
                ),
                check(
                    "ns",
                    "user",
                    &format!("user-{t}"),
                    Limit::gcra(rate(&format!("{USER_LIMIT}/hour"))),
                    1,
                ),
            ]))
        })
        .collect();
    let before = evalsha_calls(&server);
    let mut tasks = tokio::task::JoinSet::new();
    for b in &batches {
        let (store, b) = (Arc::clone(&store), Arc::clone(b));
        tasks.spawn(async move {
            let mut admitted = 0;
            for _ in 0..PER_TASK {
                let outcome = store.evaluate(&b, &at(NOW)).await.expect("evaluate");
                admitted += u64::from(outcome.allowed);
            }
            admitted
        });
    }
    let admitted: Vec<u64> = tasks.join_all().await;
    let calls = evalsha_calls(&server) - before;
    assert_eq!(admitted.iter().sum::<u64>(), TENANT_LIMIT);
    let decisions = (TASKS * PER_TASK) as u64;
    assert!(
        calls < decisions,
        "{calls} calls for {decisions} decisions: none went together"
    );
    // The order of the tasks' results is lost in the join: compare the multisets.
    let mut charged = Vec::new();
    for b in &batches {
        charged.push(USER_LIMIT - remaining(&store, b, 1).await);
    }
    let (mut charged, mut admitted) = (charged, admitted);
    charged.sort_unstable();
    admitted.sort_unstable();
    assert_eq!(
        charged, admitted,
        "each user charged what its task was admitted"
    );
}

/// A consume whose subject holds a corrupt value is not decided in the call it went in: it goes
/// alone and fails, naming the key; the consumes beside it are decided as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_value_fails_its_own_consume_only() {
    let Some(server) = own_server() else {
        return;
    };
    let store = Arc::new(combining_store(&server, 32).await);
    let limit = Limit::gcra(rate("20/hour"));
    let victim = Arc::new(batch(vec![check("ns", "p", "victim", limit.clone(), 1)]));
    let healthy = Arc::new(batch(vec![check("ns", "p", "healthy", limit, 1)]));
    let key = RedisStore::storage_key(&victim.checks()[0].key);
    redis::command(
        &format!("127.0.0.1:{}", server.port()),
        &["SET", &key, "not a state", "PX", "600000"],
    )
    .expect("SET");
    let before = evalsha_calls(&server);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        let (b, is_victim) = if t % 2 == 0 {
            (Arc::clone(&victim), true)
        } else {
            (Arc::clone(&healthy), false)
        };
        tasks.spawn(async move { (is_victim, store.evaluate(&b, &at(NOW)).await) });
    }
    let mut admitted = 0;
    for (is_victim, result) in tasks.join_all().await {
        if is_victim {
            let error = result.expect_err("a corrupt state fails its consume");
            assert!(
                error.to_string().contains(&key) && !error.is_temporary(),
                "{error}"
            );
        } else {
            admitted += u64::from(result.expect("the healthy subject is decided").allowed);
        }
    }
    assert_eq!(admitted, 20);
    // Fewer calls than consumes, though each victim went alone after its call: they went
    // together, and the victims were sent alone from there.
    let calls = evalsha_calls(&server) - before;
    assert!(calls < TASKS as u64, "{calls} calls for {TASKS} consumes");
}

/// Consumes whose callers stop waiting (their timeout passes while the call ahead of them is
/// out) are never sent; the call ahead is decided, and the store goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumes_whose_callers_gave_up_are_not_sent() {
    let Some(server) = own_server() else {
        return;
    };
    let store = Arc::new(combining_store(&server, 32).await);
    let b = Arc::new(batch(vec![check(
        "ns",
        "p",
        "patient",
        Limit::gcra(rate("1000/hour")),
        1,
    )]));
    let address = format!("127.0.0.1:{}", server.port());
    let sleeper = std::thread::spawn(move || {
        let _ = redis::command(&address, &["DEBUG", "SLEEP", "1"]);
    });
    // Orchestration only: let the server fall asleep, then the first consume take the one
    // call in flight, before the others come.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ahead = {
        let (store, b) = (Arc::clone(&store), Arc::clone(&b));
        tokio::spawn(async move { store.evaluate(&b, &at(NOW)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (store, b) = (Arc::clone(&store), Arc::clone(&b));
        tasks.spawn(async move {
            let budget = EvalOptions::at(NOW).with_timeout(Duration::from_millis(200));
            store.evaluate(&b, &budget).await
        });
    }
    for result in tasks.join_all().await {
        let error = result.expect_err("the server sleeps past every budget");
        assert!(error.is_temporary(), "{error}");
    }
    let first = ahead
        .await
        .expect("task")
        .expect("the call ahead waits out the sleep");
    assert!(first.allowed);
    sleeper.join().expect("sleeper");
    // The store still decides (the call's slot was freed), and only the call ahead and this
    // one were charged.
    assert!(admitted(&store, &b, NOW).await);
    assert_eq!(1000 - remaining(&store, &b, 0).await, 2);
}

/// Settings out of range are refused before any connection, naming the setting, the value and
/// what is expected.
#[tokio::test]
async fn combining_settings_out_of_range_are_refused() {
    // No server is needed: the settings are checked first.
    let config = RedisConfig::new("redis://127.0.0.1:1");
    for (config, expected) in [
        (
            config.clone().with_max_combined(0),
            "max_combined is 0; expected 1 (each consume alone) to 1024",
        ),
        (
            config.clone().with_max_combined(1025),
            "max_combined is 1025; expected 1 (each consume alone) to 1024",
        ),
        (
            config.clone().with_max_calls_in_flight(0),
            "max_calls_in_flight is 0; expected at least 1",
        ),
    ] {
        let error = RedisStore::connect(config)
            .await
            .map(drop)
            .expect_err("refused");
        assert!(error.to_string().contains(expected), "{error}");
        assert!(!error.is_temporary(), "{error}");
    }
}

/// On the server's clock, a host whose clock is days off places calendar days around the wrong
/// time. Consumes that went together are then not decided in their call: each goes alone, whose
/// reply names the server's time, and the client places the days again. Exactly the day's
/// limit is admitted, and no consume fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumes_of_a_skewed_host_go_alone_and_are_decided() {
    use limiter_core::{Calendar, ManualClock};
    let Some(server) = own_server() else {
        return;
    };
    let probe = connect(RedisConfig::new(server.url())).await;
    let client_now = server_seconds(&probe).await - 3 * 24 * 3_600_000_000;
    let store = Arc::new(
        connect(
            RedisConfig::new(server.url())
                .with_pool_size(4)
                .with_max_calls_in_flight(1)
                .with_client_clock(ManualClock::new(client_now)),
        )
        .await,
    );
    let b = Arc::new(batch(vec![check(
        "ns",
        "daily",
        "skewed",
        Limit::calendar(rate("10/day"), Calendar::utc()).expect("calendar"),
        1,
    )]));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (store, b) = (Arc::clone(&store), Arc::clone(&b));
        tasks.spawn(async move { store.evaluate(&b, &at(client_now)).await });
    }
    let mut admitted = 0;
    for result in tasks.join_all().await {
        admitted += u64::from(result.expect("decided on the server's day").allowed);
    }
    assert_eq!(admitted, 10);
    // Some went together: a call of several reads its keys with MGET, where a lone call of one
    // subject reads it with GET.
    let info = redis::command(
        &format!("127.0.0.1:{}", server.port()),
        &["INFO", "commandstats"],
    )
    .expect("INFO commandstats");
    assert!(command_calls(&info, "mget") >= 1, "{info}");
}
