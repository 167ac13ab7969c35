//! The event log suite on a standalone Redis server and on a Redis Cluster (the harness's
//! private servers), and four limiters sharing one server.
//!
//! Without a server (and without `LIMITER_REQUIRE_REDIS=1`) the harness prints a loud skip
//! banner and every test is skipped.

use std::sync::Arc;

use limiter_core::event::EventLog;
use limiter_core::{Calendar, Store};
use limiter_redis::{RedisConfig, RedisEventLog, RedisStore, TimeSource};
use limiter_testkit::conformance::events::fleet_records_one_crossing_per_window;

/// A store on `url` with injected time.
async fn store(url: &str) -> RedisStore {
    let config = RedisConfig::new(url)
        .with_pool_size(4)
        .with_time_source(TimeSource::Injected);
    RedisStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"))
}

/// A log under a prefix no other test uses, on the store's pool.
async fn log_on(url: Option<String>, calendar: Calendar) -> Option<(RedisEventLog, RedisStore)> {
    let store = store(&url?).await;
    let prefix = limiter_testkit::redis::namespace("events");
    let log = RedisEventLog::new(&store, &prefix, calendar).expect("valid prefix");
    Some((log, store))
}

mod standalone {
    use limiter_core::Calendar;

    async fn new_log(
        calendar: Calendar,
    ) -> Option<(limiter_redis::RedisEventLog, limiter_redis::RedisStore)> {
        super::log_on(limiter_testkit::redis::standalone_url(), calendar).await
    }

    limiter_testkit::event_log_suite!(new_log);
}

mod cluster {
    use limiter_core::Calendar;

    async fn new_log(
        calendar: Calendar,
    ) -> Option<(limiter_redis::RedisEventLog, limiter_redis::RedisStore)> {
        super::log_on(limiter_testkit::redis::cluster_url(), calendar).await
    }

    limiter_testkit::event_log_suite!(new_log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_limiters_on_one_server_record_one_crossing_per_window() {
    let Some(url) = limiter_testkit::redis::standalone_url() else {
        return;
    };
    let prefix = limiter_testkit::redis::namespace("fleet");
    let mut members: Vec<(Arc<dyn Store>, Arc<dyn EventLog>)> = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..4 {
        let store = store(&url).await;
        let log = RedisEventLog::new(&store, &prefix, Calendar::utc()).expect("valid prefix");
        members.push((Arc::new(store), Arc::new(log)));
    }
    let query_store = store(&url).await;
    let query = RedisEventLog::new(&query_store, &prefix, Calendar::utc()).expect("valid prefix");
    keep.push(query_store);
    fleet_records_one_crossing_per_window(members, &query).await;
}

#[tokio::test]
async fn trimming_the_stream_keeps_the_daily_aggregates() {
    let Some((log, _store)) =
        log_on(limiter_testkit::redis::standalone_url(), Calendar::utc()).await
    else {
        return;
    };
    let log = log.with_max_len(10);
    let trace = limiter_testkit::conformance::events::recorded_trace().await;
    for chunk in trace.chunks(5) {
        log.append(chunk).await.expect("append");
    }
    let reference = limiter_testkit::ReferenceEventLog::new();
    reference.append(&trace).await.expect("append");
    let base = limiter_testkit::fixtures::BASE_NOW;
    let day = limiter_testkit::conformance::events::DAY;
    for at in [base, base + day] {
        assert_eq!(
            log.top_hit_tenants(at, 10).await.expect("top"),
            reference.top_hit_tenants(at, 10).await.expect("top")
        );
        assert_eq!(
            log.near_quota(at, 80).await.expect("near"),
            reference.near_quota(at, 80).await.expect("near")
        );
    }
    let kept = log.hits(0, u64::MAX).await.expect("hits");
    let all = reference.hits(0, u64::MAX).await.expect("hits");
    let total = |h: &[limiter_core::event::TenantHits]| h.iter().map(|t| t.total).sum::<u64>();
    assert!(
        total(&kept) < total(&all),
        "the stream was trimmed: {kept:?}"
    );
}
