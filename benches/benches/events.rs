//! The cost of recording events, measured in the same run as the same decisions without it,
//! and the throughput of the persistent event logs.
//!
//! - `check_admitted/{plain,recorded}`: `Limiter::check` on the memory store under the default
//!   policies, round-robin over 10 000 enterprise tenants while a stepping clock advances
//!   20 ms per decision: every decision is admitted and charges five limits. `recorded` hands
//!   events to a recorder drained into a `MemoryEventLog` by a spawned task
//!   (`EventDrain::run_every`, a 100 ms tick, the default buffer); admitted traffic
//!   records only the crossings (a restore candidate on each tenant's first daily request).
//!   Target: recorded >= 0.95x plain.
//! - `check_denied/{plain,recorded}`: one free-plan tenant flooding at a frozen instant: every
//!   decision is a denial with one event (plan_burst). With the default `Overflow::Drop`, what
//!   the drain cannot keep up with is dropped and counted; the drop count is printed after the
//!   group. Target: recorded >= 0.7x plain.
//! - In the interleaved run, the flood also records into a log that keeps nothing: what
//!   recording costs the request path itself, apart from the sink's work (which, on a machine
//!   with few cores, competes with the requests for CPU).
//! - `sink/sqlite`: `SqliteEventLog::append` of batches of 512 events, in events per second
//!   (one transaction per batch, WAL, `synchronous=NORMAL`, a file in a temporary directory).
//! - `sink/redis`: `RedisEventLog::append` of batches of 512 events on a private redis-server,
//!   skipped if none can be started.
//! - Before the timings (only under `cargo bench`), a counting global allocator reports heap
//!   allocations per warm `Limiter::check` with no recorder and metrics off (expected: 0), and
//!   an interleaved run gives the ratios the targets are about: 10 rounds alternating blocks of
//!   50 000 decisions of each variant (the first round of each discarded as warm-up), so that
//!   load from elsewhere on the machine falls on both alike. Criterion's figures follow.
//!
//! Run: `cargo bench -p limiter-benches --bench events -- --warm-up-time 1 --measurement-time 5`

// The counting allocator below is unsafe by definition; it only forwards to the system
// allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use limiter_core::event::{
    EventLog, EventPage, EventQuery, EventRecorder, LimitEvent, Pruned, QuotaUsage, RecorderConfig,
    RecorderStats, Retention, TenantCount, TenantHits,
};
use limiter_core::{Calendar, Clock, Error, Limiter, ManualClock, Micros, PolicySet, Request};
use limiter_memory::{MemoryConfig, MemoryEventLog, MemoryStore};
use limiter_redis::{RedisConfig, RedisEventLog, RedisStore};
use limiter_sqlite::SqliteEventLog;
use limiter_testkit::conformance::events::random_events;
use limiter_testkit::redis::RedisServer;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Whether allocations are counted: only while the allocation report runs, so that the timed
/// runs do not share one contended counter between the request path and the drain's thread.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count_allocation() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// 2026-11-26T00:00:00Z.
const START: Micros = 1_795_651_200_000_000;
const TENANTS: usize = 10_000;
const BATCH: usize = 512;

/// A clock that moves 20 ms each time it is read: each tenant of the rotation is asked every
/// 200 s, a pace every default enterprise limit admits.
#[derive(Debug, Default)]
struct Stepping(AtomicU64);

impl Clock for Stepping {
    fn now(&self) -> Micros {
        START + self.0.fetch_add(20_000, Ordering::Relaxed)
    }
}

fn store() -> MemoryStore {
    MemoryStore::new(MemoryConfig::default().with_sweep_interval(None)).expect("valid config")
}

fn enterprise_tenants() -> Vec<Request> {
    (0..TENANTS)
        .map(|i| {
            Request::new()
                .tenant(format!("tenant-{i}"))
                .plan("enterprise")
                .user(format!("owner-{i}"))
                .role("owner")
                .ip([
                    10,
                    1,
                    u8::try_from(i / 256).unwrap_or(0),
                    u8::try_from(i % 256).unwrap_or(0),
                ]
                .into())
        })
        .collect()
}

/// A limiter, recording into a memory log drained by a task on `rt` if `recorded`.
fn limiter(
    rt: &tokio::runtime::Runtime,
    clock: impl Clock + 'static,
    recorded: bool,
) -> (Limiter, Option<EventRecorder>) {
    let log: Option<Arc<dyn EventLog>> =
        recorded.then(|| Arc::new(MemoryEventLog::new(Calendar::utc())) as Arc<dyn EventLog>);
    limiter_into(rt, clock, log)
}

