//! The contracts every [`KeyStore`] must meet, one `async fn` each, run by
//! [`key_store_suite!`](crate::key_store_suite).
//!
//! Each contract takes the store under test and a tenant prefix that no other test uses
//! ([`namespace`](super::namespace)); every tenant it creates starts with it, so all contracts
//! can run in parallel against one shared server or file. Times are passed in; nothing sleeps.

use std::any::Any;
use std::sync::Arc;

use limiter_core::api_key::{
    KeyChange, KeyFormat, KeyHash, KeyId, KeyRecord, KeyRejection, KeyStore, KeyUpdate, NewKey,
    Refusal, TOUCH_INTERVAL,
};
use limiter_core::time::Micros;

/// The time the contracts start at (2026-09-21).
pub const T0: Micros = 1_790_000_000_000_000;

/// A new record of `tenant` created at `now`, with a fresh secret (not kept: stores never see
/// it).
pub fn record(tenant: &str, name: &str, now: Micros) -> KeyRecord {
    record_with(NewKey::new(tenant, name), now)
}

fn record_with(new: NewKey, now: Micros) -> KeyRecord {
    let format = KeyFormat::new("conformance_test").expect("valid prefix");
    let secret = format.generate().expect("os random");
    KeyRecord::new(KeyId::generate().expect("os random"), &secret, &new, now)
}

async fn stored(store: &dyn KeyStore, record: &KeyRecord) -> KeyRecord {
    store
        .find_by_hash(&record.hash)
        .await
        .unwrap_or_else(|e| panic!("{store}: find_by_hash failed: {e}"))
        .unwrap_or_else(|| panic!("{store}: {} is not found by its hash", record.id))
}

async fn update(
    store: &dyn KeyStore,
    record: &KeyRecord,
    change: KeyChange,
    now: Micros,
) -> (KeyUpdate, KeyRecord) {
    store
        .update(&record.tenant, &record.id, &change, now)
        .await
        .unwrap_or_else(|e| panic!("{store}: update {change:?} failed: {e}"))
        .unwrap_or_else(|| panic!("{store}: update {change:?} did not find {}", record.id))
}

/// A stored record is found by its hash and by its id, equal to what was inserted; other
/// hashes and ids find nothing.
pub async fn keys_are_created_and_found(store: &dyn KeyStore, tenants: &str) {
    let tenant = format!("{tenants}-a");
    let mut new = NewKey::new(&tenant, "billing webhook")
        .user("u-7")
        .bypass(true);
    new.expires_at = Some(T0 + 1_000);
    let created = record_with(new, T0);
    store.insert(&created).await.expect("insert");
    assert_eq!(stored(store, &created).await, created, "{store}: by hash");
    let got = store.get(&tenant, &created.id).await.expect("get");
    assert_eq!(got.as_ref(), Some(&created), "{store}: by id");

    let other = record(&tenant, "never stored", T0);
    assert_eq!(
        store.find_by_hash(&other.hash).await.expect("find"),
        None,
        "{store}"
    );
    assert_eq!(
        store.get(&tenant, &other.id).await.expect("get"),
        None,
        "{store}"
    );
    let zero = KeyHash::from_bytes([0; 32]);
    assert_eq!(
        store.find_by_hash(&zero).await.expect("find"),
        None,
        "{store}"
    );
}

/// A record whose hash, or whose id in its tenant, is stored already is refused, and nothing
/// of it is stored.
pub async fn duplicates_are_refused(store: &dyn KeyStore, tenants: &str) {
    let tenant = format!("{tenants}-a");
    let first = record(&tenant, "first", T0);
    store.insert(&first).await.expect("insert");

    let mut same_hash = record(&tenant, "same hash", T0);
    same_hash.hash = first.hash;
    assert!(
        store.insert(&same_hash).await.is_err(),
        "{store}: same hash"
    );
    let mut same_id = record(&tenant, "same id", T0);
    same_id.id = first.id.clone();
    assert!(store.insert(&same_id).await.is_err(), "{store}: same id");
    assert_eq!(
        store.find_by_hash(&same_id.hash).await.expect("find"),
        None,
        "{store}: a refused record left something behind"
    );
    assert_eq!(
        stored(store, &first).await,
        first,
        "{store}: the first is intact"
    );
    assert_eq!(store.list(&tenant).await.expect("list").len(), 1, "{store}");
}

