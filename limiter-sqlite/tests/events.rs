//! The event log suite on SQLite files, and four limiters sharing one file.

use std::sync::Arc;
use std::time::Duration;

use limiter_core::event::EventLog;
use limiter_core::{Calendar, Store};
use limiter_sqlite::{SqliteConfig, SqliteEventLog, SqliteStore};
use limiter_testkit::conformance::events::fleet_records_one_crossing_per_window;

const BUSY: Duration = Duration::from_secs(10);

async fn new_log(calendar: Calendar) -> Option<(SqliteEventLog, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SqliteEventLog::open(dir.path().join("events.db"), calendar, BUSY)
        .await
        .expect("open");
    Some((log, dir))
}

limiter_testkit::event_log_suite!(new_log);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_limiters_on_one_file_record_one_crossing_per_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.db");
    let config = SqliteConfig::default().with_sweep_interval(None);
    let mut members: Vec<(Arc<dyn Store>, Arc<dyn EventLog>)> = Vec::new();
    for _ in 0..4 {
        let store = SqliteStore::open(&path, config.clone())
            .await
            .expect("open");
        let log = SqliteEventLog::open(&path, Calendar::utc(), BUSY)
            .await
            .expect("open");
        members.push((Arc::new(store), Arc::new(log)));
    }
    let query = SqliteEventLog::open(&path, Calendar::utc(), BUSY)
        .await
        .expect("open");
    fleet_records_one_crossing_per_window(members, &query).await;
}

#[tokio::test]
async fn events_survive_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let trace = limiter_testkit::conformance::events::recorded_trace().await;
    {
        let log = SqliteEventLog::open(&path, Calendar::utc(), BUSY)
            .await
            .expect("open");
        log.append(&trace).await.expect("append");
    }
    let log = SqliteEventLog::open(&path, Calendar::utc(), BUSY)
        .await
        .expect("reopen");
    let reference = limiter_testkit::ReferenceEventLog::new();
    reference.append(&trace).await.expect("append");
    limiter_testkit::conformance::events::assert_same_answers(
        &log,
        &reference,
        &[limiter_testkit::fixtures::BASE_NOW],
    )
    .await;
}
