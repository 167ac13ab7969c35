//! [`MemoryStore`]: limit state in a bounded moka cache, one mutex-guarded cell per key.
//!
//! The crate docs explain the scheme and prove it; the comments here point at the steps.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use async_trait::async_trait;
use limiter_core::batch::{self, Batch, BatchOutcome, Check, Mode, StatusSink, Statuses};
use limiter_core::time::micros;
use limiter_core::{Error, EvalOptions, Key, LimitStatus, Micros, State, Store};
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use crate::MemoryConfig;
use crate::error::{MemoryError, into_core_error};

/// Batches up to this many checks keep their working buffers on the stack: a warm decision
/// allocates nothing.
const INLINE: usize = 8;

/// How many times a call looks a key up again after finding its cell retired (swept or
/// evicted between lookup and lock) before it gives up with a temporary error.
const MAX_ATTEMPTS: u32 = 16;

/// The state of one key. A cell is *current* from its insertion into the cache until it is
/// retired; only a current cell is ever charged.
#[derive(Debug, Default)]
struct Cell {
    /// Set once the cell left the cache (sweep or eviction); a caller that finds it set after
    /// locking looks the key up again.
    retired: AtomicBool,
    slot: Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    state: State,
    /// When the state may be dropped: `Limit::fresh_at(&state)` under the limit that last
    /// changed it, plus one period of that limit. A call whose clock went back by less than a
    /// period (a skewed caller) still finds the state, so dropping it never hands out a whole
    /// budget early; every period is at least a second, which also covers concurrent callers
    /// whose clocks read slightly apart.
    droppable_at: Micros,
}

/// Counters shared with the eviction listener.
#[derive(Debug, Default)]
struct Shared {
    /// The `now` of the latest call, against which an evicted state is judged live or not.
    latest: AtomicU64,
    /// The longest period of any limit that changed a state: how far behind the latest `now`
    /// an automatic sweep judges freshness, as the SQLite store does.
    longest_period: AtomicU64,
    evictions: AtomicU64,
    evicted_live: AtomicU64,
    swept: AtomicU64,
}

/// What the store has done so far; see [`MemoryStore::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Keys held now (moka's count: exact once pending maintenance has run).
    pub keys: u64,
    /// Keys evicted because the store was at capacity.
    pub evictions: u64,
    /// Of those, the keys whose state was not yet droppable at the latest `now` (fresh for a
    /// period of its limit), or in use at that moment: each restarted with a whole budget. Alert on it, and raise
    /// [`MemoryConfig::capacity`] until it stays 0.
    pub evicted_live: u64,
    /// Keys removed by sweeps because their state had become indistinguishable from fresh.
    pub swept: u64,
}

/// An in-process [`Store`]: one state cell per key in a bounded [`moka::sync::Cache`] with
/// LRU eviction, several keys locked in key order for an all-or-nothing batch.
///
/// See the crate docs for the locking scheme, expiry, and what happens at capacity.
pub struct MemoryStore {
    cache: Cache<Key, Arc<Cell>>,
    shared: Arc<Shared>,
    config: MemoryConfig,
    /// The `now` from which the next automatic sweep is due.
    next_sweep: AtomicU64,
}

impl MemoryStore {
    /// A store with `config`; an error if its capacity is 0.
    pub fn new(config: MemoryConfig) -> Result<MemoryStore, Error> {
        if config.capacity == 0 {
            let shown = format!("MemoryStore(capacity={})", config.capacity);
            return Err(into_core_error(&shown, MemoryError::ZeroCapacity));
        }
        Ok(MemoryStore::build(config))
    }