/// A tenant's list holds its records, oldest first, and no other tenant's.
pub async fn keys_are_listed_by_tenant(store: &dyn KeyStore, tenants: &str) {
    let (a, b) = (format!("{tenants}-a"), format!("{tenants}-b"));
    assert!(store.list(&a).await.expect("list").is_empty(), "{store}");
    let mut expected = Vec::new();
    // Inserted newest first: the order comes from the store, not from insertion.
    for i in (0..4u64).rev() {
        let r = record(&a, &format!("key {i}"), T0 + i);
        store.insert(&r).await.expect("insert");
        expected.insert(0, r);
    }
    store
        .insert(&record(&b, "other", T0))
        .await
        .expect("insert");
    let listed = store.list(&a).await.expect("list");
    assert_eq!(listed, expected, "{store}");
    assert_eq!(store.list(&b).await.expect("list").len(), 1, "{store}");
}

/// Names and flags change, are stored, and are seen by lookups.
pub async fn flags_and_names_change(store: &dyn KeyStore, tenants: &str) {
    let tenant = format!("{tenants}-a");
    let r = record(&tenant, "ci", T0);
    store.insert(&r).await.expect("insert");
    let (u, after) = update(store, &r, KeyChange::Bypass(true), T0).await;
    assert_eq!(u, KeyUpdate::Updated, "{store}");
    assert!(after.bypass, "{store}");
    update(store, &r, KeyChange::Active(false), T0).await;
    update(store, &r, KeyChange::Name("deploys".into()), T0).await;
    let found = stored(store, &r).await;
    assert!(found.bypass && !found.active, "{store}: {found:?}");
    assert_eq!(found.name, "deploys", "{store}");
    assert_eq!(found.check_at(T0), Err(KeyRejection::Inactive), "{store}");
    update(store, &r, KeyChange::Active(true), T0).await;
    update(store, &r, KeyChange::Bypass(false), T0).await;
    let found = stored(store, &r).await;
    assert!(!found.bypass && found.active, "{store}: {found:?}");
    let (u, _) = update(store, &r, KeyChange::Name(String::new()), T0).await;
    assert_eq!(u, KeyUpdate::Refused(Refusal::EmptyName), "{store}");
}

/// Expiry is stored, only moves earlier, and makes the key fail from that instant on.
pub async fn keys_expire(store: &dyn KeyStore, tenants: &str) {
    let tenant = format!("{tenants}-a");
    let r = record(&tenant, "ci", T0);
    store.insert(&r).await.expect("insert");
    update(store, &r, KeyChange::ExpireBy(T0 + 100), T0).await;
    update(store, &r, KeyChange::ExpireBy(T0 + 500), T0).await;
    let found = stored(store, &r).await;
    assert_eq!(found.expires_at, Some(T0 + 100), "{store}");
    assert_eq!(found.check_at(T0 + 99), Ok(()), "{store}");
    assert_eq!(
        found.check_at(T0 + 100),
        Err(KeyRejection::Expired),
        "{store}"
    );
}

/// Revocation is stored with its time, and nothing undoes it.
pub async fn revocation_is_irreversible(store: &dyn KeyStore, tenants: &str) {
    let tenant = format!("{tenants}-a");
    let r = record(&tenant, "ci", T0);
    store.insert(&r).await.expect("insert");
    let (u, after) = update(store, &r, KeyChange::Revoke, T0 + 1).await;
    assert_eq!(u, KeyUpdate::Updated, "{store}");
    assert_eq!(after.revoked_at, Some(T0 + 1), "{store}");
    for change in [
        KeyChange::Active(true),
        KeyChange::Bypass(true),
        KeyChange::Revoke,
        KeyChange::ExpireBy(T0 + 10),
    ] {
        let (u, _) = update(store, &r, change, T0 + 2).await;
        assert_eq!(u, KeyUpdate::Refused(Refusal::Revoked), "{store}");
    }
    let found = stored(store, &r).await;
    assert_eq!(found.revoked_at, Some(T0 + 1), "{store}");
    assert_eq!(
        found.check_at(T0 + 2),
        Err(KeyRejection::Revoked),
        "{store}"
    );
}

