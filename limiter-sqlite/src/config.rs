//! The options of a [`SqliteStore`](crate::SqliteStore).

use std::time::Duration;

/// How a [`SqliteStore`](crate::SqliteStore) runs.
///
/// Start from [`SqliteConfig::new()`] (the same as `default()`) and change what you need with
/// the `with_*` setters:
///
/// ```
/// use std::time::Duration;
/// use limiter_sqlite::SqliteConfig;
///
/// let config = SqliteConfig::new()
///     .with_busy_timeout(Duration::from_secs(2))
///     .with_timeout(Some(Duration::from_millis(500)));
/// assert_eq!(config.max_group, 128);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// How long a connection waits for a lock held by another connection (another process
    /// sharing the file) before the call fails with a temporary error. Default 5 s.
    pub busy_timeout: Duration,
    /// The longest a call waits, from the moment it is made: for room in the queue, for the
    /// calls ahead of it, for another process's lock, and for its own transaction. `None` (the
    /// default) stands for [`SqliteConfig::busy_timeout`] plus one second, 6 s with the default
    /// busy timeout: enough for a call at the head of the queue to wait out the busy timeout
    /// and still be answered with the lock error that says so, while a call queued behind
    /// calls that each wait the busy timeout gives up after about one busy timeout, not one
    /// per call ahead of it. See [`SqliteConfig::call_timeout`].
    ///
    /// A shorter [`EvalOptions::timeout`](limiter_core::EvalOptions::timeout) is honoured; a
    /// longer one is cut to this. Zero is refused. A call that times out before the worker
    /// starts its job answers [`Error::Timeout`](limiter_core::Error::Timeout) and charges
    /// nothing, as the worker then skips the job; one that times out after its job started
    /// answers a temporary error saying that it may still be committed and so may have
    /// charged. Timeouts need a Tokio runtime with its time driver enabled.
    pub timeout: Option<Duration>,
    /// The most queued calls run in one transaction (group commit). Default 128; at least 1.
    pub max_group: usize,
    /// The most calls waiting for the worker (default 1024, eight groups of the default
    /// size; at least 1). A call that finds the queue full waits for room within its
    /// timeout, and then fails with a temporary error that charged nothing, so that a file
    /// locked by another process for long cannot make the queue, and memory, grow without
    /// bound.
    pub queue_capacity: usize,
    /// How often, in the limiter's (injected) time, the worker sweeps out the rows whose state
    /// has long been indistinguishable from fresh (default one minute; not zero). Time is the
    /// [`EvalOptions::now`](limiter_core::EvalOptions::now) the store's callers pass: the first
    /// call starts a sweep, and then the first call at least an interval after the last sweep's
    /// `now`, so a store that nobody calls does not sweep. Such a sweep drops the rows that have
    /// been fresh, at that `now`, for the longest period of the limits the store has evaluated
    /// (hence for at least one period of their own, as in the memory store), so that a caller
    /// whose clock is a little behind still finds its state. It runs after the call that
    /// started it is answered, a chunk of rows per transaction, with the calls that queue
    /// meanwhile served between chunks. `None` turns automatic sweeps off: call
    /// [`SqliteStore::sweep`](crate::SqliteStore::sweep) yourself.
    pub sweep_interval: Option<Duration>,
}

/// How much longer than the busy timeout a call waits by default: time for the worker to run
/// and commit a transaction once it has the lock, and to answer.
const TIMEOUT_OVER_BUSY: Duration = Duration::from_secs(1);

impl SqliteConfig {
    /// The default options.
    pub fn new() -> SqliteConfig {
        SqliteConfig::default()
    }

    /// The longest a call waits: [`SqliteConfig::timeout`], or by default the busy timeout
    /// plus one second.
    ///
    /// ```
    /// use std::time::Duration;
    /// use limiter_sqlite::SqliteConfig;
    ///
    /// assert_eq!(SqliteConfig::new().call_timeout(), Duration::from_secs(6));
    /// let quick = SqliteConfig::new().with_busy_timeout(Duration::from_millis(100));
    /// assert_eq!(quick.call_timeout(), Duration::from_millis(1100));
    /// ```
    pub fn call_timeout(&self) -> Duration {
        self.timeout
            .unwrap_or_else(|| self.busy_timeout.saturating_add(TIMEOUT_OVER_BUSY))
    }

    /// The same, with `busy_timeout`.
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> SqliteConfig {
        self.busy_timeout = busy_timeout;
        self
    }

    /// The same, with the longest wait of a call (`None`: the busy timeout plus one second).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> SqliteConfig {
        self.timeout = timeout;
        self
    }

    /// The same, with at most `max_group` calls per transaction.
    pub fn with_max_group(mut self, max_group: usize) -> SqliteConfig {
        self.max_group = max_group;
        self
    }

    /// The same, with at most `queue_capacity` calls waiting for the worker.
    pub fn with_queue_capacity(mut self, queue_capacity: usize) -> SqliteConfig {
        self.queue_capacity = queue_capacity;
        self
    }

    /// The same, with an automatic sweep every `interval` of the callers' time (`None`: no
    /// automatic sweep).
    pub fn with_sweep_interval(mut self, interval: Option<Duration>) -> SqliteConfig {
        self.sweep_interval = interval;
        self
    }
}

impl Default for SqliteConfig {
    fn default() -> SqliteConfig {
        SqliteConfig {
            busy_timeout: Duration::from_secs(5),
            timeout: None,
            max_group: 128,
            queue_capacity: 1024,
            sweep_interval: Some(Duration::from_secs(60)),
        }
    }
}
