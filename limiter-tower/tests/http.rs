//! The report's acceptance cases, end to end: the example service on a real port, a real
//! HTTP client.

mod support;

use limiter_core::TrustedProxies;
use support::{Server, memory_store, start};

fn trust_loopback() -> TrustedProxies {
    TrustedProxies::new(["127.0.0.0/8".parse().expect("net")])
}

async fn server() -> Server {
    start(memory_store(), TrustedProxies::none(), None).await
}

#[tokio::test]
async fn the_free_plan_is_limited_at_the_eleventh_request_with_headers_and_body() {
    let s = server().await;
    for i in 1..=10 {
        let reply = s.get_with_key("/v1/items/7", &s.keys.acme).await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.body);
        assert!(
            reply
                .header("ratelimit-policy")
                .is_some_and(|p| p.contains("\"plan_burst\";q=10;w=60")),
            "{:?}",
            reply.headers
        );
        assert!(reply.header("ratelimit").is_some());
        assert!(reply.header("retry-after").is_none());
    }
    let denied = s.get_with_key("/v1/items/7", &s.keys.acme).await;
    assert_eq!(denied.status, 429);
    assert_eq!(
        denied.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(denied.header("retry-after"), Some("6"));
    assert_eq!(denied.header("x-ratelimit-limit"), Some("10"));
    assert_eq!(denied.header("x-ratelimit-remaining"), Some("0"));
    let ratelimit = denied.header("ratelimit").expect("RateLimit");
    assert!(ratelimit.contains("\"plan_burst\";r=0;t="), "{ratelimit}");
    let body = denied.json();
    assert_eq!(body["status"], 429);
    assert_eq!(
        body["detail"],
        "Request was throttled. Expected available in 6 seconds."
    );
    assert_eq!(body["limit"]["policy"], "plan_burst");
    assert_eq!(body["limit"]["kind"], "burst");
    assert_eq!(body["limit"]["quota"], 10);
    assert_eq!(body["retry_after"], 6);
    assert_eq!(body["upgrade"]["plan"], "starter");
}

#[tokio::test]
async fn staff_are_never_limited() {
    let s = server().await;
    for i in 1..=40 {
        let reply = s.get_with_key("/v1/items/1", &s.keys.ops).await;
        assert_eq!(reply.status, 200, "request {i}");
        // A bypass is not counted: no budget to report.
        assert!(reply.header("ratelimit").is_none());
    }
}

#[tokio::test]
async fn a_bypass_key_is_never_limited() {
    let s = server().await;
    for i in 1..=40 {
        let reply = s.get_with_key("/v1/items/1", &s.keys.partner).await;
        assert_eq!(reply.status, 200, "request {i}");
        assert!(reply.header("ratelimit-policy").is_none());
    }
}

#[tokio::test]
async fn a_refused_key_is_answered_401_with_a_problem() {
    let s = server().await;
    let reply = s.get_with_key("/", "demo_test_not-a-key").await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.json()["detail"], "Invalid API key: malformed.");
}

/// `anon` allows 30 requests an hour per client network.
#[tokio::test]
async fn anonymous_clients_are_limited_per_network() {
    let s = start(memory_store(), trust_loopback(), None).await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for i in 1..=30 {
        let reply = s.get("/", &from("203.0.113.1")).await;
        assert_eq!(reply.status, 200, "request {i}");
    }
    let denied = s.get("/", &from("203.0.113.1")).await;
    assert_eq!(denied.status, 429);
    assert_eq!(denied.json()["limit"]["kind"], "anonymous");
    // Another network has its own budget.
    assert_eq!(s.get("/", &from("203.0.113.2")).await.status, 200);
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    // Only 10.0.0.0/8 is trusted; the test client connects from 127.0.0.1.
    let proxies = TrustedProxies::new(["10.0.0.0/8".parse().expect("net")]);
    let s = start(memory_store(), proxies, None).await;
    for i in 1..=30 {
        let forged = format!("198.51.100.{i}");
        let reply = s.get("/", &[("x-forwarded-for", &forged)]).await;
        assert_eq!(reply.status, 200, "request {i}");
    }
    // A fresh forged address each time, and still one client: the peer.
    let reply = s.get("/", &[("x-forwarded-for", "198.51.100.99")]).await;
    assert_eq!(reply.status, 429);
    let reply = s.get("/", &[("x-forwarded-for", "10.0.0.1")]).await;
    assert_eq!(reply.status, 429);
}

#[tokio::test]
async fn the_same_header_through_a_trusted_proxy_is_honoured() {
    let s = start(memory_store(), trust_loopback(), None).await;
    // 40 clients behind the proxy, each with a budget of its own.
    for i in 1..=40 {
        let client = format!("6.6.6.6, 198.51.100.{i}");
        let reply = s.get("/", &[("x-forwarded-for", &client)]).await;
        assert_eq!(reply.status, 200, "client {i}");
    }
}

#[tokio::test]
async fn a_hundred_addresses_of_one_ipv6_64_share_one_budget() {
    let s = start(memory_store(), trust_loopback(), None).await;
    let mut admitted = 0;
    for i in 0..100u32 {
        let ip = format!("2001:db8:1:2:{:x}:{:x}::1", i * 7 + 1, i * 13 + 5);
        let reply = s.get("/", &[("x-forwarded-for", &ip)]).await;
        if reply.status == 200 {
            admitted += 1;
        } else {
            assert_eq!(reply.status, 429);
        }
    }
    assert_eq!(admitted, 30, "anon admits 30 an hour per /64");
    // The next /64 is another network.
    let reply = s.get("/", &[("x-forwarded-for", "2001:db8:1:3::1")]).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_clients_admit_exactly_the_limit() {
    let s = std::sync::Arc::new(server().await);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let s = std::sync::Arc::clone(&s);
            tokio::spawn(async move { s.get_with_key("/v1/whoami", &s.keys.acme).await.status })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        let status = task.await.expect("task");
        if status == 200 {
            admitted += 1;
        } else {
            assert_eq!(status, 429);
        }
    }
    assert_eq!(admitted, 10, "the free plan's burst");
}