    /// A store with `config`, whose capacity is not 0.
    fn build(config: MemoryConfig) -> MemoryStore {
        let shared = Arc::new(Shared::default());
        let listener = {
            let shared = Arc::clone(&shared);
            move |_key: Arc<Key>, cell: Arc<Cell>, cause: RemovalCause| {
                on_removal(&shared, &cell, cause)
            }
        };
        // LRU, not moka's default TinyLFU: TinyLFU may refuse to admit a new key when full,
        // and a refused key starts from a fresh budget on every request.
        let cache = Cache::builder()
            .max_capacity(config.capacity)
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(listener)
            .build();
        MemoryStore {
            cache,
            shared,
            config,
            next_sweep: AtomicU64::new(0),
        }
    }

    /// The options the store was built with.
    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// Evaluates `batch` at `now` and charges it if admitted, as [`Store::evaluate`] does,
    /// without the boxed future: statuses go to `out` (cleared first), and the answer is
    /// whether the batch was admitted. With a reused `out` and at most 8 checks, a call on
    /// keys already held allocates nothing.
    pub fn evaluate_sync(
        &self,
        batch: &Batch,
        now: Micros,
        out: &mut Vec<LimitStatus>,
    ) -> Result<bool, Error> {
        self.run(batch.checks(), now, Mode::Consume, out)
    }

    /// Removes every key whose state has been indistinguishable from fresh for at least one
    /// period of its limit at `now` (so that a caller whose clock is behind by less than a
    /// period still finds it), then runs moka's pending maintenance (evictions, counts).
    /// Returns how many keys were removed.
    ///
    /// Automatic sweeps do this every [`MemoryConfig::sweep_interval`]; call it yourself when
    /// they are off. Removing such a key changes no decision: its next request finds a fresh
    /// state either way.
    pub fn sweep(&self, now: Micros) -> u64 {
        let removed = self.remove_droppable(now);
        self.cache.run_pending_tasks();
        removed
    }

