//! Opening a connection: the version check, the migrations and the pragmas, in an order that
//! leaves a file we refuse exactly as it was.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{SqliteError, is_busy};
use crate::schema;

/// What a store opens.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A database file, created if missing.
    File(PathBuf),
    /// A private in-memory database, gone with the store.
    Memory,
}

/// Opens `target`, ready for the worker: schema at the latest version, WAL for a file,
/// `synchronous=NORMAL`, and `busy_timeout` for locks held by other processes.
pub(crate) fn connect(target: &Target, busy_timeout: Duration) -> Result<Connection, SqliteError> {
    let mut conn = match target {
        Target::File(path) => Connection::open(path),
        Target::Memory => Connection::open_in_memory(),
    }
    .map_err(SqliteError::sqlite("opening the database"))?;
    conn.busy_timeout(busy_timeout)
        .map_err(SqliteError::sqlite("setting the busy timeout"))?;
    // The first read tells a non-database or a newer schema apart before anything is written:
    // switching to WAL rewrites the file header, so it comes after the checks.
    schema::migrate(&mut conn)?;
    if let Target::File(_) = target {
        switch_to_wal(&conn, busy_timeout)?;
    }
    // In WAL mode, NORMAL still commits atomically and survives a crashed process; only a
    // power loss may lose the last transactions, never corrupt the file.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(SqliteError::sqlite("setting synchronous=NORMAL"))?;
    Ok(conn)
}

fn switch_to_wal(conn: &Connection, busy_timeout: Duration) -> Result<(), SqliteError> {
    let deadline = Instant::now() + busy_timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => return Err(SqliteError::NoWal { mode }),
            // When several processes open a new file at once, SQLite may answer BUSY at once,
            // without waiting in its busy handler (waiting could deadlock): wait here instead,
            // within the same busy timeout. It happens only until the file is in WAL mode.
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(SqliteError::sqlite("switching to WAL mode")(e)),
        }
    }
}
