//! The crate's private error, and the one function that maps it to [`limiter_core::Error`].

use std::sync::Arc;
use std::time::Duration;

use limiter_core::{Error, ErrorKind};
use rusqlite::ErrorCode;

/// What can go wrong inside the store. It never leaves the crate: [`into_core_error`] turns it
/// into the public error, with the file's path and what was expected.
///
/// Clone, because one failure (a lock held too long) answers every call of a group.
#[derive(Debug, Clone)]
pub(crate) enum SqliteError {
    /// SQLite failed while the store was doing `doing`.
    Sqlite {
        doing: &'static str,
        source: Arc<rusqlite::Error>,
    },
    /// The file's `user_version` is one this build does not know.
    UnknownVersion { found: i64, known: usize },
    /// The file claims the current version but lacks the expected table.
    NotOurSchema {
        version: usize,
        source: Arc<rusqlite::Error>,
    },
    /// The file system would not switch the file to WAL mode.
    NoWal { mode: String },
    /// A row holds bytes that `State::decode` rejects, and its `fresh_at` is still ahead.
    CorruptState { key: String, fresh_at: u64 },
    /// Notice `id` could not be written as JSON for the outbox.
    EncodeNotice {
        id: String,
        source: Arc<serde_json::Error>,
    },
    /// The queue stayed full (`capacity` calls) for the whole `waited`: the call was never
    /// queued.
    QueueFull { capacity: usize, waited: Duration },
    /// The caller stopped waiting after `timeout`, once the worker had started its job.
    StartedThenTimedOut { timeout: Duration },
    /// The worker panicked while `doing` a call's work; the panic was caught, and the
    /// transaction rolled back.
    Panicked {
        doing: &'static str,
        message: String,
    },
    /// The worker dropped the call without answering: it panicked outside a transaction,
    /// and went on serving.
    Unanswered,
    /// The worker thread could not be started.
    Spawn(Arc<std::io::Error>),
    /// The worker thread is gone (it panicked): nothing more can be answered.
    WorkerStopped,
}

impl SqliteError {
    /// A rusqlite failure while `doing`.
    pub(crate) fn sqlite(doing: &'static str) -> impl FnOnce(rusqlite::Error) -> SqliteError {
        move |source| SqliteError::Sqlite {
            doing,
            source: Arc::new(source),
        }
    }
}

/// Whether SQLite said that another connection holds the lock.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Where an error happened: the store as it names itself, its file, and its busy timeout.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// The store's `Display` (`SqliteStore(/path/to/file.db)`).
    pub(crate) backend: String,
    /// The database file, or `:memory:`.
    pub(crate) path: String,
    pub(crate) busy_timeout: Duration,
}

