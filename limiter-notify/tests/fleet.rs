//! Issue 14, "must show": four limiters and two delivery workers sharing one store (a SQLite
//! file, a Redis server, the in-process store) send each tenant's notices of each daily window
//! to a real webhook receiver under one id each: "approaching" and "exhausted" at the
//! crossing, "resets soon" at 23:00 and "restored" at midnight. Every signature verifies at
//! receipt, and a receiver that is down during the first burst still gets every notice.
//!
//! One scenario ([`fleet_delivers_each_notice_once`]), run on each backend. Time is one
//! manual clock, shared by the limiters, the webhook sinks, the workers and the receiver. It
//! stands still while the workers deliver what is due, then moves to the next instant of a
//! fixed schedule, so that a retry becomes due only when the clock moves past its backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use limiter_core::notify::{Notice, NotificationId, NotifyKind, NotifyRules, Outbox};
use limiter_core::policy::PolicyKind;
use limiter_core::{
    Clock, Key, Limiter, ManualClock, Micros, PolicySet, Request, Store, SubjectKind,
};
use limiter_memory::MemoryStore;
use limiter_notify::{
    Counts, DEFAULT_TOLERANCE, ID_HEADER, Renderer, WebhookEvent, WebhookSecret, WebhookSink,
    Worker, WorkerConfig, verify,
};
use limiter_redis::{RedisConfig, RedisOutbox, RedisStore, TimeSource};
use limiter_sqlite::{SqliteConfig, SqliteOutbox, SqliteStore};
use limiter_testkit::conformance::events::{DAY, TRACE_QUOTA, trace_policies, trace_policies_in};
use limiter_testkit::conformance::outbox::{FLEET_REQUESTS, FLEET_TENANTS};
use limiter_testkit::fixtures::{BASE_NOW, HOUR, MINUTE, SECOND};

/// Days of traffic: two daily windows per tenant.
const DAYS: u64 = 2;
/// Notices of the first burst that are due at once: approaching and exhausted per tenant.
const FIRST_BURST: usize = 2 * FLEET_TENANTS.len();
/// Requests the receiver answers 503 before it is back: three attempts of each notice of the
/// first burst, so that each fails at least once (they all fail together, and retry together).
const OUTAGE: usize = 3 * FIRST_BURST;
/// Notices a worker claims at once: small, so that the two workers share the work.
const BATCH: usize = 3;
/// Rounds that claimed something that a worker may run at one instant before the scenario
/// gives up: a worker that keeps finding due notices at a standing clock never converges.
const MAX_ROUNDS: usize = 200;
/// Minutes the clock may move on after the last reset for the outbox to drain.
const MAX_DRAIN_MINUTES: usize = 60;

/// One request the receiver got, with the manual clock's time at its arrival.
#[derive(Debug, Clone)]
struct Receipt {
    id: String,
    status: u16,
    at: Micros,
    body: Bytes,
}

/// A webhook receiver that is down (503) for its first `outage` requests, then up (200), and
/// verifies every request's signature at receipt against the manual clock.
struct Receiver {
    secret: WebhookSecret,
    clock: ManualClock,
    outage: usize,
    seen: AtomicUsize,
    receipts: Mutex<Vec<Receipt>>,
    /// Requests that did not verify, with the reason: each one fails the test.
    rejected: Mutex<Vec<String>>,
}

impl Receiver {
    fn receipts(&self) -> Vec<Receipt> {
        self.receipts.lock().unwrap().clone()
    }

    fn rejected(&self) -> Vec<String> {
        self.rejected.lock().unwrap().clone()
    }
}

