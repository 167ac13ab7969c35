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
    /// How long a call waits for its answer when the caller's
    /// [`EvalOptions::timeout`](limiter_core::EvalOptions::timeout) does not say; `None` (the
    /// default) waits as long as it takes, which is bounded by the busy timeout in practice.
    /// Timeouts need a Tokio runtime with its time driver enabled.
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

impl SqliteConfig {
    /// The default options.
    pub fn new() -> SqliteConfig {
        SqliteConfig::default()
    }

    /// The same, with `busy_timeout`.
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> SqliteConfig {
        self.busy_timeout = busy_timeout;
        self
    }

    /// The same, with a default call `timeout`.
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
