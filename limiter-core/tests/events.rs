//! Events: what the engine records for each decision, and the recorder between the request
//! path and the log.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;

use async_trait::async_trait;
use limiter_core::event::{
    EventKind, EventLog, EventPage, EventQuery, EventRecorder, LimitEvent, Overflow, Pruned,
    QuotaUsage, RecorderConfig, Retention, TenantCount, TenantHits,
};
use limiter_core::policy::{Config, PolicyKind};
use limiter_core::{Error, ErrorKind, Limiter, ManualClock, Micros, PolicySet, Request};
use limiter_testkit::{ModelStore, ReferenceEventLog};

const NOW: Micros = 1_790_000_000_000_000;

fn recorded(
    policies: PolicySet,
) -> (
    Limiter,
    Arc<ReferenceEventLog>,
    limiter_core::event::EventDrain,
) {
    let log = Arc::new(ReferenceEventLog::new());
    let (recorder, drain) = EventRecorder::new(log.clone(), RecorderConfig::default());
    let limiter = Limiter::builder(policies, ModelStore::new())
        .clock(ManualClock::new(NOW))
        .events(recorder)
        .build();
    (limiter, log, drain)
}

fn free_user() -> Request {
    Request::new()
        .tenant("acme")
        .plan("free")
        .user("ann")
        .api_key("key_123", false)
        .ip("203.0.113.9".parse().expect("ip"))
        .endpoint("GET", "/v1/orders/{id}")
}

#[tokio::test]
async fn a_denial_carries_who_what_and_where_but_only_the_network() {
    let (limiter, log, drain) = recorded(PolicySet::default());
    // The free plan's burst is 10/minute.
    for _ in 0..11 {
        limiter.check(&free_user()).await.expect("check");
    }
    drain.flush().await.expect("flush");
    let events = log.events();
    let denied: Vec<&LimitEvent> = events
        .iter()
        .filter(|e| e.kind == EventKind::Denied)
        .collect();
    assert_eq!(denied.len(), 1, "{events:#?}");
    let e = denied[0];
    assert_eq!(e.at, NOW);
    assert_eq!(e.tenant.as_deref(), Some("acme"));
    assert_eq!(e.user.as_deref(), Some("ann"));
    assert_eq!(e.key_id.as_deref(), Some("key_123"));
    assert_eq!(e.policy.as_deref(), Some("plan_burst"));
    assert_eq!((e.limit, e.remaining), (10, 0));
    assert_eq!(e.retry_after, 6_000_000);
    assert_eq!(e.period, 60_000_000);
    assert_eq!(e.window_start, NOW - NOW % 60_000_000);
    assert_eq!(e.method.as_deref(), Some("GET"));
    assert_eq!(e.route.as_deref(), Some("/v1/orders/{id}"));
    assert_eq!(e.network.as_deref(), Some("203.0.113.0/24"));
    // The burst crossed 80% at the 8th request and was exhausted by the 10th: one each.
    let kinds = |kind| {
        events
            .iter()
            .filter(|e| e.kind == kind && e.policy.as_deref() == Some("plan_burst"))
            .count()
    };
    assert_eq!(
        (kinds(EventKind::Approaching), kinds(EventKind::Exhausted)),
        (1, 1)
    );
    let approaching = events
        .iter()
        .find(|e| e.kind == EventKind::Approaching)
        .expect("one");
    assert_eq!(
        approaching.remaining, 2,
        "recorded at the crossing: 8 of 10 used"
    );
}

#[tokio::test]
async fn bypasses_and_shadow_denials_are_recorded() {
    let mut config = Config::default();
    config.policies[PolicyKind::PlanBurst].shadow = true;
    let (limiter, log, drain) = recorded(PolicySet::from_config(&config).expect("valid"));
    for _ in 0..11 {
        limiter.check(&free_user()).await.expect("check");
    }
    let staff = Request::new().user("sam").staff(true).api_key("ops", true);
    limiter.check(&staff).await.expect("check");
    drain.flush().await.expect("flush");
    let events = log.events();
    let shadow: Vec<&LimitEvent> = events
        .iter()
        .filter(|e| e.kind == EventKind::ShadowDenied)
        .collect();
    assert_eq!(shadow.len(), 1, "{events:#?}");
    assert_eq!(shadow[0].policy.as_deref(), Some("plan_burst"));
    assert!(events.iter().all(|e| e.kind != EventKind::Denied));
    let bypass = events
        .iter()
        .find(|e| e.kind == EventKind::Bypassed)
        .expect("a bypass");
    assert_eq!(bypass.reason.as_deref(), Some("staff"));
    assert_eq!(bypass.key_id.as_deref(), Some("ops"));
    assert_eq!(bypass.policy, None);
}

