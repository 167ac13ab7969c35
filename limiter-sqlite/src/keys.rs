//! [`SqliteKeyStore`]: API key records in the same SQLite file as the limits (table
//! `api_keys`, migration 2), served by the store's worker thread.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use limiter_core::api_key::{
    KeyChange, KeyHash, KeyId, KeyRecord, KeyStore, KeyUpdate, Updated, check_rotation,
};
use limiter_core::{Error, ErrorKind, Micros};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::SqliteStore;
use crate::error::SqliteError;
use crate::worker::Call;

/// A [`KeyStore`] in the SQLite file of a [`SqliteStore`], sharing its worker thread: each
/// call is a job of that thread, so it never blocks an async executor; writes run in a
/// `BEGIN IMMEDIATE` transaction of their own (atomic across the processes that share the
/// file), reads by hash run on their own.
///
/// ```no_run
/// use std::sync::Arc;
/// use limiter_core::api_key::KeyFormat;
/// use limiter_core::{Limiter, PolicySet};
/// use limiter_sqlite::{SqliteConfig, SqliteKeyStore, SqliteStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = Arc::new(SqliteStore::open("limits.db", SqliteConfig::new()).await?);
/// let limiter = Limiter::builder(PolicySet::default(), store.clone())
///     .keys(KeyFormat::new("acme_live")?, SqliteKeyStore::new(store))
///     .build();
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SqliteKeyStore {
    store: Arc<SqliteStore>,
}

impl SqliteKeyStore {
    /// The key store of `store`'s file.
    pub fn new(store: Arc<SqliteStore>) -> SqliteKeyStore {
        SqliteKeyStore { store }
    }

    async fn run(&self, job: KeyJob) -> Result<KeyAnswer, Error> {
        let job = Box::new(job);
        self.store
            .call(|reply| Call::Keys { job, reply }, None)
            .await
    }

    fn mismatch(&self) -> Error {
        Error::store(
            self,
            ErrorKind::Permanent,
            "the worker answered a key call with another call's answer",
            None,
        )
    }
}

/// A key store call, as sent to the worker.
#[derive(Debug)]
pub(crate) enum KeyJob {
    Insert(KeyRecord),
    FindByHash(KeyHash),
    Get {
        tenant: String,
        id: KeyId,
    },
    List(String),
    Update {
        tenant: String,
        id: KeyId,
        change: KeyChange,
        now: Micros,
    },
    Rotate {
        tenant: String,
        old: KeyId,
        new: KeyRecord,
        until: Micros,
        now: Micros,
    },
}

impl KeyJob {
    /// Whether the job writes, and so needs the write lock and a transaction.
    pub(crate) fn writes(&self) -> bool {
        matches!(
            self,
            KeyJob::Insert(_) | KeyJob::Update { .. } | KeyJob::Rotate { .. }
        )
    }
}

/// What a key job answers.
#[derive(Debug)]
pub(crate) enum KeyAnswer {
    Done,
    Record(Option<KeyRecord>),
    Records(Vec<KeyRecord>),
    Updated(Option<Updated>),
}

const COLUMNS: &str = "hash, tenant, id, user_id, name, start, active, bypass, created_at, \
                       expires_at, revoked_at, last_used_at";

/// Runs `job` on `conn` (inside a transaction if it writes).
pub(crate) fn run(conn: &Connection, job: &KeyJob) -> Result<KeyAnswer, SqliteError> {
    match job {
        KeyJob::Insert(record) => insert(conn, record).map(|()| KeyAnswer::Done),
        KeyJob::FindByHash(hash) => {
            let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE hash = ?1");
            one(conn, &sql, params![hash.as_bytes().as_slice()]).map(KeyAnswer::Record)
        }
        KeyJob::Get { tenant, id } => find(conn, tenant, id).map(KeyAnswer::Record),
        KeyJob::List(tenant) => {
            let sql =
                format!("SELECT {COLUMNS} FROM api_keys WHERE tenant = ?1 ORDER BY created_at, id");
            let reading = SqliteError::sqlite("listing API keys");
            let mut stmt = conn.prepare_cached(&sql).map_err(reading)?;
            let rows = stmt
                .query_map(params![tenant], from_row)
                .and_then(Iterator::collect)
                .map_err(SqliteError::sqlite("listing API keys"))?;
            Ok(KeyAnswer::Records(rows))
        }
        KeyJob::Update {
            tenant,
            id,
            change,
            now,
        } => {
            let Some(mut record) = find(conn, tenant, id)? else {
                return Ok(KeyAnswer::Updated(None));
            };
            let update = record.apply(change, *now);
            if update == KeyUpdate::Updated {
                save(conn, &record)?;
            }
            Ok(KeyAnswer::Updated(Some((update, record))))
        }
        KeyJob::Rotate {
            tenant,
            old,
            new,
            until,
            now,
        } => {
            let Some(mut record) = find(conn, tenant, old)? else {
                return Ok(KeyAnswer::Updated(None));
            };
            let update = record.apply(&KeyChange::ExpireBy(*until), *now);
            if let KeyUpdate::Refused(_) = update {
                return Ok(KeyAnswer::Updated(Some((update, record))));
            }
            save(conn, &record)?;
            // A failed insert fails the job, and the transaction rolls the old key back.
            insert(conn, new)?;
            Ok(KeyAnswer::Updated(Some((update, record))))
        }
    }
}

