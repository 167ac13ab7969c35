//! The core's conformance suite and differential test, on a standalone Redis server and on a
//! three-node Redis Cluster.
//!
//! Without a server (and without `LIMITER_REQUIRE_REDIS=1`) the harness prints a loud skip
//! banner and every contract is skipped.

use std::sync::Arc;

use limiter_core::Store;
use limiter_redis::{RedisConfig, RedisStore, TimeSource};

/// A store on the harness's server at `url`, with injected time (the suite drives the clock).
async fn connect(url: Option<String>) -> Option<Arc<dyn Store>> {
    let config = RedisConfig::new(url?)
        .with_pool_size(4)
        .with_time_source(TimeSource::Injected);
    let store = RedisStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
    Some(Arc::new(store))
}

mod standalone {
    async fn new_store() -> Option<std::sync::Arc<dyn limiter_core::Store>> {
        super::connect(limiter_testkit::redis::standalone_url()).await
    }

    limiter_testkit::conformance_suite!(optional new_store);
}

mod cluster {
    async fn new_store() -> Option<std::sync::Arc<dyn limiter_core::Store>> {
        super::connect(limiter_testkit::redis::cluster_url()).await
    }

    limiter_testkit::conformance_suite!(optional new_store);
}
