//! The in-process store against governor's keyed limiter, measured in the same run.
//!
//! - `one_limit/{hot_key,100k_keys}`: one GCRA limit; ours (`evaluate_sync`, and the async
//!   `Store::evaluate` polled once) against `governor::RateLimiter::check_key`.
//! - `default_decision`: the five limits of an authenticated request under the default policies
//!   (plan sustained, burst, daily, role, IP burst) in one atomic batch, against five governor
//!   keyed checks with the same rates; and `ours_limiter_check`, the whole `Limiter::check` of
//!   that request (resolution, keys, store, decision) against the same five governor checks.
//! - `threads_8/{hot_key,100k_keys}`: 8 threads deciding at once on one key, or each walking
//!   the 100k keys in its own order; one iteration is one decision per thread, so the reported
//!   throughput is decisions per second across the 8. Both sides read the real clock (ours
//!   `SystemClock`, governor its default quanta clock) under a limit no run exhausts.
//! - Before the timings (only under `cargo bench`), a counting global allocator reports heap
//!   allocations per warm decision and bytes of memory per tracked key at 1M keys, for ours
//!   and governor.
//!
//! In the single-thread groups time is injected and advances at a pace every limit admits, for
//! both sides, so every iteration is an admitted request that updates state.
//!
//! Run: `cargo bench -p limiter-benches --bench memory -- --warm-up-time 1 --measurement-time 3`

// The counting allocator below is the only unsafe code in the workspace: a `GlobalAlloc` impl
// is unsafe by definition, and it only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use governor::DefaultKeyedRateLimiter;
use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use limiter_core::{
    Batch, Check, Clock, EvalOptions, Key, Limit, LimitStatus, Limiter, ManualClock, Micros,
    PolicySet, Rate, Request, Resolution, Store, SubjectKind, SystemClock, Unit,
};
use limiter_memory::{MemoryConfig, MemoryStore};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

