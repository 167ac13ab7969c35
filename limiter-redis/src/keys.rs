//! [`RedisKeyStore`]: API key records on Redis or Redis Cluster.
//!
//! Layout, with the namespace `ns` and the tenant `acme`:
//!
//! - `ns:apikey:{t=acme}:rec:<id>`: the record, as JSON (no secret: its SHA-256);
//! - `ns:apikey:{t=acme}:ids`: the tenant's key ids, scored by creation time, for listing;
//! - `ns:apikey_hash:{k=<hex of the SHA-256>}`: the index from hash to `[tenant, id]`.
//!
//! A tenant's records and list share its hash tag, the one its limits are counted under, so
//! every change of a tenant's keys is one atomic script in one slot. The hash index lives in
//! the slot of its own hash: a lookup reads it, then the record, and answers only a record
//! whose own hash matches, so an index entry left behind by a failed call finds nothing.

use std::fmt;
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{KeysInterface, LuaInterface};
use fred::types::Value;
use limiter_core::api_key::{
    KeyChange, KeyHash, KeyId, KeyRecord, KeyStore, KeyUpdate, Updated, check_rotation,
};
use limiter_core::{Error, ErrorKind, Key, Micros, SubjectKind};

use crate::RedisStore;
use crate::error::{RedisError, into_core_error};

/// Stores `ARGV[1]` under `KEYS[1]` unless the key exists: 1 if stored.
const INDEX: &str = "if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 1 end return 0";

/// Deletes `KEYS[1]` if it still holds `ARGV[1]` (an index entry this call made).
const UNINDEX: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Creates the record `KEYS[1]` (`ARGV[1]`) and lists its id `ARGV[2]` in `KEYS[2]` at score
/// `ARGV[3]`, unless the record exists: 1 if created.
const INSERT: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end \
    redis.call('SET', KEYS[1], ARGV[1]) redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2]) return 1";

/// Replaces the record `KEYS[1]` by `ARGV[2]` if it still reads `ARGV[1]`: 1 if replaced.
const SWAP: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
    redis.call('SET', KEYS[1], ARGV[2]) return 1";

/// Rotation: replaces the old record `KEYS[1]` by `ARGV[2]` if it still reads `ARGV[1]`, and
/// creates the new record `KEYS[2]` (`ARGV[3]`), listed in `KEYS[3]` as `ARGV[4]` at score
/// `ARGV[5]`: 1 if done, 0 if the old record changed meanwhile, -1 if the new one exists.
const ROTATE: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
    if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end \
    redis.call('SET', KEYS[1], ARGV[2]) redis.call('SET', KEYS[2], ARGV[3]) \
    redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4]) return 1";

/// The ids listed in `KEYS[1]`, in score order.
const RANGE: &str = "return redis.call('ZRANGE', KEYS[1], 0, -1)";

/// The records `KEYS[...]`, `false` for a missing one.
const READ_ALL: &str = "local out = {} for i, k in ipairs(KEYS) do \
    out[i] = redis.call('GET', k) end return out";

/// How many times an update retries when the record changed between its read and its write.
const SWAP_ATTEMPTS: u32 = 32;

/// A [`KeyStore`] on the server or cluster of a [`RedisStore`], sharing its connections.
///
/// Records are JSON strings under the tenant's hash tag (see the module layout in the source);
/// updates read the record, apply [`KeyRecord::apply`], and write it back with a
/// compare-and-swap script, retried if another writer came in between, so no update is lost
/// and a revocation is never undone. Times come from the caller, never the server.
///
/// ```no_run
/// use limiter_core::api_key::KeyFormat;
/// use limiter_core::{Limiter, PolicySet};
/// use limiter_redis::{RedisConfig, RedisKeyStore, RedisStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?;
/// let policies = PolicySet::default();
/// let keys = RedisKeyStore::new(store.clone(), policies.namespace());
/// let limiter = Limiter::builder(policies, store)
///     .keys(KeyFormat::new("acme_live")?, keys)
///     .build();
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RedisKeyStore {
    store: RedisStore,
    namespace: String,
}

impl RedisKeyStore {
    /// The keys stored under `namespace` (give it the policies' namespace) on `store`'s
    /// server or cluster.
    pub fn new(store: RedisStore, namespace: impl Into<String>) -> RedisKeyStore {
        RedisKeyStore {
            store,
            namespace: namespace.into(),
        }
    }

