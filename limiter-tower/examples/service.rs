//! A small multi-tenant API on axum behind the limiter, with API keys.
//!
//! ```text
//! cargo run -p limiter-tower --example service
//! ```
//!
//! The SQLite store (`limiter-example.db`, or `LIMITER_SQLITE_PATH`) by default; Redis when
//! `LIMITER_REDIS_URL` is set. Listens on `LIMITER_ADDR` (default `127.0.0.1:3000`), creates
//! one API key per demo tenant at start and prints them, and writes the request log (JSON
//! Lines) to `LIMITER_LOG` (default `requests.jsonl`).

#[path = "service/app.rs"]
mod app;

use std::net::SocketAddr;
use std::sync::Arc;

use limiter_core::api_key::{KeyAdmin, KeyFormat, KeyStore, NewKey};
use limiter_core::{Clock, Limiter, PolicySet, Store, TrustedProxies};
use limiter_tower::Recorder;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let policies = PolicySet::default();
    let (store, keys): (Arc<dyn Store>, Arc<dyn KeyStore>) =
        match std::env::var("LIMITER_REDIS_URL") {
            Ok(url) => {
                let store =
                    limiter_redis::RedisStore::connect(limiter_redis::RedisConfig::new(url))
                        .await?;
                let keys = limiter_redis::RedisKeyStore::new(store.clone(), policies.namespace());
                (Arc::new(store), Arc::new(keys))
            }
            Err(_) => {
                let path = std::env::var("LIMITER_SQLITE_PATH")
                    .unwrap_or_else(|_| "limiter-example.db".into());
                let store = Arc::new(
                    limiter_sqlite::SqliteStore::open(&path, limiter_sqlite::SqliteConfig::new())
                        .await?,
                );
                let keys = limiter_sqlite::SqliteKeyStore::new(store.clone());
                (store, Arc::new(keys))
            }
        };
    let format = KeyFormat::new("demo_live")?;
    // Verified keys are cached in process for a second: no key-store call per request, and a
    // revoked key stops working within that second everywhere.
    let cached =
        limiter_memory::CachedKeyStore::new(keys.clone(), limiter_memory::KeyCacheConfig::new());
    let limiter = Limiter::builder(policies, store)
        .keys(format.clone(), cached)
        .build();
    let admin = KeyAdmin::new(format, keys);
    let now = limiter_core::SystemClock.now();
    println!("API keys (try: curl -i -H 'Authorization: Bearer KEY' http://ADDR/v1/items/1):");
    for (tenant, bypass) in [
        ("acme", false),
        ("globex", false),
        ("ops", false),
        ("partner", true),
    ] {
        let issued = admin
            .create(NewKey::new(tenant, "demo").bypass(bypass), now)
            .await?;
        println!("  {tenant:8} {}", issued.secret.expose());
    }
    let log_path = std::env::var("LIMITER_LOG").unwrap_or_else(|_| "requests.jsonl".into());
    let log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .await?;
    let recorder = Recorder::spawn(log, 10_000);
    let app = app::router(
        limiter,
        TrustedProxies::none(),
        app::demo_tenants(),
        Some(recorder),
    );
    let addr = std::env::var("LIMITER_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
