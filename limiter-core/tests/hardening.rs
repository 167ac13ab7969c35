//! Regression tests of the hardening issue: each test is named after the gap it closes, and
//! failed before the fix.

use limiter_core::{Decision, HeaderStyle, Limiter, ManualClock, PolicySet, Request};
use limiter_testkit::ModelStore;

const T0: u64 = 1_795_687_200_000_000;

fn limiter() -> Limiter {
    Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(ManualClock::new(T0))
        .build()
}

fn remaining(decision: &Decision, policy: &str) -> u64 {
    decision
        .statuses()
        .iter()
        .find(|s| &*s.policy == policy)
        .unwrap_or_else(|| panic!("no {policy} in {decision:?}"))
        .status
        .remaining
}

/// A denied decision charges nothing, so every limit reports what stands: after 10 requests on
/// the free plan the burst limit denies the 11th, and the sustained limit (100/hour) still has
/// 90, in its status and in the `RateLimit` header; a first request of cost 11, which the
/// burst limit can never admit, leaves an untouched sustained limit at 100.
#[tokio::test]
async fn figures_on_a_denial_report_what_stands() {
    let limiter = limiter();
    let ann = Request::new()
        .tenant("acme")
        .plan("free")
        .user("ann")
        .ip([192, 0, 2, 1].into());
    for _ in 0..10 {
        assert!(limiter.check(&ann).await.expect("decided").is_allowed());
    }
    let denied = limiter.check(&ann).await.expect("decided");
    assert!(!denied.is_allowed());
    assert_eq!(
        &*denied.binding().expect("a binding limit").policy,
        "plan_burst"
    );
    assert_eq!(remaining(&denied, "plan_sustained"), 90, "{denied:?}");
    assert_eq!(remaining(&denied, "plan_daily"), 490, "{denied:?}");
    let headers = denied.headers(HeaderStyle::All);
    let ratelimit = headers
        .iter()
        .find(|(name, _)| *name == "RateLimit")
        .map(|(_, value)| value.as_str())
        .expect("a RateLimit header");
    assert!(!ratelimit.contains("r=89"), "{ratelimit}");

    let big = Request::new()
        .tenant("other")
        .plan("free")
        .user("bob")
        .ip([192, 0, 2, 2].into())
        .cost(11);
    let impossible = limiter.check(&big).await.expect("decided");
    assert!(!impossible.is_allowed());
    assert_eq!(
        remaining(&impossible, "plan_sustained"),
        100,
        "{impossible:?}"
    );
    assert_eq!(remaining(&impossible, "plan_daily"), 500, "{impossible:?}");
}