/// Starts a [`Receiver`] on 127.0.0.1 at a free port.
async fn receiver(
    secret: WebhookSecret,
    clock: ManualClock,
    outage: usize,
) -> (SocketAddr, Arc<Receiver>) {
    let receiver = Arc::new(Receiver {
        secret,
        clock,
        outage,
        seen: AtomicUsize::new(0),
        receipts: Mutex::default(),
        rejected: Mutex::default(),
    });
    let app = Router::new()
        .route("/hooks/limits", axum::routing::post(receive))
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, receiver)
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = receiver.clock.now();
    let id = headers
        .get(ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // As a receiver must: the raw body, the time of receipt, before anything else.
    if let Err(e) = verify(&receiver.secret, &headers, &body, at, DEFAULT_TOLERANCE) {
        receiver
            .rejected
            .lock()
            .unwrap()
            .push(format!("{id} at {at}: {e}"));
        return StatusCode::UNAUTHORIZED;
    }
    let down = receiver.seen.fetch_add(1, Ordering::SeqCst) < receiver.outage;
    let status = if down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    receiver.receipts.lock().unwrap().push(Receipt {
        id,
        status: status.as_u16(),
        at,
        body,
    });
    status
}

/// The instants after a day's burst (at 01:00 of the window starting at `start`) at which the
/// workers deliver what is due: every second for two minutes (the retries after the outage),
/// every ten minutes, and around 23:00 and midnight, a second before each.
fn schedule(start: Micros) -> Vec<Micros> {
    let burst = start + HOUR;
    let (soon, midnight) = (start + DAY - HOUR, start + DAY);
    let mut at: Vec<Micros> = (1..=120).map(|s| burst + s * SECOND).collect();
    at.extend((1..=131).map(|k| burst + k * 10 * MINUTE));
    at.extend([soon - SECOND, soon, soon + SECOND]);
    at.extend((1..=5).map(|k| soon + k * 10 * MINUTE));
    at.extend([midnight - SECOND, midnight, midnight + SECOND]);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "a schedule in order");
    at
}

/// Runs `worker` at the clock's standing instant until a claim finds nothing due, while
/// `sending` says no traffic is still being decided: its counts.
async fn drain(worker: Worker, backend: &'static str, sending: Arc<AtomicBool>) -> Counts {
    let mut total = Counts::default();
    let mut rounds = 0;
    loop {
        // Read before the claim: a claim that finds nothing after the traffic ended has seen
        // every notice the traffic wrote.
        let was_sending = sending.load(Ordering::SeqCst);
        let counts = worker.run_once().await.unwrap_or_else(|e| {
            panic!("{backend}: {} could not claim: {e}", worker.config().name())
        });
        total += counts;
        if counts.claimed == 0 {
            if !was_sending {
                return total;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        rounds += 1;
        assert!(
            rounds < MAX_ROUNDS,
            "{backend}: {} still finds due notices after {rounds} rounds at one instant, \
             without the clock moving: {total:?}",
            worker.config().name()
        );
    }
}

/// Both workers, each from a task of its own, deliver what is due at the clock's instant
/// while `sending` is on and until nothing is due: their counts.
async fn deliver_due(
    workers: &[Worker],
    backend: &'static str,
    sending: &Arc<AtomicBool>,
) -> Vec<Counts> {
    let tasks: Vec<_> = workers
        .iter()
        .map(|w| tokio::spawn(drain(w.clone(), backend, Arc::clone(sending))))
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.unwrap());
    }
    counts
}

/// Every limiter sends [`FLEET_REQUESTS`] requests of every tenant, all at once, while the
/// workers deliver: the requests admitted, and the workers' counts.
async fn burst(
    limiters: &[Limiter],
    workers: &[Worker],
    backend: &'static str,
) -> (u64, Vec<Counts>) {
    let sending = Arc::new(AtomicBool::new(true));
    let delivering = {
        let (workers, sending) = (workers.to_vec(), Arc::clone(&sending));
        tokio::spawn(async move { deliver_due(&workers, backend, &sending).await })
    };
    let mut traffic = Vec::new();
    for limiter in limiters {
        for tenant in FLEET_TENANTS {
            let limiter = limiter.clone();
            traffic.push(tokio::spawn(async move {
                let request = Request::new().tenant(tenant).plan("tiny").user("u");
                let mut admitted = 0;
                for _ in 0..FLEET_REQUESTS {
                    let decision = limiter.check(&request).await.unwrap();
                    admitted += u64::from(decision.is_allowed());
                }
                admitted
            }));
        }
    }
    let mut admitted = 0;
    for task in traffic {
        admitted += task.await.unwrap();
    }
    sending.store(false, Ordering::SeqCst);
    (admitted, delivering.await.unwrap())
}

