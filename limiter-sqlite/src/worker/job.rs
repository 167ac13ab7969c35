//! What the worker is asked to do, and how one job runs inside an open transaction.

use limiter_core::batch::{self, Batch, BatchOutcome, Mode};
use limiter_core::{Key, Micros, State};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::SqliteError;

/// One call of the store, as sent to the worker.
#[derive(Debug)]
pub(crate) enum Job {
    /// `Store::evaluate`, in any mode.
    Evaluate {
        batch: Batch,
        now: Micros,
        mode: Mode,
    },
    /// `Store::reset`.
    Reset { key: Key },
    /// `SqliteStore::sweep`: runs in transactions of its own, not in a group.
    Sweep { now: Micros },
}

/// What a job answers.
#[derive(Debug)]
pub(crate) enum Answer {
    Outcome(BatchOutcome),
    Done,
    Swept(u64),
}

/// The answer of one job in a group: its own failure (`Err`) has written nothing, so the
/// group goes on without it.
pub(crate) type JobResult = Result<Answer, SqliteError>;

const LOAD: &str = "SELECT state FROM limiter_state WHERE key = ?1";
const STORE: &str = "INSERT INTO limiter_state (key, state, fresh_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET state = excluded.state, fresh_at = excluded.fresh_at";
const DELETE: &str = "DELETE FROM limiter_state WHERE key = ?1";
const SWEEP: &str = "DELETE FROM limiter_state WHERE key IN \
                     (SELECT key FROM limiter_state WHERE fresh_at <= ?1 LIMIT ?2)";

/// Runs `job` on `conn`, which is inside a write transaction. The outer `Err` is a SQLite
/// failure after which the transaction must be rolled back (the job may have written part of
/// its rows); the inner one is the job's own failure, found before it wrote anything.
pub(crate) fn run(
    conn: &Connection,
    job: &Job,
    buf: &mut Vec<u8>,
) -> Result<JobResult, SqliteError> {
    match job {
        Job::Evaluate { batch, now, mode } => {
            let mut states = match load_all(conn, batch)? {
                Ok(states) => states,
                Err(e) => return Ok(Err(e)),
            };
            // A refund writes back only the states it changed.
            let before = matches!(mode, Mode::Refund { .. }).then(|| states.clone());
            let mut refs: Vec<&mut State> = states.iter_mut().collect();
            let mut statuses = Vec::with_capacity(batch.len());
            let allowed = batch::evaluate(batch.checks(), &mut refs, *now, *mode, &mut statuses);
            for (i, (check, state)) in batch.checks().iter().zip(&states).enumerate() {
                let changed = match (mode, &before) {
                    // `evaluate` applied exactly the checks that allowed.
                    (Mode::Consume, _) => allowed && statuses[i].is_allowed(),
                    (Mode::Refund { .. }, Some(before)) => before[i] != *state,
                    _ => false,
                };
                if changed {
                    save(conn, &check.key, state, check.limit.fresh_at(state), buf)?;
                }
            }
            let at = *now;
            Ok(Ok(Answer::Outcome(BatchOutcome {
                allowed,
                statuses,
                at,
            })))
        }
        Job::Reset { key } => {
            conn.prepare_cached(DELETE)
                .and_then(|mut s| s.execute(params![key.as_str()]))
                .map_err(SqliteError::sqlite("deleting a key"))?;
            Ok(Ok(Answer::Done))
        }
        Job::Sweep { now } => Ok(Ok(Answer::Swept(sweep_chunk(conn, *now, u64::MAX)?))),
    }
}

/// Deletes up to `limit` rows that are indistinguishable from fresh at `now`.
pub(crate) fn sweep_chunk(conn: &Connection, now: Micros, limit: u64) -> Result<u64, SqliteError> {
    let deleted = conn
        .prepare_cached(SWEEP)
        .and_then(|mut s| s.execute(params![to_sql(now), to_sql(limit)]))
        .map_err(SqliteError::sqlite("sweeping rows that are fresh again"))?;
    Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
}

/// The state of every key of `batch`, in order; a missing row is fresh.
fn load_all(
    conn: &Connection,
    batch: &Batch,
) -> Result<Result<Vec<State>, SqliteError>, SqliteError> {
    let mut stmt = conn
        .prepare_cached(LOAD)
        .map_err(SqliteError::sqlite("reading state"))?;
    let mut states = Vec::with_capacity(batch.len());
    for check in batch.checks() {
        let bytes: Option<Vec<u8>> = stmt
            .query_row(params![check.key.as_str()], |row| row.get(0))
            .optional()
            .map_err(SqliteError::sqlite("reading state"))?;
        match bytes.map(|b| State::decode(&b)) {
            None => states.push(State::Fresh),
            Some(Some(state)) => states.push(state),
            Some(None) => {
                return Ok(Err(SqliteError::CorruptState {
                    key: check.key.as_str().to_owned(),
                }));
            }
        }
    }
    Ok(Ok(states))
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
