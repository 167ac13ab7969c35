//! [`SqliteOutbox`]: the notices that decisions write with their charge (table
//! `notify_outbox`, migration 4), and the leases of the workers that deliver them.
//!
//! A [`SqliteStore`](crate::SqliteStore) inserts the notices of an admitted charge in the
//! transaction that writes its state ([`insert`]), so a committed charge has its notices and a
//! rolled-back one has none. Each notice's id is the row's primary key, and the insert leaves
//! an existing row alone: the one process whose charge crossed a threshold writes it, and a
//! notice proposed again is kept once. Workers claim due rows in one `BEGIN IMMEDIATE`
//! transaction that also marks them claimed, so two processes never lease one notice at once;
//! each claim counts an attempt, and a settlement that names an older attempt changes nothing.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::notify::{ClaimRequest, Claimed, Notice, Outbox, OutboxStats, Settlement};
use limiter_core::{Error, Micros};
use rusqlite::{Connection, TransactionBehavior, params};

use crate::blocking::Blocking;
use crate::error::SqliteError;

/// An [`Outbox`] in a SQLite file: the one its [`SqliteStore`](crate::SqliteStore)s write the
/// notices of their decisions to, shared by every process that opens it.
///
/// A limiter that notifies ([`LimiterBuilder::notify`](limiter_core::LimiterBuilder::notify))
/// over a store on the file writes each notice once, with the charge that crossed its
/// threshold; a delivery worker claims them from here, on a connection of its own.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use limiter_core::notify::{ClaimRequest, NoticePlan, NotifyKind, NotifyRules, Outbox, Settlement};
/// use limiter_core::{Batch, Check, EvalOptions, Key, Limit, Rate, Request, Store, SubjectKind};
/// use limiter_sqlite::{SqliteConfig, SqliteOutbox, SqliteStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("limits.db");
/// let store = SqliteStore::open(&path, SqliteConfig::new()).await?;
/// let outbox = SqliteOutbox::open(&path, Duration::from_secs(5)).await?;
///
/// // A charge of 80 on acme's limit of 100/hour crosses 80%: the store writes the notice in
/// // the transaction of the charge (the limiter attaches the plan when it notifies).
/// let request = Request::new().tenant("acme").plan("starter");
/// let plan = NoticePlan::new(Arc::new(NotifyRules::default()), &request, None);
/// let key = Key::new("api", "plan_sustained", SubjectKind::Tenant, "acme");
/// let limit = Limit::gcra("100/hour".parse::<Rate>()?);
/// let batch = Batch::new(vec![Check::new("plan_sustained", key, limit, 80)])?
///     .with_notices(Arc::new(plan));
/// let now = 1_700_000_000_000_000;
/// assert!(store.evaluate(&batch, &EvalOptions::at(now)).await?.allowed);
///
/// // A worker leases it for a minute, delivers it, and settles the attempt.
/// let claim = ClaimRequest { worker: "w-1".into(), now, lease: 60_000_000, max: 10 };
/// let claimed = outbox.claim(&claim).await?;
/// assert_eq!(claimed.len(), 1);
/// assert_eq!(claimed[0].notice.kind(), NotifyKind::Approaching);
/// assert_eq!(claimed[0].notice.tenant.as_deref(), Some("acme"));
/// assert!(outbox.settle(&claimed[0], &Settlement::Delivered { at: now }).await?);
/// assert_eq!(outbox.stats(now).await?.delivered, 1);
/// # Ok(())
/// # }
/// ```
pub struct SqliteOutbox {
    conn: Blocking,
}

impl fmt::Debug for SqliteOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.conn.backend())
    }
}

impl SqliteOutbox {
    /// Opens (or creates) the database file at `path`, on a connection of its own, and
    /// brings its schema to the latest version. It is the file of the
    /// [`SqliteStore`](crate::SqliteStore)s whose notices it serves. `busy_timeout` bounds
    /// each wait for another connection's lock.
    pub async fn open(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> Result<SqliteOutbox, Error> {
        let conn = Blocking::open("SqliteOutbox", path.as_ref(), busy_timeout).await?;
        Ok(SqliteOutbox { conn })
    }
}

/// A notice as a row: its id, its JSON and when it is due.
#[derive(Debug)]
pub(crate) struct Encoded {
    id: String,
    json: String,
    due: i64,
}

/// The rows of `notices`, encoded before anything is written, so that a notice that does not
/// encode fails its call without a write to undo.
pub(crate) fn encode(notices: &[Notice]) -> Result<Vec<Encoded>, SqliteError> {
    notices
        .iter()
        .map(|notice| {
            let id = notice.id();
            match serde_json::to_string(notice) {
                Ok(json) => Ok(Encoded {
                    id,
                    json,
                    due: int(notice.due),
                }),
                Err(e) => Err(SqliteError::EncodeNotice {
                    id,
                    source: e.into(),
                }),
            }
        })
        .collect()
}

const INSERT: &str = "INSERT INTO notify_outbox (id, notice, state, due, attempt) \
                      VALUES (?1, ?2, 'pending', ?3, 0) ON CONFLICT (id) DO NOTHING";

/// Inserts the `rows` whose id the outbox does not hold, in the caller's transaction; returns
/// how many it added.
pub(crate) fn insert(conn: &Connection, rows: &[Encoded]) -> Result<u64, SqliteError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut statement = conn
        .prepare_cached(INSERT)
        .map_err(SqliteError::sqlite("preparing to write notices"))?;
    let mut added = 0;
    for row in rows {
        added += statement
            .execute(params![row.id, row.json, row.due])
            .map_err(SqliteError::sqlite("writing a notice to the outbox"))?;
    }
    Ok(u64::try_from(added).unwrap_or(u64::MAX))
}

