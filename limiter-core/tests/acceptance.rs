//! Acceptance tests in the words of the gap report: each test is one of its requirements.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use limiter_core::policy::Config;
use limiter_core::{HeaderStyle, Limiter, ManualClock, PolicySet, Request};
use limiter_testkit::{CountingStore, ModelStore};

/// 2026-11-26T10:00:00Z.
const T0: u64 = 1_795_687_200_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IPs are valid")
}

fn limiter(policies: PolicySet) -> (Limiter, ManualClock) {
    let clock = ManualClock::new(T0);
    let limiter = Limiter::builder(policies, ModelStore::new())
        .clock(clock.clone())
        .build();
    (limiter, clock)
}

fn utc(s: &str) -> u64 {
    let ts: jiff::Timestamp = s.parse().expect("test instants are valid");
    u64::try_from(ts.as_microsecond()).expect("after the epoch")
}

#[tokio::test]
async fn staff_and_superusers_are_never_throttled_and_never_counted() {
    let store = Arc::new(CountingStore::new(ModelStore::new()));
    let limiter = Limiter::builder(PolicySet::default(), store.clone())
        .clock(ManualClock::new(T0))
        .build();
    let staff = Request::new()
        .tenant("acme")
        .plan("free")
        .user("sam")
        .staff(true)
        .ip(ip("198.51.100.1"));
    let superuser = Request::new()
        .tenant("acme")
        .plan("free")
        .user("root")
        .superuser(true)
        .ip(ip("198.51.100.2"));
    for req in [&staff, &superuser] {
        for _ in 0..100 {
            let d = limiter.check(req).await.expect("valid request");
            assert!(d.is_allowed());
            assert!(d.bypass().is_some());
        }
    }
    assert_eq!(store.calls(), 0, "a bypass must not touch the store");
    // The same user without the flag is counted: the counting store does see calls.
    let plain = Request::new().tenant("acme").plan("free").user("sam");
    limiter.check(&plain).await.expect("valid request");
    assert_eq!(store.calls(), 1);
}

