//! A tonic server behind the layer and a tonic client: a limited call fails with
//! `RESOURCE_EXHAUSTED`, in gRPC's own status headers.

use limiter_core::{Limiter, ManualClock, PolicySet, Request};
use limiter_tower::LimiterLayer;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn a_limited_grpc_call_gets_resource_exhausted() {
    let store =
        limiter_memory::MemoryStore::new(limiter_memory::MemoryConfig::new()).expect("store");
    let limiter = Limiter::builder(PolicySet::default(), store)
        .clock(ManualClock::new(1_790_000_000_000_000))
        .build();
    // The service's authentication would say who calls; here every call is acme's, on the
    // free plan (a burst of 10 a minute).
    let layer = LimiterLayer::new(limiter)
        .identify(|_: &http::request::Parts, r: Request| r.tenant("acme").plan("free").user("ann"));
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .expect("server");
    });
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = HealthClient::new(channel);
    for i in 1..=10 {
        let reply = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        assert!(reply.is_ok(), "call {i}: {reply:?}");
        let reply = reply.expect("checked");
        assert!(reply.metadata().get("ratelimit").is_some());
    }
    let status = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect_err("the 11th call is limited");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "Request was throttled. Expected available in 6 seconds."
    );
    assert_eq!(
        status
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("6")
    );
}