/// The one mapping from [`SqliteError`] to the public error: decides temporary or permanent,
/// and says what was wrong, with the path, and what is expected.
pub(crate) fn into_core_error(site: &Site, error: SqliteError) -> Error {
    let path = &site.path;
    let (kind, message, source): (ErrorKind, String, Option<limiter_core::BoxError>) = match error {
        SqliteError::Sqlite { doing, source } => {
            let (kind, message) = match source.sqlite_error_code() {
                _ if is_busy(&source) => (
                    ErrorKind::Temporary,
                    format!(
                        "{path} stayed locked by another connection for longer than the busy \
                         timeout of {:?} while {doing} ({source}); expected the lock to be released \
                         within it: retry later, or raise SqliteConfig::busy_timeout",
                        site.busy_timeout
                    ),
                ),
                Some(ErrorCode::NotADatabase) => (
                    ErrorKind::Permanent,
                    format!(
                        "{path} is not a SQLite database ({source}) while {doing}; expected a \
                         SQLite database file, or a missing or empty file to create one; the file \
                         was left untouched"
                    ),
                ),
                Some(ErrorCode::DatabaseCorrupt) => (
                    ErrorKind::Permanent,
                    format!(
                        "{path} is corrupt ({source}) while {doing}; expected an intact SQLite \
                         database: restore it from a copy, or remove it to start every limit over"
                    ),
                ),
                Some(ErrorCode::ReadOnly) => (
                    ErrorKind::Permanent,
                    format!(
                        "{path} is read-only ({source}) while {doing}; expected a database file \
                         and directory this process may write"
                    ),
                ),
                Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => (
                    ErrorKind::Permanent,
                    format!(
                        "cannot open or create {path} ({source}) while {doing}; expected a \
                         writable file path whose directory exists"
                    ),
                ),
                Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::OutOfMemory) => {
                    (
                        ErrorKind::Temporary,
                        format!("{doing} failed on {path}: {source}"),
                    )
                }
                _ => (
                    ErrorKind::Permanent,
                    format!("{doing} failed on {path}: {source}"),
                ),
            };
            (kind, message, Some(Box::new(source)))
        }
        SqliteError::UnknownVersion { found, known } => (
            ErrorKind::Permanent,
            format!(
                "{path} has schema version {found} (PRAGMA user_version), which this version of \
                 limiter-sqlite does not know; expected a version from 0 to {known}: open it with \
                 the newer limiter-sqlite that wrote it. The file was left untouched"
            ),
            None,
        ),
        SqliteError::NotOurSchema { version, source } => (
            ErrorKind::Permanent,
            format!(
                "{path} is at schema version {version} but has no usable table limiter_state \
                 ({source}); expected a database written by limiter-sqlite, or a new one. The \
                 file was left untouched"
            ),
            Some(Box::new(source)),
        ),
        SqliteError::NoWal { mode } => (
            ErrorKind::Permanent,
            format!(
                "{path} stayed in journal mode {mode:?} when asked for WAL; expected a file \
                 system that supports WAL (a local disk, not a network share)"
            ),
            None,
        ),
        SqliteError::CorruptState { key, fresh_at } => (
            ErrorKind::Permanent,
            format!(
                "{path} holds state for key {key:?} that cannot be decoded; it counts as spent \
                 until its fresh_at of {fresh_at} (microseconds since the Unix epoch), when the \
                 key starts over; expected bytes written by State::encode: reset the key to \
                 start it over now"
            ),
            None,
        ),
        SqliteError::EncodeNotice { id, source } => (
            ErrorKind::Permanent,
            format!(
                "notice {id} cannot be written to the outbox of {path} as JSON ({source}); \
                 expected a notice that serde_json encodes: report it as a bug of limiter-sqlite"
            ),
            Some(Box::new(source)),
        ),
        SqliteError::QueueFull { capacity, waited } => (
            ErrorKind::Temporary,
            format!(
                "the queue of {path} stayed full ({capacity} calls waiting for the worker, \
                 SqliteConfig::queue_capacity) for the call's whole timeout of {waited:?}; the \
                 call was not queued and charged nothing; expected the worker to make room within \
                 the timeout (it falls behind when another process holds the file's lock): retry \
                 later, or raise SqliteConfig::queue_capacity"
            ),
            None,
        ),
        SqliteError::StartedThenTimedOut { timeout } => (
            ErrorKind::Indeterminate,
            format!(
                "{path} did not answer within {timeout:?}, after the worker had started the call: \
                 it may still be committed, so a decision may have been charged (once, and never \
                 beyond its limits) although it answered this error; expected an answer within \
                 the timeout: raise SqliteConfig::timeout or EvalOptions::timeout, and peek to \
                 see what is left"
            ),
            None,
        ),
        SqliteError::Panicked { doing, message } => (
            ErrorKind::Temporary,
            format!(
                "the worker of {path} panicked while {doing} ({message}); its transaction was \
                 rolled back, so the call charged nothing, and the worker goes on serving; \
                 expected no panic: retry, and report it as a bug of limiter-sqlite"
            ),
            None,
        ),
        SqliteError::Unanswered => (
            ErrorKind::Indeterminate,
            format!(
                "the worker of {path} dropped the call without answering (it panicked), and \
                 goes on serving; the call may have been charged; expected an answer: retry, \
                 and report the panic as a bug of limiter-sqlite"
            ),
            None,
        ),
        SqliteError::Spawn(source) => (
            ErrorKind::Temporary,
            format!("cannot start the worker thread for {path}: {source}"),
            Some(Box::new(source)),
        ),
        SqliteError::WorkerStopped => (
            ErrorKind::Permanent,
            format!(
                "the worker thread of {path} has stopped; expected it to run until the store is \
                 dropped: open the store again"
            ),
            None,
        ),
    };
    Error::store(&site.backend, kind, message, source)
}