    /// What the store has done so far.
    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            keys: self.cache.entry_count(),
            evictions: self.shared.evictions.load(Ordering::Relaxed),
            evicted_live: self.shared.evicted_live.load(Ordering::Relaxed),
            swept: self.shared.swept.load(Ordering::Relaxed),
        }
    }

    fn run(
        &self,
        checks: &[Check],
        now: Micros,
        mode: Mode,
        out: &mut impl StatusSink,
    ) -> Result<bool, Error> {
        out.clear();
        // A store, not a fetch_max: no write while the clock stands still, and the listener
        // judges liveness against a time the store was really asked about.
        if self.shared.latest.load(Ordering::Relaxed) != now {
            self.shared.latest.store(now, Ordering::Relaxed);
        }
        let result = if checks.len() <= INLINE {
            self.locked::<Inline<INLINE>>(checks, now, mode, out)
        } else {
            self.locked::<Heap>(checks, now, mode, out)
        };
        self.maybe_sweep(now);
        result.map_err(|e| into_core_error(self, e))
    }

    /// Evaluates `checks` in `mode` on their cells of `checks`, all locked, in key order.
    fn locked<St: Storage>(
        &self,
        checks: &[Check],
        now: Micros,
        mode: Mode,
        out: &mut impl StatusSink,
    ) -> Result<bool, MemoryError> {
        let n = checks.len();
        let mut order = St::make(n, |i| i);
        let order = &mut order.as_mut()[..n];
        // One global lock order (by key) for every call: no two calls wait on each other in
        // a cycle.
        order.sort_unstable_by(|&a, &b| checks[a].key.cmp(&checks[b].key));
        for _ in 0..MAX_ATTEMPTS {
            let cells = St::make(n, |i| checks.get(i).map(|check| self.cell(&check.key)));
            let cells = cells.as_ref();
            let mut guards = St::make(n, |_| None::<MutexGuard<'_, Slot>>);
            for &i in order.iter() {
                guards.as_mut()[i] = cells[i].as_ref().map(|cell| lock(&cell.slot));
            }
            // A cell retired between lookup and lock is no longer the key's: start over (no
            // state has changed yet). Retirement is published before the cell is unlocked
            // (sweep) or before its lock is tried (eviction); see the crate docs.
            let retired = |cell: &Option<Arc<Cell>>| {
                cell.as_ref()
                    .is_some_and(|c| c.retired.load(Ordering::SeqCst))
            };
            if order.iter().any(|&i| retired(&cells[i])) {
                continue;
            }
            let allowed = {
                let mut held = guards.as_mut().iter_mut();
                let mut states = St::make(n, |_| match held.next() {
                    Some(Some(slot)) => Held::Locked(slot),
                    _ => Held::Spare(State::Fresh),
                });
                let states = &mut states.as_mut()[..n];
                batch::evaluate(checks, states, now, mode, out)
            };
            let changed = match mode {
                Mode::Consume => allowed,
                Mode::Peek => false,
                Mode::Refund { .. } => true,
            };
            if changed {
                for (check, guard) in checks.iter().zip(guards.as_mut().iter_mut()) {
                    if let Some(slot) = guard {
                        let period = check.limit.rate().period().micros();
                        slot.droppable_at =
                            check.limit.fresh_at(&slot.state).saturating_add(period);
                        // A read first: the longest period rarely changes, and a write per
                        // decision would contend across threads.
                        if period > self.shared.longest_period.load(Ordering::Relaxed) {
                            self.shared
                                .longest_period
                                .fetch_max(period, Ordering::Relaxed);
                        }
                    }
                }
            }
            return Ok(allowed);
        }
        Err(MemoryError::Evicted {
            key: checks
                .iter()
                .map(|c| c.key.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            attempts: MAX_ATTEMPTS,
            capacity: self.config.capacity,
        })
    }

    /// The current cell of `key`, inserted fresh if there is none.
    fn cell(&self, key: &Key) -> Arc<Cell> {
        self.cache
            .get_with_by_ref(key, || Arc::new(Cell::default()))
    }

    fn reset_key(&self, key: &Key) -> Result<(), MemoryError> {
        for _ in 0..MAX_ATTEMPTS {
            // An absent key is fresh already.
            let Some(cell) = self.cache.get(key) else {
                return Ok(());
            };
            let mut slot = lock(&cell.slot);
            if cell.retired.load(Ordering::SeqCst) {
                continue;
            }
            // Forget in place: the cell stays current, so no removal can race with a charge.
            *slot = Slot::default();
            return Ok(());
        }
        Err(MemoryError::Evicted {
            key: key.to_string(),
            attempts: MAX_ATTEMPTS,
            capacity: self.config.capacity,
        })
    }

    /// Starts an automatic sweep if one is due at `now` and no other call has started it.
    fn maybe_sweep(&self, now: Micros) {
        let Some(interval) = self.config.sweep_interval else {
            return;
        };
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now.saturating_add(micros(interval).max(1));
        if self
            .next_sweep
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            // Callers share one store with clocks apart, and a trace of calls may step back:
            // a state that only went fresh within the longest period of the latest `now` may
            // still be live for a caller that far behind. Each state already waits one period of
            // its own limit (`droppable_at`); the sweep waits the longest one more.
            let longest = self.shared.longest_period.load(Ordering::Relaxed);
            self.remove_droppable(now.saturating_sub(longest));
        }
    }

    /// Removes the cells droppable at `at`. Each is removed while locked, only if
    /// the cache still maps its key to this very cell, and retired before it is unlocked.
    fn remove_droppable(&self, at: Micros) -> u64 {
        let mut removed = 0;
        for (key, cell) in self.cache.iter() {
            // A cell in use is live by definition; never wait for it.
            let slot = match cell.slot.try_lock() {
                Ok(slot) => slot,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            if slot.droppable_at > at || cell.retired.load(Ordering::SeqCst) {
                continue;
            }
            let result =
                self.cache
                    .entry_by_ref(key.as_ref())
                    .and_compute_with(|entry| match entry {
                        Some(entry) if Arc::ptr_eq(entry.value(), &cell) => Op::Remove,
                        _ => Op::Nop,
                    });
            // Removed now, or already gone (evicted): either way no longer current.
            cell.retired.store(true, Ordering::SeqCst);
            drop(slot);
            if matches!(result, CompResult::Removed(_)) {
                removed += 1;
            }
        }
        self.shared.swept.fetch_add(removed, Ordering::Relaxed);
        removed
    }
}

/// The eviction listener: retires an evicted cell and counts it, as live unless its state was
/// provably fresh at the latest `now`.
fn on_removal(shared: &Shared, cell: &Cell, cause: RemovalCause) {
    // `Explicit` is a sweep's own removal; the store never replaces a value and sets no TTL.
    if cause != RemovalCause::Size {
        return;
    }
    cell.retired.store(true, Ordering::SeqCst);
    shared.evictions.fetch_add(1, Ordering::Relaxed);
    let latest = shared.latest.load(Ordering::Relaxed);
    // Never block here: the listener may run inside a cache call of a thread holding cells.
    // A cell locked right now is being charged, hence live.
    let live = match cell.slot.try_lock() {
        Ok(slot) => slot.droppable_at > latest,
        Err(TryLockError::Poisoned(p)) => p.into_inner().droppable_at > latest,
        Err(TryLockError::WouldBlock) => true,
    };
    if live {
        shared.evicted_live.fetch_add(1, Ordering::Relaxed);
    }
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic while locked cannot leave a half-written `State` (assignments are whole), so
    // the state is still valid.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A locked cell's state as `batch::evaluate` wants it, or filler for an unused slot.
enum Held<'a> {
    Locked(&'a mut Slot),
    Spare(State),
}

impl Deref for Held<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        match self {
            Held::Locked(slot) => &slot.state,
            Held::Spare(state) => state,
        }
    }
}

