//! The worker: a thread that owns the connection, drains the queue, and runs every queued call
//! in one `BEGIN IMMEDIATE` transaction (group commit).
//!
//! Taking the write lock before reading any state is what makes decisions exact across
//! processes: no other connection can read a key between our read and our write. One
//! transaction per group instead of per call shares the cost of the commit among the callers
//! that queued while the previous group ran, so throughput grows with concurrency.
//!
//! [`job`] says what the worker is asked and runs one job inside the open transaction,
//! [`connection`] opens the database, and [`checkpoint`] keeps WAL checkpoints on a thread of
//! their own.

mod checkpoint;
mod connection;
mod job;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::config::SqliteConfig;
use crate::error::{SqliteError, is_busy};
use checkpoint::{CHECKPOINT_EVERY_ROWS, Checkpointer};
pub(crate) use connection::Target;
use job::JobResult;
pub(crate) use job::{Answer, Job};

/// Rows deleted per transaction by a sweep, so that a large sweep does not hold the write
/// lock for long.
const SWEEP_CHUNK: u64 = 1_000;

/// A job and where its answer goes.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) job: Job,
    pub(crate) reply: oneshot::Sender<JobResult>,
}

/// Starts the worker on `target`; `ready` answers once the database is open (or could not be).
pub(crate) fn spawn(
    target: Target,
    config: SqliteConfig,
    ready: oneshot::Sender<Result<(), SqliteError>>,
) -> Result<(mpsc::Sender<Request>, JoinHandle<()>), SqliteError> {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("limiter-sqlite".into())
        .spawn(move || {
            let conn = match connection::connect(&target, config.busy_timeout) {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            // Nobody waits for a store whose opening was abandoned.
            if ready.send(Ok(())).is_ok() {
                let mut worker = Worker::new(conn, config);
                if let Target::File(path) = &target {
                    worker.start_checkpointer(path);
                }
                worker.serve(&rx);
                if let Some(checkpointer) = worker.checkpointer.take() {
                    checkpointer.stop();
                }
            }
        })
        .map_err(|e| SqliteError::Spawn(e.into()))?;
    Ok((tx, handle))
}

struct Worker {
    conn: Connection,
    config: SqliteConfig,
    next_sweep: Option<Instant>,
    buf: Vec<u8>,
    checkpointer: Option<Checkpointer>,
    /// `total_changes()` at the last nudge of the checkpointer.
    changes_at_nudge: u64,
}

impl Worker {
    fn new(conn: Connection, config: SqliteConfig) -> Worker {
        let next_sweep = config
            .sweep_interval
            .and_then(|i| Instant::now().checked_add(i));
        Worker {
            conn,
            config,
            next_sweep,
            buf: Vec::new(),
            checkpointer: None,
            changes_at_nudge: 0,
        }
    }

    /// Moves checkpoints to a thread of their own. Without one (it could not start), SQLite
    /// keeps checkpointing in the commits, as by default.
    fn start_checkpointer(&mut self, path: &std::path::Path) {
        let Ok(checkpointer) = Checkpointer::start(path) else {
            return;
        };
        match self.conn.pragma_update(None, "wal_autocheckpoint", 0) {
            Ok(()) => self.checkpointer = Some(checkpointer),
            Err(_) => checkpointer.stop(),
        }
    }

    /// Serves until every sender is gone (the store was dropped).
    fn serve(&mut self, rx: &mpsc::Receiver<Request>) {
        let max_group = self.config.max_group.max(1);
        loop {
            let first = match self.next_sweep {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(request) => request,
                    Err(RecvTimeoutError::Timeout) => {
                        self.periodic_sweep();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
            };
            let mut group = vec![first];
            while group.len() < max_group {
                match rx.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            self.run_group(group);
            if self.next_sweep.is_some_and(|at| at <= Instant::now()) {
                self.periodic_sweep();
            }
        }
    }

    fn periodic_sweep(&mut self) {
        let now = self.config.clock.now();
        // A failure (another process holding the lock) is retried at the next period.
        let _ = self.sweep(now);
        self.next_sweep = self
            .config
            .sweep_interval
            .and_then(|i| Instant::now().checked_add(i));
    }

    /// Deletes every row fresh at `now`, a chunk per transaction.
    fn sweep(&mut self, now: limiter_core::Micros) -> Result<u64, SqliteError> {
        let mut total = 0;
        loop {
            let deleted = self.transaction(|conn, _| job::sweep_chunk(conn, now, SWEEP_CHUNK))?;
            total += deleted;
            if deleted < SWEEP_CHUNK {
                return Ok(total);
            }
        }
    }

    fn run_group(&mut self, group: Vec<Request>) {
        // A caller that stopped waiting (timed out, or dropped its future) is not charged.
        let (sweeps, group): (Vec<_>, Vec<_>) = group
            .into_iter()
            .filter(|r| !r.reply.is_closed())
            .partition(|r| matches!(r.job, Job::Sweep { .. }));
        for request in sweeps {
            if let Job::Sweep { now } = request.job {
                let _ = request.reply.send(self.sweep(now).map(Answer::Swept));
            }
        }
        if group.is_empty() {
            return;
        }
        let jobs: Vec<&Job> = group.iter().map(|r| &r.job).collect();
        match self.transaction(|conn, buf| {
            jobs.iter()
                .map(|job| job::run(conn, job, buf))
                .collect::<Result<Vec<JobResult>, SqliteError>>()
        }) {
            Ok(answers) => {
                for (request, answer) in group.into_iter().zip(answers) {
                    let _ = request.reply.send(answer);
                }
            }
            // The failure took the whole group's transaction down, and nothing of it was
            // committed. If the lock could not be had, or the group was one call, every call
            // gets the error. Otherwise one call may be at fault: run each alone, so that the
            // others are answered as they would have been.
            Err(e) if group.len() == 1 || is_lock_failure(&e) => {
                for request in group {
                    let _ = request.reply.send(Err(e.clone()));
                }
            }
            Err(_) => {
                for request in group {
                    let answer = self
                        .transaction(|conn, buf| job::run(conn, &request.job, buf))
                        .and_then(|answer| answer);
                    let _ = request.reply.send(answer);
                }
            }
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed if `f` succeeds.
    fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection, &mut Vec<u8>) -> Result<T, SqliteError>,
    ) -> Result<T, SqliteError> {
        if !self.conn.is_autocommit() {
            // A rollback that failed earlier left a transaction open; end it before the next.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(SqliteError::sqlite("taking the write lock"))?;
        // Dropping `tx` without commit rolls back.
        let value = f(&tx, &mut self.buf)?;
        tx.commit().map_err(SqliteError::sqlite("committing"))?;
        if let Some(checkpointer) = &self.checkpointer {
            let changes = self.conn.total_changes();
            if changes.saturating_sub(self.changes_at_nudge) >= CHECKPOINT_EVERY_ROWS {
                checkpointer.nudge();
                self.changes_at_nudge = changes;
            }
        }
        Ok(value)
    }
}

/// Whether the error is the write lock staying busy: running the calls one by one would only
/// make each wait the busy timeout again.
fn is_lock_failure(e: &SqliteError) -> bool {
    matches!(e, SqliteError::Sqlite { source, .. } if is_busy(source))
}