fn add(totals: &mut [Counts], counts: &[Counts]) {
    for (total, c) in totals.iter_mut().zip(counts) {
        *total += *c;
    }
}

fn sum(counts: &[Counts]) -> Counts {
    let mut total = Counts::default();
    for c in counts {
        total += *c;
    }
    total
}

/// Microseconds since the epoch of an RFC 3339 time of a webhook body.
fn micros(rfc3339: &str) -> Micros {
    let at: jiff::Timestamp = rfc3339.parse().unwrap();
    Micros::try_from(at.as_microsecond()).unwrap()
}

/// When a notice of `kind` of the window starting at `start` is due: the burst at 01:00 for
/// the crossings, 23:00 for "resets soon", midnight for "restored".
fn due(kind: NotifyKind, start: Micros) -> Micros {
    match kind {
        NotifyKind::ResetsSoon => start + DAY - HOUR,
        NotifyKind::Restored => start + DAY,
        _ => start + HOUR,
    }
}

/// What the fleet shares: `stores` (four handles on one state) that write their notices to
/// the outbox of `outboxes` (two handles on it, one per worker), under `policies`.
struct Fleet {
    backend: &'static str,
    policies: PolicySet,
    stores: Vec<Arc<dyn Store>>,
    outboxes: Vec<Arc<dyn Outbox>>,
}

