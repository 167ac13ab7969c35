//! The request log: one JSON line per request through a real server, in the documented
//! format.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use limiter_core::request_log::{RecordedDecision, RequestRecord};
use limiter_core::{Limiter, ManualClock, PolicySet, Request};
use limiter_tower::{LimiterLayer, Recorder, RecorderLayer, record_of};

#[tokio::test]
async fn every_request_is_one_line_with_the_route_template_and_the_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("requests.jsonl");
    let file = tokio::fs::File::create(&path).await.expect("log file");
    let recorder = Recorder::spawn(file, 100);
    let store =
        limiter_memory::MemoryStore::new(limiter_memory::MemoryConfig::new()).expect("store");
    let limiter = Limiter::builder(PolicySet::default(), store)
        .clock(ManualClock::new(1_790_000_000_000_000))
        .build();
    let identify = |_: &http::request::Parts, r: Request| {
        r.tenant("acme").plan("free").user("ann").role("admin")
    };
    let app = Router::new()
        .route("/v1/items/{id}", get(|| async { "item" }))
        .layer(LimiterLayer::new(limiter).identify(identify))
        .layer(RecorderLayer::new(recorder.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server");
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    for i in 0..11 {
        let uri = format!("http://{addr}/v1/items/{i}").parse().expect("uri");
        client.get(uri).await.expect("a response");
    }
    recorder.flush().await;
    let log = std::fs::read_to_string(&path).expect("log");
    let records: Vec<RequestRecord> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("one record a line"))
        .collect();
    assert_eq!(records.len(), 11);
    let first = &records[0];
    assert_eq!(first.tenant.as_deref(), Some("acme"));
    assert_eq!(first.plan.as_deref(), Some("free"));
    assert_eq!(first.roles, ["admin"]);
    assert_eq!(first.ip, Some("127.0.0.1".parse().expect("ip")));
    assert_eq!(first.method.as_deref(), Some("GET"));
    // The template, not the path: ids stay out of the log.
    assert_eq!(first.route.as_deref(), Some("/v1/items/{id}"));
    assert_eq!(first.decision, Some(RecordedDecision::Allowed));
    assert_eq!(records[10].decision, Some(RecordedDecision::Denied));
    assert_eq!(records[10].policy.as_deref(), Some("plan_burst"));
    // What replay rebuilds: the same identity, the route as the path.
    let request = first.to_request();
    assert_eq!(request.tenant.as_deref(), Some("acme"));
    assert_eq!(request.path.as_deref(), Some("/v1/items/{id}"));
    // The field names `limiter replay` reads.
    let raw: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("line")).expect("json");
    let mut keys: Vec<&str> = raw
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bypass_key",
            "cost",
            "decision",
            "ip",
            "key_id",
            "method",
            "plan",
            "policy",
            "roles",
            "route",
            "scope",
            "staff",
            "superuser",
            "tenant",
            "ts",
            "user"
        ]
    );
    assert_eq!(recorder.dropped(), 0);
}

#[tokio::test]
async fn a_full_channel_drops_and_counts_instead_of_waiting() {
    // A writer that never finishes writing: the channel fills up.
    let (stuck, _keep) = tokio::io::duplex(1);
    let recorder = Recorder::spawn(stuck, 1);
    let decided = limiter_tower::Decided {
        request: Request::new(),
        decision: None,
    };
    let record = record_of(&decided, 0, 32, 64);
    assert_eq!(record.decision, Some(RecordedDecision::Unavailable));
    for _ in 0..100 {
        recorder.record(&record);
    }
    assert!(recorder.dropped() > 0);
}

#[test]
fn the_client_is_recorded_as_its_network() {
    let ip = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().expect("ip");
    let decided = limiter_tower::Decided {
        request: Request::new().ip(ip),
        decision: None,
    };
    let record = record_of(&decided, 0, 32, 64);
    assert_eq!(record.ip, Some("2001:db8:1:2::".parse().expect("ip")));
}