#[tokio::test]
async fn peeks_record_nothing_and_a_limiter_without_a_recorder_has_no_stats() {
    let (limiter, log, drain) = recorded(PolicySet::default());
    for _ in 0..20 {
        limiter.peek(&free_user()).await.expect("peek");
    }
    drain.flush().await.expect("flush");
    assert!(log.events().is_empty());
    let plain = Limiter::new(PolicySet::default(), ModelStore::new());
    assert_eq!(plain.event_stats(), None);
}

fn denial(i: u64) -> LimitEvent {
    let mut e = LimitEvent::new(NOW + i, EventKind::Denied);
    e.tenant = Some("t".into());
    e
}

#[tokio::test]
async fn a_full_buffer_drops_and_counts_but_keeps_threshold_events() {
    let log = Arc::new(ReferenceEventLog::new());
    let config = RecorderConfig::default().capacity(2);
    let (recorder, drain) = EventRecorder::new(log.clone(), config);
    for i in 0..5 {
        recorder.record(denial(i)).await;
    }
    // Threshold events have as much room again beyond the capacity.
    for i in 0..3 {
        recorder
            .record(LimitEvent::new(NOW + i, EventKind::Exhausted))
            .await;
    }
    let stats = recorder.stats();
    assert_eq!(
        (stats.recorded, stats.dropped, stats.dropped_thresholds),
        (4, 4, 1)
    );
    assert_eq!(drain.flush().await.expect("flush"), 4);
    assert_eq!(recorder.stats().written, 4);
    let kinds: Vec<EventKind> = log.events().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Denied,
            EventKind::Denied,
            EventKind::Exhausted,
            EventKind::Exhausted
        ]
    );
}

/// Polls `future` once.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx))).await
}

#[tokio::test]
async fn the_wait_setting_waits_for_room_and_loses_nothing() {
    let log = Arc::new(ReferenceEventLog::new());
    let config = RecorderConfig::default()
        .capacity(1)
        .overflow(Overflow::Wait);
    let (recorder, drain) = EventRecorder::new(log.clone(), config);
    recorder.record(denial(0)).await;
    let mut second = Box::pin(recorder.record(denial(1)));
    assert!(
        poll_once(&mut second).await.is_pending(),
        "the buffer is full"
    );
    drain.flush().await.expect("flush");
    assert!(poll_once(&mut second).await.is_ready(), "room was made");
    drain.flush().await.expect("flush");
    assert_eq!(log.events().len(), 2);
    assert_eq!(recorder.stats().dropped, 0);
}

#[tokio::test]
async fn the_drain_ends_when_the_last_limiter_goes_and_writes_everything() {
    let (limiter, log, drain) = recorded(PolicySet::default());
    let task = tokio::spawn(drain.run());
    for _ in 0..30 {
        limiter.check(&free_user()).await.expect("check");
    }
    let stats = limiter.event_stats().expect("a recorder");
    drop(limiter);
    task.await.expect("the drain ends");
    // All but the restore candidate of the daily quota's first request, which the log drops:
    // no exhaustion came before it.
    let recorded = usize::try_from(stats.recorded).expect("small");
    assert_eq!(log.events().len(), recorded - 1);
    assert!(log.events().iter().all(|e| e.kind != EventKind::Restored));
}

#[derive(Debug)]
struct BrokenLog;

