//! What the worker is asked to do, and how one job runs inside an open transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use limiter_core::batch::{self, Batch, BatchOutcome, Mode};
use limiter_core::{Key, LimitStatus, Micros, State};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::error::SqliteError;
use crate::outbox;

/// Where the answer of a call goes, typed by what the call answers, with the ticket that
/// decides between the caller giving up and the worker starting the job.
#[derive(Debug)]
pub(crate) struct Reply<T> {
    sender: oneshot::Sender<Result<T, SqliteError>>,
    ticket: Ticket,
}

impl<T> Reply<T> {
    /// A reply for the caller that waits on the other end of `sender` and holds `ticket`.
    pub(crate) fn new(sender: oneshot::Sender<Result<T, SqliteError>>, ticket: Ticket) -> Self {
        Reply { sender, ticket }
    }

    /// Whether the caller stopped waiting: it timed out, or dropped its future.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.sender.is_closed() || self.ticket.is_abandoned()
    }

    /// Claims the job for running, once the worker is about to run it (inside its
    /// transaction, the lock held); `false` if its caller gave up first, and then the job
    /// must not run, so that it charges nothing.
    pub(crate) fn start(&self) -> bool {
        !self.sender.is_closed() && self.ticket.start()
    }

    /// Answers the caller, if it still waits.
    pub(crate) fn send(self, answer: Result<T, SqliteError>) {
        let _ = self.sender.send(answer);
    }
}

/// Decides, between a caller whose timeout expired and the worker, whether a job runs: the
/// first to move it out of "queued" wins. A caller that wins knows its call never ran and
/// never will (it charged nothing); one that loses knows the job started, and may still
/// commit after the caller stopped waiting.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ticket(Arc<AtomicU8>);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Ticket {
    /// Worker: `true` if the job may run (it had not been abandoned); idempotent, since a job
    /// of a group that aborted runs again alone.
    fn start(&self) -> bool {
        match self
            .0
            .compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == STARTED,
        }
    }

    /// Caller: gives up on the call; `true` if its job had not started, and now never will.
    pub(crate) fn abandon(&self) -> bool {
        match self
            .0
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == ABANDONED,
        }
    }

    fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }
}

/// One call of the store, as sent to the worker: its job, and where the answer goes. Each
/// kind of call carries a reply of its own answer's type, so the worker cannot answer one kind
/// of call with another's answer.
#[derive(Debug)]
pub(crate) enum Call {
    /// `Store::evaluate`, in any mode.
    Evaluate {
        batch: Box<Batch>,
        now: Micros,
        mode: Mode,
        reply: Reply<BatchOutcome>,
    },
    /// `Store::reset`.
    Reset { key: Key, reply: Reply<()> },
    /// `SqliteStore::sweep`: runs in transactions of its own, not in a group.
    Sweep { now: Micros, reply: Reply<u64> },
    /// A `KeyStore` call of `SqliteKeyStore`: runs on its own, in a transaction if it writes.
    Keys {
        job: Box<crate::keys::KeyJob>,
        reply: Reply<crate::keys::KeyAnswer>,
    },
}

impl Call {
    /// Whether the caller stopped waiting (timed out, or dropped its future): such a call is
    /// not run, so that it charges nothing.
    pub(crate) fn is_abandoned(&self) -> bool {
        match self {
            Call::Evaluate { reply, .. } => reply.is_abandoned(),
            Call::Reset { reply, .. } => reply.is_abandoned(),
            Call::Sweep { reply, .. } => reply.is_abandoned(),
            Call::Keys { reply, .. } => reply.is_abandoned(),
        }
    }
}

/// How a job failed inside a group's transaction.
#[derive(Debug)]
pub(crate) enum JobFailure {
    /// SQLite failed, possibly after the job wrote some of its rows: the whole transaction
    /// must be rolled back.
    Abort(SqliteError),
    /// The job's own failure, found before it wrote anything: its caller gets the error, and
    /// the rest of the group goes on.
    Skip(SqliteError),
}

const LOAD: &str = "SELECT state, fresh_at FROM limiter_state WHERE key = ?1";
const STORE: &str = "INSERT INTO limiter_state (key, state, fresh_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state, fresh_at = excluded.fresh_at";
const DELETE: &str = "DELETE FROM limiter_state WHERE key = ?1";
const SWEEP: &str = "DELETE FROM limiter_state WHERE key IN \
                     (SELECT key FROM limiter_state WHERE fresh_at <= ?1 LIMIT ?2)";