/// A limiter, recording into `log` (drained by a task on `rt`) if there is one.
fn limiter_into(
    rt: &tokio::runtime::Runtime,
    clock: impl Clock + 'static,
    log: Option<Arc<dyn EventLog>>,
) -> (Limiter, Option<EventRecorder>) {
    let builder = Limiter::builder(PolicySet::default(), store()).clock(clock);
    let Some(log) = log else {
        return (builder.build(), None);
    };
    let (recorder, drain) = EventRecorder::new(log, RecorderConfig::default());
    // Whole batches as they fill, the rest every 100 ms: one wake-up per batch in a flood.
    rt.spawn(drain.run_every(|| tokio::time::sleep(Duration::from_millis(100))));
    (builder.events(recorder.clone()).build(), Some(recorder))
}

fn bench_admitted(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let requests = Arc::new(enterprise_tenants());
    let mut group = c.benchmark_group("check_admitted");
    group.throughput(Throughput::Elements(1));
    for recorded in [false, true] {
        let (limiter, recorder) = limiter(rt, Stepping::default(), recorded);
        let name = if recorded { "recorded" } else { "plain" };
        let next = AtomicUsize::new(0);
        let denied = AtomicU64::new(0);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(rt).iter(|| async {
                let i = next.fetch_add(1, Ordering::Relaxed) % TENANTS;
                let decision = limiter.check(&requests[i]).await.expect("decided");
                denied.fetch_add(u64::from(!decision.is_allowed()), Ordering::Relaxed);
                black_box(decision)
            });
        });
        print_stats(
            name,
            denied.load(Ordering::Relaxed),
            recorder.map(|r| r.stats()),
        );
    }
    group.finish();
}

fn bench_denied(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let flood = Request::new().tenant("flood").plan("free").user("mallory");
    let mut group = c.benchmark_group("check_denied");
    group.throughput(Throughput::Elements(1));
    for recorded in [false, true] {
        let (limiter, recorder) = limiter(rt, ManualClock::new(START), recorded);
        // Spend the burst first: from then on every decision is denied.
        rt.block_on(async { while limiter.check(&flood).await.expect("decided").is_allowed() {} });
        let name = if recorded { "recorded" } else { "plain" };
        let admitted = AtomicU64::new(0);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.to_async(rt).iter(|| async {
                let decision = limiter.check(&flood).await.expect("decided");
                admitted.fetch_add(u64::from(decision.is_allowed()), Ordering::Relaxed);
                black_box(decision)
            });
        });
        assert_eq!(
            admitted.load(Ordering::Relaxed),
            0,
            "every decision is a denial"
        );
        print_stats(name, 0, recorder.map(|r| r.stats()));
    }
    group.finish();
}

fn print_stats(name: &str, denied: u64, stats: Option<RecorderStats>) {
    match stats {
        Some(s) => println!(
            "  {name}: {denied} denied; events recorded {}, dropped {} ({:.1}% of offered), written {}",
            s.recorded,
            s.dropped,
            100.0 * s.dropped as f64 / (s.recorded + s.dropped).max(1) as f64,
            s.written
        ),
        None => println!("  {name}: {denied} denied"),
    }
}

fn bench_sink(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, log: &dyn EventLog) {
    let mut events: Vec<LimitEvent> = random_events(11, BATCH * 8);
    events.sort_by_key(|e| e.at);
    let batches: Vec<&[LimitEvent]> = events.chunks(BATCH).collect();
    let next = AtomicUsize::new(0);
    let mut group = c.benchmark_group("sink");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.to_async(rt).iter(|| async {
            let batch = batches[next.fetch_add(1, Ordering::Relaxed) % batches.len()];
            log.append(batch).await.expect("appended");
        });
    });
    group.finish();
}

fn report_allocations(rt: &tokio::runtime::Runtime) {
    const CALLS: u32 = 100_000;
    let (limiter, _) = limiter(rt, ManualClock::new(START), false);
    let request = Request::new()
        .tenant("acme")
        .plan("enterprise")
        .user("ann")
        .role("owner");
    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    local.block_on(async {
        // Warm: the keys exist.
        limiter.check(&request).await.expect("decided");
        COUNTING.store(true, Ordering::Relaxed);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..CALLS {
            black_box(limiter.check(&request).await.expect("decided"));
        }
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        COUNTING.store(false, Ordering::Relaxed);
        println!(
            "\nheap allocations per warm Limiter::check (memory store, no recorder, metrics off): {:.3}\n",
            (after - before) as f64 / f64::from(CALLS)
        );
    });
}