/// The scenario: two days of traffic through four limiters, twice the daily quota of each
/// tenant a day, with two workers delivering signed webhooks to a receiver that is down
/// during the first burst. Each tenant's window gets one id per kind, at its time.
async fn fleet_delivers_each_notice_once(fleet: Fleet) {
    let Fleet {
        backend,
        policies,
        stores,
        outboxes,
    } = fleet;
    assert_eq!((stores.len(), outboxes.len()), (4, 2), "{backend}");
    let clock = ManualClock::new(BASE_NOW);
    let rules = NotifyRules::new([PolicyKind::PlanDaily], [80]).unwrap();
    let limiters: Vec<Limiter> = stores
        .into_iter()
        .map(|store| {
            Limiter::builder(policies.clone(), store)
                .clock(clock.clone())
                .notify(rules.clone())
                .unwrap()
                .build()
        })
        .collect();
    let secret = WebhookSecret::generate().unwrap();
    // The receiver reads the secret as it would from its own configuration.
    let (addr, receiver) = receiver(
        secret.expose_secret().parse().unwrap(),
        clock.clone(),
        OUTAGE,
    )
    .await;
    let url = format!("http://{addr}/hooks/limits");
    let workers: Vec<Worker> = outboxes
        .iter()
        .enumerate()
        .map(|(i, outbox)| {
            let sink = WebhookSink::new(&url, secret.clone())
                .unwrap()
                .with_clock(clock.clone());
            Worker::builder(Arc::clone(outbox), Renderer::new(policies.clone()))
                .sink(sink)
                .clock(clock.clone())
                .config(
                    WorkerConfig::new()
                        .with_name(format!("{backend}-{i}"))
                        .with_jitter(false)
                        .with_batch_size(BATCH),
                )
                .build()
                .unwrap()
        })
        .collect();
    let tenants = u64::try_from(FLEET_TENANTS.len()).unwrap();
    let idle = Arc::new(AtomicBool::new(false));
    let mut totals = vec![Counts::default(); workers.len()];

    for day in 0..DAYS {
        let start = BASE_NOW + day * DAY;
        clock.set(start + HOUR);
        let (admitted, counts) = burst(&limiters, &workers, backend).await;
        no_rejections(backend, &receiver);
        assert_eq!(
            admitted,
            tenants * TRACE_QUOTA,
            "{backend}: day {day}: the fleet admits the quota"
        );
        if day == 0 {
            // The receiver is down: every crossing was tried, and none is tried again until
            // the clock moves.
            let (c, first) = (sum(&counts), u64::try_from(FIRST_BURST).unwrap());
            assert_eq!(
                (c.claimed, c.retried, c.delivered),
                (first, first, 0),
                "{backend}: the first burst meets the outage: {counts:?}"
            );
        }
        add(&mut totals, &counts);
        for at in schedule(start) {
            clock.set(at);
            add(&mut totals, &deliver_due(&workers, backend, &idle).await);
        }
    }
    // Everything was due by the last midnight; give stragglers an hour, then give up.
    let mut drained = false;
    for _ in 0..MAX_DRAIN_MINUTES {
        let stats = outboxes[0].stats(clock.now()).await.unwrap();
        if stats.pending == 0 && stats.claimed == 0 {
            drained = true;
            break;
        }
        clock.advance(Duration::from_secs(60));
        add(&mut totals, &deliver_due(&workers, backend, &idle).await);
    }
    let stats = outboxes[0].stats(clock.now()).await.unwrap();
    assert!(
        drained,
        "{backend}: the outbox did not drain within {MAX_DRAIN_MINUTES} minutes after the \
         last reset: {stats:?}, workers {totals:?}"
    );

    no_rejections(backend, &receiver);
    let receipts = receiver.receipts();
    let expected = expected_ids(&policies);
    let report = check_receipts(backend, &receipts, &expected, &policies);

    // The outbox holds these notices and no others, each delivered: every one the outbox
    // holds was received with a 200.
    let notices: Vec<Notice> = expected
        .values()
        .map(|identity| Notice::new(identity.clone(), BASE_NOW))
        .collect();
    assert_eq!(
        outboxes[1].enqueue(&notices).await.unwrap(),
        0,
        "{backend}: the outbox holds every expected notice already"
    );
    let held = u64::try_from(expected.len()).unwrap();
    assert_eq!(
        (stats.delivered, stats.failed, stats.pending, stats.claimed),
        (held, 0, 0, 0),
        "{backend}: every notice in the outbox delivered: {stats:?}"
    );
    let total = sum(&totals);
    assert_eq!(
        (total.delivered, total.failed, total.panicked),
        (held, 0, 0),
        "{backend}: workers {totals:?}"
    );
    println!(
        "{backend}: {} requests, {} answered 503 while the receiver was down, {} same-id \
         duplicates; {} notices delivered; workers (claimed/delivered/retried/fenced): {}",
        receipts.len(),
        report.unavailable,
        report.duplicates,
        held,
        totals
            .iter()
            .map(|c| format!("{}/{}/{}/{}", c.claimed, c.delivered, c.retried, c.fenced))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Fails if a request to `receiver` did not verify.
fn no_rejections(backend: &str, receiver: &Receiver) {
    let rejected = receiver.rejected();
    assert!(
        rejected.is_empty(),
        "{backend}: webhooks whose signature did not verify at receipt: {rejected:#?}"
    );
}

/// The identity of every notice the scenario must produce, by id: per tenant and window, one
/// of each kind.
fn expected_ids(policies: &PolicySet) -> BTreeMap<String, NotificationId> {
    let mut expected = BTreeMap::new();
    for tenant in FLEET_TENANTS {
        let key = Key::new(
            policies.namespace(),
            PolicyKind::PlanDaily.name(),
            SubjectKind::Tenant,
            tenant,
        );
        for day in 0..DAYS {
            for kind in NotifyKind::ALL {
                let threshold = (kind == NotifyKind::Approaching).then_some(80);
                let identity = NotificationId::new(
                    key.hash_tag(),
                    PolicyKind::PlanDaily.name(),
                    kind,
                    threshold,
                    BASE_NOW + day * DAY,
                    TRACE_QUOTA,
                );
                expected.insert(identity.id(), identity);
            }
        }
    }
    expected
}

/// What the receipts showed beyond the assertions.
struct Report {
    /// Requests answered 503.
    unavailable: usize,
    /// Requests answered 200 for an id already answered 200 (at least once allows them).
    duplicates: usize,
}

/// Checks every receipt against the notices expected: bodies that name their notice, one id
/// per tenant, window and kind, each received with a 200, none before it was due.
fn check_receipts(
    backend: &str,
    receipts: &[Receipt],
    expected: &BTreeMap<String, NotificationId>,
    policies: &PolicySet,
) -> Report {
    // Per tenant, window and kind: the ids received.
    let mut ids: BTreeMap<(String, Micros, NotifyKind), BTreeSet<String>> = BTreeMap::new();
    // Per id: (clock at receipt, status) of each request, in the order received.
    let mut by_id: BTreeMap<String, Vec<(Micros, u16)>> = BTreeMap::new();
    for r in receipts {
        let event: WebhookEvent = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{backend}: the body of {} does not parse: {e}", r.id));
        let data = &event.data;
        assert_eq!(data.id, r.id, "{backend}: the body names its webhook-id");
        assert_eq!(event.event_type, format!("limit.{}", data.kind.name()));
        let tenant = data.tenant.clone().expect("a tenant");
        assert!(
            FLEET_TENANTS.contains(&tenant.as_str()),
            "{backend}: {tenant}"
        );
        let start = micros(&data.window_start);
        let identity = NotificationId::new(
            data.subject.clone(),
            data.policy.clone(),
            data.kind,
            data.threshold,
            start,
            data.limit,
        );
        assert_eq!(
            expected.get(&r.id),
            Some(&identity),
            "{backend}: {} names an expected notice: {event:?}",
            r.id
        );
        assert_eq!(
            identity.subject,
            Key::new(
                policies.namespace(),
                "plan_daily",
                SubjectKind::Tenant,
                &tenant
            )
            .hash_tag(),
            "{backend}: the notice of {tenant} counts {tenant}"
        );
        assert_eq!(data.plan.as_deref(), Some("tiny"), "{backend}: {event:?}");
        assert_eq!(data.period_seconds, 86_400, "{backend}: {event:?}");
        assert_eq!(micros(&data.reset_at), start + DAY, "{backend}: {event:?}");
        let due = due(data.kind, start);
        assert_eq!(micros(&data.due), due, "{backend}: {event:?}");
        assert!(
            r.at >= due,
            "{backend}: {} of {tenant} received at {} before it was due at {due}",
            data.kind,
            r.at
        );
        match data.kind {
            NotifyKind::Approaching => {
                assert_eq!(data.threshold, Some(80));
                // From the crossing, or from a later decision that proposed it (Redis).
                assert!(
                    (TRACE_QUOTA * 8 / 10..=TRACE_QUOTA).contains(&data.used),
                    "{event:?}"
                );
            }
            NotifyKind::Exhausted => assert_eq!(data.used, TRACE_QUOTA, "{event:?}"),
            _ => {}
        }
        ids.entry((tenant, start, data.kind))
            .or_default()
            .insert(r.id.clone());
        by_id
            .entry(r.id.clone())
            .or_default()
            .push((r.at, r.status));
    }

    for tenant in FLEET_TENANTS {
        for day in 0..DAYS {
            let start = BASE_NOW + day * DAY;
            for kind in NotifyKind::ALL {
                let got = ids.get(&(tenant.to_owned(), start, kind));
                assert_eq!(
                    got.map_or(0, BTreeSet::len),
                    1,
                    "{backend}: distinct ids of {kind} of {tenant} on day {day}: {got:?}"
                );
            }
        }
    }
    assert_eq!(
        by_id.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{backend}: every notice, and only those, reached the receiver"
    );

    let mut duplicates = 0;
    let mut unavailable = 0;
    for (id, requests) in &by_id {
        let kind = expected[id].kind;
        let start = expected[id].window_start;
        let oks: Vec<Micros> = requests
            .iter()
            .filter(|(_, s)| *s == 200)
            .map(|(at, _)| *at)
            .collect();
        let failed: Vec<Micros> = requests
            .iter()
            .filter(|(_, s)| *s == 503)
            .map(|(at, _)| *at)
            .collect();
        assert!(
            !oks.is_empty(),
            "{backend}: {id} was never taken: {requests:?}"
        );
        duplicates += oks.len() - 1;
        unavailable += failed.len();
        // Sent the first moment it was due (the schedule stops at every due time).
        let first = requests.iter().map(|(at, _)| *at).min().unwrap_or(0);
        assert_eq!(
            first,
            due(kind, start),
            "{backend}: {kind} {id} first sent at {first}"
        );
        let crossing = matches!(kind, NotifyKind::Approaching | NotifyKind::Exhausted);
        if start == BASE_NOW && crossing {
            // The first burst met the outage: each of its notices failed, each attempt at a
            // later instant than the one before (a retry waits for the clock), then was taken.
            assert!(!failed.is_empty(), "{backend}: {id} never failed");
            let distinct: BTreeSet<&Micros> = failed.iter().collect();
            assert_eq!(distinct.len(), failed.len(), "{backend}: {requests:?}");
            assert!(
                oks.iter().all(|ok| failed.iter().all(|f| f < ok)),
                "{backend}: {id} taken before its last failure: {requests:?}"
            );
        } else {
            assert!(failed.is_empty(), "{backend}: {id} after the outage");
            assert_eq!(oks[0], first, "{backend}: {kind} {id} taken when due");
        }
    }
    assert_eq!(
        unavailable, OUTAGE,
        "{backend}: the receiver was down for its first {OUTAGE} requests"
    );
    Report {
        unavailable,
        duplicates,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_limiters_and_two_workers_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.db");
    let busy = Duration::from_secs(10);
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        let config = SqliteConfig::new().with_busy_timeout(busy);
        stores.push(Arc::new(SqliteStore::open(&path, config).await.unwrap()));
    }
    let mut outboxes: Vec<Arc<dyn Outbox>> = Vec::new();
    for _ in 0..2 {
        outboxes.push(Arc::new(SqliteOutbox::open(&path, busy).await.unwrap()));
    }
    fleet_delivers_each_notice_once(Fleet {
        backend: "sqlite",
        policies: trace_policies(),
        stores,
        outboxes,
    })
    .await;
}

/// A store of its own connections on `url`, deciding at the limiter's (manual) time.
async fn redis_store(url: &str) -> RedisStore {
    let config = RedisConfig::new(url)
        .with_pool_size(2)
        .with_time_source(TimeSource::Injected);
    RedisStore::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_limiters_and_two_workers_on_one_redis_server() {
    // A harness server, or LIMITER_REDIS_URL; a loud skip without one, unless
    // LIMITER_REQUIRE_REDIS=1.
    let Some(url) = limiter_testkit::redis::standalone_url() else {
        return;
    };
    let policies = trace_policies_in(&limiter_testkit::redis::namespace("fleet"));
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(redis_store(&url).await));
    }
    let mut outboxes: Vec<Arc<dyn Outbox>> = Vec::new();
    for _ in 0..2 {
        let store = redis_store(&url).await;
        outboxes.push(Arc::new(
            RedisOutbox::new(&store, policies.namespace()).unwrap(),
        ));
    }
    fleet_delivers_each_notice_once(Fleet {
        backend: "redis",
        policies,
        stores,
        outboxes,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_limiters_and_two_workers_on_one_memory_store() {
    let store = Arc::new(MemoryStore::default());
    let stores: Vec<Arc<dyn Store>> = (0..4)
        .map(|_| Arc::clone(&store) as Arc<dyn Store>)
        .collect();
    let outboxes: Vec<Arc<dyn Outbox>> =
        (0..2).map(|_| store.outbox() as Arc<dyn Outbox>).collect();
    fleet_delivers_each_notice_once(Fleet {
        backend: "memory",
        policies: trace_policies(),
        stores,
        outboxes,
    })
    .await;
}
