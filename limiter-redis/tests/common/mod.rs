//! Helpers shared by the test files.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use limiter_core::{Batch, Check, EvalOptions, Key, Limit, Micros, Rate, SubjectKind};
use limiter_redis::{RedisConfig, RedisStore, TimeSource};

/// 2026-11-26T10:00:00Z.
pub const NOW: Micros = 1_795_651_200_000_000 + 10 * 3_600_000_000;

/// A store on `url` with injected time and `pool_size` connections.
pub async fn store(url: &str, pool_size: usize) -> RedisStore {
    connect(
        RedisConfig::new(url)
            .with_pool_size(pool_size)
            .with_time_source(TimeSource::Injected),
    )
    .await
}

/// Connects or fails the test, naming the server.
pub async fn connect(config: RedisConfig) -> RedisStore {
    let url = config.url.clone();
    RedisStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server {url}: {e}"))
}

pub fn rate(s: &str) -> Rate {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

pub fn key(namespace: &str, policy: &str, subject: &str) -> Key {
    Key::new(namespace, policy, SubjectKind::User, subject)
}

pub fn check(namespace: &str, policy: &str, subject: &str, limit: Limit, cost: u64) -> Check {
    Check::new(
        policy,
        key(namespace, policy, subject),
        Arc::new(limit),
        cost,
    )
}

pub fn batch(checks: Vec<Check>) -> Batch {
    Batch::new(checks).unwrap_or_else(|e| panic!("{e}"))
}

/// A batch of one GCRA check of 10/minute on the subject `u` of policy `p` in `namespace`.
pub fn ten_per_minute(namespace: &str) -> Batch {
    batch(vec![check(
        namespace,
        "p",
        "u",
        Limit::gcra(rate("10/minute")),
        1,
    )])
}

/// Whether `store` admits `batch` at `now`; panics, naming the store, if it fails.
pub async fn admitted(store: &RedisStore, batch: &Batch, now: Micros) -> bool {
    use limiter_core::Store;
    store
        .evaluate(batch, &at(now))
        .await
        .unwrap_or_else(|e| panic!("{store}: {e}"))
        .allowed
}

pub fn at(now: Micros) -> EvalOptions {
    EvalOptions::at(now)
}

/// The value of `field` in the `INFO` section text (`calls` of `cmdstat_evalsha`, ...).
pub fn command_calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits (polling) until `condition` holds, or fails naming `what`.
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The server's clock, in whole seconds as microseconds (`TIME`, through the store's pool).
pub async fn server_seconds(store: &RedisStore) -> Micros {
    use limiter_redis::fred::interfaces::LuaInterface;
    let (seconds, _): (String, String) = store
        .pool()
        .eval("return redis.call('TIME')", (), ())
        .await
        .expect("TIME");
    seconds.parse::<u64>().expect("seconds") * 1_000_000
}
