//! [`ModelKeyStore`]: the reference key store, a map under one lock.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use limiter_core::api_key::{
    KeyChange, KeyHash, KeyId, KeyRecord, KeyStore, KeyUpdate, Updated, check_rotation,
};
use limiter_core::time::Micros;
use limiter_core::{Error, ErrorKind};

/// The reference [`KeyStore`]: every record in one map under one lock, so every operation is
/// trivially atomic. For doc examples and tests of the core; the memory backend's
/// `MemoryKeyStore` is the one to deploy.
#[derive(Debug, Default)]
pub struct ModelKeyStore {
    records: Mutex<BTreeMap<KeyHash, KeyRecord>>,
}

impl ModelKeyStore {
    /// An empty store.
    pub fn new() -> ModelKeyStore {
        ModelKeyStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<KeyHash, KeyRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conflict(&self, record: &KeyRecord) -> Error {
        Error::store(
            self,
            ErrorKind::Permanent,
            format!("key {} or its hash is stored already", record.id),
            None,
        )
    }
}

fn find<'a>(
    records: &'a mut BTreeMap<KeyHash, KeyRecord>,
    tenant: &str,
    id: &KeyId,
) -> Option<&'a mut KeyRecord> {
    records
        .values_mut()
        .find(|r| r.tenant == tenant && r.id == *id)
}

fn taken(records: &BTreeMap<KeyHash, KeyRecord>, record: &KeyRecord) -> bool {
    records.contains_key(&record.hash)
        || records
            .values()
            .any(|r| r.tenant == record.tenant && r.id == record.id)
}

#[async_trait]
impl KeyStore for ModelKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), Error> {
        let mut records = self.lock();
        if taken(&records, record) {
            return Err(self.conflict(record));
        }
        records.insert(record.hash, record.clone());
        Ok(())
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, Error> {
        Ok(self.lock().get(hash).cloned())
    }

    async fn get(&self, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        Ok(find(&mut self.lock(), tenant, id).map(|r| r.clone()))
    }

    async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error> {
        let mut list: Vec<KeyRecord> = self
            .lock()
            .values()
            .filter(|r| r.tenant == tenant)
            .cloned()
            .collect();
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
        let mut records = self.lock();
        let Some(record) = find(&mut records, tenant, id) else {
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
        let mut records = self.lock();
        if taken(&records, new) {
            return Err(self.conflict(new));
        }
        let Some(record) = find(&mut records, tenant, old) else {
            return Ok(None);
        };
        let mut next = record.clone();
        let update = next.apply(&KeyChange::ExpireBy(until), now);
        if let KeyUpdate::Refused(_) = update {
            return Ok(Some((update, record.clone())));
        }
        *record = next.clone();
        records.insert(new.hash, new.clone());
        Ok(Some((update, next)))
    }
}

impl fmt::Display for ModelKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ModelKeyStore")
    }
}
