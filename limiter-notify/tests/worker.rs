//! The worker over an outbox: retries with backoff until a receiver recovers, gives up on
//! permanent failures and on the last attempt, survives a panicking sink, and is fenced off
//! when its lease ends under it.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Recording, Watched};
use limiter_core::notify::{Notice, NotifyKind, Outbox};
use limiter_core::{Clock, ManualClock, PolicySet};
use limiter_notify::{
    DEFAULT_TOLERANCE, Delivery, LogSink, Renderer, Sink, SinkError, WebhookSecret, WebhookSink,
    Worker, WorkerConfig, verify,
};
use limiter_testkit::conformance::outbox::notice;
use limiter_testkit::fixtures::{BASE_NOW, MINUTE, SECOND};

fn renderer() -> Renderer {
    Renderer::new(PolicySet::default())
}

/// Settings whose waits are the plain backoff: 1 s, 2 s, 4 s...
fn config() -> WorkerConfig {
    WorkerConfig::new()
        .with_name("test")
        .with_jitter(false)
        .with_poll_interval(Duration::from_millis(10))
}

fn tenants(n: usize) -> Vec<Notice> {
    (0..n)
        .map(|i| notice(&format!("t{i}"), NotifyKind::Exhausted, BASE_NOW))
        .collect()
}

#[tokio::test]
async fn notices_are_retried_with_backoff_until_the_receiver_recovers() {
    // Three notices; the receiver answers 503 to the first six requests: two failed rounds.
    let (addr, script) = common::receiver(503, 6).await;
    let secret = WebhookSecret::generate().unwrap();
    let outbox = Arc::new(Watched::default());
    let notices = tenants(3);
    outbox.enqueue(&notices).await.unwrap();
    let clock = ManualClock::new(BASE_NOW);
    let worker = Worker::builder(outbox.clone(), renderer())
        .sink(WebhookSink::new(&format!("http://{addr}/hook"), secret.clone()).unwrap())
        .clock(clock.clone())
        .config(config())
        .build()
        .unwrap();

    let first = worker.run_once().await.unwrap();
    assert_eq!((first.claimed, first.retried), (3, 3));
    // Attempt 1 failed: back after 1 s, not before.
    clock.set(BASE_NOW + SECOND - 1);
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    clock.set(BASE_NOW + SECOND);
    let second = worker.run_once().await.unwrap();
    assert_eq!((second.claimed, second.retried), (3, 3));
    // Attempt 2 failed: back after 2 s more.
    clock.set(BASE_NOW + 3 * SECOND - 1);
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    clock.set(BASE_NOW + 3 * SECOND);
    let third = worker.run_once().await.unwrap();
    assert_eq!((third.claimed, third.delivered), (3, 3));
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);

    let stats = outbox.stats(clock.now()).await.unwrap();
    assert_eq!((stats.delivered, stats.pending, stats.claimed), (3, 0, 0));
    // Every notice arrived, under its own id only, three times (two 503s, one 200).
    let mut by_id: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for r in script.received() {
        let id = r.headers["webhook-id"].to_str().unwrap().to_owned();
        let at = r.headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        verify(&secret, &r.headers, &r.body, at * SECOND, DEFAULT_TOLERANCE).unwrap();
        let event: limiter_notify::WebhookEvent = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(event.data.id, id, "the body names the id of its header");
        by_id.entry(id).or_default().push(r.status);
    }
    let expected: Vec<String> = notices.iter().map(Notice::id).collect();
    assert_eq!(by_id.keys().cloned().collect::<Vec<_>>(), {
        let mut e = expected.clone();
        e.sort();
        e
    });
    for (id, statuses) in &by_id {
        let mut statuses = statuses.clone();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 503, 503], "{id}");
        assert!(
            outbox
                .error(id)
                .unwrap()
                .contains("answered 503 Service Unavailable")
        );
    }
}

#[tokio::test]
async fn a_permanent_refusal_fails_the_notice_at_once() {
    let (addr, script) = common::receiver(404, usize::MAX).await;
    let outbox = Arc::new(Watched::default());
    let notices = tenants(1);
    outbox.enqueue(&notices).await.unwrap();
    let clock = ManualClock::new(BASE_NOW);
    let worker = Worker::builder(outbox.clone(), renderer())
        .sink(
            WebhookSink::new(
                &format!("http://{addr}/gone"),
                WebhookSecret::generate().unwrap(),
            )
            .unwrap(),
        )
        .clock(clock.clone())
        .config(config())
        .build()
        .unwrap();
    let counts = worker.run_once().await.unwrap();
    assert_eq!((counts.claimed, counts.failed, counts.retried), (1, 1, 0));
    clock.set(BASE_NOW + 24 * 60 * MINUTE);
    assert_eq!(worker.run_once().await.unwrap().claimed, 0, "never again");
    let stats = outbox.stats(clock.now()).await.unwrap();
    assert_eq!((stats.failed, stats.pending), (1, 0));
    assert_eq!(script.received().len(), 1);
    let error = outbox.error(&notices[0].id()).unwrap();
    assert_eq!(
        error,
        format!("WebhookSink(http://{addr}): answered 404 Not Found")
    );
}

