//! The schema, versioned with `PRAGMA user_version`, and the migrations between versions.
//!
//! Each migration is a file `migrations/NNNN_what.sql` that takes the schema from version
//! `NNNN - 1` to `NNNN`; a new version adds the next file and lists it last in [`MIGRATIONS`].
//! An earlier file is never edited: databases already past its version would not run it again.
//!
//! Version `n` is reached from any version below it by running `MIGRATIONS[v..n]` in order, in
//! one `BEGIN IMMEDIATE` transaction that also sets `user_version`: a new (empty) file is
//! version 0, and version 1 is created from it by the very path later versions will take. Two
//! processes opening the same new file at once serialize on the write lock; the second sees
//! the version the first committed and runs nothing.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::SqliteError;

/// `MIGRATIONS[i]` takes the schema from version `i` to version `i + 1`: the file numbered
/// `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_limiter_state.sql"),
    include_str!("migrations/0002_api_keys.sql"),
    include_str!("migrations/0003_events.sql"),
    include_str!("migrations/0004_notify.sql"),
];

/// The schema version this build writes.
pub(crate) const LATEST: usize = MIGRATIONS.len();

/// Reads the file's schema version; refuses one above `known` (a newer build wrote it) or
/// below zero (not ours) before anything is written.
pub(crate) fn version(conn: &Connection, known: usize) -> Result<usize, SqliteError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(SqliteError::sqlite("reading the schema version"))?;
    match usize::try_from(found) {
        Ok(v) if v <= known => Ok(v),
        _ => Err(SqliteError::UnknownVersion { found, known }),
    }
}

/// Brings the schema to [`LATEST`], then checks that the table is usable.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), SqliteError> {
    migrate_with(conn, MIGRATIONS)?;
    conn.prepare("SELECT key, state, fresh_at FROM limiter_state LIMIT 0")
        .map(drop)
        .map_err(|source| SqliteError::NotOurSchema {
            version: LATEST,
            source: source.into(),
        })
}

/// Runs the `migrations` the file has not seen yet, all in one transaction.
fn migrate_with(conn: &mut Connection, migrations: &[&str]) -> Result<(), SqliteError> {
    // Read without a write lock first: a file already at the latest version is not written
    // at all, and one from a newer build is refused untouched.
    if version(conn, migrations.len())? == migrations.len() {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(SqliteError::sqlite(
            "locking the file to migrate its schema",
        ))?;
    // Another process may have migrated between the read above and the lock.
    let from = version(&tx, migrations.len())?;
    for (i, sql) in migrations.iter().enumerate().skip(from) {
        tx.execute_batch(sql)
            .map_err(SqliteError::sqlite("migrating the schema"))?;
        let to = i64::try_from(i + 1).unwrap_or(i64::MAX);
        tx.pragma_update(None, "user_version", to)
            .map_err(SqliteError::sqlite("setting the schema version"))?;
    }
    tx.commit()
        .map_err(SqliteError::sqlite("committing the schema migration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version")
    }

    #[test]
    fn an_empty_database_reaches_the_latest_version_through_the_migrations() {
        let mut conn = Connection::open_in_memory().expect("open");
        assert_eq!(user_version(&conn), 0);
        migrate(&mut conn).expect("migrate");
        assert_eq!(user_version(&conn), i64::try_from(LATEST).expect("small"));
        let index: String = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'limiter_state'",
                [],
                |r| r.get(0),
            )
            .expect("the fresh_at index exists");
        assert_eq!(index, "limiter_state_fresh_at");
        let events: Vec<String> = {
            let mut statement = conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'index' \
                     AND tbl_name = 'limit_events' ORDER BY name",
                )
                .expect("prepare");
            statement
                .query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("names")
        };
        assert_eq!(
            events,
            ["limit_events_kind_window", "limit_events_tenant_at"]
        );
        let notify: Vec<String> = {
            let mut statement = conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
                     AND tbl_name IN ('notify_outbox', 'notify_inbox') ORDER BY name",
                )
                .expect("prepare");
            statement
                .query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("names")
        };
        assert_eq!(
            notify,
            [
                "notify_inbox_tenant_at",
                "notify_inbox_unread",
                "notify_outbox_ready",
                "notify_outbox_settled"
            ]
        );
        // A claim reads the due rows through the partial index, in its order: no sort, and no
        // scan of the rows already settled.
        let plan: Vec<String> = {
            let mut statement = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", crate::outbox::CANDIDATES))
                .expect("prepare");
            statement
                .query_map([5, 10], |r| r.get::<_, String>(3))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("plan")
        };
        assert!(
            plan.iter().any(|step| step.contains("notify_outbox_ready")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
        // Running again changes nothing.
        migrate(&mut conn).expect("migrate again");
        assert_eq!(user_version(&conn), i64::try_from(LATEST).expect("small"));
    }

    // The mechanism on a longer history than the crate has yet: every starting version ends at
    // the last one, each step runs once, and data survives.
    const HISTORY: &[&str] = &[
        "CREATE TABLE t (a INTEGER NOT NULL);",
        "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 7;",
        "CREATE INDEX t_b ON t (b);",
    ];

    #[test]
    fn every_earlier_version_migrates_step_by_step_to_the_last() {
        for start in 0..=HISTORY.len() {
            let mut conn = Connection::open_in_memory().expect("open");
            migrate_with(&mut conn, &HISTORY[..start]).expect("reach the start version");
            assert_eq!(user_version(&conn), i64::try_from(start).expect("small"));
            if start >= 1 {
                conn.execute("INSERT INTO t (a) VALUES (1)", [])
                    .expect("insert");
            }
            migrate_with(&mut conn, HISTORY).expect("migrate to the last version");
            assert_eq!(user_version(&conn), 3);
            let b: i64 = conn
                .query_row("SELECT coalesce(sum(b), 0) FROM t", [], |r| r.get(0))
                .expect("column b exists");
            assert_eq!(b, if start >= 1 { 7 } else { 0 }, "start {start}");
        }
    }

    #[test]
    fn a_failing_migration_leaves_the_version_and_schema_as_they_were() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate_with(&mut conn, &HISTORY[..1]).expect("version 1");
        let broken = [HISTORY[0], HISTORY[1], "THIS IS NOT SQL;"];
        let err = migrate_with(&mut conn, &broken).expect_err("the third step fails");
        assert!(matches!(err, SqliteError::Sqlite { .. }), "{err:?}");
        assert_eq!(user_version(&conn), 1);
        let columns: i64 = conn
            .query_row("SELECT count(*) FROM pragma_table_info('t')", [], |r| {
                r.get(0)
            })
            .expect("table info");
        assert_eq!(columns, 1, "step 2 was rolled back with step 3");
    }

    #[test]
    fn a_newer_version_is_refused_before_anything_is_written() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", 4).expect("set");
        let err = migrate_with(&mut conn, HISTORY).expect_err("refused");
        assert!(
            matches!(err, SqliteError::UnknownVersion { found: 4, known: 3 }),
            "{err:?}"
        );
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .expect("count");
        assert_eq!(tables, 0);
    }
}
