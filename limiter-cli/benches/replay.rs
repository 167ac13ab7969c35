//! Replay throughput: a log of 1M lines (`LIMITER_BENCH_LINES` to change it) replayed under a
//! configuration and a baseline, against the in-process `Limiter::check` rate measured in the
//! same run on the same requests.
//!
//! Both are reported in requests per second; the ratio is printed at the end (target: replay
//! with a baseline at no less than half the rate of one `check`). `replay_alone` (one
//! configuration) and `parse_only` (reading the lines into requests) show where the time goes:
//!
//! ```text
//! cargo bench -p limiter-cli --bench replay -- 'limiter_check|replay_with_baseline'
//! ```

use std::future::Future;
use std::hint::black_box;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_main};
use limiter_cli::replay::{Replay, ReplayOptions};
use limiter_core::policy::Config;
use limiter_core::request_log::RequestRecord;
use limiter_core::{Decision, Limiter, ManualClock, PolicySet, Request};
use limiter_memory::{MemoryConfig, MemoryStore};

const T0: u64 = 1_795_687_200_000_000;

/// Each benchmark's total time and requests, for the ratio printed at the end.
static TOTALS: Mutex<[(Duration, u64); 2]> = Mutex::new([(Duration::ZERO, 0); 2]);

fn lines() -> usize {
    std::env::var("LIMITER_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A log of `n` requests: 500 tenants on three plans, 5000 users, 2000 client IPs, a tenth
/// anonymous, a fifth with a scope, about 2000 requests per second of log time.
fn workload(n: usize) -> (Vec<(u64, Request)>, Vec<u8>) {
    let mut state = 42u64;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % m
    };
    let plans = ["free", "starter", "professional"];
    let scopes = ["auth", "export", "user"];
    let mut requests = Vec::with_capacity(n);
    let mut log = Vec::with_capacity(n * 220);
    let mut ts = T0;
    let decision = Decision::bypassed(limiter_core::BypassReason::Staff);
    for _ in 0..n {
        ts += next(1000);
        let byte = |v: u64| u8::try_from(v).expect("below 256");
        let ip = std::net::IpAddr::from([10, 0, byte(next(8)), byte(next(250))]);
        let mut r = Request::new().ip(ip);
        if next(10) != 0 {
            let tenant = next(500);
            r = r
                .tenant(format!("tenant-{tenant}"))
                .plan(plans[usize::try_from(tenant % 3).expect("below 3")])
                .user(format!("user-{}", next(5000)));
            if next(4) == 0 {
                r = r.role("member");
            }
        }
        if next(5) == 0 {
            r = r.scope(scopes[usize::try_from(next(3)).expect("below 3")]);
        }
        let mut record = RequestRecord::new(&r, ts, &decision, Some("/api/items/{id}"));
        record.method = Some("GET".into());
        serde_json::to_writer(&mut log, &record).expect("a record serializes");
        log.push(b'\n');
        requests.push((ts, r));
    }
    (requests, log)
}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

fn policies(toml: &str) -> PolicySet {
    PolicySet::from_config(&Config::from_toml_str(toml).expect("valid")).expect("valid")
}

fn bench(c: &mut Criterion) {
    let n = lines();
    let (requests, log) = workload(n);
    let old = policies("");
    let new =
        policies("[plans.free]\nburst = \"6/minute\"\n[plans.starter]\nsustained = \"300/hour\"\n");
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("limiter_check", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let clock = ManualClock::new(T0);
                let store =
                    MemoryStore::new(MemoryConfig::new().with_capacity(4_000_000)).expect("valid");
                let limiter = Limiter::builder(new.clone(), store)
                    .clock(clock.clone())
                    .build();
                let start = Instant::now();
                for (ts, request) in &requests {
                    clock.set(*ts);
                    black_box(block_on(limiter.check(request)).is_ok());
                }
                // Dropping the store is part of the work, as it is of a replay's.
                drop(limiter);
                total += start.elapsed();
            }
            let mut t = TOTALS.lock().expect("not poisoned");
            t[0].0 += total;
            t[0].1 += iters * n as u64;
            total
        });
    });
    group.bench_function("replay_with_baseline", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut replay =
                    Replay::new(new.clone(), Some(old.clone()), ReplayOptions::default())
                        .expect("valid");
                let start = Instant::now();
                for (i, line) in log.split_inclusive(|&b| b == b'\n').enumerate() {
                    let _ = replay.line(i as u64 + 1, line);
                }
                black_box(replay.finish().requests);
                total += start.elapsed();
            }
            let mut t = TOTALS.lock().expect("not poisoned");
            t[1].0 += total;
            t[1].1 += iters * n as u64;
            total
        });
    });
    group.bench_function("replay_alone", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut replay =
                    Replay::new(new.clone(), None, ReplayOptions::default()).expect("valid");
                let start = Instant::now();
                for (i, line) in log.split_inclusive(|&b| b == b'\n').enumerate() {
                    let _ = replay.line(i as u64 + 1, line);
                }
                black_box(replay.finish().requests);
                total += start.elapsed();
            }
            total
        });
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| {
            for line in log.split_inclusive(|&b| b == b'\n') {
                let record: RequestRecord = serde_json::from_slice(line).expect("valid");
                black_box(record.into_request());
            }
        });
    });
    group.finish();
    let t = TOTALS.lock().expect("not poisoned");
    let rate = |(d, n): (Duration, u64)| n as f64 / d.as_secs_f64().max(f64::MIN_POSITIVE);
    let (check, replay) = (rate(t[0]), rate(t[1]));
    println!(
        "replay/ratio: Limiter::check {check:.0} req/s, replay with a baseline {replay:.0} \
         req/s, ratio {:.2}x (target >= 0.5x)",
        replay / check
    );
}

/// The group, written out rather than through `criterion_group!` so that it carries docs.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
