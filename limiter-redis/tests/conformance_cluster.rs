//! The core's conformance suite and differential test, on a three-node Redis Cluster.

use std::sync::Arc;

use limiter_core::Store;
use limiter_core::testkit::ModelStore;
use limiter_redis::{RedisConfig, RedisStore, TimeSource, harness};

/// A store on the shared test cluster, with injected time (the suite drives the clock).
/// Without a server (and without `LIMITER_REQUIRE_REDIS=1`) the harness prints a loud skip
/// banner and the contract runs against the reference model, so that it still passes.
async fn new_store() -> Arc<dyn Store> {
    let Some(url) = harness::cluster_url() else {
        return Arc::new(ModelStore::new());
    };
    let config = RedisConfig::new(url)
        .with_pool_size(4)
        .with_time_source(TimeSource::Injected);
    let store = RedisStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test cluster: {e}"));
    Arc::new(store)
}

limiter_core::conformance_suite!(new_store);