#[async_trait]
impl EventLog for BrokenLog {
    async fn append(&self, _: &[LimitEvent]) -> Result<(), Error> {
        Err(Error::store(
            "BrokenLog",
            ErrorKind::Temporary,
            "disk full",
            None,
        ))
    }
    async fn hits(&self, _: Micros, _: Micros) -> Result<Vec<TenantHits>, Error> {
        Ok(Vec::new())
    }
    async fn top_hit_tenants(&self, _: Micros, _: usize) -> Result<Vec<TenantCount>, Error> {
        Ok(Vec::new())
    }
    async fn near_quota(&self, _: Micros, _: u8) -> Result<Vec<QuotaUsage>, Error> {
        Ok(Vec::new())
    }
    async fn events(&self, _: &EventQuery) -> Result<EventPage, Error> {
        Ok(EventPage {
            events: Vec::new(),
            next: None,
        })
    }
    async fn prune(&self, _: &Retention) -> Result<Pruned, Error> {
        Ok(Pruned::default())
    }
}

#[tokio::test]
async fn a_failing_log_never_fails_a_decision_and_its_losses_are_counted() {
    let (recorder, drain) = EventRecorder::new(Arc::new(BrokenLog), RecorderConfig::default());
    let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(ManualClock::new(NOW))
        .events(recorder)
        .build();
    for _ in 0..11 {
        limiter
            .check(&free_user())
            .await
            .expect("decided despite the log");
    }
    let err = drain.flush().await.expect_err("the log fails");
    assert!(err.to_string().contains("disk full"), "{err}");
    let stats = limiter.event_stats().expect("a recorder");
    assert!(stats.failed > 0 && stats.written == 0, "{stats:?}");
}

/// A metrics recorder that keeps the name and labels of every counter and histogram touched.
#[derive(Debug, Default)]
struct Keys(std::sync::Mutex<Vec<String>>);

impl Keys {
    fn push(&self, key: &metrics::Key) {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let line = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().expect("not poisoned").push(line);
    }
}

impl metrics::Recorder for Keys {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        self.push(key);
        metrics::Counter::noop()
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        self.push(key);
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        self.push(key);
        metrics::Histogram::noop()
    }
}

#[test]
fn metrics_carry_bounded_labels_only() {
    let keys = Keys::default();
    metrics::with_local_recorder(&keys, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let log = Arc::new(ReferenceEventLog::new());
            let (recorder, _drain) = EventRecorder::new(log, RecorderConfig::default().capacity(1));
            let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
                .clock(ManualClock::new(NOW))
                .metrics(true)
                .events(recorder)
                .build();
            for _ in 0..12 {
                limiter.check(&free_user()).await.expect("check");
            }
            let staff = Request::new().user("sam").staff(true);
            limiter.check(&staff).await.expect("check");
        });
    });
    let keys = keys.0.into_inner().expect("not poisoned");
    for expected in [
        "limiter_decisions_total{policy=plan_burst,outcome=allowed}",
        "limiter_decisions_total{policy=plan_burst,outcome=denied}",
        "limiter_decisions_total{policy=none,outcome=bypassed}",
        "limiter_bypasses_total{reason=staff}",
        "limiter_store_duration_seconds{backend=ModelStore}",
        "limiter_events_dropped_total{class=other}",
    ] {
        assert!(
            keys.iter().any(|k| k == expected),
            "{expected} not in {keys:#?}"
        );
    }
    for key in &keys {
        for private in ["acme", "ann", "sam", "203.0.113", "/v1/orders", "key_123"] {
            assert!(!key.contains(private), "{key} names {private}");
        }
    }
}

#[tokio::test]
async fn run_every_writes_whole_batches_at_once_and_the_rest_on_each_tick() {
    let log = Arc::new(ReferenceEventLog::new());
    let (recorder, drain) = EventRecorder::new(log.clone(), RecorderConfig::default().batch(4));
    let tick = Arc::new(tokio::sync::Notify::new());
    let ticks = Arc::clone(&tick);
    let task = tokio::spawn(drain.run_every(move || {
        let ticks = Arc::clone(&ticks);
        async move { ticks.notified().await }
    }));
    let settle = || async {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    };
    for i in 0..6 {
        recorder.record(denial(i)).await;
    }
    settle().await;
    // One whole batch went; two events wait for the tick.
    assert_eq!((log.events().len(), recorder.pending()), (4, 2));
    tick.notify_one();
    settle().await;
    assert_eq!((log.events().len(), recorder.pending()), (6, 0));
    drop(recorder);
    let stats = task.await.expect("the drain ends");
    assert_eq!((stats.written, stats.failed), (6, 0));
}
