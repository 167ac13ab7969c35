//! The example service's API: a small multi-tenant API behind the limiter. Shared by the
//! example binary, the end-to-end tests and the bench, so that they exercise the same service.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use limiter_core::{Limiter, Request, TrustedProxies};
use limiter_tower::{KeySource, LimiterLayer, Recorder, RecorderLayer};
use serde_json::{Value, json};

/// What the service knows of a tenant: its plan and whether its members are staff.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    /// The plan (`free`, `starter`, `professional`, `enterprise`).
    pub(crate) plan: String,
    /// Whether the tenant is the operator itself (its calls are never limited).
    pub(crate) staff: bool,
}

/// The tenants of the service, by name.
pub(crate) type Tenants = HashMap<String, Tenant>;

/// The demo tenants: `acme` on the free plan, `globex` on professional, `ops` (staff).
pub(crate) fn demo_tenants() -> Tenants {
    let tenant = |plan: &str, staff| Tenant {
        plan: plan.into(),
        staff,
    };
    HashMap::from([
        ("acme".to_owned(), tenant("free", false)),
        ("globex".to_owned(), tenant("professional", false)),
        ("ops".to_owned(), tenant("enterprise", true)),
    ])
}

/// The API: `GET /` (a trivial endpoint), `GET /v1/items/{id}` and `GET /v1/whoami`, behind
/// the limiter (API keys in `Authorization: Bearer`, client IP through `proxies`), and the
/// recorder when one is given.
pub(crate) fn router(
    limiter: Limiter,
    proxies: TrustedProxies,
    tenants: Tenants,
    recorder: Option<Recorder>,
) -> Router {
    let tenants = Arc::new(tenants);
    let identify = move |_: &http::request::Parts, request: Request| {
        // The key named the tenant; the service's own table says its plan and standing.
        match request.tenant.as_deref().and_then(|t| tenants.get(t)) {
            Some(t) => {
                let (plan, staff) = (t.plan.clone(), t.staff);
                request.plan(plan).staff(staff)
            }
            None => request,
        }
    };
    let layer = LimiterLayer::new(limiter)
        .identify(identify)
        .api_keys(KeySource::Bearer)
        .trusted_proxies(proxies)
        .legacy_headers(true);
    let app = routes().layer(layer);
    match recorder {
        Some(recorder) => app.layer(RecorderLayer::new(recorder)),
        None => app,
    }
}

/// The routes alone, without the limiter: the baseline of the bench.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/v1/items/{id}", get(item))
        .route("/v1/whoami", get(|| async { Json(json!({"ok": true})) }))
}

async fn item(Path(id): Path<u64>) -> Json<Value> {
    Json(json!({ "id": id, "name": format!("item {id}") }))
}