fn size(layout: Layout) -> u64 {
    u64::try_from(layout.size()).unwrap_or(u64::MAX)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(size(layout), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(size(layout), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(size(layout), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(size(layout), Ordering::Relaxed);
        LIVE_BYTES.fetch_add(
            u64::try_from(new_size).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// 2026-11-26T00:00:00Z.
const START: Micros = 1_795_651_200_000_000;

/// Ours for benches: sweeps off, so that what is timed is the decision alone (governor does
/// no collection either unless asked).
fn store(capacity: u64) -> MemoryStore {
    MemoryStore::new(
        MemoryConfig::default()
            .with_capacity(capacity)
            .with_sweep_interval(None),
    )
    .expect("valid config")
}

/// The next index of a round-robin over `len` items.
fn next(i: &mut usize, len: usize) -> usize {
    *i = (*i + 1) % len;
    *i
}

type Keyed<K> = RateLimiter<
    K,
    DashMapStateStore<K>,
    FakeRelativeClock,
    NoOpMiddleware<<FakeRelativeClock as governor::clock::Clock>::Instant>,
>;

fn keyed<K: Clone + std::hash::Hash + Eq>(limit: &Limit, clock: &FakeRelativeClock) -> Keyed<K> {
    RateLimiter::dashmap_with_clock(quota(limit), clock.clone())
}

/// The governor quota of a limit's rate: the same burst and emission interval as our GCRA.
fn quota(limit: &Limit) -> Quota {
    let rate = limit.rate();
    let n = rate.limit();
    let interval = Duration::from_micros(rate.period().micros().div_ceil(n));
    let burst = NonZeroU32::new(u32::try_from(n).expect("bench limits fit u32")).expect("n > 0");
    Quota::with_period(interval)
        .expect("non-zero interval")
        .allow_burst(burst)
}

fn gcra(limit: u64, unit: Unit) -> Limit {
    Limit::gcra(Rate::per(limit, unit).expect("valid rate"))
}

fn ip_key(i: u32) -> Key {
    let ip = Ipv4Addr::from(0x0A00_0000 + i);
    Key::new("limiter", "ip_burst", SubjectKind::Ip, &ip.to_string())
}

fn one(key: Key, limit: &Limit) -> Batch {
    Batch::new(vec![Check::new("ip_burst", key, limit.clone(), 1)]).expect("one check")
}

/// An authenticated request that five limits of `PolicySet::default()` apply to.
fn default_request() -> Request {
    Request::new()
        .tenant("acme")
        .plan("professional")
        .user("alice")
        .role("admin")
        .ip(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)))
}

/// A `Limiter` with the default policies on a store of ours, on a manual clock.
fn default_limiter() -> (Limiter, ManualClock) {
    let clock = ManualClock::new(START);
    let limiter = Limiter::builder(PolicySet::default(), store(1_000_000))
        .clock(clock.clone())
        .build();
    (limiter, clock)
}

/// The five checks of [`default_request`] under `PolicySet::default()`.
fn default_decision() -> Batch {
    match PolicySet::default().resolve(&default_request()) {
        Ok(Resolution::Limits(checks)) => {
            assert_eq!(
                checks.len(),
                5,
                "plan sustained, burst, daily, role, IP burst"
            );
            Batch::new(checks).expect("distinct keys")
        }
        other => panic!("the default policies should limit this request: {other:?}"),
    }
}

/// Polls a future that never waits (the memory store's) to completion, with no runtime.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn bench_one_limit(c: &mut Criterion) {
    // 1000/second; time advances 1 ms per request, the emission interval: always admitted.
    let limit = gcra(1_000, Unit::Second);
    let step = Duration::from_millis(1);
    let mut group = c.benchmark_group("one_limit");
    group.throughput(Throughput::Elements(1));

    for n in [1u32, 100_000] {
        let name = if n == 1 { "hot_key" } else { "100k_keys" };
        let keys: Vec<Key> = (0..n).map(ip_key).collect();
        let batches: Vec<Batch> = keys.iter().map(|k| one(k.clone(), &limit)).collect();
        let ours = store(1_000_000);
        let mut out = Vec::with_capacity(1);
        let mut now = START;
        for b in &batches {
            ours.evaluate_sync(b, now, &mut out).expect("answer");
        }
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("ours_sync", name), |b| {
            b.iter(|| {
                now += 1_000;
                let batch = &batches[next(&mut i, batches.len())];
                black_box(ours.evaluate_sync(batch, now, &mut out).expect("answer"))
            })
        });
        group.bench_function(BenchmarkId::new("ours_async", name), |b| {
            b.iter(|| {
                now += 1_000;
                let batch = &batches[next(&mut i, batches.len())];
                let outcome = ready(ours.evaluate(batch, &EvalOptions::at(now)));
                black_box(outcome.expect("answer").allowed)
            })
        });

        let clock = FakeRelativeClock::default();
        let theirs: Keyed<Key> = keyed(&limit, &clock);
        for k in &keys {
            let _ = theirs.check_key(k);
        }
        group.bench_function(BenchmarkId::new("governor_keyed", name), |b| {
            b.iter(|| {
                clock.advance(step);
                black_box(theirs.check_key(&keys[next(&mut i, keys.len())]).is_ok())
            })
        });
    }
    group.finish();
}

fn bench_default_decision(c: &mut Criterion) {
    let batch = default_decision();
    // Every 5 s: slower than every limit's refill (the strictest, 20000/day, is one per
    // 4.32 s), so all five admit on both sides.
    let step_micros: Micros = 5_000_000;
    let mut group = c.benchmark_group("default_decision");
    group.throughput(Throughput::Elements(1));

    let ours = store(1_000_000);
    let mut out = Vec::with_capacity(batch.len());
    let mut now = START;
    group.bench_function("ours_sync_5_limits_atomic", |b| {
        b.iter(|| {
            now += step_micros;
            black_box(ours.evaluate_sync(&batch, now, &mut out).expect("answer"))
        })
    });
    group.bench_function("ours_async_5_limits_atomic", |b| {
        b.iter(|| {
            now += step_micros;
            let outcome = ready(ours.evaluate(&batch, &EvalOptions::at(now)));
            black_box(outcome.expect("answer").allowed)
        })
    });
    // The whole engine: resolution, keys, the store, the decision.
    let (limiter, limiter_clock) = default_limiter();
    let request = default_request();
    group.bench_function("ours_limiter_check", |b| {
        b.iter(|| {
            limiter_clock.advance(Duration::from_micros(step_micros));
            black_box(
                ready(limiter.check(&request))
                    .expect("decided")
                    .is_allowed(),
            )
        })
    });

    let clock = FakeRelativeClock::default();
    let theirs: Vec<(Keyed<Key>, Key)> = batch
        .checks()
        .iter()
        .map(|c| (keyed(&c.limit, &clock), c.key.clone()))
        .collect();
    group.bench_function("governor_keyed_5_checks", |b| {
        b.iter(|| {
            clock.advance(Duration::from_micros(step_micros));
            let mut all = true;
            for (limiter, key) in &theirs {
                all &= limiter.check_key(key).is_ok();
            }
            black_box(all)
        })
    });
    group.finish();
}

/// Decisions per thread of the multi-threaded group.
const THREADS: u64 = 8;

/// Runs `decide(thread, j)` for `j in 0..iters` on each of [`THREADS`] threads at once and
/// returns the wall time: one criterion iteration is one decision per thread.
fn on_threads(iters: u64, decide: impl Fn(u64, u64) + Sync) -> Duration {
    let decide = &decide;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for j in 0..iters {
                    decide(t, j);
                }
            });
        }
    });
    start.elapsed()
}

