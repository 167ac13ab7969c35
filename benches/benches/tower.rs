//! Requests per second of the example service's trivial endpoint (`GET /`), with and without
//! `LimiterLayer`, over real HTTP on loopback, from the same client in the same run.
//!
//! - `tower/plain`: the example's routes without the layer: the baseline.
//! - `tower/memory`: the example's router (API key verification through the in-process cache
//!   of verified keys, client IP, one decision of five limits, headers on the response) on
//!   the memory store.
//! - `tower/sqlite`: the same on the SQLite store (a file in a temporary directory, WAL).
//!
//! Each request carries an API key of a tenant on a plan so large that every request is
//! admitted: the bench measures the admitted path. One keep-alive connection, one request at a
//! time. Before criterion runs, an interleaved report (rounds of each server in turn, so that
//! the machine's drift hits them alike) prints the requests per second and the ratios to the
//! baseline (targets: memory >= 0.8x, SQLite >= 0.5x).
//!
//! Run: `cargo bench -p limiter-benches --bench tower -- --warm-up-time 1 --measurement-time 3`

#[allow(dead_code, unreachable_pub)]
#[path = "../../limiter-tower/examples/service/app.rs"]
mod app;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use bytes::Bytes;
use criterion::Criterion;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use limiter_core::api_key::{KeyAdmin, KeyFormat, KeyStore, NewKey};
use limiter_core::policy::{Config, PlanConfig};
use limiter_core::{Limiter, PolicySet, Rate, Store, TrustedProxies, Unit};
use limiter_memory::{CachedKeyStore, KeyCacheConfig, MemoryKeyStore, MemoryStore};
use limiter_sqlite::{SqliteConfig, SqliteKeyStore, SqliteStore};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// The default policies plus a plan `bench` that never denies, and an IP burst to match:
/// everything else (roles, scopes, the five checks of a request) as in production.
fn policies() -> PolicySet {
    let mut config = Config::default();
    // The most a rate admits: one request per microsecond, at most MAX_LIMIT per period.
    let huge = |unit| {
        let micros = match unit {
            Unit::Minute => 60_000_000,
            _ => limiter_core::MAX_LIMIT,
        };
        Rate::per(micros, unit).expect("rate")
    };
    config.plans.insert(
        "bench".into(),
        PlanConfig::new(huge(Unit::Hour), huge(Unit::Minute), huge(Unit::Day)),
    );
    config.ip_burst = huge(Unit::Minute);
    PolicySet::from_config(&config).expect("policies")
}

/// The example router over `store` and `keys`, and a key of tenant `bench`.
async fn limited(store: Arc<dyn Store>, keys: Arc<dyn KeyStore>) -> (Router, String) {
    let format = KeyFormat::new("bench_live").expect("prefix");
    // Verified keys cached in process, as a deployment runs them (1 s revocation bound).
    let cached = CachedKeyStore::new(keys.clone(), KeyCacheConfig::new());
    let limiter = Limiter::builder(policies(), store)
        .keys(format.clone(), cached)
        .build();
    let now = limiter_core::Clock::now(&limiter_core::SystemClock);
    let key = KeyAdmin::new(format, keys)
        .create(NewKey::new("bench", "bench"), now)
        .await
        .expect("key")
        .secret
        .expose()
        .to_owned();
    let mut tenants = app::demo_tenants();
    tenants.insert(
        "bench".into(),
        app::Tenant {
            plan: "bench".into(),
            staff: false,
        },
    );
    (
        app::router(limiter, TrustedProxies::none(), tenants, None),
        key,
    )
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server");
    });
    addr
}

/// One server under test: where it listens and the `authorization` header to send.
struct Target {
    name: &'static str,
    uri: http::Uri,
    authorization: String,
}

async fn request(client: &HttpClient, target: &Target) {
    let request = http::Request::get(target.uri.clone())
        .header("authorization", &target.authorization)
        .body(Empty::new())
        .expect("request");
    let response = client.request(request).await.expect("a response");
    assert_eq!(response.status(), 200, "{}", target.name);
    let body = response.into_body().collect().await.expect("body");
    std::hint::black_box(body);
}

fn report(rt: &tokio::runtime::Runtime, client: &HttpClient, targets: &[Target]) {
    const ROUNDS: usize = 7;
    const REQUESTS: u32 = 2_000;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    rt.block_on(async {
        for _ in 0..ROUNDS {
            for (i, target) in targets.iter().enumerate() {
                let start = Instant::now();
                for _ in 0..REQUESTS {
                    request(client, target).await;
                }
                rates[i].push(f64::from(REQUESTS) / start.elapsed().as_secs_f64());
            }
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = rates.iter_mut().map(median).collect();
    println!(
        "requests per second, GET / over loopback, one connection, median of {ROUNDS} interleaved rounds of {REQUESTS}:"
    );
    for (target, rps) in targets.iter().zip(&medians) {
        println!(
            "  {:8} {rps:>9.0} req/s   {:.2}x plain",
            target.name,
            rps / medians[0]
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let targets = rt.block_on(async {
        let plain = serve(app::routes()).await;
        let (memory_router, memory_key) = limited(
            Arc::new(MemoryStore::default()),
            Arc::new(MemoryKeyStore::new()),
        )
        .await;
        let memory = serve(memory_router).await;
        let sqlite_store = Arc::new(
            SqliteStore::open(dir.path().join("bench.db"), SqliteConfig::new())
                .await
                .expect("open"),
        );
        let (sqlite_router, sqlite_key) = limited(
            sqlite_store.clone(),
            Arc::new(SqliteKeyStore::new(sqlite_store)),
        )
        .await;
        let sqlite = serve(sqlite_router).await;
        let uri = |addr: SocketAddr| format!("http://{addr}/").parse().expect("uri");
        vec![
            Target {
                name: "plain",
                uri: uri(plain),
                // The same header everywhere: the baseline parses it too.
                authorization: format!("Bearer {memory_key}"),
            },
            Target {
                name: "memory",
                uri: uri(memory),
                authorization: format!("Bearer {memory_key}"),
            },
            Target {
                name: "sqlite",
                uri: uri(sqlite),
                authorization: format!("Bearer {sqlite_key}"),
            },
        ]
    });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        report(&rt, &client, &targets);
    }
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("tower");
    for target in &targets {
        group.bench_function(target.name, |b| {
            b.to_async(&rt).iter(|| request(&client, target));
        });
    }
    group.finish();
    c.final_summary();
}
