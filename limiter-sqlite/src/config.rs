//! The options of a [`SqliteStore`](crate::SqliteStore).

use std::sync::Arc;
use std::time::Duration;

use limiter_core::{Clock, SystemClock};

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
#[derive(Debug, Clone)]
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
    /// How often the worker deletes rows whose state is indistinguishable from fresh; `None`
    /// disables the periodic sweep ([`SqliteStore::sweep`](crate::SqliteStore::sweep) still
    /// works). Default every 60 s of real time.
    pub sweep_interval: Option<Duration>,
    /// The time the periodic sweep compares rows against. Give it the limiter's clock when
    /// time is injected (a [`ManualClock`](limiter_core::ManualClock)), so that the sweep never
    /// drops a key that is still live at the limiter's `now`. Default: the system clock.
    pub clock: Arc<dyn Clock>,
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

    /// The same, with a periodic sweep every `interval` (`None`: no periodic sweep).
    pub fn with_sweep_interval(mut self, interval: Option<Duration>) -> SqliteConfig {
        self.sweep_interval = interval;
        self
    }

    /// The same, with the clock the periodic sweep reads.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteConfig {
        self.clock = clock;
        self
    }
}

impl Default for SqliteConfig {
    fn default() -> SqliteConfig {
        SqliteConfig {
            busy_timeout: Duration::from_secs(5),
            timeout: None,
            max_group: 128,
            sweep_interval: Some(Duration::from_secs(60)),
            clock: Arc::new(SystemClock),
        }
    }
}
