//! [`SqliteInbox`]: each tenant's in-app notices, with read marks (table `notify_inbox`,
//! migration 4).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::notify::{Inbox, InboxItem, InboxQuery, NotifyKind};
use limiter_core::{Error, Micros};
use rusqlite::types::Type;
use rusqlite::{Row, params};

use crate::blocking::Blocking;
use crate::error::SqliteError;

/// An [`Inbox`] in a SQLite file, shared by every process that opens it: one list of notices
/// per tenant, each kept once per id, newest first.
///
/// ```
/// use std::time::Duration;
/// use limiter_core::notify::{Inbox, InboxItem, InboxQuery, NotifyKind};
/// use limiter_sqlite::SqliteInbox;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let inbox = SqliteInbox::open(dir.path().join("limits.db"), Duration::from_secs(5)).await?;
/// let item = InboxItem {
///     id: "ntf_0123456789abcdef0123456789abcdef".into(),
///     tenant: "acme".into(),
///     kind: NotifyKind::Approaching,
///     policy: "plan_daily".into(),
///     message: "You're at 80% of your daily limit".into(),
///     upgrade: Some("Upgrade to Professional for 20000/day".into()),
///     at: 1_700_000_000_000_000,
///     read_at: None,
/// };
/// assert!(inbox.put(&item).await?);
/// assert!(!inbox.put(&item).await?, "a redelivery adds nothing");
/// assert_eq!(inbox.unread("acme").await?, 1);
///
/// assert!(inbox.mark_read("acme", &item.id, item.at + 1).await?);
/// let listed = inbox.list(&InboxQuery::tenant("acme")).await?;
/// assert_eq!(listed[0].read_at, Some(item.at + 1));
/// assert!(inbox.list(&InboxQuery::tenant("acme").unread()).await?.is_empty());
/// # Ok(())
/// # }
/// ```
pub struct SqliteInbox {
    conn: Blocking,
}

impl fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.conn.backend())
    }
}

impl SqliteInbox {
    /// Opens (or creates) the database file at `path`, on a connection of its own, and
    /// brings its schema to the latest version. It may be the file of a
    /// [`SqliteStore`](crate::SqliteStore). `busy_timeout` bounds each wait for another
    /// connection's lock.
    pub async fn open(
        path: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> Result<SqliteInbox, Error> {
        let conn = Blocking::open("SqliteInbox", path.as_ref(), busy_timeout).await?;
        Ok(SqliteInbox { conn })
    }
}

const COLUMNS: &str = "id, tenant, kind, policy, message, upgrade, at, read_at";

fn read_item(row: &Row<'_>) -> rusqlite::Result<InboxItem> {
    let kind: String = row.get(2)?;
    let kind = NotifyKind::from_name(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            Type::Text,
            format!(
                "unknown notice kind {kind:?}; expected approaching, exhausted, resets_soon or \
                 restored"
            )
            .into(),
        )
    })?;
    Ok(InboxItem {
        id: row.get(0)?,
        tenant: row.get(1)?,
        kind,
        policy: row.get(3)?,
        message: row.get(4)?,
        upgrade: row.get(5)?,
        at: uint(row.get(6)?),
        read_at: row.get::<_, Option<i64>>(7)?.map(uint),
    })
}

#[async_trait]
impl Inbox for SqliteInbox {
    async fn put(&self, item: &InboxItem) -> Result<bool, Error> {
        let item = item.clone();
        self.conn
            .run(move |conn| {
                // A redelivery leaves the row, and so its read mark, as it is.
                let added = conn
                    .prepare_cached(&format!(
                        "INSERT INTO notify_inbox ({COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                         ON CONFLICT (tenant, id) DO NOTHING"
                    ))
                    .and_then(|mut s| {
                        s.execute(params![
                            item.id,
                            item.tenant,
                            item.kind.name(),
                            item.policy,
                            item.message,
                            item.upgrade,
                            int(item.at),
                            item.read_at.map(int)
                        ])
                    })
                    .map_err(SqliteError::sqlite("adding an inbox item"))?;
                Ok(added == 1)
            })
            .await
    }

    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxItem>, Error> {
        let query = query.clone();
        self.conn
            .run(move |conn| {
                let unread = if query.unread_only {
                    " AND read_at IS NULL"
                } else {
                    ""
                };
                let limit = int(u64::try_from(query.limit.max(1)).unwrap_or(u64::MAX));
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM notify_inbox WHERE tenant = ?1{unread} \
                     ORDER BY at DESC, id DESC LIMIT ?2"
                ))
                .and_then(|mut s| {
                    s.query_map(params![query.tenant, limit], read_item)?
                        .collect()
                })
                .map_err(SqliteError::sqlite("listing inbox items"))
            })
            .await
    }

    async fn mark_read(&self, tenant: &str, id: &str, at: Micros) -> Result<bool, Error> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.conn
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE notify_inbox SET read_at = ?3 \
                         WHERE tenant = ?1 AND id = ?2 AND read_at IS NULL",
                    )
                    .and_then(|mut s| s.execute(params![tenant, id, int(at)]))
                    .map_err(SqliteError::sqlite("marking an inbox item read"))?;
                Ok(changed == 1)
            })
            .await
    }

    async fn unread(&self, tenant: &str) -> Result<u64, Error> {
        let tenant = tenant.to_owned();
        self.conn
            .run(move |conn| {
                conn.prepare_cached(
                    "SELECT count(*) FROM notify_inbox WHERE tenant = ?1 AND read_at IS NULL",
                )
                .and_then(|mut s| s.query_row(params![tenant], |r| r.get::<_, i64>(0)))
                .map(uint)
                .map_err(SqliteError::sqlite("counting unread inbox items"))
            })
            .await
    }
}

/// A value that SQLite stores as a signed 64-bit integer; times are far below `i64::MAX`, and
/// larger ones saturate.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
