//! API key verification (`Limiter::verify_key`) on each backend, cached and uncached.
//!
//! - `verify/<backend>/cached`: a key whose lookup the `CachedKeyStore` in front of the backend
//!   holds (the limiter's manual clock stands still, so the entry stays within its bound): the
//!   checksum, a SHA-256 and a moka lookup; no store I/O.
//! - `verify/<backend>/uncached`: the same key through the bare key store: the checksum, a
//!   SHA-256 and one lookup by hash (memory: a map under a read lock; SQLite: a job of the
//!   worker thread, a `SELECT` by primary key; Redis: `GET` of the index, then of the record).
//! - `verify/malformed`: a key with a bad checksum: refused from its text, no cache, no store.
//!   The run checks, and prints, that a flood of them made no key-store call.
//!
//! Backends: memory; SQLite on a file in a temporary directory (WAL); a private `redis-server`
//! (skipped, with a banner, when it cannot be started).
//!
//! Run: `cargo bench -p limiter-benches --bench keys -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::Criterion;
use limiter_core::api_key::{KeyAdmin, KeyFormat, KeyStore, NewKey};
use limiter_core::{Limiter, ManualClock, Micros, PolicySet};
use limiter_memory::{CachedKeyStore, KeyCacheConfig, MemoryKeyStore, MemoryStore};
use limiter_redis::{RedisConfig, RedisKeyStore, RedisStore};
use limiter_sqlite::{SqliteConfig, SqliteKeyStore, SqliteStore};
use limiter_testkit::CountingKeyStore;
use limiter_testkit::redis::RedisServer;

/// 2026-11-26T00:00:00Z.
const NOW: Micros = 1_795_651_200_000_000;

fn format() -> KeyFormat {
    KeyFormat::new("acme_live").expect("prefix")
}

/// A limiter verifying keys of `store`, on a clock that stands still.
fn limiter(store: impl KeyStore + 'static) -> Limiter {
    Limiter::builder(PolicySet::default(), MemoryStore::default())
        .clock(ManualClock::new(NOW))
        .keys(format(), store)
        .build()
}

/// Creates a key in `store`; its secret.
async fn create(store: Arc<dyn KeyStore>) -> String {
    let admin = KeyAdmin::new(format(), store);
    let issued = admin
        .create(NewKey::new("acme", "bench"), NOW)
        .await
        .expect("create");
    issued.secret.expose().to_owned()
}

fn bench_backend(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    store: Arc<dyn KeyStore>,
) {
    let secret = rt.block_on(create(store.clone()));
    let cached = limiter(
        CachedKeyStore::new(store.clone(), KeyCacheConfig::new()).with_clock(ManualClock::new(NOW)),
    );
    let uncached = limiter(store);
    let mut group = c.benchmark_group("verify");
    for (mode, limiter) in [("cached", cached), ("uncached", uncached)] {
        // The first verification touches the key (its last use); the measured ones do not.
        rt.block_on(limiter.verify_key(&secret))
            .expect("verify")
            .expect("valid");
        group.bench_function(format!("{name}/{mode}"), |b| {
            b.to_async(rt).iter(|| async {
                let verified = limiter.verify_key(black_box(&secret)).await;
                black_box(verified.expect("verify").expect("valid"));
            });
        });
    }
    group.finish();
}

fn bench_malformed(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let store = Arc::new(CountingKeyStore::new(MemoryKeyStore::new()));
    let limiter = limiter(store.clone());
    let mut garbage = rt.block_on(create(store.clone()));
    let last = garbage.pop().expect("non-empty");
    garbage.push(if last == 'a' { 'b' } else { 'a' });
    let before = store.calls();
    let mut group = c.benchmark_group("verify");
    group.bench_function("malformed", |b| {
        b.to_async(rt).iter(|| async {
            let verified = limiter.verify_key(black_box(&garbage)).await;
            black_box(verified.expect("verify").expect_err("malformed"));
        });
    });
    group.finish();
    let calls = store.calls() - before;
    eprintln!("garbage-key flood: {calls} key-store calls");
    assert_eq!(calls, 0, "a malformed key reached the key store");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut c = Criterion::default().configure_from_args();

    bench_malformed(&mut c, &rt);
    bench_backend(&mut c, &rt, "memory", Arc::new(MemoryKeyStore::new()));

    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = rt
        .block_on(SqliteStore::open(
            dir.path().join("keys.db"),
            SqliteConfig::new(),
        ))
        .expect("open");
    let sqlite = Arc::new(SqliteKeyStore::new(Arc::new(sqlite)));
    bench_backend(&mut c, &rt, "sqlite", sqlite);

    match RedisServer::start() {
        Ok(server) => {
            let store = rt
                .block_on(RedisStore::connect(RedisConfig::new(server.url())))
                .expect("connect");
            let keys = Arc::new(RedisKeyStore::new(store, "bench"));
            bench_backend(&mut c, &rt, "redis", keys);
        }
        Err(e) => eprintln!("\n==== SKIPPED the Redis runs: cannot start redis-server: {e} ====\n"),
    }
    c.final_summary();
}
