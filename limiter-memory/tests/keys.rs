//! The memory key store and the key cache: the key conformance suite, and the cache's bound.

use std::sync::Arc;
use std::time::Duration;

use limiter_core::api_key::{KeyAdmin, KeyFormat, KeyRejection, NewKey};
use limiter_core::{Limiter, ManualClock, PolicySet, Request};
use limiter_memory::{CachedKeyStore, KeyCacheConfig, MemoryKeyStore, MemoryStore};
use limiter_testkit::{CountingKeyStore, CountingStore};

const NOW: u64 = 1_790_000_000_000_000;

mod memory {
    async fn new_store() -> limiter_memory::MemoryKeyStore {
        limiter_memory::MemoryKeyStore::new()
    }
    limiter_testkit::key_store_suite!(new_store);
}

// The cache passes the same contracts: writes through it drop what they change.
mod cached {
    async fn new_store() -> limiter_memory::CachedKeyStore<limiter_memory::MemoryKeyStore> {
        let config = limiter_memory::KeyCacheConfig::new();
        limiter_memory::CachedKeyStore::new(limiter_memory::MemoryKeyStore::new(), config)
    }
    limiter_testkit::key_store_suite!(new_store);
}

type Shared = Arc<CountingKeyStore<Arc<MemoryKeyStore>>>;

/// A limiter whose keys are cached for `ttl` in front of `shared`, on `clock`.
fn limiter(shared: &Shared, ttl: Duration, clock: &ManualClock) -> Limiter {
    let cached = CachedKeyStore::new(shared.clone(), KeyCacheConfig::new().with_ttl(ttl))
        .with_clock(clock.clone());
    Limiter::builder(PolicySet::default(), MemoryStore::default())
        .clock(clock.clone())
        .keys(format(), cached)
        .build()
}

fn format() -> KeyFormat {
    KeyFormat::new("acme_live").unwrap()
}

fn shared() -> Shared {
    Arc::new(CountingKeyStore::new(Arc::new(MemoryKeyStore::new())))
}

fn admin(shared: &Shared) -> KeyAdmin {
    KeyAdmin::new(format(), shared.clone())
}

#[tokio::test]
async fn a_cached_key_is_verified_without_a_store_read_until_the_bound() {
    let (shared, clock) = (shared(), ManualClock::new(NOW));
    let limiter = limiter(&shared, Duration::from_secs(1), &clock);
    let issued = admin(&shared)
        .create(NewKey::new("acme", "ci"), NOW)
        .await
        .unwrap();
    for _ in 0..100 {
        assert!(
            limiter
                .verify_key(issued.secret.expose())
                .await
                .unwrap()
                .is_ok()
        );
    }
    assert_eq!(shared.lookups(), 1);
    clock.advance(Duration::from_millis(999));
    limiter
        .verify_key(issued.secret.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shared.lookups(), 1);
    clock.advance(Duration::from_millis(1));
    limiter
        .verify_key(issued.secret.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shared.lookups(), 2, "read again once the bound is reached");
}

#[tokio::test]
async fn unknown_keys_are_cached_too() {
    let (shared, clock) = (shared(), ManualClock::new(NOW));
    let limiter = limiter(&shared, Duration::from_secs(1), &clock);
    let unknown = format().generate().unwrap();
    for _ in 0..50 {
        let v = limiter.verify_key(unknown.expose()).await.unwrap();
        assert_eq!(v, Err(KeyRejection::Unknown));
    }
    assert_eq!(shared.lookups(), 1);
}