/// Due rows, earliest first: pending ones due by `?1`, and claimed ones whose lease ended by
/// then (a claimed row was due when claimed, so `due <= ?1` holds for it too, and the
/// `notify_outbox_ready` index serves both).
pub(crate) const CANDIDATES: &str = "SELECT id, notice, attempt FROM notify_outbox \
    WHERE state IN ('pending', 'claimed') AND due <= ?1 \
    AND (state = 'pending' OR lease_until <= ?1) \
    ORDER BY due, id LIMIT ?2";

/// Whether any notice is claimable at `?1`: [`CANDIDATES`] without reading the rows.
const ANY_DUE: &str = "SELECT EXISTS (SELECT 1 FROM notify_outbox \
    WHERE state IN ('pending', 'claimed') AND due <= ?1 \
    AND (state = 'pending' OR lease_until <= ?1))";

/// Whether a claim at `now` would find anything, read outside any write transaction.
fn any_due(conn: &Connection, now: Micros) -> Result<bool, SqliteError> {
    conn.prepare_cached(ANY_DUE)
        .and_then(|mut s| s.query_row(params![int(now)], |r| r.get(0)))
        .map_err(SqliteError::sqlite("looking for due notices"))
}

const CLAIM: &str = "UPDATE notify_outbox SET state = 'claimed', attempt = ?2, worker = ?3, \
    lease_until = ?4 WHERE id = ?1";

const GIVE_UP: &str = "UPDATE notify_outbox SET state = 'failed', settled_at = ?2, \
    lease_until = NULL, last_error = ?3 WHERE id = ?1";