#[tokio::test]
async fn the_last_attempt_gives_up() {
    let outbox = Arc::new(Watched::default());
    outbox.enqueue(&tenants(1)).await.unwrap();
    let clock = ManualClock::new(BASE_NOW);
    let sink = Arc::new(Recording {
        failures: usize::MAX.into(),
        ..Recording::default()
    });
    let worker = Worker::builder(outbox.clone(), renderer())
        .shared_sink(sink.clone())
        .clock(clock.clone())
        .config(config().with_max_attempts(3))
        .build()
        .unwrap();
    let mut totals = limiter_notify::Counts::default();
    for _ in 0..5 {
        totals += worker.run_once().await.unwrap();
        clock.advance(Duration::from_secs(3600));
    }
    assert_eq!((totals.claimed, totals.retried, totals.failed), (3, 2, 1));
    let id = tenants(1)[0].id();
    assert_eq!(outbox.attempts(&id), 3);
    assert_eq!(
        outbox.error(&id).unwrap(),
        "gave up after 3 attempts: Recording: not yet"
    );
}

#[tokio::test]
async fn every_sink_gets_the_notice_and_a_refusal_by_one_is_retried_for_all() {
    let outbox = Arc::new(Watched::default());
    outbox.enqueue(&tenants(2)).await.unwrap();
    let clock = ManualClock::new(BASE_NOW);
    let steady = Arc::new(Recording::default());
    let flaky = Arc::new(Recording {
        failures: 1.into(),
        ..Recording::default()
    });
    let worker = Worker::builder(outbox.clone(), renderer())
        .shared_sink(steady.clone())
        .shared_sink(flaky.clone())
        .sink(LogSink::new())
        .clock(clock.clone())
        .config(config())
        .build()
        .unwrap();
    let first = worker.run_once().await.unwrap();
    assert_eq!((first.delivered, first.retried), (1, 1));
    clock.advance(Duration::from_secs(1));
    let second = worker.run_once().await.unwrap();
    assert_eq!((second.claimed, second.delivered), (1, 1));
    // The steady sink saw the retried notice twice (at least once, by design); the flaky one
    // once, when it took it.
    assert_eq!(steady.ids().len(), 3);
    assert_eq!(flaky.ids().len(), 2);
    let distinct: HashSet<String> = steady.ids().into_iter().collect();
    assert_eq!(distinct.len(), 2);
    let attempts: Vec<u32> = steady
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.attempt)
        .collect();
    assert_eq!(attempts.iter().filter(|&&a| a == 2).count(), 1);
}

/// A sink that panics.
#[derive(Debug)]
struct Panics;

impl std::fmt::Display for Panics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Panics")
    }
}

#[async_trait]
impl Sink for Panics {
    async fn deliver(&self, _: &Delivery) -> Result<(), SinkError> {
        panic!("a bug in a sink, holding secret sauce");
    }
}

#[tokio::test]
async fn a_panicking_sink_is_a_retryable_failure_and_the_worker_goes_on() {
    let outbox = Arc::new(Watched::default());
    let notices = tenants(2);
    outbox.enqueue(&notices).await.unwrap();
    let clock = ManualClock::new(BASE_NOW);
    let worker = Worker::builder(outbox.clone(), renderer())
        .sink(Panics)
        .clock(clock.clone())
        .config(config())
        .build()
        .unwrap();
    let counts = worker.run_once().await.unwrap();
    assert_eq!((counts.claimed, counts.retried, counts.panicked), (2, 2, 2));
    let error = outbox.error(&notices[0].id()).unwrap();
    assert_eq!(error, "Panics: panicked");
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        worker.run_once().await.unwrap().panicked,
        2,
        "still running"
    );
}

#[tokio::test]
async fn a_sink_that_hangs_is_given_up_on_after_the_delivery_timeout() {
    #[derive(Debug)]
    struct Hangs;
    impl std::fmt::Display for Hangs {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Hangs")
        }
    }
    #[async_trait]
    impl Sink for Hangs {
        async fn deliver(&self, _: &Delivery) -> Result<(), SinkError> {
            std::future::pending().await
        }
    }
    let outbox = Arc::new(Watched::default());
    let notices = tenants(1);
    outbox.enqueue(&notices).await.unwrap();
    let worker = Worker::builder(outbox.clone(), renderer())
        .sink(Hangs)
        .clock(ManualClock::new(BASE_NOW))
        .config(config().with_delivery_timeout(Duration::from_millis(50)))
        .build()
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap().retried, 1);
    assert_eq!(
        outbox.error(&notices[0].id()).unwrap(),
        "Hangs: did not finish within 50ms"
    );
}