impl DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut State {
        match self {
            Held::Locked(slot) => &mut slot.state,
            Held::Spare(state) => state,
        }
    }
}

/// Where a call keeps its per-check buffers: on the stack for small batches, else the heap.
trait Storage {
    type Buf<T>: AsRef<[T]> + AsMut<[T]>;
    /// A buffer of at least `n` items, item `i` being `fill(i)`.
    fn make<T>(n: usize, fill: impl FnMut(usize) -> T) -> Self::Buf<T>;
}

struct Inline<const N: usize>;

impl<const N: usize> Storage for Inline<N> {
    type Buf<T> = [T; N];
    fn make<T>(_n: usize, fill: impl FnMut(usize) -> T) -> [T; N] {
        std::array::from_fn(fill)
    }
}

struct Heap;

impl Storage for Heap {
    type Buf<T> = Vec<T>;
    fn make<T>(n: usize, fill: impl FnMut(usize) -> T) -> Vec<T> {
        (0..n).map(fill).collect()
    }
}

impl Default for MemoryStore {
    /// A store with [`MemoryConfig::default`].
    fn default() -> Self {
        MemoryStore::build(MemoryConfig::default())
    }
}

impl fmt::Display for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryStore(capacity={})", self.config.capacity)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for MemoryStore {
    /// Never waits on I/O: `options.timeout` is not needed and not used.
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        let mut statuses = Vec::with_capacity(batch.len());
        let allowed = self.run(batch.checks(), options.now, options.mode, &mut statuses)?;
        Ok(BatchOutcome {
            allowed,
            statuses,
            at: options.now,
        })
    }

    async fn reset(&self, key: &Key) -> Result<(), Error> {
        self.reset_key(key).map_err(|e| into_core_error(self, e))
    }

    /// Always answers: the store never waits.
    fn evaluate_now(
        &self,
        batch: &Batch,
        options: &EvalOptions,
        out: &mut Statuses,
    ) -> Option<Result<bool, Error>> {
        Some(self.run(batch.checks(), options.now, options.mode, out))
    }
}
