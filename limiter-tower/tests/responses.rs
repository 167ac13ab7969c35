//! The layer's own answers on a real server: a closed fail mode, refunds of the service's
//! failures, and requests it cannot fully read.

use std::net::SocketAddr;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use limiter_core::{
    Batch, BatchOutcome, Error, ErrorKind, EvalOptions, FailMode, Key, Limiter, ManualClock,
    PolicySet, Request, Store,
};
use limiter_tower::LimiterLayer;

/// A store that is down.
#[derive(Debug)]
struct DownStore;

impl std::fmt::Display for DownStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("down store")
    }
}

#[async_trait]
impl Store for DownStore {
    async fn evaluate(&self, _: &Batch, _: &EvalOptions) -> Result<BatchOutcome, Error> {
        Err(Error::store(
            self,
            ErrorKind::Temporary,
            "connection refused",
            None,
        ))
    }

    async fn reset(&self, _: &Key) -> Result<(), Error> {
        Ok(())
    }
}

fn acme(_: &http::request::Parts, r: Request) -> Request {
    r.tenant("acme").plan("free").user("ann")
}

/// Serves `app` on a free port; with the peer address in the extensions if `connect_info`.
async fn serve(app: Router, connect_info: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let served = if connect_info {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        } else {
            axum::serve(listener, app).await
        };
        served.expect("server");
    });
    addr
}

async fn fetch(addr: SocketAddr, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .get(format!("http://{addr}{path}").parse().expect("uri"))
        .await
        .expect("a response");
    let (head, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn limiter(store: impl Store + 'static) -> limiter_core::LimiterBuilder {
    Limiter::builder(PolicySet::default(), store).clock(ManualClock::new(1_790_000_000_000_000))
}

fn memory() -> limiter_memory::MemoryStore {
    limiter_memory::MemoryStore::new(limiter_memory::MemoryConfig::new()).expect("store")
}

#[tokio::test]
async fn a_closed_fail_mode_answers_503_with_retry_after() {
    let limiter = limiter(DownStore).fail_mode(FailMode::Closed).build();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(LimiterLayer::new(limiter).identify(acme));
    let (status, headers, body) = fetch(serve(app, true).await, "/").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["status"], 503);
    assert_eq!(body["retry_after"], 1);
}

#[tokio::test]
async fn an_open_fail_mode_lets_requests_through() {
    let limiter = limiter(DownStore).build();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(LimiterLayer::new(limiter).identify(acme));
    let (status, _, body) = fetch(serve(app, true).await, "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
}

async fn failing_service(refund: bool) -> Vec<StatusCode> {
    let layer = LimiterLayer::new(limiter(memory()).build())
        .identify(acme)
        .refund_server_errors(refund);
    let app = Router::new()
        .route(
            "/",
            get(|| async { (StatusCode::BAD_GATEWAY, "upstream down") }),
        )
        .layer(layer);
    let addr = serve(app, true).await;
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(fetch(addr, "/").await.0);
    }
    statuses
}

#[tokio::test]
async fn server_errors_are_refunded_when_asked() {
    // The free plan's burst is 10: without refunds the 11th failure is a 429.
    let kept = failing_service(false).await;
    assert_eq!(kept[10], StatusCode::TOO_MANY_REQUESTS);
    let refunded = failing_service(true).await;
    assert!(
        refunded.iter().all(|s| *s == StatusCode::BAD_GATEWAY),
        "{refunded:?}"
    );
}

#[tokio::test]
async fn a_request_without_a_peer_address_is_never_a_500() {
    // No ConnectInfo: the layer knows no client IP; an anonymous request is still decided.
    let layer = LimiterLayer::new(limiter(memory()).build());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let (status, _, body) = fetch(serve(app, false).await, "/").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn admitted_headers_can_be_turned_off() {
    let layer = LimiterLayer::new(limiter(memory()).build())
        .identify(acme)
        .admitted_headers(false);
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let (status, headers, _) = fetch(serve(app, true).await, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("ratelimit").is_none());
}
