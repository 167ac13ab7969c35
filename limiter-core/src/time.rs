//! Time: microseconds since the Unix epoch, and the clocks that tell it.
//!
//! Algorithms and policies never read time: the [`Limiter`](crate::Limiter) asks its injected
//! [`Clock`] once per decision and passes `now` down.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (or a span of microseconds).
pub type Micros = u64;

/// Microseconds in one second.
pub const MICROS_PER_SECOND: Micros = 1_000_000;

/// The latest instant the algorithms handle exactly (about the year 2255); later instants are
/// treated as this one. It leaves room for two of the longest periods below 2^53, so that every
/// intermediate value is exactly representable as an IEEE double (the Redis Lua twin).
pub const MAX_TIMESTAMP: Micros = (1 << 53) - (1 << 46);

/// Converts microseconds to a [`Duration`].
pub fn duration(micros: Micros) -> Duration {
    Duration::from_micros(micros)
}

/// Converts a [`Duration`] to microseconds, saturating at `u64::MAX`.
pub fn micros(d: Duration) -> Micros {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A source of the current time.
///
/// Implementations must be cheap: the limiter asks once per decision.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Microseconds since the Unix epoch.
    fn now(&self) -> Micros;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, micros)
    }
}

/// A clock that moves only when told to. Clones share one time.
///
/// For tests, benchmarks and simulations: freeze time to count admissions exactly, or advance it
/// to watch windows roll over, without sleeping.
///
/// ```
/// use limiter_core::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(1_000_000);
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(shared.now(), 3_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `now` microseconds since the epoch.
    pub fn new(now: Micros) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(now)),
        }
    }

    /// Sets the time (it may go backwards: the algorithms tolerate it).
    pub fn set(&self, now: Micros) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(micros(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Micros {
        self.now.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Micros {
        (**self).now()
    }
}
