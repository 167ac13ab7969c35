//! [`CachedKeyStore`]: verified keys cached in process, for a bounded time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::api_key::{KeyChange, KeyHash, KeyId, KeyRecord, KeyStore, Updated};
use limiter_core::time::{Micros, micros};
use limiter_core::{Clock, Error, SystemClock};
use moka::sync::Cache;

/// Options of a [`CachedKeyStore`].
///
/// ```
/// use std::time::Duration;
/// use limiter_memory::KeyCacheConfig;
///
/// let config = KeyCacheConfig::new().with_ttl(Duration::from_millis(250));
/// assert_eq!(config.capacity, 100_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyCacheConfig {
    /// How long a lookup is reused (default 1 s): the revocation bound. A key revoked,
    /// deactivated or rotated out through another process keeps working here for at most this
    /// long after this process last read it; through this process, it stops at once. Zero
    /// turns the cache off: every verification reads the store.
    pub ttl: Duration,
    /// The most lookups kept (default 100 000), found and unknown keys together; past it the
    /// least recently used goes, which only costs a store read.
    pub capacity: u64,
}

impl Default for KeyCacheConfig {
    fn default() -> Self {
        KeyCacheConfig {
            ttl: Duration::from_secs(1),
            capacity: 100_000,
        }
    }
}

impl KeyCacheConfig {
    /// The default options.
    pub fn new() -> KeyCacheConfig {
        KeyCacheConfig::default()
    }

    /// Sets [`ttl`](Self::ttl).
    pub fn with_ttl(mut self, ttl: Duration) -> KeyCacheConfig {
        self.ttl = ttl;
        self
    }

    /// Sets [`capacity`](Self::capacity).
    pub fn with_capacity(mut self, capacity: u64) -> KeyCacheConfig {
        self.capacity = capacity;
        self
    }
}

/// One lookup: the record found (or `None`: an unknown hash, cached too) and when it was read,
/// in the injected clock's time.
#[derive(Debug, Clone)]
struct Lookup {
    record: Option<KeyRecord>,
    read_at: Micros,
}

/// A [`KeyStore`] in front of another that caches lookups by hash, found or not, for
/// [`KeyCacheConfig::ttl`], so that verifying a busy key costs no store I/O, and a flood of
/// well-formed unknown keys repeated costs one read each per bound.
///
/// # The revocation bound
///
/// A lookup is reused while the injected clock reads less than `ttl` after it was made (and
/// never longer than `ttl` of real time either: moka drops it then). Every write through this
/// store (revoke, deactivate, rotate, ...) drops the entries it changed at once, so this
/// process stops accepting a revoked key immediately; another process that shares the
/// backing store does within `ttl` of its last read. Errors are never cached.
///
/// ```
/// use std::sync::Arc;
/// use limiter_core::ManualClock;
/// use limiter_memory::{CachedKeyStore, KeyCacheConfig, MemoryKeyStore};
///
/// let shared = Arc::new(MemoryKeyStore::new());
/// let clock = ManualClock::new(1_790_000_000_000_000);
/// let cached = CachedKeyStore::new(shared, KeyCacheConfig::new()).with_clock(clock.clone());
/// assert_eq!(cached.max_revocation_latency().as_secs(), 1);
/// ```
pub struct CachedKeyStore<S> {
    inner: S,
    cache: Option<Cache<KeyHash, Lookup>>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

impl<S: KeyStore> CachedKeyStore<S> {
    /// Caches the lookups of `inner`, reading time from the system clock.
    pub fn new(inner: S, config: KeyCacheConfig) -> CachedKeyStore<S> {
        let cache = (!config.ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(config.capacity)
                .time_to_live(config.ttl)
                .build()
        });
        CachedKeyStore {
            inner,
            cache,
            ttl: config.ttl,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same, timing entries with `clock`: give it the limiter's clock.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> CachedKeyStore<S> {
        self.clock = Arc::new(clock);
        self
    }

    /// How long at most a key revoked through another process keeps working here: the TTL.
    pub fn max_revocation_latency(&self) -> Duration {
        self.ttl
    }

    /// The backing store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Drops every cached lookup: the next verification of each key reads the store.
    pub fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
    }

    fn forget(&self, hash: &KeyHash) {
        if let Some(cache) = &self.cache {
            cache.invalidate(hash);
        }
    }

    /// Caches `record` as read from the store at `now`.
    fn remember(&self, record: &KeyRecord, now: Micros) {
        if let Some(cache) = &self.cache {
            let lookup = Lookup {
                record: Some(record.clone()),
                read_at: now,
            };
            cache.insert(record.hash, lookup);
        }
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for CachedKeyStore<S> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), Error> {
        // An unknown-key entry for this hash must not hide the new key.
        self.forget(&record.hash);
        let result = self.inner.insert(record).await;
        self.forget(&record.hash);
        result
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, Error> {
        let Some(cache) = &self.cache else {
            return self.inner.find_by_hash(hash).await;
        };
        let now = self.clock.now();
        let ttl = micros(self.ttl);
        if let Some(hit) = cache.get(hash) {
            // A clock that went back is not trusted to extend an entry's life.
            if now >= hit.read_at && now - hit.read_at < ttl {
                return Ok(hit.record);
            }
        }
        let record = self.inner.find_by_hash(hash).await?;
        let lookup = Lookup {
            record: record.clone(),
            read_at: now,
        };
        cache.insert(*hash, lookup);
        Ok(record)
    }

    async fn get(&self, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        self.inner.get(tenant, id).await
    }

    async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error> {
        self.inner.list(tenant).await
    }

    async fn update(
        &self,
        tenant: &str,
        id: &KeyId,
        change: &KeyChange,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        let read_at = self.clock.now();
        let result = self.inner.update(tenant, id, change, now).await;
        match (&result, change) {
            // The store answered the record as it stands after the change, read atomically:
            // as good as a lookup made when the call started. Keeping the touched record here
            // is what keeps a busy key from touching the store again within the minute.
            (Ok(Some((_, record))), KeyChange::Touch) => self.remember(record, read_at),
            (Ok(Some((_, record))), _) => self.forget(&record.hash),
            // Not found, or failed (it may still have been applied): nothing known to keep.
            _ => {}
        }
        result
    }

    async fn rotate(
        &self,
        tenant: &str,
        old: &KeyId,
        new: &KeyRecord,
        until: Micros,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        self.forget(&new.hash);
        let result = self.inner.rotate(tenant, old, new, until, now).await;
        if let Ok(Some((_, record))) = &result {
            self.forget(&record.hash);
        }
        self.forget(&new.hash);
        result
    }
}

impl<S: fmt::Display> fmt::Display for CachedKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CachedKeyStore({})", self.inner)
    }
}

impl<S: fmt::Debug> fmt::Debug for CachedKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeyStore")
            .field("inner", &self.inner)
            .field("ttl", &self.ttl)
            .field("cached", &self.cache.as_ref().map(Cache::entry_count))
            .finish_non_exhaustive()
    }
}