fn bench_threads(c: &mut Criterion) {
    // A limit no run exhausts, so that both sides admit and update state every time.
    let limit = gcra(1_000_000_000, Unit::Hour);
    let mut group = c.benchmark_group("threads_8");
    group.throughput(Throughput::Elements(THREADS));
    for n in [1u32, 100_000] {
        let name = if n == 1 { "hot_key" } else { "100k_keys" };
        let keys: Vec<Key> = (0..n).map(ip_key).collect();
        let batches: Vec<Batch> = keys.iter().map(|k| one(k.clone(), &limit)).collect();
        let len = u64::from(n);
        // Each thread walks the keys in its own order (a stride prime to 100k).
        let pick = move |t: u64, j: u64| {
            usize::try_from((t * 12_289 + j * 7_919) % len).expect("an index")
        };

        let ours = store(1_000_000);
        let mut out = Vec::new();
        for b in &batches {
            ours.evaluate_sync(b, SystemClock.now(), &mut out)
                .expect("answer");
        }
        group.bench_function(BenchmarkId::new("ours_sync", name), |b| {
            b.iter_custom(|iters| {
                on_threads(iters, |t, j| {
                    // One status vector per call here; warm callers reuse theirs.
                    thread_local! {
                        static OUT: std::cell::RefCell<Vec<LimitStatus>> =
                            const { std::cell::RefCell::new(Vec::new()) };
                    }
                    OUT.with_borrow_mut(|out| {
                        let batch = &batches[pick(t, j)];
                        black_box(
                            ours.evaluate_sync(batch, SystemClock.now(), out)
                                .expect("answer"),
                        )
                    });
                })
            })
        });

        let theirs: DefaultKeyedRateLimiter<Key> = RateLimiter::keyed(quota(&limit));
        for k in &keys {
            let _ = theirs.check_key(k);
        }
        group.bench_function(BenchmarkId::new("governor_keyed", name), |b| {
            b.iter_custom(|iters| {
                on_threads(iters, |t, j| {
                    black_box(theirs.check_key(&keys[pick(t, j)]).is_ok());
                })
            })
        });
    }
    group.finish();
}

/// Average heap allocations per call of `f` over `n` warm calls.
fn allocations_per_call(n: u32, mut f: impl FnMut()) -> f64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..n {
        f();
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    (after - before) as f64 / f64::from(n)
}

