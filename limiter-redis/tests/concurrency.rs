//! Many tasks over several connections hammer one key at a frozen instant: exactly the limit is
//! admitted. A DRF-style throttle (read the history, decide, write it back) on the same server
//! under the same load admits more.

mod common;

use std::sync::Arc;

use common::*;
use fred::clients::Pool;
use fred::interfaces::KeysInterface;
use fred::types::{Builder, config::Config};
use limiter_core::{Limit, Micros, Store};
use limiter_testkit::fixtures::every_algorithm;
use limiter_testkit::redis;

const TASKS: u64 = 64;
const REQUESTS_PER_TASK: u64 = 8;
const LIMIT: u64 = 100;
const POOL: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_over_eight_connections_admit_exactly_the_limit() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(store(&url, POOL).await);
    let ns = redis::namespace("hammer");
    for (i, limit) in every_algorithm(LIMIT).into_iter().enumerate() {
        let b = Arc::new(batch(vec![check(
            &ns,
            &format!("p{i}"),
            "hot",
            limit.clone(),
            1,
        )]));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..TASKS {
            let (store, b) = (Arc::clone(&store), Arc::clone(&b));
            tasks.spawn(async move {
                let mut admitted = 0u64;
                for _ in 0..REQUESTS_PER_TASK {
                    let outcome = store.evaluate(&b, &at(NOW)).await.expect("evaluate");
                    admitted += u64::from(outcome.allowed);
                }
                admitted
            });
        }
        let admitted: u64 = tasks.join_all().await.into_iter().sum();
        assert_eq!(
            admitted,
            LIMIT,
            "{limit}: {} requests at one instant",
            TASKS * REQUESTS_PER_TASK
        );
    }
}

/// DRF's `SimpleRateThrottle`: read the request history, drop what is older than the period,
/// deny when it holds `limit` entries, else append now and write it back. Two round trips,
/// not atomic.
async fn drf_allow(pool: &Pool, key: &str, limit: u64, period: Micros, now: Micros) -> bool {
    let raw: Option<String> = pool.get(key).await.expect("GET");
    let mut history: Vec<Micros> = raw
        .unwrap_or_default()
        .split(',')
        .filter_map(|t| t.parse().ok())
        .filter(|&t| t + period > now)
        .collect();
    if u64::try_from(history.len()).unwrap_or(u64::MAX) >= limit {
        return false;
    }
    history.insert(0, now);
    let value: Vec<String> = history.iter().map(ToString::to_string).collect();
    let _: () = pool
        .set(key, value.join(","), None, None, false)
        .await
        .expect("SET");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drf_style_throttle_over_admits_where_the_store_does_not() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(store(&url, POOL).await);
    let pool = Builder::from_config(Config::from_url(&url).expect("url"))
        .build_pool(POOL)
        .expect("pool");
    fred::interfaces::ClientLike::init(&pool)
        .await
        .expect("connect");
    let ns = redis::namespace("drf");
    let drf_key = format!("{ns}:drf");
    let limit = Limit::sliding_log(rate(&format!("{LIMIT}/minute"))).expect("log");
    let b = Arc::new(batch(vec![check(&ns, "ours", "hot", limit, 1)]));

    let mut drf_tasks = tokio::task::JoinSet::new();
    let mut our_tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (pool, key) = (pool.clone(), drf_key.clone());
        drf_tasks.spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..REQUESTS_PER_TASK {
                admitted += u64::from(drf_allow(&pool, &key, LIMIT, 60_000_000, NOW).await);
            }
            admitted
        });
        let (store, b) = (Arc::clone(&store), Arc::clone(&b));
        our_tasks.spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..REQUESTS_PER_TASK {
                admitted += u64::from(
                    store
                        .evaluate(&b, &at(NOW))
                        .await
                        .expect("evaluate")
                        .allowed,
                );
            }
            admitted
        });
    }
    let drf: u64 = drf_tasks.join_all().await.into_iter().sum();
    let ours: u64 = our_tasks.join_all().await.into_iter().sum();
    eprintln!(
        "limit {LIMIT}, {} requests from {TASKS} tasks over {POOL} connections: DRF-style admitted \
         {drf} (over by {}), RedisStore admitted {ours} (over by {})",
        TASKS * REQUESTS_PER_TASK,
        drf.saturating_sub(LIMIT),
        ours.saturating_sub(LIMIT)
    );
    assert_eq!(ours, LIMIT);
    // The baseline is expected to over-admit; it never under-admits with the clock frozen.
    assert!(drf >= LIMIT, "the DRF-style baseline admitted {drf}");
}