/// Rotation stores the new key and shortens the old one's life to the overlap, both or
/// neither; a revoked key cannot be rotated.
pub async fn rotation_overlaps(store: &dyn KeyStore, tenants: &str) {
    let tenant = format!("{tenants}-a");
    let old = record(&tenant, "ci", T0);
    store.insert(&old).await.expect("insert");
    let new = record(&tenant, "ci", T0 + 5);
    let until = T0 + 3_600_000_000;
    let (u, after) = store
        .rotate(&tenant, &old.id, &new, until, T0 + 5)
        .await
        .expect("rotate")
        .expect("found");
    assert_eq!(u, KeyUpdate::Updated, "{store}");
    assert_eq!(after.expires_at, Some(until), "{store}");
    let (o, n) = (stored(store, &old).await, stored(store, &new).await);
    assert_eq!(n, new, "{store}");
    // During the overlap both work; after it, only the new one.
    assert!(
        o.check_at(until - 1).is_ok() && n.check_at(until - 1).is_ok(),
        "{store}"
    );
    assert_eq!(o.check_at(until), Err(KeyRejection::Expired), "{store}");
    assert!(n.check_at(until).is_ok(), "{store}");

    update(store, &new, KeyChange::Revoke, T0 + 6).await;
    let newer = record(&tenant, "ci", T0 + 7);
    let (u, _) = store
        .rotate(&tenant, &new.id, &newer, until, T0 + 7)
        .await
        .expect("rotate")
        .expect("found");
    assert_eq!(u, KeyUpdate::Refused(Refusal::Revoked), "{store}");
    assert_eq!(
        store.find_by_hash(&newer.hash).await.expect("find"),
        None,
        "{store}: a refused rotation stored the new key"
    );
    let missing = KeyId::new("key_missing");
    let none = store.rotate(&tenant, &missing, &newer, until, T0).await;
    assert!(matches!(none, Ok(None)), "{store}: {none:?}");

    // A new key of another tenant is refused as invalid, and nothing changes.
    let live = record(&tenant, "live", T0 + 8);
    store.insert(&live).await.expect("insert");
    let stranger = record(&format!("{tenants}-b"), "ci", T0 + 9);
    let refused = store
        .rotate(&tenant, &live.id, &stranger, until, T0 + 9)
        .await;
    assert!(
        matches!(refused, Err(limiter_core::Error::InvalidRequest(_))),
        "{store}: {refused:?}"
    );
    assert_eq!(stored(store, &live).await, live, "{store}");
    assert_eq!(
        store.find_by_hash(&stranger.hash).await.expect("find"),
        None,
        "{store}: a refused rotation stored the new key"
    );
}

/// A tenant sees, changes and rotates only its own keys.
pub async fn tenants_are_isolated(store: &dyn KeyStore, tenants: &str) {
    let (a, b) = (format!("{tenants}-a"), format!("{tenants}-b"));
    let r = record(&a, "ci", T0);
    store.insert(&r).await.expect("insert");
    assert_eq!(store.get(&b, &r.id).await.expect("get"), None, "{store}");
    let changed = store.update(&b, &r.id, &KeyChange::Revoke, T0).await;
    assert!(matches!(changed, Ok(None)), "{store}: {changed:?}");
    let new = record(&b, "ci", T0);
    let rotated = store.rotate(&b, &r.id, &new, T0, T0).await;
    assert!(matches!(rotated, Ok(None)), "{store}: {rotated:?}");
    assert_eq!(stored(store, &r).await, r, "{store}: untouched");
    assert!(store.list(&b).await.expect("list").is_empty(), "{store}");
}

/// The last use is written at most once per [`TOUCH_INTERVAL`].
pub async fn touch_is_throttled(store: &dyn KeyStore, tenants: &str) {
    let tenant = format!("{tenants}-a");
    let r = record(&tenant, "ci", T0);
    store.insert(&r).await.expect("insert");
    let (u, _) = update(store, &r, KeyChange::Touch, T0).await;
    assert_eq!(u, KeyUpdate::Updated, "{store}");
    let (u, _) = update(store, &r, KeyChange::Touch, T0 + TOUCH_INTERVAL - 1).await;
    assert_eq!(u, KeyUpdate::Unchanged, "{store}");
    assert_eq!(stored(store, &r).await.last_used_at, Some(T0), "{store}");
    update(store, &r, KeyChange::Touch, T0 + TOUCH_INTERVAL).await;
    let found = stored(store, &r).await;
    assert_eq!(found.last_used_at, Some(T0 + TOUCH_INTERVAL), "{store}");
    let missing = store
        .update(&tenant, &KeyId::new("key_missing"), &KeyChange::Touch, T0)
        .await;
    assert!(matches!(missing, Ok(None)), "{store}: {missing:?}");
}

