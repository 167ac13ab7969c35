//! [`SqliteStore`]: the [`Store`] on a SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::{Batch, BatchOutcome, Error, EvalOptions, Key, Micros, Store};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::SqliteConfig;
use crate::error::{Site, SqliteError, into_core_error};
use crate::worker::{self, Call, Reply, Target, Ticket};

/// A [`Store`] that keeps limit state in a SQLite database: one file that several processes
/// on one host may share, or a private in-memory database.
///
/// Every call is sent to a worker thread that owns the connection, so no call blocks an async
/// executor. The worker runs all calls queued while it was busy in one `BEGIN IMMEDIATE`
/// transaction (group commit); each decision reads and writes its keys inside it, deciding
/// with [`limiter_core::batch::evaluate`], so it is all or nothing and exact across threads and
/// processes.
///
/// Every call waits at most [`SqliteConfig::call_timeout`], or a shorter
/// [`EvalOptions::timeout`]. A call that times out before the worker starts its job (while
/// queued, or while the worker waits for another process's lock) answers [`Error::Timeout`],
/// and the worker skips it: it charged nothing. One that times out after its job started
/// answers a temporary error saying that it may still be committed, so such a decision may
/// have charged its limits: never more than once, and never beyond them.
///
/// Dropping the store closes the queue, lets the worker finish the calls already queued, and
/// joins its threads.
pub struct SqliteStore {
    site: Site,
    path: Option<PathBuf>,
    /// [`SqliteConfig::call_timeout`].
    timeout: Duration,
    queue_capacity: usize,
    sender: Option<mpsc::Sender<Call>>,
    worker: Option<JoinHandle<()>>,
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it if missing, and brings its schema to the
    /// current version. The file is switched to WAL mode.
    ///
    /// Fails, leaving the file as it was, if the path cannot be opened or created, the file
    /// is not a SQLite database, its schema comes from a newer version of this crate, or it
    /// stays locked by another process beyond [`SqliteConfig::busy_timeout`] (a temporary
    /// error).
    pub async fn open(path: impl AsRef<Path>, config: SqliteConfig) -> Result<SqliteStore, Error> {
        let path = path.as_ref().to_path_buf();
        SqliteStore::start(Target::File(path.clone()), Some(path), config).await
    }

    /// Opens a private in-memory database, gone when the store is dropped.
    pub async fn open_in_memory(config: SqliteConfig) -> Result<SqliteStore, Error> {
        SqliteStore::start(Target::Memory, None, config).await
    }

    async fn start(
        target: Target,
        path: Option<PathBuf>,
        config: SqliteConfig,
    ) -> Result<SqliteStore, Error> {
        let shown = path
            .as_ref()
            .map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string());
        if config.max_group == 0 {
            return Err(Error::InvalidConfig {
                path: "SqliteConfig::max_group".into(),
                message: "0 calls per transaction cannot make progress; expected at least 1".into(),
            });
        }
        if config.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::InvalidConfig {
                path: "SqliteConfig::timeout".into(),
                message: "a timeout of 0 would fail every call before it could be answered; \
                          expected a positive duration, or None for the busy timeout plus one \
                          second"
                    .into(),
            });
        }
        if config.queue_capacity == 0 {
            return Err(Error::InvalidConfig {
                path: "SqliteConfig::queue_capacity".into(),
                message: "a queue of 0 calls can hold no call for the worker; expected at least 1"
                    .into(),
            });
        }
        if config.sweep_interval.is_some_and(|i| i.is_zero()) {
            return Err(Error::InvalidConfig {
                path: "SqliteConfig::sweep_interval".into(),
                message: "an interval of 0 would sweep after every call; expected a positive \
                          interval, or None to sweep only when SqliteStore::sweep is called"
                    .into(),
            });
        }
        let site = Site {
            backend: format!("SqliteStore({shown})"),
            path: shown,
            busy_timeout: config.busy_timeout,
        };
        let timeout = config.call_timeout();
        let queue_capacity = config.queue_capacity;
        let (ready, opened) = oneshot::channel();
        let (sender, worker) =
            worker::spawn(target, config, ready).map_err(|e| into_core_error(&site, e))?;
        let store = SqliteStore {
            site,
            path,
            timeout,
            queue_capacity,
            sender: Some(sender),
            worker: Some(worker),
        };
        match opened.await {
            Ok(Ok(())) => Ok(store),
            Ok(Err(e)) => Err(into_core_error(&store.site, e)),
            Err(_) => Err(into_core_error(&store.site, SqliteError::WorkerStopped)),
        }
    }

    /// The database file; `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Deletes every row whose state is indistinguishable from fresh at `now` (the limiter's
    /// time), a chunk of rows per transaction, and returns how many it deleted; a key is never
    /// dropped while it still holds back a request at `now`. The worker also sweeps by itself,
    /// in the callers' time and leaving rows a while longer (see
    /// [`SqliteConfig::sweep_interval`]).
    pub async fn sweep(&self, now: Micros) -> Result<u64, Error> {
        self.call(|reply| Call::Sweep { now, reply }, None).await
    }

    /// Sends the call that `call` builds around its reply, and waits for the answer: waiting
    /// for room in the queue and for the answer together take at most the timeout, the
    /// caller's if shorter than the store's.
    pub(crate) async fn call<T>(
        &self,
        call: impl FnOnce(Reply<T>) -> Call,
        timeout: Option<Duration>,
    ) -> Result<T, Error> {
        if timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::InvalidRequest(
                "EvalOptions::timeout is 0, which would fail the call before it could be \
                 answered; expected a positive duration, or None for the store's \
                 SqliteConfig::timeout"
                    .into(),
            ));
        }
        let timeout = timeout.map_or(self.timeout, |t| t.min(self.timeout));
        let deadline = Instant::now() + timeout;
        let stopped = || into_core_error(&self.site, SqliteError::WorkerStopped);
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        let permit = tokio::time::timeout_at(deadline, sender.reserve())
            .await
            .map_err(|_| {
                let full = SqliteError::QueueFull {
                    capacity: self.queue_capacity,
                    waited: timeout,
                };
                into_core_error(&self.site, full)
            })?
            .map_err(|_| stopped())?;
        let (reply, answer) = oneshot::channel();
        let ticket = Ticket::default();
        permit.send(call(Reply::new(reply, ticket.clone())));
        let answer = async {
            match answer.await {
                Ok(result) => result.map_err(|e| into_core_error(&self.site, e)),
                // The worker catches panics and goes on: a reply dropped unanswered means it
                // gave up on this call, and the queue is still open for the next.
                Err(_) if !sender.is_closed() => {
                    Err(into_core_error(&self.site, SqliteError::Unanswered))
                }
                Err(_) => Err(stopped()),
            }
        };
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(answer) => answer,
            // The job never ran, and never will: the worker skips an abandoned ticket.
            Err(_) if ticket.abandon() => Err(Error::Timeout {
                backend: self.site.backend.clone(),
                timeout,
            }),
            Err(_) => Err(into_core_error(
                &self.site,
                SqliteError::StartedThenTimedOut { timeout },
            )),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// Evaluates `batch` on the worker; an empty batch is admitted without a transaction.
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        if batch.is_empty() {
            return Ok(BatchOutcome::empty(options.now));
        }
        let call = |reply| Call::Evaluate {
            batch: Box::new(batch.clone()),
            now: options.now,
            mode: options.mode,
            reply,
        };
        self.call(call, options.timeout).await
    }

    async fn reset(&self, key: &Key) -> Result<(), Error> {
        let key = key.clone();
        self.call(|reply| Call::Reset { key, reply }, None).await
    }

    /// `true` for a store on a file: an admitted charge writes its notices to the file's
    /// outbox ([`SqliteOutbox`](crate::SqliteOutbox)) in the transaction of the charge.
    /// `false` in memory, where no outbox could read them.
    fn keeps_notices(&self) -> bool {
        self.path.is_some()
    }
}

