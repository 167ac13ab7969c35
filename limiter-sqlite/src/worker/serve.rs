//! The worker thread itself: the queue it drains, the groups it commits, and its sweeps.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::thread::{self, JoinHandle};

use limiter_core::batch::{Batch, BatchOutcome, Mode};
use limiter_core::time::micros;
use limiter_core::{Key, Micros};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::sync::oneshot;

use super::checkpoint::{CHECKPOINT_EVERY_ROWS, Checkpointer};
use super::connection::Target;
use super::job::{Call, JobFailure, Reply};
use super::{connection, job};
use crate::config::SqliteConfig;
use crate::error::{SqliteError, is_busy};

/// Rows deleted per transaction by a sweep, so that a large sweep neither holds the write lock
/// for long nor keeps the calls queued behind it waiting for more than one chunk.
const SWEEP_CHUNK: u64 = 1_000;

/// Starts the worker on `target`; `ready` answers once the database is open (or could not be).
///
/// The queue holds at most `config.queue_capacity` calls: callers wait for room (within their
/// timeout) rather than pile up without bound behind a worker that cannot keep up.
pub(crate) fn spawn(
    target: Target,
    config: SqliteConfig,
    ready: oneshot::Sender<Result<(), SqliteError>>,
) -> Result<(mpsc::Sender<Call>, JoinHandle<()>), SqliteError> {
    let (tx, mut rx) = mpsc::channel(config.queue_capacity.max(1));
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
                worker.serve(&mut rx);
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
    /// The callers' `now` from which the next automatic sweep is due.
    next_sweep: Micros,
    /// The longest period of any limit evaluated so far: how long an automatic sweep leaves a
    /// row after it went fresh.
    longest_period: Micros,
    /// The cut-off of the automatic sweep under way, which has more chunks to delete.
    sweeping: Option<Micros>,
    buf: Vec<u8>,
    checkpointer: Option<Checkpointer>,
    /// `total_changes()` at the last nudge of the checkpointer.
    changes_at_nudge: u64,
}