/// A sink that, while the first worker delivers, lets the lease run out and has a second
/// worker claim and deliver the same notice: the first worker's settlement is then refused.
#[derive(Debug)]
struct LeaseRunsOut {
    clock: ManualClock,
    second: tokio::sync::Mutex<Option<Worker>>,
    seen: std::sync::Mutex<Vec<(String, u32)>>,
}

impl std::fmt::Display for LeaseRunsOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaseRunsOut")
    }
}

#[async_trait]
impl Sink for LeaseRunsOut {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
        self.seen
            .lock()
            .unwrap()
            .push((delivery.id.clone(), delivery.attempt));
        if let Some(second) = self.second.lock().await.take() {
            self.clock.advance(Duration::from_secs(5 * 60));
            let counts = second.run_once().await.unwrap();
            assert_eq!((counts.claimed, counts.delivered), (1, 1));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_worker_whose_lease_ended_is_fenced_off() {
    let outbox = Arc::new(Watched::default());
    let notices = tenants(1);
    outbox.enqueue(&notices).await.unwrap();
    let clock = ManualClock::new(BASE_NOW);
    let recording = Arc::new(Recording::default());
    let second = Worker::builder(outbox.clone(), renderer())
        .shared_sink(recording.clone())
        .clock(clock.clone())
        .config(config().with_name("second"))
        .build()
        .unwrap();
    let stall = Arc::new(LeaseRunsOut {
        clock: clock.clone(),
        second: tokio::sync::Mutex::new(Some(second)),
        seen: std::sync::Mutex::default(),
    });
    let first = Worker::builder(outbox.clone(), renderer())
        .shared_sink(stall.clone())
        .clock(clock.clone())
        .config(config().with_name("first"))
        .build()
        .unwrap();
    let counts = first.run_once().await.unwrap();
    assert_eq!((counts.claimed, counts.delivered, counts.fenced), (1, 0, 1));
    // The second worker delivered attempt 2; the notice is settled once, delivered.
    assert_eq!(recording.got.lock().unwrap()[0].attempt, 2);
    let stats = outbox.stats(clock.now()).await.unwrap();
    assert_eq!((stats.delivered, stats.claimed, stats.pending), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_sharing_an_outbox_deliver_each_notice_once() {
    let outbox = Arc::new(Watched::default());
    let notices = tenants(120);
    outbox.enqueue(&notices).await.unwrap();
    let recording = Arc::new(Recording::default());
    let clock = ManualClock::new(BASE_NOW);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let worker = Worker::builder(outbox.clone(), renderer())
            .shared_sink(recording.clone())
            .clock(clock.clone())
            .config(config().with_name(format!("w{w}")).with_batch_size(7))
            .build()
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let mut delivered = 0;
            loop {
                let counts = worker.run_once().await.unwrap();
                if counts.claimed == 0 {
                    return delivered;
                }
                delivered += counts.delivered;
            }
        }));
    }
    let mut delivered = 0;
    for t in tasks {
        delivered += t.await.unwrap();
    }
    assert_eq!(delivered, 120);
    let ids = recording.ids();
    assert_eq!(ids.len(), 120, "none twice");
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 120, "every one");
}

#[tokio::test]
async fn run_delivers_until_shutdown_and_returns_the_totals() {
    let outbox = Arc::new(Watched::default());
    let recording = Arc::new(Recording::default());
    let worker = Worker::builder(outbox.clone(), renderer())
        .shared_sink(recording.clone())
        .clock(ManualClock::new(BASE_NOW))
        .config(config())
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run(async {
                stopped.await.ok();
            })
            .await
    });
    // Written while the worker polls: it finds them on a later round.
    outbox.enqueue(&tenants(3)).await.unwrap();
    for _ in 0..2000 {
        if recording.ids().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    let totals = running.await.unwrap();
    assert_eq!((totals.claimed, totals.delivered), (3, 3));
}

#[test]
fn a_worker_needs_a_sink_and_settings_that_work() {
    let outbox: Arc<dyn Outbox> = Arc::new(Watched::default());
    let err = Worker::builder(outbox.clone(), renderer())
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid configuration at worker.sinks: no sink"),
        "{err}"
    );
    let err = Worker::builder(outbox, renderer())
        .sink(LogSink::new())
        .config(WorkerConfig::new().with_lease(Duration::from_secs(10)))
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("worker.lease: 10s is not longer than the delivery timeout 30s"),
        "{err}"
    );
}