fn find(conn: &Connection, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, SqliteError> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE tenant = ?1 AND id = ?2");
    one(conn, &sql, params![tenant, id.as_str()])
}

fn one(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Option<KeyRecord>, SqliteError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, from_row).optional())
        .map_err(SqliteError::sqlite("reading an API key"))
}

fn insert(conn: &Connection, r: &KeyRecord) -> Result<(), SqliteError> {
    let sql = format!(
        "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.execute(params![
                r.hash.as_bytes().as_slice(),
                r.tenant,
                r.id.as_str(),
                r.user,
                r.name,
                r.start,
                r.active,
                r.bypass,
                to_sql(r.created_at),
                r.expires_at.map(to_sql),
                r.revoked_at.map(to_sql),
                r.last_used_at.map(to_sql),
            ])
        })
        .map(drop)
        .map_err(SqliteError::sqlite("inserting an API key"))
}

/// Writes back the fields an update may change.
fn save(conn: &Connection, r: &KeyRecord) -> Result<(), SqliteError> {
    conn.prepare_cached(
        "UPDATE api_keys SET name = ?2, active = ?3, bypass = ?4, expires_at = ?5, \
         revoked_at = ?6, last_used_at = ?7 WHERE hash = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            r.hash.as_bytes().as_slice(),
            r.name,
            r.active,
            r.bypass,
            r.expires_at.map(to_sql),
            r.revoked_at.map(to_sql),
            r.last_used_at.map(to_sql),
        ])
    })
    .map(drop)
    .map_err(SqliteError::sqlite("updating an API key"))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let hash: Vec<u8> = row.get(0)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "an API key hash is not 32 bytes".into(),
        )
    })?;
    let time = |i: usize| -> rusqlite::Result<Option<Micros>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(from_sql))
    };
    let mut r = KeyRecord::restore(
        KeyId::new(row.get::<_, String>(2)?),
        KeyHash::from_bytes(hash),
        row.get(1)?,
        row.get(5)?,
        from_sql(row.get(8)?),
    );
    r.user = row.get(3)?;
    r.name = row.get(4)?;
    r.active = row.get(6)?;
    r.bypass = row.get(7)?;
    r.expires_at = time(9)?;
    r.revoked_at = time(10)?;
    r.last_used_at = time(11)?;
    Ok(r)
}

/// SQLite integers are signed; times before 2^63 microseconds fit.
fn to_sql(v: Micros) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> Micros {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait]
impl KeyStore for SqliteKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), Error> {
        match self.run(KeyJob::Insert(record.clone())).await? {
            KeyAnswer::Done => Ok(()),
            _ => Err(self.mismatch()),
        }
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, Error> {
        match self.run(KeyJob::FindByHash(*hash)).await? {
            KeyAnswer::Record(record) => Ok(record),
            _ => Err(self.mismatch()),
        }
    }

    async fn get(&self, tenant: &str, id: &KeyId) -> Result<Option<KeyRecord>, Error> {
        let job = KeyJob::Get {
            tenant: tenant.to_owned(),
            id: id.clone(),
        };
        match self.run(job).await? {
            KeyAnswer::Record(record) => Ok(record),
            _ => Err(self.mismatch()),
        }
    }

    async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, Error> {
        match self.run(KeyJob::List(tenant.to_owned())).await? {
            KeyAnswer::Records(records) => Ok(records),
            _ => Err(self.mismatch()),
        }
    }

    async fn update(
        &self,
        tenant: &str,
        id: &KeyId,
        change: &KeyChange,
        now: Micros,
    ) -> Result<Option<Updated>, Error> {
        let job = KeyJob::Update {
            tenant: tenant.to_owned(),
            id: id.clone(),
            change: change.clone(),
            now,
        };
        match self.run(job).await? {
            KeyAnswer::Updated(updated) => Ok(updated),
            _ => Err(self.mismatch()),
        }
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
        let job = KeyJob::Rotate {
            tenant: tenant.to_owned(),
            old: old.clone(),
            new: new.clone(),
            until,
            now,
        };
        match self.run(job).await? {
            KeyAnswer::Updated(updated) => Ok(updated),
            _ => Err(self.mismatch()),
        }
    }
}

impl fmt::Display for SqliteKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqliteKeyStore({})", self.store)
    }
}