    fn client(&self) -> Client {
        self.store.client()
    }

    fn timeout(&self) -> Duration {
        self.store.command_timeout()
    }

    fn fail(&self, e: fred::error::Error) -> Error {
        into_core_error(self, RedisError::Fred(e), self.timeout())
    }

    fn corrupt(&self, key: &str, what: impl fmt::Display) -> Error {
        Error::store(
            self,
            ErrorKind::Permanent,
            format!("{key} holds {what}; expected an API key record written by this crate"),
            None,
        )
    }

    /// The tenant's part of every key: `ns:apikey:{t=tenant}`.
    fn tenant_key(&self, tenant: &str) -> String {
        Key::new(&self.namespace, "apikey", SubjectKind::Tenant, tenant)
            .as_str()
            .to_owned()
    }

    fn record_key(&self, tenant: &str, id: &KeyId) -> String {
        format!("{}:rec:{}", self.tenant_key(tenant), id)
    }

    fn ids_key(&self, tenant: &str) -> String {
        format!("{}:ids", self.tenant_key(tenant))
    }

    fn hash_key(&self, hash: &KeyHash) -> String {
        Key::new(
            &self.namespace,
            "apikey_hash",
            SubjectKind::ApiKey,
            &hash.to_hex(),
        )
        .as_str()
        .to_owned()
    }

    fn encode(&self, record: &KeyRecord) -> Result<String, Error> {
        serde_json::to_string(record).map_err(|e| {
            Error::store(
                self,
                ErrorKind::Permanent,
                format!("cannot encode API key {}: {e}", record.id),
                None,
            )
        })
    }

    fn decode(&self, key: &str, json: &str) -> Result<KeyRecord, Error> {
        serde_json::from_str(json).map_err(|e| self.corrupt(key, format!("invalid JSON ({e})")))
    }

    async fn eval(&self, script: &str, keys: Vec<String>, args: Vec<String>) -> Result<i64, Error> {
        self.client()
            .eval::<i64, _, _, _>(script.to_owned(), keys, args)
            .await
            .map_err(|e| self.fail(e))
    }

    /// The record stored under `key`, and its JSON as read (for a compare-and-swap).
    async fn read(&self, key: &str) -> Result<Option<(KeyRecord, String)>, Error> {
        let json: Option<String> = self
            .client()
            .get(key.to_owned())
            .await
            .map_err(|e| self.fail(e))?;
        json.map(|json| Ok((self.decode(key, &json)?, json)))
            .transpose()
    }

    /// The index entry of `record`: its tenant and id.
    fn index_entry(&self, record: &KeyRecord) -> Result<String, Error> {
        serde_json::to_string(&(&record.tenant, &record.id))
            .map_err(|e| Error::store(self, ErrorKind::Permanent, format!("{e}"), None))
    }

    /// Indexes `record` by its hash; refuses a hash indexed already.
    async fn index(&self, record: &KeyRecord) -> Result<String, Error> {
        let entry = self.index_entry(record)?;
        let key = self.hash_key(&record.hash);
        if self.eval(INDEX, vec![key], vec![entry.clone()]).await? == 1 {
            Ok(entry)
        } else {
            Err(self.conflict(record))
        }
    }

    /// Removes the index entry this call made for `record`, after the call failed. Best
    /// effort: an entry left behind points at no record of this hash, and finds nothing.
    async fn unindex(&self, record: &KeyRecord, entry: String) {
        let key = self.hash_key(&record.hash);
        let _ = self.eval(UNINDEX, vec![key], vec![entry]).await;
    }

    fn conflict(&self, record: &KeyRecord) -> Error {
        Error::store(
            self,
            ErrorKind::Permanent,
            format!(
                "API key {} of tenant {:?}, or its hash, is stored already; expected a new id \
                 and secret",
                record.id, record.tenant
            ),
            None,
        )
    }

    fn contended(&self, tenant: &str, id: &KeyId) -> Error {
        Error::store(
            self,
            ErrorKind::Temporary,
            format!(
                "API key {id} of tenant {tenant:?} changed under {SWAP_ATTEMPTS} attempts to \
                 update it; expected fewer concurrent writers: retry"
            ),
            None,
        )
    }
}

