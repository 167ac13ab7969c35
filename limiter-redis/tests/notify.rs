//! The Redis inbox: its conformance suite on a standalone server and on a cluster.
//!
//! Without a server (and without `LIMITER_REQUIRE_REDIS=1`) every test is skipped with a banner.

use limiter_redis::{RedisConfig, RedisInbox, RedisStore, TimeSource};
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

async fn inbox_on(url: Option<String>) -> Option<(RedisInbox, RedisStore)> {
    let store = store(&url?).await;
    let inbox = RedisInbox::new(&store, &redis::namespace("inbox")).expect("namespace");
    Some((inbox, store))
}

mod standalone {
    use limiter_redis::{RedisInbox, RedisStore};

    async fn new_inbox() -> Option<(RedisInbox, RedisStore)> {
        super::inbox_on(limiter_testkit::redis::standalone_url()).await
    }

    mod inbox {
        limiter_testkit::inbox_suite!(super::new_inbox);
    }
}

mod cluster {
    use limiter_redis::{RedisInbox, RedisStore};

    async fn new_inbox() -> Option<(RedisInbox, RedisStore)> {
        super::inbox_on(limiter_testkit::redis::cluster_url()).await
    }

    mod inbox {
        limiter_testkit::inbox_suite!(super::new_inbox);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_that_would_break_the_keys_are_refused() {
    let Some(url) = redis::standalone_url() else {
        return;
    };
    let store = store(&url).await;
    for bad in ["", "a:b", "a{b", "a}b"] {
        let err = RedisInbox::new(&store, bad).expect_err(bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}
