//! Policy resolution, alone and as part of a full decision, with 3 and with 300 configured
//! plans: lookups are indexed, so the 300-plan figures should match the 3-plan ones.
//!
//! Run: `cargo bench -p limiter-benches --bench resolution`. Compare `resolve/300 plans` with
//! `resolve/3 plans`, and `decide/300 plans` with `decide/3 plans` (same group, same run).
//!
//! Each configuration sees the same stream of requests, spread over every plan, one tenant and
//! one client IP per request slot; the manual clock moves a minute per decision, so every
//! decision is admitted and both configurations do the same store work.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_main};
use limiter_core::policy::{Config, PlanConfig};
use limiter_core::{Limiter, ManualClock, PolicySet, Rate, Request};
use limiter_testkit::ModelStore;

/// Distinct tenants (and IPs) the requests cycle through.
const SUBJECTS: usize = 1024;

/// A configuration with exactly `plans` plans: the default free, starter and professional,
/// and `plans - 3` more.
fn config(plans: usize) -> Config {
    let mut config = Config::default();
    config.plans.remove("enterprise");
    let rate = |s: String| -> Rate { s.parse().expect("valid rate") };
    for i in 0..plans.saturating_sub(3) {
        config.plans.insert(
            format!("plan-{i:03}"),
            PlanConfig::new(
                rate(format!("{}/hour", 3_000 + i)),
                rate(format!("{}/minute", 150 + i)),
                rate(format!("{}/day", 30_000 + i)),
            ),
        );
    }
    assert_eq!(config.plans.len(), plans);
    config
}

/// One request per slot, the plans taken in turn, so that every plan is used.
fn requests(config: &Config) -> Vec<Request> {
    let plans: Vec<&String> = config.plans.keys().collect();
    (0..SUBJECTS)
        .map(|i| {
            let octets = u32::try_from(i).expect("small").to_be_bytes();
            let ip = IpAddr::V4(Ipv4Addr::new(10, octets[1], octets[2], octets[3]));
            Request::new()
                .tenant(format!("tenant-{i}"))
                .plan(plans[i % plans.len()].as_str())
                .user(format!("user-{i}"))
                .role(if i % 2 == 0 { "member" } else { "admin" })
                .ip(ip)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("resolution");
    for plans in [3, 300] {
        let config = config(plans);
        let policies = PolicySet::from_config(&config).expect("valid policies");
        let reqs = requests(&config);
        let label = format!("{plans} plans");

        let next = AtomicUsize::new(0);
        group.bench_function(BenchmarkId::new("resolve", &label), |b| {
            b.iter(|| {
                let i = next.fetch_add(1, Ordering::Relaxed) % reqs.len();
                black_box(policies.resolve(black_box(&reqs[i])))
            });
        });

        let clock = ManualClock::new(1_790_000_000_000_000);
        let limiter = Limiter::builder(policies.clone(), ModelStore::new())
            .clock(clock.clone())
            .build();
        let next = AtomicUsize::new(0);
        group.bench_function(BenchmarkId::new("decide", &label), |b| {
            b.to_async(&runtime).iter(|| {
                let i = next.fetch_add(1, Ordering::Relaxed) % reqs.len();
                clock.advance(Duration::from_secs(60));
                let (limiter, req) = (&limiter, &reqs[i]);
                async move {
                    let decision = limiter.check(black_box(req)).await.expect("decides");
                    debug_assert!(decision.is_allowed());
                    black_box(decision)
                }
            });
        });
    }
    group.finish();
}

/// The group, written out rather than through `criterion_group!` so that it carries docs.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