/// Seconds spent on `decisions` checks of `request(i)` on `limiter`.
fn timed_block(
    rt: &tokio::runtime::Runtime,
    limiter: &Limiter,
    start: usize,
    decisions: usize,
    request: &(dyn Fn(usize) -> Request + Sync),
) -> f64 {
    let requests: Vec<Request> = (start..start + decisions).map(request).collect();
    let began = std::time::Instant::now();
    rt.block_on(async {
        for r in &requests {
            black_box(limiter.check(r).await.expect("decided"));
        }
    });
    began.elapsed().as_secs_f64()
}

/// Recorded against plain throughput over interleaved blocks; prints the ratio and the drops.
fn report_ratio(
    rt: &tokio::runtime::Runtime,
    name: &str,
    pair: [(Limiter, Option<EventRecorder>); 2],
    request: &(dyn Fn(usize) -> Request + Sync),
) {
    const ROUNDS: usize = 10;
    const BLOCK: usize = 50_000;
    let mut seconds = [0.0f64; 2];
    for round in 0..ROUNDS {
        for (variant, (limiter, _)) in pair.iter().enumerate() {
            let t = timed_block(rt, limiter, round * BLOCK, BLOCK, request);
            if round > 0 {
                seconds[variant] += t;
            }
        }
    }
    let per_second = |s: f64| ((ROUNDS - 1) * BLOCK) as f64 / s;
    let stats = pair[1]
        .1
        .as_ref()
        .map(EventRecorder::stats)
        .unwrap_or_default();
    println!(
        "{name}: plain {:.0}/s, recorded {:.0}/s, ratio {:.3}; events recorded {}, dropped {}, written {}",
        per_second(seconds[0]),
        per_second(seconds[1]),
        seconds[0] / seconds[1],
        stats.recorded,
        stats.dropped,
        stats.written
    );
}

fn report_ratios(rt: &tokio::runtime::Runtime) {
    let tenants = enterprise_tenants();
    let admitted = |i: usize| tenants[i % TENANTS].clone();
    report_ratio(
        rt,
        "all admitted",
        [
            limiter(rt, Stepping::default(), false),
            limiter(rt, Stepping::default(), true),
        ],
        &admitted,
    );
    let flood = Request::new().tenant("flood").plan("free").user("mallory");
    let sinks: [(&str, Arc<dyn EventLog>); 2] = [
        (
            "all denied, memory log",
            Arc::new(MemoryEventLog::new(Calendar::utc())),
        ),
        // What the request path alone costs: the drain's work on a sink that keeps nothing.
        ("all denied, discarding log", Arc::new(Discard)),
    ];
    for (name, sink) in sinks {
        let pair = [
            limiter_into(rt, ManualClock::new(START), None),
            limiter_into(rt, ManualClock::new(START), Some(sink)),
        ];
        for (limiter, _) in &pair {
            rt.block_on(async {
                while limiter.check(&flood).await.expect("decided").is_allowed() {}
            });
        }
        report_ratio(rt, name, pair, &|_| flood.clone());
    }
    println!();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") {
        report_allocations(&rt);
        report_ratios(&rt);
    }
    let mut c = Criterion::default().configure_from_args();
    bench_admitted(&mut c, &rt);
    bench_denied(&mut c, &rt);
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = rt
        .block_on(SqliteEventLog::open(
            dir.path().join("events.db"),
            Calendar::utc(),
            Duration::from_secs(10),
        ))
        .expect("open");
    bench_sink(&mut c, &rt, "sqlite", &sqlite);
    match RedisServer::start() {
        Ok(server) => {
            let store = rt
                .block_on(RedisStore::connect(RedisConfig::new(server.url())))
                .expect("connect");
            let redis = RedisEventLog::new(&store, "bench-events", Calendar::utc())
                .expect("valid prefix")
                .with_max_len(100_000);
            bench_sink(&mut c, &rt, "redis", &redis);
        }
        Err(e) => eprintln!("\n==== SKIPPED sink/redis: cannot start redis-server: {e} ====\n"),
    }
    c.final_summary();
}

/// An event log that keeps nothing: isolates what recording costs the request path.
#[derive(Debug)]
struct Discard;

#[async_trait::async_trait]
impl EventLog for Discard {
    async fn append(&self, _: &[LimitEvent]) -> Result<(), Error> {
        Ok(())
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