impl Worker {
    fn new(conn: Connection, config: SqliteConfig) -> Worker {
        Worker {
            conn,
            config,
            next_sweep: 0,
            longest_period: 0,
            sweeping: None,
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
    fn serve(&mut self, rx: &mut mpsc::Receiver<Call>) {
        let max_group = self.config.max_group.max(1);
        loop {
            let first = if self.sweeping.is_some() {
                // A sweep under way goes on, a chunk at a time, while no call is waiting.
                match rx.try_recv() {
                    Ok(call) => call,
                    Err(TryRecvError::Empty) => {
                        self.continue_sweep();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => return,
                }
            } else {
                match rx.blocking_recv() {
                    Some(call) => call,
                    None => return,
                }
            };
            let mut group = vec![first];
            while group.len() < max_group {
                match rx.try_recv() {
                    Ok(call) => group.push(call),
                    Err(_) => break,
                }
            }
            // A panic that escapes a transaction (which catches its own) must not end the
            // thread: the store would fail every later call until the process restarts. The
            // calls it held are dropped unanswered, which their callers see as a temporary
            // error, and the next group starts afresh (see `transaction`).
            let served = panic::catch_unwind(AssertUnwindSafe(|| {
                if let Some(latest) = self.run_group(group) {
                    self.maybe_sweep(latest);
                }
                // One chunk between two groups at most: a large sweep makes progress under
                // any load, and delays the calls queued behind it by one chunk only.
                self.continue_sweep();
            }));
            if served.is_err() {
                self.sweeping = None;
            }
        }
    }

    /// Starts an automatic sweep if one is due at `now`, the latest time a caller asked about:
    /// at most once per `sweep_interval` of the callers' time, as in the memory store.
    ///
    /// The sweep deletes the rows that were already fresh one period before `now`, taking the
    /// longest period evaluated so far, hence at least one period of each row's own limit: the
    /// memory store's margin, so that a caller whose clock is behind the latest by less than
    /// that (a skewed host) still finds its state. A row does not record its limit's period,
    /// so the longest one stands in.
    fn maybe_sweep(&mut self, now: Micros) {
        let Some(interval) = self.config.sweep_interval else {
            return;
        };
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now.saturating_add(micros(interval).max(1));
        self.sweeping = Some(now.saturating_sub(self.longest_period));
    }

    /// Deletes the next chunk of the automatic sweep under way, if any.
    fn continue_sweep(&mut self) {
        let Some(cut_off) = self.sweeping else {
            return;
        };
        let deleted = self.transaction(|conn, _| job::sweep_chunk(conn, cut_off, SWEEP_CHUNK));
        // A full chunk may have left more. Anything else ends the sweep: it is done, or it
        // failed (another process held the lock), and the next one is due an interval later.
        if !matches!(deleted, Ok(n) if n == SWEEP_CHUNK) {
            self.sweeping = None;
        }
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

    /// Runs `calls`, and returns the `now` of the last evaluation among them: the latest time
    /// a caller asked about.
    fn run_group(&mut self, calls: Vec<Call>) -> Option<Micros> {
        let mut group = Vec::with_capacity(calls.len());
        let mut latest = None;
        // A caller that stopped waiting (timed out, or dropped its future) is not charged.
        for call in calls.into_iter().filter(|c| !c.is_abandoned()) {
            match call {
                Call::Evaluate {
                    batch,
                    now,
                    mode,
                    reply,
                } => {
                    latest = Some(now);
                    for check in batch.checks() {
                        let period = check.limit.rate().period().micros();
                        self.longest_period = self.longest_period.max(period);
                    }
                    group.push(Grouped::Evaluate {
                        batch,
                        now,
                        mode,
                        reply: Held::new(reply),
                    });
                }
                Call::Reset { key, reply } => group.push(Grouped::Reset {
                    key,
                    reply: Held::new(reply),
                }),
                Call::Sweep { now, reply } => {
                    if reply.start() {
                        reply.send(self.sweep(now));
                    }
                }
                Call::Keys { job, reply } => {
                    if reply.start() {
                        let answer = if job.writes() {
                            self.transaction(|conn, _| crate::keys::run(conn, &job))
                        } else {
                            crate::keys::run(&self.conn, &job)
                        };
                        reply.send(answer);
                    }
                }
            }
        }
        if group.is_empty() {
            return latest;
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
        latest
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
        // Dropping `tx` without commit rolls back. A job that panics (a bug) fails its own
        // call with a temporary error, like a SQLite failure, and the worker goes on: its
        // transaction is rolled back, and a group it was part of runs again call by call.
        let value = panic::catch_unwind(AssertUnwindSafe(|| f(&tx, &mut self.buf)))
            .unwrap_or_else(|payload| {
                Err(SqliteError::Panicked {
                    doing: "running a transaction",
                    message: panic_message(payload.as_ref()),
                })
            })?;
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

/// What a caught panic said, if it said it with a string.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
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
        batch: Box<Batch>,
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
    /// transaction. A call whose caller gave up while the worker waited for the lock is not
    /// run: its caller was told it charged nothing.
    fn run(&mut self, conn: &Connection, buf: &mut Vec<u8>) -> Result<(), SqliteError> {
        let started = match self {
            Grouped::Evaluate { reply, .. } => reply.reply.start(),
            Grouped::Reset { reply, .. } => reply.reply.start(),
        };
        if !started {
            return Ok(());
        }
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
            self.reply.send(answer);
        }
    }

    fn fail(self, error: SqliteError) {
        self.reply.send(Err(error));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use limiter_core::{Check, Limit, Rate, SubjectKind};
    use rusqlite::params;

    use super::*;
    use crate::worker::Ticket;

    const MINUTE: Micros = 60_000_000;

    fn worker(sweep_interval: Option<Duration>) -> Worker {
        let conn = connection::connect(&Target::Memory, Duration::from_secs(1)).expect("open");
        Worker::new(
            conn,
            SqliteConfig::new().with_sweep_interval(sweep_interval),
        )
    }

    /// Inserts `n` rows named `prefix<i>` that are fresh from `fresh_at`.
    fn insert(worker: &Worker, prefix: &str, n: u64, fresh_at: Micros) {
        worker
            .conn
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
                 INSERT INTO limiter_state (key, state, fresh_at) SELECT ?1 || i, x'00', ?3 FROM n",
                params![prefix, to_i64(n), to_i64(fresh_at)],
            )
            .expect("insert");
    }

    fn count(worker: &Worker, prefix: &str) -> u64 {
        let n: i64 = worker
            .conn
            .query_row(
                "SELECT count(*) FROM limiter_state WHERE key LIKE ?1 || '%'",
                params![prefix],
                |r| r.get(0),
            )
            .expect("count");
        u64::try_from(n).expect("a count")
    }

    fn to_i64(v: u64) -> i64 {
        i64::try_from(v).expect("small")
    }

    #[test]
    fn an_automatic_sweep_deletes_a_chunk_at_a_time_and_only_rows_fresh_at_its_now() {
        let mut worker = worker(Some(Duration::from_secs(60)));
        insert(&worker, "stale", 2 * SWEEP_CHUNK + 500, 10);
        insert(&worker, "boundary", 1, 100);
        insert(&worker, "live", 3, 101);
        worker.maybe_sweep(100);
        // Each step is one transaction of at most one chunk; the calls queued meanwhile are
        // served between steps.
        for left in [SWEEP_CHUNK + 501, 501, 0] {
            assert!(worker.sweeping.is_some());
            worker.continue_sweep();
            assert_eq!(count(&worker, "stale") + count(&worker, "boundary"), left);
        }
        assert!(worker.sweeping.is_none(), "the last, partial chunk ends it");
        assert_eq!(count(&worker, "live"), 3, "swept rows not yet fresh");
    }

    #[test]
    fn an_automatic_sweep_leaves_rows_for_the_longest_period_evaluated() {
        let mut worker = worker(Some(Duration::from_secs(60)));
        insert(&worker, "old", 1, 10 * MINUTE);
        insert(&worker, "recent", 1, 11 * MINUTE);
        let hourly = Limit::gcra("1/hour".parse::<Rate>().expect("rate"));
        let key = Key::new("test", "p", SubjectKind::User, "k");
        let batch = Batch::new(vec![Check::new("p", key, hourly, 1)]).expect("batch");
        let (reply, mut answer) = oneshot::channel();
        let call = Call::Evaluate {
            batch: Box::new(batch),
            now: 70 * MINUTE,
            mode: Mode::Consume,
            reply: Reply::new(reply, Ticket::default()),
        };
        assert_eq!(worker.run_group(vec![call]), Some(70 * MINUTE));
        assert!(answer.try_recv().expect("answered").expect("ok").allowed);

        worker.maybe_sweep(70 * MINUTE);
        assert_eq!(
            worker.sweeping,
            Some(10 * MINUTE),
            "an hour before the latest now"
        );
        worker.continue_sweep();
        assert_eq!(count(&worker, "old"), 0);
        assert_eq!(
            count(&worker, "recent"),
            1,
            "fresh at the latest now, but not yet for an hour"
        );
    }

    #[test]
    fn automatic_sweeps_are_due_once_per_interval_of_the_callers_time() {
        let mut worker = worker(Some(Duration::from_secs(60)));
        // The first call sweeps, as in the memory store.
        worker.maybe_sweep(5 * MINUTE);
        assert_eq!(worker.sweeping, Some(5 * MINUTE));
        worker.continue_sweep();
        assert_eq!(worker.sweeping, None);
        worker.maybe_sweep(6 * MINUTE - 1);
        assert_eq!(worker.sweeping, None, "due only a whole interval later");
        worker.maybe_sweep(6 * MINUTE);
        assert_eq!(worker.sweeping, Some(6 * MINUTE));

        let mut off = self::worker(None);
        for now in [0, MINUTE, 60 * MINUTE] {
            off.maybe_sweep(now);
            assert_eq!(off.sweeping, None, "sweeps are off");
        }
    }
}
