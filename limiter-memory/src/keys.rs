//! [`MemoryKeyStore`]: API key records in this process's memory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{PoisonError, RwLock, RwLockWriteGuard};

use async_trait::async_trait;
use limiter_core::api_key::{
    KeyChange, KeyHash, KeyId, KeyRecord, KeyStore, KeyUpdate, Updated, check_rotation,
};
use limiter_core::time::Micros;
use limiter_core::{Error, ErrorKind};

/// A [`KeyStore`] in this process's memory: for a single process, tests and development.
/// Records are lost when the process ends; use `limiter-sqlite` or `limiter-redis` to keep them
/// and share them between processes.
///
/// Every operation holds one lock, so updates and rotations are atomic; lookups by hash
/// share a read lock.
///
/// ```
/// use limiter_core::api_key::{KeyAdmin, KeyFormat, NewKey};
/// use limiter_memory::MemoryKeyStore;
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let admin = KeyAdmin::new(KeyFormat::new("acme_test")?, Arc::new(MemoryKeyStore::new()));
/// let issued = admin.create(NewKey::new("acme", "dev laptop"), 1_790_000_000_000_000).await?;
/// assert_eq!(admin.list("acme").await?[0].id, issued.record.id);
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    inner: RwLock<Records>,
}

#[derive(Debug, Default)]
struct Records {
    by_hash: HashMap<KeyHash, KeyRecord>,
    /// Tenant, then id: the hash of each record, ordered for listing.
    by_tenant: HashMap<String, BTreeMap<KeyId, KeyHash>>,
}

impl Records {
    fn find_mut(&mut self, tenant: &str, id: &KeyId) -> Option<&mut KeyRecord> {
        let hash = self.by_tenant.get(tenant)?.get(id)?;
        self.by_hash.get_mut(hash)
    }

    fn taken(&self, record: &KeyRecord) -> bool {
        self.by_hash.contains_key(&record.hash)
            || self
                .by_tenant
                .get(&record.tenant)
                .is_some_and(|ids| ids.contains_key(&record.id))
    }

    fn add(&mut self, record: &KeyRecord) {
        self.by_tenant
            .entry(record.tenant.clone())
            .or_default()
            .insert(record.id.clone(), record.hash);
        self.by_hash.insert(record.hash, record.clone());
    }
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> MemoryKeyStore {
        MemoryKeyStore::default()
    }

    fn write(&self) -> RwLockWriteGuard<'_, Records> {
        // Every write completes under the lock or changes nothing, so a panic elsewhere while
        // it was held left no half-written record behind.
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read<T>(&self, f: impl FnOnce(&Records) -> T) -> T {
        f(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn conflict(&self, record: &KeyRecord) -> Error {
        Error::store(
            self,
            ErrorKind::Permanent,
            format!(
                "API key {} of tenant {:?}, or its hash, is stored already; expected a new \
                 id and secret",
                record.id, record.tenant
            ),
            None,
        )
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), Error> {
        let mut records = self.write();
        if records.taken(record) {
            return Err(self.conflict(record));
        }
        records.add(record);
        Ok(())
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, Error> {
        Ok(self.read(|r| r.by_hash.get(hash).cloned()))
    }

    async fn get(&self, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        Ok(self.read(|r| {
            let hash = r.by_tenant.get(tenant)?.get(id)?;
            r.by_hash.get(hash).cloned()
        }))
    }

    async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error> {
        let mut list: Vec<KeyRecord> = self.read(|r| {
            r.by_tenant.get(tenant).map_or_else(Vec::new, |ids| {
                ids.values()
                    .filter_map(|h| r.by_hash.get(h).cloned())
                    .collect()
            })
        });
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(list)
    }

    async fn update(
        &self,
        tenant: &str,
        id: &KeyId,
        change: &KeyChange,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        let mut records = self.write();
        let Some(record) = records.find_mut(tenant, id) else {
            return Ok(None);
        };
        let mut next = record.clone();
        let update = next.apply(change, now);
        if update == KeyUpdate::Updated {
            *record = next;
        }
        Ok(Some((update, record.clone())))
    }

    async fn rotate(
        &self,
        tenant: &str,
        old: &KeyId,
        new: &KeyRecord,
        until: Micros,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        check_rotation(tenant, new)?;
        let mut records = self.write();
        if records.taken(new) {
            return Err(self.conflict(new));
        }
        let Some(record) = records.find_mut(tenant, old) else {
            return Ok(None);
        };
        let mut next = record.clone();
        let update = next.apply(&KeyChange::ExpireBy(until), now);
        if let KeyUpdate::Refused(_) = update {
            return Ok(Some((update, record.clone())));
        }
        *record = next.clone();
        records.add(new);
        Ok(Some((update, next)))
    }
}

impl fmt::Display for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryKeyStore")
    }
}
