//! [`SqliteEventLog`]: events in the store's database file (or one of their own), shared by
//! every process that opens it.
//!
//! One `BEGIN IMMEDIATE` transaction per appended batch inserts the raw events, upserts the
//! daily aggregates and applies the restore rule, so concurrent writers (several limiters on
//! one file) serialize on the file's write lock and the rule sees every exhaustion committed
//! before. Calls run on tokio's blocking pool, one at a time per log.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::event::{
    EventCursor, EventKind, EventLog, EventPage, EventQuery, LimitEvent, Pruned, QuotaUsage,
    Retention, TenantCount, TenantHits,
};
use limiter_core::{Calendar, Error, Micros};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use crate::blocking::Blocking;
use crate::error::SqliteError;

/// Microseconds in a day: the period of a daily quota.
const DAY: Micros = 86_400_000_000;

/// An [`EventLog`] in a SQLite file.
pub struct SqliteEventLog {
    calendar: Calendar,
    conn: Blocking,
}

impl fmt::Debug for SqliteEventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.conn.backend())
    }
}

/// A value that SQLite stores as a signed 64-bit integer; every time, limit and count the log
/// stores is far below `i64::MAX`, and larger ones saturate.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteEventLog {
    /// Opens (or creates) the database file at `path`, brings its schema to the latest
    /// version, and counts days in `calendar`'s time zone. It may be the file of a
    /// [`SqliteStore`](crate::SqliteStore). `busy_timeout` bounds each wait for another
    /// connection's lock.
    pub async fn open(
        path: impl AsRef<Path>,
        calendar: Calendar,
        busy_timeout: Duration,
    ) -> Result<SqliteEventLog, Error> {
        let conn = Blocking::open("SqliteEventLog", path.as_ref(), busy_timeout).await?;
        Ok(SqliteEventLog { calendar, conn })
    }

    /// Runs `work` on the connection on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, Error> {
        self.conn.run(work).await
    }
}

const INSERT: &str = "INSERT INTO limit_events (at, kind, tenant, user, key_id, policy, lim, \
    remaining, retry_after, window_start, period, method, route, network, reason) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

const UPSERT_DAY: &str = "INSERT INTO limit_events_daily (day, tenant, policy, denied, \
    peak_used, peak_limit) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
    ON CONFLICT (day, tenant, policy) DO UPDATE SET \
    denied = denied + excluded.denied, \
    peak_used = CASE WHEN excluded.peak_used IS NOT NULL \
        AND (peak_used IS NULL OR excluded.peak_used >= peak_used) \
        THEN excluded.peak_used ELSE peak_used END, \
    peak_limit = CASE WHEN excluded.peak_used IS NOT NULL \
        AND (peak_used IS NULL OR excluded.peak_used >= peak_used) \
        THEN excluded.peak_limit ELSE peak_limit END";

const COLUMNS: &str = "id, at, kind, tenant, user, key_id, policy, lim, remaining, \
    retry_after, window_start, period, method, route, network, reason";

fn read_event(row: &Row<'_>) -> rusqlite::Result<(i64, LimitEvent)> {
    let kind: String = row.get(2)?;
    let kind = EventKind::from_name(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown event kind {kind:?}").into(),
        )
    })?;
    let event = LimitEvent {
        at: uint(row.get(1)?),
        kind,
        tenant: row.get(3)?,
        user: row.get(4)?,
        key_id: row.get(5)?,
        policy: row.get(6)?,
        limit: uint(row.get(7)?),
        remaining: uint(row.get(8)?),
        retry_after: uint(row.get(9)?),
        window_start: uint(row.get(10)?),
        period: uint(row.get(11)?),
        method: row.get(12)?,
        route: row.get(13)?,
        network: row.get(14)?,
        reason: row.get(15)?,
    };
    Ok((row.get(0)?, event))
}