#[tokio::test]
async fn a_ttl_of_zero_reads_the_store_every_time() {
    let (shared, clock) = (shared(), ManualClock::new(NOW));
    let limiter = limiter(&shared, Duration::ZERO, &clock);
    let issued = admin(&shared)
        .create(NewKey::new("acme", "ci"), NOW)
        .await
        .unwrap();
    for _ in 0..10 {
        limiter
            .verify_key(issued.secret.expose())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(shared.lookups(), 10);
}

#[tokio::test]
async fn a_key_revoked_elsewhere_stops_working_within_the_bound() {
    let (shared, clock) = (shared(), ManualClock::new(NOW));
    let ttl = Duration::from_secs(1);
    let (here, there) = (limiter(&shared, ttl, &clock), limiter(&shared, ttl, &clock));
    let issued = admin(&shared)
        .create(NewKey::new("acme", "ci"), NOW)
        .await
        .unwrap();
    let secret = issued.secret.expose();
    assert!(there.verify_key(secret).await.unwrap().is_ok());
    assert!(here.verify_key(secret).await.unwrap().is_ok());
    admin(&shared)
        .revoke("acme", &issued.record.id, NOW)
        .await
        .unwrap();
    // Within the bound the other process may still accept it; at the bound it refuses.
    clock.advance(ttl);
    assert_eq!(
        there.verify_key(secret).await.unwrap(),
        Err(KeyRejection::Revoked)
    );
    assert_eq!(
        here.verify_key(secret).await.unwrap(),
        Err(KeyRejection::Revoked)
    );
}

#[tokio::test]
async fn a_key_revoked_through_the_cache_stops_at_once() {
    let (shared, clock) = (shared(), ManualClock::new(NOW));
    let cached = Arc::new(
        CachedKeyStore::new(
            shared.clone(),
            KeyCacheConfig::new().with_ttl(Duration::from_secs(60)),
        )
        .with_clock(clock.clone()),
    );
    let limiter = Limiter::builder(PolicySet::default(), MemoryStore::default())
        .clock(clock.clone())
        .keys(format(), cached.clone())
        .build();
    let admin = KeyAdmin::new(format(), cached);
    let issued = admin.create(NewKey::new("acme", "ci"), NOW).await.unwrap();
    let secret = issued.secret.expose();
    assert!(limiter.verify_key(secret).await.unwrap().is_ok());
    admin
        .set_active("acme", &issued.record.id, false, NOW)
        .await
        .unwrap();
    assert_eq!(
        limiter.verify_key(secret).await.unwrap(),
        Err(KeyRejection::Inactive)
    );
}

#[tokio::test]
async fn a_busy_key_touches_the_store_once_a_minute() {
    let (shared, clock) = (shared(), ManualClock::new(NOW));
    let limiter = limiter(&shared, Duration::from_secs(1), &clock);
    let issued = admin(&shared)
        .create(NewKey::new("acme", "ci"), NOW)
        .await
        .unwrap();
    let before = shared.calls();
    // Two minutes of a request every 100 ms.
    for _ in 0..1_200 {
        limiter
            .verify_key(issued.secret.expose())
            .await
            .unwrap()
            .unwrap();
        clock.advance(Duration::from_millis(100));
    }
    let lookups = shared.lookups();
    let touches = shared.calls() - before - lookups;
    assert_eq!(lookups, 120, "one read per second");
    assert_eq!(touches, 2, "one write per minute");
}

#[tokio::test]
async fn the_reports_case_on_memory() {
    let (shared, clock) = (shared(), ManualClock::new(NOW));
    let limits = Arc::new(CountingStore::new(MemoryStore::default()));
    let cached =
        CachedKeyStore::new(shared.clone(), KeyCacheConfig::new()).with_clock(clock.clone());
    let limiter = Limiter::builder(PolicySet::default(), limits.clone())
        .clock(clock.clone())
        .keys(format(), cached)
        .build();
    let admin = admin(&shared);
    let issued = admin
        .create(NewKey::new("acme", "partner").bypass(true), NOW)
        .await
        .unwrap();
    let req = Request::new()
        .plan("free")
        .ip("203.0.113.9".parse().unwrap());
    for _ in 0..1_000 {
        let d = limiter
            .check_key(issued.secret.expose(), req.clone())
            .await
            .unwrap();
        assert!(d.is_allowed());
    }
    assert_eq!(limits.calls(), 0);
    admin
        .set_bypass("acme", &issued.record.id, false, NOW)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    for _ in 0..10 {
        let d = limiter
            .check_key(issued.secret.expose(), req.clone())
            .await
            .unwrap();
        assert!(d.is_allowed());
    }
    let d = limiter
        .check_key(issued.secret.expose(), req)
        .await
        .unwrap();
    assert!(!d.is_allowed(), "the 11th within a minute");
    assert_eq!(&*d.binding().unwrap().policy, "plan_burst");
}
