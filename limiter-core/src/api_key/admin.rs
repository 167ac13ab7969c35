//! [`KeyAdmin`]: the administration operations that a service's admin endpoints and the
//! `limiter keys` command share.

use std::sync::Arc;
use std::time::Duration;

use super::format::KeyFormat;
use super::record::{KeyChange, KeyId, KeyRecord, KeyUpdate, NewKey, Secret};
use super::store::KeyStore;
use crate::Error;
use crate::time::{Micros, micros};

/// A key just created: its secret, to hand to its owner now (it is never shown again: only
/// its hash is stored), and its record.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuedKey {
    /// The secret. Show it once.
    pub secret: Secret,
    /// What is stored.
    pub record: KeyRecord,
}

/// Creates, lists, changes, revokes and rotates the keys of a [`KeyStore`], in one format.
///
/// Times are passed in (`now`), never read here. Errors: the store's, and
/// [`Error::InvalidRequest`] naming the key for a key that does not exist in the tenant or a
/// change that is not allowed (a revoked key changes no more).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use limiter_core::api_key::{KeyAdmin, KeyFormat, NewKey};
/// # use limiter_testkit::ModelKeyStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let admin = KeyAdmin::new(KeyFormat::new("acme_live")?, Arc::new(ModelKeyStore::new()));
/// let now = 1_790_000_000_000_000;
/// let issued = admin.create(NewKey::new("acme", "billing webhook"), now).await?;
/// println!("your key, shown once: {}", issued.secret.expose());
/// let listed = admin.list("acme").await?;
/// assert_eq!(listed[0].start, issued.secret.start());
///
/// // Rotation: both keys work for an hour, then only the new one.
/// let next = admin.rotate("acme", &issued.record.id, Duration::from_secs(3600), now).await?;
/// assert_eq!(admin.get("acme", &issued.record.id).await?.expires_at, Some(now + 3_600_000_000));
/// # let _ = next;
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct KeyAdmin {
    format: KeyFormat,
    store: Arc<dyn KeyStore>,
}

impl KeyAdmin {
    /// Administration of `store`'s keys, new keys made in `format`.
    pub fn new(format: KeyFormat, store: Arc<dyn KeyStore>) -> KeyAdmin {
        KeyAdmin { format, store }
    }

    /// The format of new keys.
    pub fn format(&self) -> &KeyFormat {
        &self.format
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// Creates a key at `now`: the secret is in the answer and nowhere else.
    pub async fn create(&self, new: NewKey, now: Micros) -> Result<IssuedKey, Error> {
        new.check()?;
        let secret = self.format.generate()?;
        let record = KeyRecord::new(KeyId::generate()?, &secret, &new, now);
        self.store.insert(&record).await?;
        Ok(IssuedKey { secret, record })
    }

    /// The key `id` of `tenant`.
    pub async fn get(&self, tenant: &str, id: &KeyId) -> Result<KeyRecord, Error> {
        self.store
            .get(tenant, id)
            .await?
            .ok_or_else(|| not_found(tenant, id))
    }

    /// Every key of `tenant` (records only: secrets are not stored), oldest first.
    pub async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error> {
        self.store.list(tenant).await
    }

    /// Renames a key.
    pub async fn rename(
        &self,
        tenant: &str,
        id: &KeyId,
        name: impl Into<String>,
        now: Micros,
    ) -> Result<KeyRecord, Error> {
        self.change(tenant, id, &KeyChange::Name(name.into()), now)
            .await
    }

    /// Switches a key on or off.
    pub async fn set_active(
        &self,
        tenant: &str,
        id: &KeyId,
        active: bool,
        now: Micros,
    ) -> Result<KeyRecord, Error> {
        self.change(tenant, id, &KeyChange::Active(active), now)
            .await
    }

    /// Sets or clears a key's bypass flag.
    pub async fn set_bypass(
        &self,
        tenant: &str,
        id: &KeyId,
        bypass: bool,
        now: Micros,
    ) -> Result<KeyRecord, Error> {
        self.change(tenant, id, &KeyChange::Bypass(bypass), now)
            .await
    }

    /// Revokes a key, for good.
    pub async fn revoke(&self, tenant: &str, id: &KeyId, now: Micros) -> Result<KeyRecord, Error> {
        self.change(tenant, id, &KeyChange::Revoke, now).await
    }

    /// Rotates a key: a new key with the old one's tenant, user, name, flags and expiry, while
    /// the old one keeps working for `overlap` (zero: it stops now) and then expires. The two
    /// changes are one atomic store operation.
    pub async fn rotate(
        &self,
        tenant: &str,
        id: &KeyId,
        overlap: Duration,
        now: Micros,
    ) -> Result<IssuedKey, Error> {
        let old = self.get(tenant, id).await?;
        let mut new = NewKey::new(old.tenant.clone(), old.name.clone()).bypass(old.bypass);
        new.user.clone_from(&old.user);
        new.expires_at = old.expires_at;
        let secret = self.format.generate()?;
        let mut record = KeyRecord::new(KeyId::generate()?, &secret, &new, now);
        record.active = old.active;
        let until = now.saturating_add(micros(overlap));
        match self.store.rotate(tenant, id, &record, until, now).await? {
            None => Err(not_found(tenant, id)),
            Some((KeyUpdate::Refused(why), _)) => Err(refused(id, why)),
            Some(_) => Ok(IssuedKey { secret, record }),
        }
    }

    async fn change(
        &self,
        tenant: &str,
        id: &KeyId,
        change: &KeyChange,
        now: Micros,
    ) -> Result<KeyRecord, Error> {
        match self.store.update(tenant, id, change, now).await? {
            None => Err(not_found(tenant, id)),
            Some((KeyUpdate::Refused(why), _)) => Err(refused(id, why)),
            Some((_, record)) => Ok(record),
        }
    }
}

fn not_found(tenant: &str, id: &KeyId) -> Error {
    Error::InvalidRequest(format!("no API key {id} in tenant {tenant:?}"))
}

fn refused(id: &KeyId, why: super::Refusal) -> Error {
    Error::InvalidRequest(format!("cannot change API key {id}: {why}"))
}