#[async_trait::async_trait]
impl KeyStore for RedisKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), Error> {
        let json = self.encode(record)?;
        let entry = self.index(record).await?;
        let keys = vec![
            self.record_key(&record.tenant, &record.id),
            self.ids_key(&record.tenant),
        ];
        let args = vec![json, record.id.to_string(), record.created_at.to_string()];
        match self.eval(INSERT, keys, args).await {
            Ok(1) => Ok(()),
            Ok(_) => {
                self.unindex(record, entry).await;
                Err(self.conflict(record))
            }
            Err(e) => {
                self.unindex(record, entry).await;
                Err(e)
            }
        }
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, Error> {
        let key = self.hash_key(hash);
        let entry: Option<String> = self
            .client()
            .get(key.clone())
            .await
            .map_err(|e| self.fail(e))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let (tenant, id): (String, KeyId) = serde_json::from_str(&entry)
            .map_err(|e| self.corrupt(&key, format!("an invalid index entry ({e})")))?;
        let record = self.read(&self.record_key(&tenant, &id)).await?;
        Ok(record.map(|(r, _)| r).filter(|r| r.hash == *hash))
    }

    async fn get(&self, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        Ok(self
            .read(&self.record_key(tenant, id))
            .await?
            .map(|(r, _)| r))
    }

    async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error> {
        let ids: Vec<String> = self
            .client()
            .eval(
                RANGE.to_owned(),
                vec![self.ids_key(tenant)],
                Vec::<String>::new(),
            )
            .await
            .map_err(|e| self.fail(e))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.record_key(tenant, &KeyId::new(id.clone())))
            .collect();
        let values: Vec<Value> = self
            .client()
            .eval(READ_ALL.to_owned(), keys.clone(), Vec::<String>::new())
            .await
            .map_err(|e| self.fail(e))?;
        let mut records = Vec::with_capacity(values.len());
        for (key, value) in keys.iter().zip(values) {
            // A record deleted under its listed id (by hand) is skipped.
            let json = match value {
                Value::String(s) => s.to_string(),
                Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                _ => continue,
            };
            records.push(self.decode(key, &json)?);
        }
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(records)
    }

    async fn update(
        &self,
        tenant: &str,
        id: &KeyId,
        change: &KeyChange,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        let key = self.record_key(tenant, id);
        for _ in 0..SWAP_ATTEMPTS {
            let Some((mut record, before)) = self.read(&key).await? else {
                return Ok(None);
            };
            let update = record.apply(change, now);
            if update != KeyUpdate::Updated {
                return Ok(Some((update, record)));
            }
            let after = self.encode(&record)?;
            if self
                .eval(SWAP, vec![key.clone()], vec![before, after])
                .await?
                == 1
            {
                return Ok(Some((update, record)));
            }
        }
        Err(self.contended(tenant, id))
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
        let new_json = self.encode(new)?;
        let entry = self.index(new).await?;
        let result = self
            .swap_rotate(tenant, old, new, &new_json, until, now)
            .await;
        if !matches!(
            result,
            Ok(Some((KeyUpdate::Updated | KeyUpdate::Unchanged, _)))
        ) {
            self.unindex(new, entry).await;
        }
        result
    }
}

impl RedisKeyStore {
    /// The compare-and-swap loop of [`KeyStore::rotate`], once the new key is indexed.
    async fn swap_rotate(
        &self,
        tenant: &str,
        old: &KeyId,
        new: &KeyRecord,
        new_json: &str,
        until: Micros,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        let key = self.record_key(tenant, old);
        for _ in 0..SWAP_ATTEMPTS {
            let Some((mut record, before)) = self.read(&key).await? else {
                return Ok(None);
            };
            let update = record.apply(&KeyChange::ExpireBy(until), now);
            if let KeyUpdate::Refused(_) = update {
                return Ok(Some((update, record)));
            }
            let keys = vec![
                key.clone(),
                self.record_key(tenant, &new.id),
                self.ids_key(tenant),
            ];
            let args = vec![
                before,
                self.encode(&record)?,
                new_json.to_owned(),
                new.id.to_string(),
                new.created_at.to_string(),
            ];
            match self.eval(ROTATE, keys, args).await? {
                1 => return Ok(Some((update, record))),
                -1 => return Err(self.conflict(new)),
                _ => {}
            }
        }
        Err(self.contended(tenant, old))
    }
}

impl fmt::Display for RedisKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisKeyStore({}, {})", self.store, self.namespace)
    }
}

impl fmt::Debug for RedisKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeyStore")
            .field("store", &self.store.to_string())
            .field("namespace", &self.namespace)
            .finish()
    }
}