/// Whether a restore candidate is kept (see [`EventLog::append`]).
fn restores(tx: &Connection, event: &LimitEvent) -> Result<bool, SqliteError> {
    let tenant = event.tenant.as_deref().unwrap_or_default();
    let policy = event.policy.as_deref().unwrap_or_default();
    let exhausted: Option<i64> = tx
        .query_row(
            "SELECT max(window_start) FROM limit_event_windows WHERE tenant = ?1 AND policy = ?2 \
             AND kind = 'exhausted' AND window_start < ?3",
            params![tenant, policy, int(event.window_start)],
            |r| r.get(0),
        )
        .map_err(SqliteError::sqlite("reading the last exhaustion"))?;
    let Some(exhausted) = exhausted else {
        return Ok(false);
    };
    let restored = tx
        .query_row(
            "SELECT 1 FROM limit_event_windows WHERE tenant = ?1 AND policy = ?2 \
             AND kind = 'restored' AND window_start > ?3 LIMIT 1",
            params![tenant, policy, exhausted],
            |_| Ok(()),
        )
        .optional()
        .map_err(SqliteError::sqlite("reading the last restore"))?;
    Ok(restored.is_none())
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn append(&self, events: &[LimitEvent]) -> Result<(), Error> {
        let events = events.to_vec();
        let calendar = self.calendar.clone();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(SqliteError::sqlite("locking the file to append events"))?;
            for e in &events {
                if e.kind == EventKind::Restored && !restores(&tx, e)? {
                    continue;
                }
                if matches!(e.kind, EventKind::Exhausted | EventKind::Restored) {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO limit_event_windows VALUES (?1, ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            e.tenant.as_deref().unwrap_or_default(),
                            e.policy.as_deref().unwrap_or_default(),
                            e.kind.name(),
                            int(e.window_start)
                        ])
                    })
                    .map_err(SqliteError::sqlite("recording a threshold window"))?;
                }
                tx.prepare_cached(INSERT)
                    .and_then(|mut s| {
                        s.execute(params![
                            int(e.at),
                            e.kind.name(),
                            e.tenant,
                            e.user,
                            e.key_id,
                            e.policy,
                            int(e.limit),
                            int(e.remaining),
                            int(e.retry_after),
                            int(e.window_start),
                            int(e.period),
                            e.method,
                            e.route,
                            e.network,
                            e.reason
                        ])
                    })
                    .map_err(SqliteError::sqlite("inserting an event"))?;
                let Some(tenant) = &e.tenant else { continue };
                let day = calendar.day_bounds(e.at).0;
                let peak = (e.period == DAY && e.limit > 0 && e.policy.is_some())
                    .then(|| (int(e.used()), int(e.limit)));
                tx.prepare_cached(UPSERT_DAY)
                    .and_then(|mut s| {
                        s.execute(params![
                            int(day),
                            tenant,
                            e.policy.as_deref().unwrap_or_default(),
                            i64::from(e.kind == EventKind::Denied),
                            peak.map(|p| p.0),
                            peak.map(|p| p.1)
                        ])
                    })
                    .map_err(SqliteError::sqlite("updating the daily aggregates"))?;
            }
            tx.commit()
                .map_err(SqliteError::sqlite("committing appended events"))
        })
        .await
    }

    async fn hits(&self, from: Micros, to: Micros) -> Result<Vec<TenantHits>, Error> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT tenant, coalesce(policy, ''), count(*) FROM limit_events \
                     WHERE kind = 'denied' AND tenant IS NOT NULL AND at >= ?1 AND at < ?2 \
                     GROUP BY tenant, coalesce(policy, '') ORDER BY tenant, coalesce(policy, '')",
                )
                .map_err(SqliteError::sqlite("preparing the hits query"))?;
            let rows = statement
                .query_map(params![int(from), int(to)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(SqliteError::sqlite("reading the tenants that hit limits"))?;
            let mut hits: Vec<TenantHits> = Vec::new();
            for (tenant, policy, n) in rows {
                let n = uint(n);
                match hits.last_mut() {
                    Some(last) if last.tenant == tenant => {
                        last.total += n;
                        last.by_policy.push((policy, n));
                    }
                    _ => hits.push(TenantHits {
                        tenant,
                        total: n,
                        by_policy: vec![(policy, n)],
                    }),
                }
            }
            Ok(hits)
        })
        .await
    }

    async fn top_hit_tenants(&self, day: Micros, n: usize) -> Result<Vec<TenantCount>, Error> {
        let day = self.calendar.day_bounds(day).0;
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT tenant, sum(denied) AS hits FROM limit_events_daily WHERE day = ?1 \
                     GROUP BY tenant HAVING hits > 0 ORDER BY hits DESC, tenant LIMIT ?2",
                )
                .map_err(SqliteError::sqlite("preparing the top tenants query"))?;
            statement
                .query_map(params![int(day), n], |r| {
                    Ok(TenantCount {
                        tenant: r.get(0)?,
                        count: uint(r.get(1)?),
                    })
                })
                .and_then(Iterator::collect)
                .map_err(SqliteError::sqlite("reading the top hit tenants"))
        })
        .await
    }

    async fn near_quota(&self, now: Micros, percent: u8) -> Result<Vec<QuotaUsage>, Error> {
        let day = self.calendar.day_bounds(now).0;
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT tenant, policy, peak_used, peak_limit FROM limit_events_daily \
                     WHERE day = ?1 AND peak_used IS NOT NULL AND peak_used * 100 >= ?2 * peak_limit \
                     ORDER BY tenant, policy",
                )
                .map_err(SqliteError::sqlite("preparing the near-quota query"))?;
            statement
                .query_map(params![int(day), i64::from(percent)], |r| {
                    Ok(QuotaUsage {
                        tenant: r.get(0)?,
                        policy: r.get(1)?,
                        used: uint(r.get(2)?),
                        limit: uint(r.get(3)?),
                    })
                })
                .and_then(Iterator::collect)
                .map_err(SqliteError::sqlite("reading the tenants near their quota"))
        })
        .await
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, Error> {
        let before = match &query.cursor {
            Some(EventCursor(c)) => c.parse::<i64>().map_err(|_| {
                Error::InvalidRequest(format!(
                    "cursor {c:?} is not one this log returned: expected a decimal number"
                ))
            })?,
            None => i64::MAX,
        };
        let query = query.clone();
        self.run(move |conn| {
            let mut sql = format!(
                "SELECT {COLUMNS} FROM limit_events WHERE tenant = ? AND at >= ? AND at < ? AND id < ?"
            );
            let mut values: Vec<Value> = vec![
                Value::Text(query.tenant.clone()),
                Value::Integer(int(query.from)),
                Value::Integer(int(query.to)),
                Value::Integer(before),
            ];
            if !query.kinds.is_empty() {
                let marks = vec!["?"; query.kinds.len()].join(", ");
                sql.push_str(&format!(" AND kind IN ({marks})"));
                values.extend(query.kinds.iter().map(|k| Value::Text(k.name().to_owned())));
            }
            if let Some(policy) = &query.policy {
                sql.push_str(" AND policy = ?");
                values.push(Value::Text(policy.clone()));
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            let limit = query.limit.max(1);
            values.push(Value::Integer(int(u64::try_from(limit).unwrap_or(u64::MAX)).saturating_add(1)));
            let mut statement = conn
                .prepare_cached(&sql)
                .map_err(SqliteError::sqlite("preparing the events query"))?;
            let mut rows: Vec<(i64, LimitEvent)> = statement
                .query_map(params_from_iter(values), read_event)
                .and_then(Iterator::collect)
                .map_err(SqliteError::sqlite("reading a tenant's events"))?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next = match (more, rows.last()) {
                (true, Some((id, _))) => Some(EventCursor(id.to_string())),
                _ => None,
            };
            Ok(EventPage {
                events: rows.into_iter().map(|(_, e)| e).collect(),
                next,
            })
        })
        .await
    }

    async fn prune(&self, retention: &Retention) -> Result<Pruned, Error> {
        let retention = *retention;
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(SqliteError::sqlite("locking the file to prune events"))?;
            let events = tx
                .execute(
                    "DELETE FROM limit_events WHERE at < ?1",
                    params![int(retention.events_before)],
                )
                .map_err(SqliteError::sqlite("pruning events"))?;
            let before = int(retention.aggregates_before);
            let days: i64 = tx
                .query_row(
                    "SELECT count(DISTINCT day) FROM limit_events_daily WHERE day < ?1",
                    params![before],
                    |r| r.get(0),
                )
                .map_err(SqliteError::sqlite("counting aggregate days to prune"))?;
            tx.execute(
                "DELETE FROM limit_events_daily WHERE day < ?1",
                params![before],
            )
            .map_err(SqliteError::sqlite("pruning daily aggregates"))?;
            tx.commit()
                .map_err(SqliteError::sqlite("committing the pruning"))?;
            Ok(Pruned {
                events: u64::try_from(events).unwrap_or(u64::MAX),
                aggregates: uint(days),
            })
        })
        .await
    }
}
