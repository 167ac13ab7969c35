//! The options of a [`MemoryStore`](crate::MemoryStore).

use std::time::Duration;

/// Options of a [`MemoryStore`](crate::MemoryStore): [`Default`] or [`new`](Self::new), then
/// `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use limiter_memory::MemoryConfig;
///
/// let config = MemoryConfig::new()
///     .with_capacity(250_000)
///     .with_sweep_interval(Some(Duration::from_secs(30)));
/// assert_eq!(config.capacity, 250_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// The most keys the store tracks at once (default 1 000 000). Past it, the least recently
    /// used key is evicted; see the crate docs, "At capacity", for what that means and how it
    /// is counted. Size it above the number of keys that are live at the same time.
    pub capacity: u64,
    /// How often, in the limiter's (injected) time, a call sweeps out the keys whose state has
    /// become indistinguishable from fresh (default one minute). `None` turns automatic sweeps
    /// off: call [`MemoryStore::sweep`](crate::MemoryStore::sweep) yourself, for example from a
    /// background task, to keep the O(keys) sweep off the request path.
    pub sweep_interval: Option<Duration>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            capacity: 1_000_000,
            sweep_interval: Some(Duration::from_secs(60)),
        }
    }
}

impl MemoryConfig {
    /// The default options.
    pub fn new() -> MemoryConfig {
        MemoryConfig::default()
    }

    /// Sets [`capacity`](Self::capacity); it must be at least 1.
    pub fn with_capacity(mut self, capacity: u64) -> MemoryConfig {
        self.capacity = capacity;
        self
    }

    /// Sets [`sweep_interval`](Self::sweep_interval).
    pub fn with_sweep_interval(mut self, interval: Option<Duration>) -> MemoryConfig {
        self.sweep_interval = interval;
        self
    }
}