fn report_allocations() {
    const CALLS: u32 = 100_000;
    let limit = gcra(1_000, Unit::Second);
    let hot = one(ip_key(0), &limit);
    let five = default_decision();
    let ours = store(1_000_000);
    let mut out: Vec<LimitStatus> = Vec::with_capacity(8);
    let mut now = START;
    // Warm: every key held.
    ours.evaluate_sync(&hot, now, &mut out).expect("answer");
    ours.evaluate_sync(&five, now, &mut out).expect("answer");

    let sync_one = allocations_per_call(CALLS, || {
        now += 5_000_000;
        black_box(ours.evaluate_sync(&hot, now, &mut out).expect("answer"));
    });
    let sync_five = allocations_per_call(CALLS, || {
        now += 5_000_000;
        black_box(ours.evaluate_sync(&five, now, &mut out).expect("answer"));
    });
    let async_five = allocations_per_call(CALLS, || {
        now += 5_000_000;
        black_box(ready(ours.evaluate(&five, &EvalOptions::at(now))).expect("answer"));
    });
    let (limiter, limiter_clock) = default_limiter();
    let request = default_request();
    ready(limiter.check(&request)).expect("decided");
    let check_five = allocations_per_call(CALLS, || {
        limiter_clock.advance(Duration::from_secs(5));
        black_box(ready(limiter.check(&request)).expect("decided"));
    });

    let clock = FakeRelativeClock::default();
    let theirs: Keyed<Key> = keyed(&limit, &clock);
    let key = ip_key(0);
    let _ = theirs.check_key(&key);
    let governor_one = allocations_per_call(CALLS, || {
        clock.advance(Duration::from_millis(1));
        black_box(theirs.check_key(&key).is_ok());
    });

    println!("heap allocations per warm decision (average over {CALLS} calls):");
    println!("  ours evaluate_sync, 1 limit:              {sync_one:.3}");
    println!("  ours evaluate_sync, 5 limits (default):   {sync_five:.3}");
    println!("  ours Store::evaluate (async), 5 limits:   {async_five:.3}");
    println!("  ours Limiter::check, default decision:    {check_five:.3}");
    println!("  governor keyed check_key, 1 limit:        {governor_one:.3}");
}

/// Live heap bytes after `fill` minus before, per key.
fn bytes_per_key(
    keys: u32,
    fill: impl FnOnce() -> Box<dyn std::any::Any>,
) -> (f64, Box<dyn std::any::Any>) {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let kept = fill();
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    (after.saturating_sub(before) as f64 / f64::from(keys), kept)
}

fn report_memory() {
    const KEYS: u32 = 1_000_000;
    let limit = gcra(10, Unit::Minute);
    let now = START;

    let (ours, kept) = bytes_per_key(KEYS, || {
        let store = store(u64::from(KEYS));
        let mut out = Vec::with_capacity(1);
        for i in 0..KEYS {
            // The batch (and its key) is dropped after the call: only the store's copy stays.
            store
                .evaluate_sync(&one(ip_key(i), &limit), now, &mut out)
                .expect("answer");
        }
        assert_eq!(store.stats().keys, u64::from(KEYS));
        Box::new(store)
    });
    drop(kept);

    let (theirs_key, kept) = bytes_per_key(KEYS, || {
        let limiter: Keyed<Key> = keyed(&limit, &FakeRelativeClock::default());
        for i in 0..KEYS {
            let _ = limiter.check_key(&ip_key(i));
        }
        assert_eq!(limiter.len(), usize::try_from(KEYS).expect("fits"));
        Box::new(limiter)
    });
    drop(kept);

    let (theirs_u64, kept) = bytes_per_key(KEYS, || {
        let limiter: Keyed<u64> = keyed(&limit, &FakeRelativeClock::default());
        for i in 0..u64::from(KEYS) {
            let _ = limiter.check_key(&i);
        }
        Box::new(limiter)
    });
    drop(kept);

    let sample = ip_key(123_456);
    println!(
        "bytes of heap per tracked key at {KEYS} keys (keys like {:?}, {} bytes of text):",
        sample.as_str(),
        sample.as_str().len()
    );
    println!("  ours (MemoryStore, table):       {ours:.1}");
    println!("  governor keyed, same Key:        {theirs_key:.1}");
    println!("  governor keyed, u64 keys:        {theirs_u64:.1}");
}

fn main() {
    // The reports take seconds (1M keys): only for a real run, not under `cargo test --benches`
    // (no `--bench`) nor when profiling one bench (`--profile-time`).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        report_allocations();
        report_memory();
    }
    let mut c = Criterion::default().configure_from_args();
    bench_one_limit(&mut c);
    bench_default_decision(&mut c);
    bench_threads(&mut c);
    c.final_summary();
}
