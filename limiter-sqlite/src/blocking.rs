//! A connection of its own, for the event log, the outbox and the inbox: opened like the
//! store's (schema migrated, WAL, `synchronous=NORMAL`, `busy_timeout`) and used from async
//! code through tokio's blocking pool, one call at a time.
//!
//! These run beside the store's worker rather than on it, so that a report or a delivery
//! worker never queues behind decisions; they share the file's write lock with every other
//! connection, and SQLite serializes their transactions with the decisions'.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use limiter_core::{Error, ErrorKind};
use rusqlite::Connection;

use crate::error::{Site, SqliteError, into_core_error};
use crate::worker::{Target, connect};

/// One connection to a database file, behind a lock, with the name its errors carry.
pub(crate) struct Blocking {
    site: Arc<Site>,
    conn: Arc<Mutex<Connection>>,
}

impl Blocking {
    /// Opens (or creates) the file at `path` on the blocking pool, bringing its schema to the
    /// latest version. `name` is the type that errors and `Debug` show (`SqliteOutbox`).
    pub(crate) async fn open(
        name: &str,
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<Blocking, Error> {
        let path: PathBuf = path.to_path_buf();
        let site = Arc::new(Site {
            backend: format!("{name}({})", path.display()),
            path: path.display().to_string(),
            busy_timeout,
        });
        let opened = {
            let site = Arc::clone(&site);
            tokio::task::spawn_blocking(move || {
                connect(&Target::File(path), busy_timeout).map_err(|e| into_core_error(&site, e))
            })
            .await
        };
        let conn = opened.map_err(|e| {
            Error::store(
                &site.backend,
                ErrorKind::Permanent,
                format!("the task opening the file failed: {e}"),
                None,
            )
        })??;
        Ok(Blocking {
            site,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The name errors carry: `SqliteOutbox(/path/to/file.db)`.
    pub(crate) fn backend(&self) -> &str {
        &self.site.backend
    }

    /// `error` as the public error, naming this connection's file.
    pub(crate) fn error(&self, error: SqliteError) -> Error {
        into_core_error(&self.site, error)
    }

    /// Runs `work` on the connection on the blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, Error> {
        let conn = Arc::clone(&self.conn);
        let site = Arc::clone(&self.site);
        let joined = tokio::task::spawn_blocking(move || {
            // A panic inside `work` rolls its transaction back: the connection stays usable.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn).map_err(|e| into_core_error(&site, e))
        })
        .await;
        joined.map_err(|e| {
            Error::store(
                &self.site.backend,
                ErrorKind::Indeterminate,
                format!("the task running the query failed: {e}"),
                None,
            )
        })?
    }
}