#[tokio::test]
async fn a_free_user_is_denied_at_the_eleventh_request_within_a_minute() {
    let (limiter, clock) = limiter(PolicySet::default());
    let req = Request::new()
        .tenant("acme")
        .plan("free")
        .user("ann")
        .ip(ip("198.51.100.7"));
    for i in 1..=10 {
        let d = limiter.check(&req).await.expect("valid request");
        assert!(d.is_allowed(), "request {i} should be allowed");
        clock.advance(Duration::from_millis(100));
    }
    let d = limiter.check(&req).await.expect("valid request");
    assert!(
        !d.is_allowed(),
        "the 11th request within a minute must be denied"
    );
    let binding = d.binding().expect("a denial names its policy");
    assert_eq!(&*binding.policy, "plan_burst");
    assert_eq!(binding.rate.to_string(), "10/minute");
    // 10/minute refills one request every 6 s; 1 s has passed since the first.
    assert_eq!(d.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(
        d.message().as_deref(),
        Some("Request was throttled. Expected available in 5 seconds.")
    );
    let headers = d.headers(HeaderStyle::All);
    assert!(
        headers.contains(&("Retry-After", "5".to_string())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("X-RateLimit-Limit", "10".to_string())),
        "{headers:?}"
    );
}

async fn sustained_rate(policies: PolicySet, plan: &str) -> String {
    let (limiter, _) = limiter(policies);
    let req = Request::new()
        .tenant("t")
        .plan(plan)
        .user("u")
        .ip(ip("192.0.2.1"));
    let d = limiter.check(&req).await.expect("valid request");
    d.statuses()
        .iter()
        .find(|s| &*s.policy == "plan_sustained")
        .expect("plan_sustained applies to every authenticated request")
        .rate
        .to_string()
}

#[tokio::test]
async fn professional_sustained_comes_from_defaults_file_and_environment() {
    assert_eq!(
        sustained_rate(PolicySet::default(), "professional").await,
        "2000/hour"
    );

    let path = std::env::temp_dir().join(format!("limiter-acceptance-{}.toml", std::process::id()));
    std::fs::write(&path, "[plans.professional]\nsustained = \"3000/hour\"\n")
        .expect("temp dir is writable");
    let text = std::fs::read_to_string(&path).expect("just written");
    std::fs::remove_file(&path).ok();
    let from_file = Config::from_toml_str(&text).expect("valid config");
    let policies = PolicySet::from_config(&from_file).expect("valid config");
    assert_eq!(
        sustained_rate(policies.clone(), "professional").await,
        "3000/hour"
    );
    // Naming one value leaves every other default in place.
    assert_eq!(sustained_rate(policies, "starter").await, "500/hour");

    let mut from_env = Config::default();
    from_env
        .apply_env([(
            "LIMITER_PLANS__PROFESSIONAL__SUSTAINED".to_string(),
            "2500/hour".to_string(),
        )])
        .expect("valid override");
    let policies = PolicySet::from_config(&from_env).expect("valid config");
    assert_eq!(sustained_rate(policies, "professional").await, "2500/hour");
}

async fn daily_quota_resets_at_local_midnight(morning: &str, midnight: &str) {
    let config = Config::from_toml_str(
        r#"
        time_zone = "Europe/Paris"
        [plans.metered]
        sustained = "1000/hour"
        burst = "1000/minute"
        daily = "5/day"
        "#,
    )
    .expect("valid config");
    let (limiter, clock) = limiter(PolicySet::from_config(&config).expect("valid config"));
    clock.set(utc(morning));
    let req = Request::new().tenant("acme").plan("metered").user("ann");
    for _ in 0..5 {
        assert!(limiter.check(&req).await.expect("valid").is_allowed());
    }
    let denied = limiter.check(&req).await.expect("valid");
    assert!(!denied.is_allowed());
    assert_eq!(&*denied.binding().expect("binding").policy, "plan_daily");
    let reset = utc(midnight);
    assert_eq!(
        denied.retry_after(),
        Some(Duration::from_micros(reset - utc(morning)))
    );
    clock.set(reset - 1);
    let d = limiter.check(&req).await.expect("valid");
    assert!(!d.is_allowed(), "one microsecond before local midnight");
    clock.set(reset);
    let d = limiter.check(&req).await.expect("valid");
    assert!(d.is_allowed(), "at local midnight");
}

#[tokio::test]
async fn daily_quota_resets_exactly_at_midnight_on_a_23_hour_day() {
    // Paris springs forward on 2026-03-29: that day's midnight is 22:00 UTC.
    daily_quota_resets_at_local_midnight("2026-03-29T08:00:00Z", "2026-03-29T22:00:00Z").await;
}

#[tokio::test]
async fn daily_quota_resets_exactly_at_midnight_on_a_25_hour_day() {
    // Paris falls back on 2026-10-25: that day's midnight is 23:00 UTC.
    daily_quota_resets_at_local_midnight("2026-10-25T08:00:00Z", "2026-10-25T23:00:00Z").await;
}

#[tokio::test]
async fn one_tenant_exhausting_its_quota_leaves_another_untouched() {
    let (limiter, _) = limiter(PolicySet::default());
    let a = Request::new()
        .tenant("tenant-a")
        .plan("free")
        .user("a1")
        .ip(ip("192.0.2.10"));
    let b = Request::new()
        .tenant("tenant-b")
        .plan("free")
        .user("b1")
        .ip(ip("192.0.2.20"));
    for _ in 0..10 {
        assert!(limiter.check(&a).await.expect("valid").is_allowed());
    }
    assert!(!limiter.check(&a).await.expect("valid").is_allowed());
    let peek = limiter.peek(&b).await.expect("valid");
    let burst = peek
        .statuses()
        .iter()
        .find(|s| &*s.policy == "plan_burst")
        .expect("plan_burst applies");
    assert_eq!(
        burst.status.remaining, 9,
        "tenant B's burst is whole (10, less this request)"
    );
    for _ in 0..10 {
        assert!(limiter.check(&b).await.expect("valid").is_allowed());
    }
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_ip() {
    let (limiter, _) = limiter(PolicySet::default());
    let first = Request::new().ip(ip("203.0.113.1"));
    let second = Request::new().ip(ip("203.0.113.2"));
    // anon: 30/hour per IP.
    for _ in 0..30 {
        assert!(limiter.check(&first).await.expect("valid").is_allowed());
    }
    let denied = limiter.check(&first).await.expect("valid");
    assert!(!denied.is_allowed());
    assert_eq!(&*denied.binding().expect("binding").policy, "anon");
    let other = limiter.check(&second).await.expect("valid");
    assert!(other.is_allowed(), "another IP has its own budget");
}

#[tokio::test]
async fn a_denied_request_charges_no_limit() {
    let (limiter, _) = limiter(PolicySet::default());
    let req = Request::new()
        .tenant("acme")
        .plan("free")
        .user("ann")
        .ip(ip("192.0.2.99"));
    for _ in 0..10 {
        limiter.check(&req).await.expect("valid");
    }
    let before = limiter.peek(&req).await.expect("valid");
    for _ in 0..50 {
        assert!(!limiter.check(&req).await.expect("valid").is_allowed());
    }
    let after = limiter.peek(&req).await.expect("valid");
    assert_eq!(
        before.statuses(),
        after.statuses(),
        "denials must not move any counter"
    );
}