/// Evaluates `batch` at `now` in `mode` on `conn`, which is inside a write transaction, and
/// writes back the states that changed.
pub(crate) fn evaluate(
    conn: &Connection,
    batch: &Batch,
    now: Micros,
    mode: Mode,
    buf: &mut Vec<u8>,
) -> Result<BatchOutcome, JobFailure> {
    #[cfg(test)]
    test_hooks::on_evaluate(batch);
    let mut states = load_all(conn, batch, now)?;
    // A refund writes back only the states it changed.
    let before = matches!(mode, Mode::Refund { .. }).then(|| states.clone());
    let mut refs: Vec<&mut State> = states.iter_mut().collect();
    let mut statuses = Vec::with_capacity(batch.len());
    let allowed = batch::evaluate(batch.checks(), &mut refs, now, mode, &mut statuses);
    let notices = owed_notices(batch, &statuses, now, mode, allowed).map_err(JobFailure::Skip)?;
    for (i, (check, state)) in batch.checks().iter().zip(&states).enumerate() {
        let changed = match (mode, &before) {
            // `evaluate` applied exactly the checks that allowed.
            (Mode::Consume, _) => allowed && statuses[i].is_allowed(),
            (Mode::Refund { .. }, Some(before)) => before[i] != *state,
            _ => false,
        };
        if changed {
            save(conn, &check.key, state, check.limit.fresh_at(state), buf)
                .map_err(JobFailure::Abort)?;
        }
    }
    // In the transaction of the charge: committed with it, or rolled back with it.
    outbox::insert(conn, &notices).map_err(JobFailure::Abort)?;
    Ok(BatchOutcome {
        allowed,
        statuses,
        at: now,
    })
}

/// The outbox rows of the notices that an admitted charge of `batch` owes, if its limiter
/// notifies: encoded before any write, so that one that fails to encode fails the call alone.
fn owed_notices(
    batch: &Batch,
    statuses: &[LimitStatus],
    now: Micros,
    mode: Mode,
    allowed: bool,
) -> Result<Vec<outbox::Encoded>, SqliteError> {
    let Some(plan) = batch.notices() else {
        return Ok(Vec::new());
    };
    if mode != Mode::Consume || !allowed {
        return Ok(Vec::new());
    }
    let mut notices = Vec::new();
    plan.crossed(batch.checks(), statuses, now, &mut notices);
    outbox::encode(&notices)
}

/// Deletes the row of `key`, if any.
pub(crate) fn reset(conn: &Connection, key: &Key) -> Result<(), JobFailure> {
    conn.prepare_cached(DELETE)
        .and_then(|mut s| s.execute(params![key.as_str()]))
        .map(drop)
        .map_err(|e| JobFailure::Abort(SqliteError::sqlite("deleting a key")(e)))
}

/// Deletes up to `limit` rows that are indistinguishable from fresh at `now`.
pub(crate) fn sweep_chunk(conn: &Connection, now: Micros, limit: u64) -> Result<u64, SqliteError> {
    let deleted = conn
        .prepare_cached(SWEEP)
        .and_then(|mut s| s.execute(params![to_sql(now), to_sql(limit)]))
        .map_err(SqliteError::sqlite("sweeping rows that are fresh again"))?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

/// The state of every key of `batch` at `now`, in order; a missing row is fresh.
///
/// A row whose state does not decode (the file was damaged, or written by something else) is
/// never read as a fresh, whole budget while it may still hold one back: until its `fresh_at`
/// (written with the state, and still readable) the call fails with an error naming the key.
/// From then on the lost state would be fresh anyway, so it is read as fresh, and the next
/// charge overwrites it.
fn load_all(conn: &Connection, batch: &Batch, now: Micros) -> Result<Vec<State>, JobFailure> {
    let reading = |e| JobFailure::Abort(SqliteError::sqlite("reading state")(e));
    let mut stmt = conn.prepare_cached(LOAD).map_err(reading)?;
    let mut states = Vec::with_capacity(batch.len());
    for check in batch.checks() {
        let row: Option<(Vec<u8>, i64)> = stmt
            .query_row(params![check.key.as_str()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(reading)?;
        let Some((bytes, fresh_at)) = row else {
            states.push(State::Fresh);
            continue;
        };
        let fresh_at = u64::try_from(fresh_at).unwrap_or(0);
        match State::decode(&bytes) {
            Some(state) => states.push(state),
            None if now >= fresh_at => states.push(State::Fresh),
            None => {
                return Err(JobFailure::Skip(SqliteError::CorruptState {
                    key: check.key.as_str().to_owned(),
                    fresh_at,
                }));
            }
        }
    }
    Ok(states)
}

fn save(
    conn: &Connection,
    key: &Key,
    state: &State,
    fresh_at: Micros,
    buf: &mut Vec<u8>,
) -> Result<(), SqliteError> {
    buf.clear();
    state.encode(buf);
    conn.prepare_cached(STORE)
        .and_then(|mut s| s.execute(params![key.as_str(), buf.as_slice(), to_sql(fresh_at)]))
        .map(drop)
        .map_err(SqliteError::sqlite("writing state"))
}

/// SQLite integers are signed; every time the algorithms produce is below 2^53.
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Faults that the crate's unit tests inject into a job, chosen by key so that tests running
/// at the same time do not see each other's.
#[cfg(test)]
pub(crate) mod test_hooks {
    use std::time::Duration;

    use limiter_core::batch::Batch;

    /// A subject whose job sleeps this long once started, before it reads its state.
    pub(crate) const STALL: &str = "stall-job-on-purpose";
    pub(crate) const STALL_FOR: Duration = Duration::from_millis(500);

    /// A subject whose job panics once started, as a bug in a job would.
    pub(crate) const PANIC: &str = "panic-job-on-purpose";

    pub(crate) fn on_evaluate(batch: &Batch) {
        for check in batch.checks() {
            assert!(
                !check.key.as_str().contains(PANIC),
                "a job panicked on purpose"
            );
            if check.key.as_str().contains(STALL) {
                std::thread::sleep(STALL_FOR);
            }
        }
    }
}