/// Leases up to `claim.max` due rows to `claim.worker`, in the caller's transaction.
fn claim(conn: &Connection, claim: &ClaimRequest) -> Result<Vec<Claimed>, SqliteError> {
    let now = int(claim.now);
    let lease_until = claim.now.saturating_add(claim.lease);
    let max = claim.max.max(1);
    let mut claimed = Vec::with_capacity(max.min(1024));
    let mut candidates = conn
        .prepare_cached(CANDIDATES)
        .map_err(SqliteError::sqlite("preparing to claim notices"))?;
    let mut lease = conn
        .prepare_cached(CLAIM)
        .map_err(SqliteError::sqlite("preparing to claim notices"))?;
    let mut give_up = conn
        .prepare_cached(GIVE_UP)
        .map_err(SqliteError::sqlite("preparing to claim notices"))?;
    loop {
        let wanted = max - claimed.len();
        let limit = int(u64::try_from(wanted).unwrap_or(u64::MAX));
        let rows: Vec<(String, String, i64)> = candidates
            .query_map(params![now, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .and_then(Iterator::collect)
            .map_err(SqliteError::sqlite("reading the due notices"))?;
        let exhausted = rows.len() < wanted;
        let mut undecodable = 0;
        for (id, json, attempt) in rows {
            let notice = match serde_json::from_str::<Notice>(&json) {
                Ok(notice) => notice,
                // A row that no longer decodes (written by hand, or by a build whose Notice
                // differs) cannot be delivered, and would head every claim from now on: it is
                // given up on, with the reason, and shows in the failed count.
                Err(e) => {
                    let error = format!(
                        "the stored notice does not decode ({e}); expected the JSON of a \
                         limiter_core::notify::Notice"
                    );
                    give_up
                        .execute(params![id, now, error])
                        .map_err(SqliteError::sqlite("giving up on an undecodable notice"))?;
                    undecodable += 1;
                    continue;
                }
            };
            let attempt = u32::try_from(attempt.saturating_add(1)).unwrap_or(u32::MAX);
            lease
                .execute(params![
                    id,
                    i64::from(attempt),
                    claim.worker,
                    int(lease_until)
                ])
                .map_err(SqliteError::sqlite("claiming a notice"))?;
            claimed.push(Claimed {
                notice,
                attempt,
                lease_until,
            });
        }
        // Rows given up on left room that more due rows may fill.
        if undecodable == 0 || exhausted {
            return Ok(claimed);
        }
    }
}

/// Settles the current attempt of a claimed row; `false` if `claimed` is not it.
fn settle(
    conn: &Connection,
    claimed: &Claimed,
    settlement: &Settlement,
) -> Result<bool, SqliteError> {
    let id = claimed.notice.id();
    let attempt = i64::from(claimed.attempt);
    let current = "WHERE id = ?1 AND state = 'claimed' AND attempt = ?2";
    let changed = match settlement {
        Settlement::Delivered { at } => conn.execute(
            &format!(
                "UPDATE notify_outbox SET state = 'delivered', settled_at = ?3, \
                 lease_until = NULL {current}"
            ),
            params![id, attempt, int(*at)],
        ),
        Settlement::Retry { retry_at, error } => conn.execute(
            &format!(
                "UPDATE notify_outbox SET state = 'pending', due = ?3, lease_until = NULL, \
                 last_error = ?4 {current}"
            ),
            params![id, attempt, int(*retry_at), error],
        ),
        Settlement::Failed { at, error } => conn.execute(
            &format!(
                "UPDATE notify_outbox SET state = 'failed', settled_at = ?3, lease_until = NULL, \
                 last_error = ?4 {current}"
            ),
            params![id, attempt, int(*at), error],
        ),
        // Settlement is non-exhaustive; `Outbox::settle` refuses an unknown one first.
        _ => return Ok(false),
    }
    .map_err(SqliteError::sqlite("settling a notice"))?;
    Ok(changed == 1)
}

#[async_trait]
impl Outbox for SqliteOutbox {
    async fn enqueue(&self, notices: &[Notice]) -> Result<u64, Error> {
        if notices.is_empty() {
            return Ok(0);
        }
        let rows = encode(notices).map_err(|e| self.conn.error(e))?;
        self.conn
            .run(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(SqliteError::sqlite("locking the file to write notices"))?;
                let added = insert(&tx, &rows)?;
                tx.commit()
                    .map_err(SqliteError::sqlite("committing notices"))?;
                Ok(added)
            })
            .await
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Claimed>, Error> {
        let request = request.clone();
        self.conn
            .run(move |conn| {
                // A poll that finds nothing due reads without the write lock, so idle workers
                // never compete with decisions for the file.
                if !any_due(conn, request.now)? {
                    return Ok(Vec::new());
                }
                // The write lock is taken before the candidates are read: no other connection
                // can claim them between the read and the update.
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(SqliteError::sqlite("locking the file to claim notices"))?;
                let claimed = claim(&tx, &request)?;
                tx.commit()
                    .map_err(SqliteError::sqlite("committing a claim"))?;
                Ok(claimed)
            })
            .await
    }

    async fn settle(&self, claimed: &Claimed, settlement: &Settlement) -> Result<bool, Error> {
        if !matches!(
            settlement,
            Settlement::Delivered { .. } | Settlement::Retry { .. } | Settlement::Failed { .. }
        ) {
            return Err(Error::InvalidRequest(format!(
                "settlement {settlement:?} of notice {} is not one {self:?} knows; expected \
                 Delivered, Retry or Failed",
                claimed.notice.id()
            )));
        }
        let (claimed, settlement) = (claimed.clone(), settlement.clone());
        self.conn
            .run(move |conn| settle(conn, &claimed, &settlement))
            .await
    }

    async fn stats(&self, now: Micros) -> Result<OutboxStats, Error> {
        self.conn
            .run(move |conn| {
                conn.query_row(
                    "SELECT coalesce(sum(state = 'pending'), 0), \
                     coalesce(sum(state = 'pending' AND due <= ?1), 0), \
                     coalesce(sum(state = 'claimed'), 0), \
                     coalesce(sum(state = 'delivered'), 0), \
                     coalesce(sum(state = 'failed'), 0) FROM notify_outbox",
                    params![int(now)],
                    |r| {
                        Ok(OutboxStats {
                            pending: uint(r.get(0)?),
                            due: uint(r.get(1)?),
                            claimed: uint(r.get(2)?),
                            delivered: uint(r.get(3)?),
                            failed: uint(r.get(4)?),
                        })
                    },
                )
                .map_err(SqliteError::sqlite("counting the outbox's notices"))
            })
            .await
    }

    async fn prune(&self, before: Micros) -> Result<u64, Error> {
        self.conn
            .run(move |conn| {
                let deleted = conn
                    .execute(
                        "DELETE FROM notify_outbox WHERE settled_at IS NOT NULL \
                         AND settled_at < ?1 AND state IN ('delivered', 'failed')",
                        params![int(before)],
                    )
                    .map_err(SqliteError::sqlite("pruning settled notices"))?;
                Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
            })
            .await
    }
}

/// A value that SQLite stores as a signed 64-bit integer; every time the outbox stores is far
/// below `i64::MAX`, and larger ones saturate.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
