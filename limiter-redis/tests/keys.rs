//! The Redis key store: the key conformance suite on a standalone server and on a cluster, and
//! the report's case across two limiters sharing the server.
//!
//! Without a server (and without `LIMITER_REQUIRE_REDIS=1`) every test is skipped with a banner.

use std::sync::Arc;

use limiter_core::api_key::{KeyAdmin, KeyFormat, NewKey};
use limiter_core::{Limiter, ManualClock, PolicySet};
use limiter_memory::{CachedKeyStore, KeyCacheConfig};
use limiter_redis::{RedisConfig, RedisKeyStore, RedisStore, TimeSource};
use limiter_testkit::CountingStore;
use limiter_testkit::scenarios::bypass_key_case;

const NOW: u64 = 1_790_000_000_000_000;

async fn connect(url: &str) -> RedisStore {
    let config = RedisConfig::new(url)
        .with_pool_size(4)
        .with_time_source(TimeSource::Injected);
    RedisStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server {url}: {e}"))
}

async fn key_store(url: Option<String>) -> Option<RedisKeyStore> {
    let store = connect(&url?).await;
    let namespace = limiter_testkit::redis::namespace("keys");
    Some(RedisKeyStore::new(store, namespace))
}

mod standalone {
    async fn new_store() -> Option<limiter_redis::RedisKeyStore> {
        super::key_store(limiter_testkit::redis::standalone_url()).await
    }
    limiter_testkit::key_store_suite!(optional new_store);
}

mod cluster {
    async fn new_store() -> Option<limiter_redis::RedisKeyStore> {
        super::key_store(limiter_testkit::redis::cluster_url()).await
    }
    limiter_testkit::key_store_suite!(optional new_store);
}

fn format() -> KeyFormat {
    KeyFormat::new("acme_live").expect("prefix")
}

/// One process's view of the server: its own connections, a key cache of the default bound,
/// and a limiter whose limit-store calls are counted.
struct Process {
    limiter: Limiter,
    limits: Arc<CountingStore<RedisStore>>,
    keys: RedisKeyStore,
}

async fn process(url: &str, namespace: &str, clock: &ManualClock) -> Process {
    let store = connect(url).await;
    let mut config = limiter_core::Config::default();
    config.namespace = namespace.to_owned();
    let policies = PolicySet::from_config(&config).expect("policies");
    let keys = RedisKeyStore::new(store.clone(), namespace);
    let limits = Arc::new(CountingStore::new(store));
    let cached = CachedKeyStore::new(keys.clone(), KeyCacheConfig::new()).with_clock(clock.clone());
    let limiter = Limiter::builder(policies, limits.clone())
        .clock(clock.clone())
        .keys(format(), cached)
        .build();
    Process {
        limiter,
        limits,
        keys,
    }
}

async fn the_reports_case(url: Option<String>) {
    let Some(url) = url else {
        return;
    };
    let namespace = limiter_testkit::redis::namespace("reports_case");
    let clock = ManualClock::new(NOW);
    let a = process(&url, &namespace, &clock).await;
    let b = process(&url, &namespace, &clock).await;
    let admin = KeyAdmin::new(format(), Arc::new(a.keys.clone()));
    let limits = Arc::clone(&a.limits);
    bypass_key_case(&a.limiter, || limits.calls(), &b.limiter, &admin, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reports_case_on_a_standalone_server() {
    the_reports_case(limiter_testkit::redis::standalone_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reports_case_on_a_cluster() {
    the_reports_case(limiter_testkit::redis::cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_share_their_tenants_hash_tag_and_hold_no_secret() {
    let Some(url) = limiter_testkit::redis::standalone_url() else {
        return;
    };
    let store = connect(&url).await;
    let namespace = limiter_testkit::redis::namespace("layout");
    let keys = RedisKeyStore::new(store.clone(), namespace.clone());
    let admin = KeyAdmin::new(format(), Arc::new(keys));
    let issued = admin
        .create(NewKey::new("acme", "ci"), NOW)
        .await
        .expect("create");
    let address = limiter_testkit::redis::addresses(&url).remove(0);
    let pattern = format!("{namespace}:*");
    let listed = limiter_testkit::redis::command(&address, &["KEYS", &pattern]).expect("KEYS");
    let record_key = format!("{namespace}:apikey:{{t=acme}}:rec:{}", issued.record.id);
    assert!(listed.contains(&record_key), "{listed}");
    assert!(
        listed.contains(&format!("{namespace}:apikey:{{t=acme}}:ids")),
        "{listed}"
    );
    let hash_key = format!(
        "{namespace}:apikey_hash:{{k={}}}",
        issued.record.hash.to_hex()
    );
    assert!(listed.contains(&hash_key), "{listed}");
    let json = limiter_testkit::redis::command(&address, &["GET", &record_key]).expect("GET");
    let random = &issued.secret.expose()["acme_live_".len() + 4..];
    assert!(
        !json.contains(random),
        "the stored record holds the secret: {json}"
    );
}
