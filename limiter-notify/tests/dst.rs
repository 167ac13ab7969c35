//! Issue 14, "must show": on the days the clocks change, a daily quota counted in
//! America/New_York sends "resets soon" at 23:00 local time and "restored" at local midnight,
//! not a second earlier: on 2026-11-01, a day of 25 hours (the clocks fall back at 02:00), and
//! on 2026-03-08, a day of 23 hours (they spring forward at 02:00).
//!
//! The expected instants come from the local wall times through jiff, never from UTC numbers
//! written down here.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::civil::{Date, date};
use limiter_core::notify::NotifyKind;
use limiter_core::policy::PolicyKind;
use limiter_core::{Clock, Limiter, ManualClock, Micros, PolicySet, Request};
use limiter_memory::MemoryStore;
use limiter_notify::{Delivery, Renderer, Sink, SinkError, Worker, WorkerConfig};
use limiter_testkit::conformance::events::TRACE_QUOTA;
use limiter_testkit::fixtures::{HOUR, SECOND};

/// The tenant's time zone, the policy set's.
const ZONE: &str = "America/New_York";

/// The plan `tiny` of the trace policies (a daily quota of [`TRACE_QUOTA`]), counted in
/// [`ZONE`], notifying on `plan_daily` at 80%.
fn policies() -> PolicySet {
    let mut config = limiter_testkit::conformance::events::trace_config();
    config.time_zone = ZONE.to_owned();
    config.notify.policies = vec![PolicyKind::PlanDaily.name().to_owned()];
    config.notify.thresholds = vec![80];
    PolicySet::from_config(&config).unwrap()
}

/// The instant of the wall time `hour:minute:second` of `day` in [`ZONE`].
fn local(day: Date, hour: i8, minute: i8, second: i8) -> Micros {
    let zoned = day.at(hour, minute, second, 0).in_tz(ZONE).unwrap();
    Micros::try_from(zoned.timestamp().as_microsecond()).unwrap()
}

/// A sink that keeps each delivery with the clock's time when it was handed over.
#[derive(Debug)]
struct Stamped {
    clock: ManualClock,
    got: Mutex<Vec<(Micros, Delivery)>>,
}

impl Stamped {
    fn got(&self) -> Vec<(Micros, Delivery)> {
        self.got.lock().unwrap().clone()
    }
}

impl fmt::Display for Stamped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stamped")
    }
}

#[async_trait]
impl Sink for Stamped {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
        let at = self.clock.now();
        self.got.lock().unwrap().push((at, delivery.clone()));
        Ok(())
    }
}

/// A tenant exhausts its quota at local noon on `day`, a day of `hours` hours in [`ZONE`]:
/// "resets soon" goes out at local 23:00 and "restored" at local midnight, each at its instant
/// and not the second before, and the limiter admits the tenant again at that midnight.
async fn resets_on_local_time(day: Date, hours: u64) {
    let start = local(day, 0, 0, 0);
    let noon = local(day, 12, 0, 0);
    let soon = local(day, 23, 0, 0);
    let midnight = local(day.tomorrow().unwrap(), 0, 0, 0);
    assert_eq!(midnight - start, hours * HOUR, "{day} in {ZONE}");

    let policies = policies();
    let clock = ManualClock::new(noon);
    let store = MemoryStore::default();
    let outbox = store.outbox();
    let limiter = Limiter::builder(policies.clone(), store)
        .clock(clock.clone())
        .notify(policies.notify_rules().clone())
        .unwrap()
        .build();
    let sink = Arc::new(Stamped {
        clock: clock.clone(),
        got: Mutex::default(),
    });
    let worker = Worker::builder(outbox, Renderer::new(policies))
        .shared_sink(sink.clone())
        .clock(clock.clone())
        .config(WorkerConfig::new().with_name("dst").with_jitter(false))
        .build()
        .unwrap();
    let request = Request::new().tenant("acme").plan("tiny").user("u");

    let mut admitted = 0;
    for _ in 0..TRACE_QUOTA + 5 {
        admitted += u64::from(limiter.check(&request).await.unwrap().is_allowed());
    }
    assert_eq!(admitted, TRACE_QUOTA, "{day}: the quota, then denials");
    let crossings = worker.run_once().await.unwrap();
    assert_eq!((crossings.claimed, crossings.delivered), (2, 2), "{day}");

    // A second before each due time nothing goes out; at it, its notice does.
    let steps = [
        (soon - SECOND, None),
        (soon, Some(NotifyKind::ResetsSoon)),
        (midnight - SECOND, None),
        (midnight, Some(NotifyKind::Restored)),
    ];
    for (at, kind) in steps {
        clock.set(at);
        let counts = worker.run_once().await.unwrap();
        let expected = u64::from(kind.is_some());
        assert_eq!(
            (counts.claimed, counts.delivered),
            (expected, expected),
            "{day}: at {at}, expected {kind:?}"
        );
        // The limiter agrees: still exhausted a second before midnight, whole again at it.
        if at == midnight - SECOND || at == midnight {
            let decision = limiter.check(&request).await.unwrap();
            assert_eq!(decision.is_allowed(), at == midnight, "{day}: at {at}");
        }
    }

    let got = sink.got();
    let mut kinds: Vec<(Micros, NotifyKind)> = got.iter().map(|(at, d)| (*at, d.kind())).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            (noon, NotifyKind::Approaching),
            (noon, NotifyKind::Exhausted),
            (soon, NotifyKind::ResetsSoon),
            (midnight, NotifyKind::Restored),
        ],
        "{day}: each notice once, at its local time"
    );
    for (_, delivery) in &got {
        let notice = &delivery.notice;
        assert_eq!(notice.identity.window_start, start, "{day}: {notice:?}");
        assert_eq!(notice.reset_at, midnight, "{day}: {notice:?}");
        assert_eq!(notice.tenant.as_deref(), Some("acme"));
        let due = match notice.kind() {
            NotifyKind::ResetsSoon => soon,
            NotifyKind::Restored => midnight,
            _ => noon,
        };
        assert_eq!(notice.due, due, "{day}: {notice:?}");
        if notice.kind() == NotifyKind::ResetsSoon {
            assert_eq!(delivery.message, "Your rate limit resets in 1 hour");
        }
    }
}

#[tokio::test]
async fn on_the_25_hour_fall_back_day_notices_follow_local_time() {
    resets_on_local_time(date(2026, 11, 1), 25).await;
}

#[tokio::test]
async fn on_the_23_hour_spring_forward_day_notices_follow_local_time() {
    resets_on_local_time(date(2026, 3, 8), 23).await;
}
