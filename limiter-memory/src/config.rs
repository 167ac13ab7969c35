//! The options of a [`MemoryStore`](crate::MemoryStore).

use std::time::Duration;

/// Options of a [`MemoryStore`](crate::MemoryStore): [`Default`] or [`new`](Self::new), then
/// `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use limiter_memory::{AtCapacity, MemoryConfig};
///
/// let config = MemoryConfig::new()
///     .with_capacity(250_000)
///     .with_sweep_interval(Some(Duration::from_secs(30)))
///     .with_at_capacity(AtCapacity::EvictNearestFresh);
/// assert_eq!(config.capacity, 250_000);
/// assert_eq!(MemoryConfig::new().at_capacity, AtCapacity::Refuse);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// The most keys the store tracks at once (default 1 000 000; each costs under 64 bytes,
    /// plus 8 per timestamp of a sliding log). When a new key would pass it, keys whose state is
    /// droppable make room first; if every key is live, [`at_capacity`](Self::at_capacity)
    /// decides. Size it above the number of keys that are live at the same time.
    pub capacity: u64,
    /// What to do with a new key when every held key is live (default
    /// [`AtCapacity::Refuse`]); see the crate docs, "At capacity".
    pub at_capacity: AtCapacity,
    /// How often, in the limiter's (injected) time, a sweep pass starts (default one minute).
    /// A pass removes the keys whose state has been droppable for a while, a bounded slice of
    /// one shard per call until every shard is done, so that no request pays for the whole
    /// table. `None` turns automatic sweeps off: call
    /// [`MemoryStore::sweep`](crate::MemoryStore::sweep) yourself, for example from a background
    /// task.
    pub sweep_interval: Option<Duration>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            capacity: 1_000_000,
            at_capacity: AtCapacity::default(),
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

    /// Sets [`at_capacity`](Self::at_capacity).
    pub fn with_at_capacity(mut self, policy: AtCapacity) -> MemoryConfig {
        self.at_capacity = policy;
        self
    }

    /// Sets [`sweep_interval`](Self::sweep_interval).
    pub fn with_sweep_interval(mut self, interval: Option<Duration>) -> MemoryConfig {
        self.sweep_interval = interval;
        self
    }
}

/// What a [`MemoryStore`](crate::MemoryStore) does with a new key when it holds
/// [`MemoryConfig::capacity`] keys and none of them is droppable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AtCapacity {
    /// Refuse the batch that needs the new key with a temporary error (naming the key and the
    /// capacity), so that the limiter's fail mode decides; counted in
    /// [`MemoryStats::refused`](crate::MemoryStats::refused). Every held key keeps its state:
    /// no limit ever restarts from a whole budget.
    #[default]
    Refuse,
    /// Evict the held key nearest to fresh (the earliest droppable, among a sample of its
    /// shard) and admit the new key. The evicted key restarts from a whole budget if it returns
    /// before its state would have been fresh: a possible over-admission, counted in
    /// [`MemoryStats::evicted_live`](crate::MemoryStats::evicted_live).
    EvictNearestFresh,
}
