//! Scenarios that several backends' tests run alike on their own stores.

use std::time::Duration;

use limiter_core::api_key::{KeyAdmin, KeyRejection, NewKey};
use limiter_core::{Clock, Limiter, ManualClock, Request};

/// The report's API-key case, on two limiters that share one limit store and one key store,
/// each verifying keys through a cache of the default bound (1 s) on `clock`:
///
/// - a key flagged bypass makes 1,000 rapid requests on the free plan: none is denied, and
///   the first limiter's limit store is never called (`first_limit_calls` counts its calls);
/// - the flag cleared (through `admin`), within the bound the 11th request in a minute is
///   denied by `plan_burst`, and the second limiter sees the same count;
/// - revoked, the key is refused on the second limiter within the bound.
///
/// `admin` manages the shared key store; both limiters resolve the default policies.
pub async fn bypass_key_case(
    first: &Limiter,
    first_limit_calls: impl Fn() -> u64,
    second: &Limiter,
    admin: &KeyAdmin,
    clock: &ManualClock,
) {
    let now = clock.now();
    let issued = admin
        .create(NewKey::new("acme", "partner").bypass(true), now)
        .await
        .expect("create");
    let secret = issued.secret.expose();
    let req = Request::new()
        .plan("free")
        .ip("203.0.113.9".parse().expect("ip"));

    // A bypass key: 1,000 rapid requests on the free plan, none denied, no limit-store call.
    for _ in 0..1_000 {
        let d = first.check_key(secret, req.clone()).await.expect("check");
        assert!(d.is_allowed());
    }
    assert_eq!(first_limit_calls(), 0, "a bypass key reads no limit store");

    // The flag cleared: within a bound the process sees it, and the 11th in a minute is denied.
    admin
        .set_bypass("acme", &issued.record.id, false, now)
        .await
        .expect("set bypass");
    clock.advance(Duration::from_secs(1));
    for i in 0..10 {
        let d = first.check_key(secret, req.clone()).await.expect("check");
        assert!(d.is_allowed(), "request {}", i + 1);
    }
    let d = first.check_key(secret, req.clone()).await.expect("check");
    assert!(!d.is_allowed(), "the 11th within a minute");
    assert_eq!(&*d.binding().expect("binding").policy, "plan_burst");

    // The other process shares the count, and sees the revocation within the bound.
    let d = second.check_key(secret, req.clone()).await.expect("check");
    assert!(
        !d.is_allowed() && d.key_rejection().is_none(),
        "the count is shared"
    );
    admin
        .revoke("acme", &issued.record.id, now + 1_000_000)
        .await
        .expect("revoke");
    clock.advance(Duration::from_secs(1));
    let d = second.check_key(secret, req).await.expect("check");
    assert_eq!(d.key_rejection(), Some(KeyRejection::Revoked));
}