/// Keys created at the same time are all stored; revocations racing with flag changes are
/// never lost, and a revoked key stays revoked.
pub async fn concurrent_creation_and_revocation(store: Arc<dyn KeyStore>, tenants: &str) {
    let tenant = format!("{tenants}-a");
    let records: Vec<KeyRecord> = (0..24u64)
        .map(|i| record(&tenant, &format!("k{i}"), T0 + i))
        .collect();
    let tasks: Vec<_> = records
        .iter()
        .cloned()
        .map(|r| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.insert(&r).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("insert");
    }
    assert_eq!(store.list(&tenant).await.expect("list"), records, "{store}");

    // Each key: one revocation against several flag changes, all at once.
    let mut tasks = Vec::new();
    for r in &records {
        for change in [
            KeyChange::Active(true),
            KeyChange::Revoke,
            KeyChange::Bypass(true),
            KeyChange::Active(false),
            KeyChange::Name("renamed".into()),
        ] {
            let store = Arc::clone(&store);
            let (tenant, id) = (r.tenant.clone(), r.id.clone());
            tasks.push(tokio::spawn(async move {
                store.update(&tenant, &id, &change, T0 + 100).await
            }));
        }
    }
    for task in tasks {
        task.await.expect("task").expect("update").expect("found");
    }
    for r in &records {
        let found = stored(&*store, r).await;
        assert_eq!(found.revoked_at, Some(T0 + 100), "{store}: {found:?}");
        assert_eq!(
            found.name, "renamed",
            "{store}: a concurrent update was lost"
        );
    }
}

/// Generates one named `#[tokio::test]` (multi-threaded runtime, 4 workers) per contract of
/// [`conformance::keys`](crate::conformance::keys), each against a fresh key store from
/// `$new_store` with tenants of its own.
///
/// As [`conformance_suite!`](crate::conformance_suite): `$new_store` names an
/// `async fn() -> impl KeyStore + 'static`; with `optional` it returns an `Option` (`None`
/// skips), with `guarded` a `(store, guard)` pair whose guard outlives the contract.
///
/// ```no_run
/// // limiter-<backend>/tests/keys.rs
/// use limiter_testkit::ModelKeyStore;
///
/// async fn new_store() -> impl limiter_core::api_key::KeyStore + 'static {
///     ModelKeyStore::new()
/// }
///
/// limiter_testkit::key_store_suite!(new_store);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! key_store_suite {
    ($new_store:path) => {
        $crate::key_store_suite!(@contracts $crate::conformance::keys::present, $new_store);
    };
    (optional $new_store:path) => {
        $crate::key_store_suite!(@contracts $crate::conformance::keys::optional, $new_store);
    };
    (guarded $new_store:path) => {
        $crate::key_store_suite!(@contracts $crate::conformance::keys::guarded, $new_store);
    };
    (@contracts $wrap:path, $new_store:path) => {
        $crate::__key_store_tests! {
            $wrap, $new_store;
            keys_are_created_and_found,
            duplicates_are_refused,
            keys_are_listed_by_tenant,
            flags_and_names_change,
            keys_expire,
            revocation_is_irreversible,
            rotation_overlaps,
            tenants_are_isolated,
            touch_is_throttled,
        }
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_creation_and_revocation() {
            let Some((store, _guard)) = $wrap($new_store().await) else {
                ::std::eprintln!("SKIPPED concurrent_creation_and_revocation: no store");
                return;
            };
            let tenants = $crate::conformance::namespace("concurrent_creation_and_revocation");
            $crate::conformance::keys::concurrent_creation_and_revocation(store, &tenants).await;
        }
    };
}

/// Implementation detail of [`key_store_suite!`](crate::key_store_suite).
#[doc(hidden)]
#[macro_export]
macro_rules! __key_store_tests {
    ($wrap:path, $new_store:path; $($contract:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                let Some((store, _guard)) = $wrap($new_store().await) else {
                    ::std::eprintln!(
                        "SKIPPED {}: the constructor has no store to test (see the banner above)",
                        ::std::stringify!($contract)
                    );
                    return;
                };
                let tenants = $crate::conformance::namespace(stringify!($contract));
                $crate::conformance::keys::$contract(&*store, &tenants).await;
            }
        )*
    };
}

/// A key store under test, and what must outlive it.
#[doc(hidden)]
pub type KeyFixture = (Arc<dyn KeyStore>, Box<dyn Any + Send>);

/// The store a plain constructor made ([`key_store_suite!`](crate::key_store_suite)).
#[doc(hidden)]
pub fn present<S: KeyStore + 'static>(store: S) -> Option<KeyFixture> {
    Some((Arc::new(store), Box::new(())))
}

/// The store an `optional` constructor made, if any.
#[doc(hidden)]
pub fn optional<S: KeyStore + 'static>(store: Option<S>) -> Option<KeyFixture> {
    store.and_then(present)
}

/// The store and guard a `guarded` constructor made.
#[doc(hidden)]
pub fn guarded<S: KeyStore + 'static, G: Send + 'static>(
    (store, guard): (S, G),
) -> Option<KeyFixture> {
    Some((Arc::new(store), Box::new(guard)))
}