impl fmt::Display for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.site.backend)
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.site.path)
            .field("busy_timeout", &self.site.busy_timeout)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the worker's loop once it has answered what was queued.
        drop(self.sender.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use limiter_core::{Check, Limit, Rate, StoreExt, SubjectKind};

    use super::*;
    use crate::worker::test_hooks;

    const NOW: Micros = 1_000_000_000_000_000;

    fn batch(subject: &str) -> Batch {
        let limit = Limit::gcra("10/hour".parse::<Rate>().expect("rate"));
        let key = Key::new("test", "policy", SubjectKind::User, subject);
        Batch::new(vec![Check::new("policy", key, limit, 1)]).expect("batch")
    }

    #[tokio::test]
    async fn default_call_timeout_a_call_that_timed_out_after_its_job_started_says_it_may_have_charged()
     {
        let store = SqliteStore::open_in_memory(SqliteConfig::new())
            .await
            .expect("open");
        // The job starts at once, then stalls beyond the caller's timeout, and commits.
        let stalled = batch(test_hooks::STALL);
        let options = EvalOptions::at(NOW).with_timeout(Duration::from_millis(100));
        let err = store.evaluate(&stalled, &options).await.expect_err("late");
        assert!(err.is_temporary(), "{err}");
        assert!(!matches!(err, Error::Timeout { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("within 100ms"), "{message}");
        assert!(message.contains("may have been charged"), "{message}");
        assert!(err.may_have_charged(), "{err:?}");
        // It was: a peek (queued behind the stalled job) reports what remains after one more.
        let peek = store
            .peek(&stalled, &EvalOptions::at(NOW))
            .await
            .expect("peek");
        assert_eq!(peek.statuses[0].remaining, 10 - 1 - 1);
    }

    #[tokio::test]
    async fn dead_worker_a_panicking_job_fails_at_once_with_a_temporary_error_and_the_store_goes_on()
     {
        let store = SqliteStore::open_in_memory(SqliteConfig::new())
            .await
            .expect("open");
        let alice = batch("alice");
        assert!(
            store
                .evaluate(&alice, &EvalOptions::at(NOW))
                .await
                .expect("ok")
                .allowed
        );

        let started = std::time::Instant::now();
        let panics = batch(test_hooks::PANIC);
        let err = store
            .evaluate(&panics, &EvalOptions::at(NOW))
            .await
            .expect_err("the job panicked");
        // At once, not after the call timeout (6 s).
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(err.is_temporary(), "{err}");
        let message = err.to_string();
        assert!(message.contains("panicked"), "{message}");
        assert!(message.contains("charged nothing"), "{message}");

        // The same worker and database serve the next calls: alice's charge is still there,
        // and the panicking call charged nothing.
        let outcome = store
            .evaluate(&alice, &EvalOptions::at(NOW))
            .await
            .expect("ok");
        assert_eq!(outcome.statuses[0].remaining, 10 - 2);
        let peek = store.peek(&panics, &EvalOptions::at(NOW)).await;
        assert!(peek.is_err(), "a peek runs the job too, and panics again");
        store
            .reset(&Key::new(
                "test",
                "policy",
                SubjectKind::User,
                test_hooks::PANIC,
            ))
            .await
            .expect("reset");
    }
}
