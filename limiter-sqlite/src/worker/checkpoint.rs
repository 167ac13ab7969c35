//! The checkpointer: a second thread that copies the WAL back into the database file, so that
//! no decision waits for it.
//!
//! In WAL mode a commit appends the pages it changed to the `-wal` file; a checkpoint copies
//! them into the database and syncs both files, the only `fsync` that `synchronous=NORMAL`
//! does. By default SQLite runs it inside the commit that takes the WAL past 1000 pages, on the
//! writer's thread, and a decision that writes five keys gets there five times as often. The
//! worker turns that off and nudges this thread instead, which checkpoints on a connection of
//! its own in `PASSIVE` mode: it never waits for, nor blocks, the writer of any process.

use std::path::Path;
use std::sync::mpsc::{self, SyncSender};
use std::thread::{self, JoinHandle};

use rusqlite::Connection;

use crate::error::SqliteError;

/// Rows written between two checkpoints: about SQLite's default of 1000 WAL pages.
pub(crate) const CHECKPOINT_EVERY_ROWS: u64 = 1_000;

pub(crate) struct Checkpointer {
    nudge: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Opens a second connection to `path` (already in WAL mode) and starts the thread.
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, SqliteError> {
        let conn =
            Connection::open(path).map_err(SqliteError::sqlite("opening the checkpointer"))?;
        // Nudges that arrive while a checkpoint runs are folded into the next one.
        let (nudge, nudged) = mpsc::sync_channel::<()>(1);
        let thread = thread::Builder::new()
            .name("limiter-sqlite-checkpoint".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    // A failure (another process checkpointing at the same time answers BUSY,
                    // and then does the work) is retried at the next nudge.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| SqliteError::Spawn(e.into()))?;
        Ok(Checkpointer { nudge, thread })
    }

    /// Asks for a checkpoint soon; never blocks.
    pub(crate) fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    /// Stops the thread once it has finished a checkpoint under way.
    pub(crate) fn stop(self) {
        drop(self.nudge);
        let _ = self.thread.join();
    }
}
