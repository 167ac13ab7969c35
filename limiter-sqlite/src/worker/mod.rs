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

use limiter_core::batch::{Batch, BatchOutcome, Mode};
use limiter_core::{Key, Micros};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::config::SqliteConfig;
use crate::error::{SqliteError, is_busy};
use checkpoint::{CHECKPOINT_EVERY_ROWS, Checkpointer};
pub(crate) use connection::Target;
use job::JobFailure;
pub(crate) use job::{Call, Reply};

/// Rows deleted per transaction by a sweep, so that a large sweep does not hold the write
/// lock for long.
const SWEEP_CHUNK: u64 = 1_000;

/// Starts the worker on `target`; `ready` answers once the database is open (or could not be).
pub(crate) fn spawn(
    target: Target,
    config: SqliteConfig,
    ready: oneshot::Sender<Result<(), SqliteError>>,
) -> Result<(mpsc::Sender<Call>, JoinHandle<()>), SqliteError> {
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
    fn serve(&mut self, rx: &mpsc::Receiver<Call>) {
        let max_group = self.config.max_group.max(1);
        loop {
            let first = match self.next_sweep {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(call) => call,
                    Err(RecvTimeoutError::Timeout) => {
                        self.periodic_sweep();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(call) => call,
                    Err(_) => return,
                },
            };
            let mut group = vec![first];
            while group.len() < max_group {
                match rx.try_recv() {
                    Ok(call) => group.push(call),
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
    fn sweep(&mut self, now: Micros) -> Result<u64, SqliteError> {
        let mut total = 0;
        loop {
            let deleted = self.transaction(|conn, _| job::sweep_chunk(conn, now, SWEEP_CHUNK))?;
            total += deleted;
            if deleted < SWEEP_CHUNK {
                return Ok(total);
            }
        }
    }

    fn run_group(&mut self, calls: Vec<Call>) {
        let mut group = Vec::with_capacity(calls.len());
        // A caller that stopped waiting (timed out, or dropped its future) is not charged.
        for call in calls.into_iter().filter(|c| !c.is_abandoned()) {
            match call {
                Call::Evaluate {
                    batch,
                    now,
                    mode,
                    reply,
                } => group.push(Grouped::Evaluate {
                    batch,
                    now,
                    mode,
                    reply: Held::new(reply),
                }),
                Call::Reset { key, reply } => group.push(Grouped::Reset {
                    key,
                    reply: Held::new(reply),
                }),
                Call::Sweep { now, reply } => {
                    let _ = reply.send(self.sweep(now));
                }
            }
        }
        if group.is_empty() {
            return;
        }
        match self.transaction(|conn, buf| group.iter_mut().try_for_each(|g| g.run(conn, buf))) {
            Ok(()) => group.into_iter().for_each(Grouped::answer),
            // The failure took the whole group's transaction down, and nothing of it was
            // committed. If the lock could not be had, or the group was one call, every call
            // gets the error. Otherwise one call may be at fault: run each alone, so that the
            // others are answered as they would have been.
            Err(e) if group.len() == 1 || is_lock_failure(&e) => {
                for grouped in group {
                    grouped.fail(e.clone());
                }
            }
            Err(_) => {
                for mut grouped in group {
                    match self.transaction(|conn, buf| grouped.run(conn, buf)) {
                        Ok(()) => grouped.answer(),
                        Err(e) => grouped.fail(e),
                    }
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

/// A call that runs inside a group's transaction. Its answer is held until that transaction
/// commits: a transaction that aborts wrote nothing, and its calls are answered otherwise.
enum Grouped {
    Evaluate {
        batch: Batch,
        now: Micros,
        mode: Mode,
        reply: Held<BatchOutcome>,
    },
    Reset {
        key: Key,
        reply: Held<()>,
    },
}

impl Grouped {
    /// Runs the call's job in the open transaction and holds its answer; an `Err` aborts the
    /// transaction.
    fn run(&mut self, conn: &Connection, buf: &mut Vec<u8>) -> Result<(), SqliteError> {
        match self {
            Grouped::Evaluate {
                batch,
                now,
                mode,
                reply,
            } => reply.hold(job::evaluate(conn, batch, *now, *mode, buf)),
            Grouped::Reset { key, reply } => reply.hold(job::reset(conn, key)),
        }
    }

    /// Sends the held answer, once the transaction that produced it has committed.
    fn answer(self) {
        match self {
            Grouped::Evaluate { reply, .. } => reply.send(),
            Grouped::Reset { reply, .. } => reply.send(),
        }
    }

    /// Answers `error`, whatever the call's job answered in a transaction that aborted.
    fn fail(self, error: SqliteError) {
        match self {
            Grouped::Evaluate { reply, .. } => reply.fail(error),
            Grouped::Reset { reply, .. } => reply.fail(error),
        }
    }
}

/// A typed reply, and the answer it is to carry once the transaction commits.
struct Held<T> {
    reply: Reply<T>,
    answer: Option<Result<T, SqliteError>>,
}

impl<T> Held<T> {
    fn new(reply: Reply<T>) -> Held<T> {
        Held {
            reply,
            answer: None,
        }
    }

    /// Holds what the job answered: its result, or its own failure (which wrote nothing, so
    /// the transaction goes on). A failure that aborts the transaction is passed up instead.
    fn hold(&mut self, result: Result<T, JobFailure>) -> Result<(), SqliteError> {
        let answer = match result {
            Ok(value) => Ok(value),
            Err(JobFailure::Skip(e)) => Err(e),
            Err(JobFailure::Abort(e)) => {
                self.answer = None;
                return Err(e);
            }
        };
        self.answer = Some(answer);
        Ok(())
    }

    fn send(self) {
        // An answer is held once the job has run; a reply dropped unanswered tells the caller
        // that the worker gave up on its call.
        if let Some(answer) = self.answer {
            let _ = self.reply.send(answer);
        }
    }

    fn fail(self, error: SqliteError) {
        let _ = self.reply.send(Err(error));
    }
}
