//! The [`KeyStore`] trait: where key records live.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::record::{KeyChange, KeyHash, KeyId, KeyRecord, KeyUpdate};
use crate::Error;
use crate::time::Micros;

/// A record after an update, and what the update did ([`KeyRecord::apply`]).
pub type Updated = (KeyUpdate, KeyRecord);

/// Refuses a rotation in `tenant` whose new key belongs to another tenant, as every
/// [`KeyStore::rotate`] must, before it changes anything: [`Error::InvalidRequest`] naming
/// both tenants.
pub fn check_rotation(tenant: &str, new: &KeyRecord) -> Result<(), Error> {
    if new.tenant == tenant {
        return Ok(());
    }
    Err(Error::InvalidRequest(format!(
        "the new key of a rotation in tenant {tenant:?} belongs to tenant {:?}; expected the \
         same tenant",
        new.tenant
    )))
}

/// Where API key records live: process memory, a SQLite file, Redis.
///
/// Records hold no secret, only the [`KeyHash`] that verification looks them up by. Every
/// backend implements this trait and runs the key conformance suite of `limiter-testkit`
/// (`key_store_suite!`). [`KeyAdmin`](super::KeyAdmin) builds the administration operations
/// (create, rotate, revoke, ...) on it.
///
/// # Contract
///
/// - **Ids and hashes are unique**: [`insert`](Self::insert) refuses a record whose id (in its
///   tenant) or hash is stored already, and stores nothing then.
/// - **Tenants are isolated**: [`get`](Self::get), [`list`](Self::list),
///   [`update`](Self::update) and [`rotate`](Self::rotate) see only the keys of the tenant
///   named; only [`find_by_hash`](Self::find_by_hash) crosses tenants, as verification must.
/// - **Updates are atomic and apply the core's rule**: `update` reads the record, applies
///   [`KeyRecord::apply`] and writes the result if it says
///   [`Updated`](KeyUpdate::Updated), with no concurrent update in between; so a revocation
///   is never lost to a concurrent change, and nothing undoes it.
/// - **Rotation is atomic**: [`rotate`](Self::rotate) applies
///   [`KeyChange::ExpireBy`] to the old key and inserts the new one, both or neither.
/// - **Times come from the caller**: a store never reads a clock for a record.
#[async_trait]
pub trait KeyStore: fmt::Debug + fmt::Display + Send + Sync {
    /// Stores a new record.
    async fn insert(&self, record: &KeyRecord) -> Result<(), Error>;

    /// The record whose key hashes to `hash`, in any tenant.
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, Error>;

    /// The record `id` of `tenant`.
    async fn get(&self, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, Error>;

    /// Every record of `tenant`, oldest first (then by id).
    async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error>;

    /// Applies `change` at `now` to the record `id` of `tenant`, atomically. `None` when there
    /// is no such record; otherwise the record as it now stands and what the change did.
    async fn update(
        &self,
        tenant: &str,
        id: &KeyId,
        change: &KeyChange,
        now: Micros,
    ) -> Result<Option<Updated>, Error>;

    /// Rotates: applies [`KeyChange::ExpireBy`]`(until)` to the old record `old` of `tenant`
    /// and, if that was not refused, inserts `new` (of the same tenant), atomically. `None`
    /// when there is no such old record; otherwise the old record as it now stands and what
    /// the change did to it (a revoked key cannot be rotated: refused, and `new` is not
    /// stored).
    async fn rotate(
        &self,
        tenant: &str,
        old: &KeyId,
        new: &KeyRecord,
        until: Micros,
        now: Micros,
    ) -> Result<Option<Updated>, Error>;
}

#[async_trait]
impl<S: KeyStore + ?Sized> KeyStore for Arc<S> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), Error> {
        (**self).insert(record).await
    }
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, Error> {
        (**self).find_by_hash(hash).await
    }
    async fn get(&self, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        (**self).get(tenant, id).await
    }
    async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error> {
        (**self).list(tenant).await
    }
    async fn update(
        &self,
        tenant: &str,
        id: &KeyId,
        change: &KeyChange,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        (**self).update(tenant, id, change, now).await
    }
    async fn rotate(
        &self,
        tenant: &str,
        old: &KeyId,
        new: &KeyRecord,
        until: Micros,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        (**self).rotate(tenant, old, new, until, now).await
    }
}

// The trait must stay dyn-compatible.
const _: fn(&dyn KeyStore) = |_| {};
