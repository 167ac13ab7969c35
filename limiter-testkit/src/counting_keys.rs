//! A key store wrapper that counts calls.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use limiter_core::Error;
use limiter_core::api_key::{KeyChange, KeyHash, KeyId, KeyRecord, KeyStore, Updated};
use limiter_core::time::Micros;

/// Wraps a key store and counts the calls made through it: lookups by hash and touches (last
/// use written) apart, every call in total. Calls are forwarded unchanged.
///
/// For tests that assert what verification asks of the key store (nothing for a malformed
/// key; nothing for a cached one).
#[derive(Debug, Default)]
pub struct CountingKeyStore<S> {
    inner: S,
    lookups: AtomicU64,
    touches: AtomicU64,
    calls: AtomicU64,
}

impl<S: KeyStore> CountingKeyStore<S> {
    /// Wraps `inner`, with nothing counted yet.
    pub fn new(inner: S) -> CountingKeyStore<S> {
        CountingKeyStore {
            inner,
            lookups: AtomicU64::new(0),
            touches: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }

    /// The [`KeyStore::find_by_hash`] calls so far.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::SeqCst)
    }

    /// The [`KeyChange::Touch`] updates so far: writes of a key's last use.
    pub fn touches(&self) -> u64 {
        self.touches.load(Ordering::SeqCst)
    }

    /// Every call so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for CountingKeyStore<S> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), Error> {
        self.count();
        self.inner.insert(record).await
    }
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, Error> {
        self.count();
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_hash(hash).await
    }
    async fn get(&self, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        self.count();
        self.inner.get(tenant, id).await
    }
    async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error> {
        self.count();
        self.inner.list(tenant).await
    }
    async fn update(
        &self,
        tenant: &str,
        id: &KeyId,
        change: &KeyChange,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        self.count();
        if *change == KeyChange::Touch {
            self.touches.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.update(tenant, id, change, now).await
    }
    async fn rotate(
        &self,
        tenant: &str,
        old: &KeyId,
        new: &KeyRecord,
        until: Micros,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        self.count();
        self.inner.rotate(tenant, old, new, until, now).await
    }
}

impl<S: fmt::Display> fmt::Display for CountingKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingKeyStore({})", self.inner)
    }
}
