//! The event log suite on the in-memory log.

use limiter_core::Calendar;
use limiter_memory::MemoryEventLog;

async fn new_log(calendar: Calendar) -> Option<(MemoryEventLog, ())> {
    Some((MemoryEventLog::new(calendar), ()))
}

limiter_testkit::event_log_suite!(new_log);

#[tokio::test]
async fn at_capacity_the_oldest_events_go_and_the_aggregates_stay() {
    use limiter_core::event::{EventKind, EventLog, EventQuery, LimitEvent};
    use limiter_testkit::conformance::events::all_pages;
    use limiter_testkit::fixtures::BASE_NOW;

    let log = MemoryEventLog::with_capacity(Calendar::utc(), 3);
    let events: Vec<LimitEvent> = (0..5)
        .map(|i| {
            let mut e = LimitEvent::new(BASE_NOW + i, EventKind::Denied);
            e.tenant = Some(if i == 1 { "other" } else { "t" }.into());
            e.policy = Some("plan_burst".into());
            e
        })
        .collect();
    log.append(&events).await.expect("append");
    assert_eq!(log.len(), 3);
    let kept: Vec<u64> = all_pages(&log, EventQuery::tenant("t").limit(2))
        .await
        .iter()
        .map(|e| e.at - BASE_NOW)
        .collect();
    assert_eq!(kept, [4, 3, 2]);
    assert!(
        all_pages(&log, EventQuery::tenant("other"))
            .await
            .is_empty()
    );
    let top = log.top_hit_tenants(BASE_NOW, 5).await.expect("top");
    let counts: Vec<(&str, u64)> = top.iter().map(|t| (t.tenant.as_str(), t.count)).collect();
    assert_eq!(counts, [("t", 4), ("other", 1)]);
}
