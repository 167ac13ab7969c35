//! [`MemoryStore`]: limit state in a sharded table of packed entries, batches locked shard by
//! shard in ascending order.
//!
//! The crate docs explain the scheme; the comments here point at the steps.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use limiter_core::batch::{self, Batch, BatchOutcome, Check, Mode, StatusSink, Statuses};
use limiter_core::notify::NoticePlan;
use limiter_core::time::micros;
use limiter_core::{Error, EvalOptions, Key, LimitStatus, Micros, State, Store};
use parking_lot::{Mutex, MutexGuard};

use crate::error::{MemoryError, into_core_error};
use crate::fingerprint::{Fingerprint, Fingerprinter};
use crate::shard::Shard;
use crate::{AtCapacity, MemoryConfig, MemoryOutbox};

/// Batches up to this many checks keep their working buffers on the stack: a warm decision
/// allocates nothing.
const INLINE: usize = 8;

/// Slots of one shard an automatic sweep visits per call, at most (about 40 KiB of table).
const SWEEP_SLICE: usize = 1024;

/// One shard's lock on a cache line pair of its own, so that threads working on neighbouring
/// shards do not slow each other down (false sharing). parking_lot's mutex: under contention
/// it spins briefly before parking, which suits sections of a few dozen nanoseconds, and it
/// has no poisoning (a panic cannot leave a half-written slot: slots are written whole).
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded(Mutex<Shard>);

/// Counters every call may touch.
#[derive(Debug, Default)]
struct Counters {
    /// Keys held across all shards; a new key is reserved here before it is inserted.
    keys: AtomicU64,
    refused: AtomicU64,
    evictions: AtomicU64,
    evicted_live: AtomicU64,
    swept: AtomicU64,
    /// The longest period of any limit that changed a state: how far behind `now` the
    /// automatic sweep and the room-making at capacity judge droppability.
    longest_period: AtomicU64,
}

/// What the store has done so far; see [`MemoryStore::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Keys held now.
    pub keys: u64,
    /// Batches refused with a temporary error because every held key was live and a new key
    /// had no room ([`AtCapacity::Refuse`]). No state was lost.
    pub refused: u64,
    /// Keys evicted to make room for a new key ([`AtCapacity::EvictNearestFresh`]).
    pub evictions: u64,
    /// Of those, the keys whose state was not yet droppable at the `now` of the eviction:
    /// each may restart with a whole budget (a possible over-admission). Alert on it, and raise
    /// [`MemoryConfig::capacity`] until it stays 0.
    pub evicted_live: u64,
    /// Keys removed by sweeps (or to make room) because their state was droppable: such a
    /// removal changes no decision.
    pub swept: u64,
}

/// Where the automatic sweep stands.
#[derive(Debug, Default)]
struct Sweeper {
    /// The `now` from which the next call sweeps a slice; at most `now` for the whole of a pass.
    due: AtomicU64,
    cursor: Mutex<Cursor>,
}

/// The next slice to sweep: a shard, and a slot in it.
#[derive(Debug, Default)]
struct Cursor {
    shard: usize,
    slot: usize,
}

/// An in-process [`Store`]: the state of every key in a sharded open-addressing table, keys
/// held as seeded 128-bit hashes, several keys of one batch locked shard by shard in ascending
/// order for an all-or-nothing decision.
///
/// See the crate docs for the scheme, capacity, sweeping and the collision bound.
pub struct MemoryStore {
    shards: Box<[Padded]>,
    /// `shards.len() - 1` (a power of two minus one).
    shard_mask: u64,
    fingerprinter: Fingerprinter,
    counters: Counters,
    sweeper: Sweeper,
    config: MemoryConfig,
    /// Where admitted charges' notices go, written under the charge's shard locks.
    outbox: Arc<MemoryOutbox>,
}

/// How many shards a store has: a power of two, well above the number of threads that may
/// decide at once, so that two threads rarely want the same lock.
fn shard_count() -> usize {
    let threads = std::thread::available_parallelism().map_or(8, usize::from);
    (threads * 16).next_power_of_two().clamp(64, 1024)
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
        let count = shard_count();
        MemoryStore {
            shards: (0..count).map(|_| Padded::default()).collect(),
            shard_mask: u64::try_from(count - 1).unwrap_or(0),
            fingerprinter: Fingerprinter::random(),
            counters: Counters::default(),
            sweeper: Sweeper::default(),
            config,
            outbox: Arc::new(MemoryOutbox::new()),
        }
    }

    /// The options the store was built with.
    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// The outbox this store writes notices to: a batch that carries a
    /// [`NoticePlan`] ([`Batch::notices`], attached by a limiter built with
    /// [`notify`](limiter_core::LimiterBuilder::notify)) and is admitted in [`Mode::Consume`]
    /// has the notices of its crossings ([`NoticePlan::crossed`]) enqueued here before its
    /// shard locks are released, so no call sees the charge without its notices. Hand it to the
    /// workers that deliver them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiter_core::notify::{NoticePlan, NotifyRules, Outbox};
    /// use limiter_core::{Batch, Check, Key, Limit, Rate, Request, SubjectKind};
    /// use limiter_memory::MemoryStore;
    ///
    /// let store = MemoryStore::default();
    /// let limit = Arc::new(Limit::gcra("100/hour".parse::<Rate>()?));
    /// let key = Key::new("api", "plan_sustained", SubjectKind::Tenant, "acme");
    /// let request = Request::new().tenant("acme").plan("starter");
    /// let plan = NoticePlan::new(Arc::new(NotifyRules::default()), &request, None);
    /// let batch = Batch::new(vec![Check::new("plan_sustained", key, limit, 1)])?
    ///     .with_notices(Arc::new(plan));
    ///
    /// let now = 1_795_651_200_000_000;
    /// let mut statuses = Vec::new();
    /// for _ in 0..80 {
    ///     assert!(store.evaluate_sync(&batch, now, &mut statuses)?);
    /// }
    /// // The 80th request crossed 80% of the limit: one "approaching" notice waits.
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let stats = store.outbox().stats(now).await?;
    /// assert_eq!((stats.pending, stats.due), (1, 1));
    /// # Ok::<(), limiter_core::Error>(())
    /// # }).unwrap();
    /// # Ok::<(), limiter_core::Error>(())
    /// ```
    pub fn outbox(&self) -> Arc<MemoryOutbox> {
        Arc::clone(&self.outbox)
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
        self.run(batch, now, Mode::Consume, out)
    }

    /// [`evaluate_sync`](Self::evaluate_sync) in any mode: charge, peek or refund as
    /// `options.mode` says, at `options.now` (the timeout is not needed: nothing waits). The
    /// engine's synchronous path for every store call.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiter_core::{Batch, Check, EvalOptions, Key, Limit, Rate};
    /// use limiter_memory::MemoryStore;
    ///
    /// let store = MemoryStore::default();
    /// let limit = Arc::new(Limit::gcra("2/minute".parse::<Rate>()?));
    /// let batch = Batch::new(vec![Check::new("p", Key::from_raw("k"), limit, 1)])?;
    /// let now = 1_795_651_200_000_000;
    /// let mut out = Vec::new();
    /// assert!(store.evaluate_mode(&batch, &EvalOptions::at(now), &mut out)?);
    /// // A peek charges nothing: one unit remains after the peeked request.
    /// assert!(store.evaluate_mode(&batch, &EvalOptions::peek(now), &mut out)?);
    /// assert_eq!(out[0].remaining, 0);
    /// // Giving the charge back makes room for two again.
    /// store.evaluate_mode(&batch, &EvalOptions::refund(now, now), &mut out)?;
    /// assert_eq!(out[0].remaining, 1);
    /// # Ok::<(), limiter_core::Error>(())
    /// ```
    pub fn evaluate_mode(
        &self,
        batch: &Batch,
        options: &EvalOptions,
        out: &mut Vec<LimitStatus>,
    ) -> Result<bool, Error> {
        self.run(batch, options.now, options.mode, out)
    }

    /// Removes every key whose state has been droppable (indistinguishable from fresh for at
    /// least one period of its limit) at `now`, visiting every shard; returns how many.
    ///
    /// Automatic sweeps do this a slice at a time, every [`MemoryConfig::sweep_interval`];
    /// call it yourself when they are off. Removing such a key changes no decision: its next
    /// request finds a fresh state either way.
    pub fn sweep(&self, now: Micros) -> u64 {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let (r, _) = shard.0.lock().drop_droppable(0, usize::MAX, now, &[]);
            removed += r;
        }
        self.forget(removed);
        removed
    }

    /// What the store has done so far.
    pub fn stats(&self) -> MemoryStats {
        let c = &self.counters;
        MemoryStats {
            keys: c.keys.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            evicted_live: c.evicted_live.load(Ordering::Relaxed),
            swept: c.swept.load(Ordering::Relaxed),
        }
    }

    /// Counts `n` keys removed because droppable.
    fn forget(&self, n: u64) {
        if n > 0 {
            self.counters.keys.fetch_sub(n, Ordering::Relaxed);
            self.counters.swept.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn shard_of(&self, fp: Fingerprint) -> usize {
        usize::try_from(fp.hi & self.shard_mask).unwrap_or(0)
    }

    fn run(
        &self,
        batch: &Batch,
        now: Micros,
        mode: Mode,
        out: &mut impl StatusSink,
    ) -> Result<bool, Error> {
        let (checks, plan) = (batch.checks(), batch.notices());
        // Buffers sized to the batch: filling eight slots for a one-check batch costs more
        // than deciding it.
        let result = match checks.len() {
            0 | 1 => self.decide::<Inline<1>>(checks, plan, now, mode, out),
            2 => self.decide::<Inline<2>>(checks, plan, now, mode, out),
            3 | 4 => self.decide::<Inline<4>>(checks, plan, now, mode, out),
            n if n <= INLINE => self.decide::<Inline<INLINE>>(checks, plan, now, mode, out),
            _ => self.decide::<Heap>(checks, plan, now, mode, out),
        };
        // After every lock of the batch is released.
        self.maybe_sweep(now);
        result.map_err(|e| into_core_error(self, e))
    }

    /// Evaluates `checks` in `mode` with their shards locked, in ascending shard order, and
    /// enqueues the notices of an admitted charge under `plan` before unlocking.
    fn decide<St: Storage>(
        &self,
        checks: &[Check],
        plan: Option<&NoticePlan>,
        now: Micros,
        mode: Mode,
        out: &mut impl StatusSink,
    ) -> Result<bool, MemoryError> {
        let n = checks.len();
        let mut work = St::make(n, |i| match checks.get(i) {
            Some(check) => {
                let fp = self.fingerprinter.of(check.key.as_str());
                Work::new(fp, self.shard_of(fp))
            }
            None => Work::default(),
        });
        let work = &mut work.as_mut()[..n];
        let mut order = St::make(n, |i| i);
        let order = &mut order.as_mut()[..n];
        order.sort_unstable_by_key(|&i| work[i].shard);

        // One global lock order (ascending shard) for every call: no two calls wait on each
        // other in a cycle. Each shard is locked once, by the first of its checks in that order;
        // `holder[i]` is the check whose guard covers check `i`.
        let mut guards = St::make(n, |_| None::<MutexGuard<'_, Shard>>);
        let guards = &mut guards.as_mut()[..n];
        let mut holder = St::make(n, |_| 0usize);
        let holder = &mut holder.as_mut()[..n];
        let mut locked: Option<(usize, usize)> = None;
        for &i in order.iter() {
            let shard = work[i].shard;
            match locked {
                Some((s, by)) if s == shard => holder[i] = by,
                _ => {
                    guards[i] = Some(self.shards[shard].0.lock());
                    holder[i] = i;
                    locked = Some((shard, i));
                }
            }
        }
        let mut held = Held { guards, holder };

        let mut missing = 0u64;
        for (i, w) in work.iter_mut().enumerate() {
            match held.shard(i).load(w.fp, &mut w.state) {
                Some((pos, side)) => {
                    w.pos = Some(pos);
                    w.side = side;
                }
                None => missing += 1,
            }
        }

        // A charge that would add keys is decided first without charging: a denied request
        // adds nothing, and room is only made (or refused) for a batch that is admitted.
        let mut reserved = 0;
        if mode == Mode::Consume && missing > 0 {
            if !batch::evaluate(checks, work, now, Mode::Peek, out) {
                held.put_back(work);
                return Ok(false);
            }
            let keep = St::make(n, |i| work.get(i).map(|w| w.fp).unwrap_or_default());
            if let Err(e) =
                self.make_room(missing, now, checks, work, &keep.as_ref()[..n], &mut held)
            {
                held.put_back(work);
                return Err(e);
            }
            reserved = missing;
            // Making room may have moved entries within the locked shards.
            for (i, w) in work.iter_mut().enumerate() {
                if w.pos.is_some() {
                    w.pos = held.shard(i).table.find(w.fp);
                }
            }
        }

        let allowed = batch::evaluate(checks, work, now, mode, out);
        let changed = match mode {
            Mode::Consume => allowed,
            Mode::Peek => false,
            Mode::Refund { .. } => true,
        };
        if !changed {
            held.put_back(work);
            return Ok(allowed);
        }
        // Held keys first: an insertion may grow a table, which moves its entries.
        let mut longest = 0;
        for (i, (check, w)) in checks.iter().zip(work.iter_mut()).enumerate() {
            let period = check.limit.rate().period().micros();
            if let Some(pos) = w.pos {
                let at = droppable_at(check, &w.state, period);
                let state = std::mem::take(&mut w.state);
                held.shard(i).write(pos, w.fp, state, at);
                longest = longest.max(period);
            }
        }
        let mut added = 0;
        if mode == Mode::Consume {
            for (i, (check, w)) in checks.iter().zip(work.iter_mut()).enumerate() {
                // Only an admitted charge adds a key, and only one with something to remember
                // (a shadow check that denied left its state fresh).
                if w.pos.is_some() || matches!(w.state, State::Fresh) {
                    continue;
                }
                let period = check.limit.rate().period().micros();
                let at = droppable_at(check, &w.state, period);
                let state = std::mem::take(&mut w.state);
                if held.shard(i).upsert(w.fp, state, at) {
                    added += 1;
                }
                longest = longest.max(period);
            }
        }
        if added < reserved {
            self.counters
                .keys
                .fetch_sub(reserved - added, Ordering::Relaxed);
        }
        // The shard locks are still held: no call can read this charge before its notices are
        // in the outbox. Lock order: shards, then the outbox's mutex (never the reverse).
        if mode == Mode::Consume
            && allowed
            && let Some(plan) = plan
        {
            let mut notices = Vec::new();
            plan.crossed(checks, out.as_mut(), now, &mut notices);
            if !notices.is_empty() {
                self.outbox.add(&notices);
            }
        }
        // A read first: the longest period rarely changes, and a write per decision would
        // contend across threads.
        if longest > self.counters.longest_period.load(Ordering::Relaxed) {
            self.counters
                .longest_period
                .fetch_max(longest, Ordering::Relaxed);
        }
        Ok(allowed)
    }

    /// Reserves room for `need` new keys, dropping droppable keys or applying the
    /// [`AtCapacity`] policy when the store is full. `keep` are the batch's own keys, which are
    /// never removed to make room.
    fn make_room(
        &self,
        need: u64,
        now: Micros,
        checks: &[Check],
        work: &[Work],
        keep: &[Fingerprint],
        held: &mut Held<'_, '_>,
    ) -> Result<(), MemoryError> {
        let capacity = self.config.capacity;
        let threshold = now.saturating_sub(self.counters.longest_period.load(Ordering::Relaxed));
        loop {
            let reserved =
                self.counters
                    .keys
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |keys| {
                        keys.checked_add(need).filter(|&total| total <= capacity)
                    });
            if reserved.is_ok() {
                return Ok(());
            }
            // Droppable keys go freely: the locked shards first, then any other not in use.
            let mut freed = 0;
            for shard in held.guards.iter_mut().flatten() {
                if shard.earliest_drop <= threshold {
                    freed += shard.drop_droppable(0, usize::MAX, threshold, keep).0;
                }
            }
            if freed < need {
                for (s, shard) in self.shards.iter().enumerate() {
                    if work.iter().any(|w| w.shard == s) {
                        continue;
                    }
                    let Some(mut shard) = shard.0.try_lock() else {
                        continue;
                    };
                    if shard.earliest_drop <= threshold {
                        freed += shard.drop_droppable(0, usize::MAX, threshold, keep).0;
                    }
                    if freed >= need {
                        break;
                    }
                }
            }
            self.forget(freed);
            if freed > 0 {
                continue;
            }
            let evicted = match self.config.at_capacity {
                AtCapacity::Refuse => false,
                AtCapacity::EvictNearestFresh => self.evict_one(now, work, keep, held),
            };
            if !evicted {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                let first_new = checks
                    .iter()
                    .zip(work)
                    .find(|(_, w)| w.pos.is_none())
                    .map_or_else(String::new, |(c, _)| c.key.to_string());
                return Err(MemoryError::Full {
                    key: first_new,
                    capacity,
                });
            }
        }
    }

    /// Evicts the key nearest to fresh among samples of the locked shards (or, if they hold
    /// nothing but the batch's keys, of the first other shard not in use). Returns whether one
    /// was evicted.
    fn evict_one(
        &self,
        now: Micros,
        work: &[Work],
        keep: &[Fingerprint],
        held: &mut Held<'_, '_>,
    ) -> bool {
        let mut best: Option<(usize, usize, Micros)> = None;
        for (g, shard) in held.guards.iter_mut().enumerate() {
            if let Some(shard) = shard
                && let Some((pos, at)) = shard.nearest_fresh(keep)
                && best.is_none_or(|(_, _, b)| at < b)
            {
                best = Some((g, pos, at));
            }
        }
        if let Some((g, pos, _)) = best
            && let Some(shard) = held.guards[g].as_deref_mut()
        {
            let entry = shard.remove_at(pos);
            self.count_eviction(entry.droppable_at, now);
            return true;
        }
        for (s, shard) in self.shards.iter().enumerate() {
            if work.iter().any(|w| w.shard == s) {
                continue;
            }
            let Some(mut shard) = shard.0.try_lock() else {
                continue;
            };
            if let Some((pos, _)) = shard.nearest_fresh(keep) {
                let entry = shard.remove_at(pos);
                self.count_eviction(entry.droppable_at, now);
                return true;
            }
        }
        false
    }

    fn count_eviction(&self, droppable_at: Micros, now: Micros) {
        let c = &self.counters;
        c.keys.fetch_sub(1, Ordering::Relaxed);
        c.evictions.fetch_add(1, Ordering::Relaxed);
        if droppable_at > now {
            c.evicted_live.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reset_key(&self, key: &Key) {
        let fp = self.fingerprinter.of(key.as_str());
        // An absent key is fresh already.
        if self.shards[self.shard_of(fp)].0.lock().remove(fp) {
            self.counters.keys.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Sweeps one slice if a sweep is due at `now` and no other call is sweeping.
    ///
    /// A pass visits every shard in order, [`SWEEP_SLICE`] slots per call, skipping shards with
    /// nothing droppable; the next pass is due a [`MemoryConfig::sweep_interval`] after one ends.
    fn maybe_sweep(&self, now: Micros) {
        let Some(interval) = self.config.sweep_interval else {
            return;
        };
        if now < self.sweeper.due.load(Ordering::Relaxed) {
            return;
        }
        let Some(mut cursor) = self.sweeper.cursor.try_lock() else {
            return;
        };
        if now < self.sweeper.due.load(Ordering::Relaxed) {
            return;
        }
        // Callers share one store with clocks apart, and a trace of calls may step back: a
        // state that only went fresh within the longest period of the latest `now` may still be
        // live for a caller that far behind. Each state already waits one period of its own
        // limit (`droppable_at`); the sweep waits the longest one more.
        let threshold = now.saturating_sub(self.counters.longest_period.load(Ordering::Relaxed));
        loop {
            let mut shard = self.shards[cursor.shard].0.lock();
            let skip = cursor.slot == 0 && shard.earliest_drop > threshold;
            let done = if skip {
                true
            } else {
                let end = cursor.slot.saturating_add(SWEEP_SLICE);
                let (removed, next) = shard.drop_droppable(cursor.slot, end, threshold, &[]);
                self.forget(removed);
                cursor.slot = next;
                next >= shard.table.slots()
            };
            if done {
                if !skip {
                    shard.settle();
                }
                cursor.shard += 1;
                cursor.slot = 0;
                if cursor.shard == self.shards.len() {
                    cursor.shard = 0;
                    let next_pass = now.saturating_add(micros(interval).max(1));
                    self.sweeper.due.store(next_pass, Ordering::Relaxed);
                    return;
                }
            }
            // One slice of real work per call; skipped shards cost a lock each.
            if !skip {
                return;
            }
        }
    }
}

/// When a state changed by `check` may be dropped: once fresh
/// ([`Limit::fresh_at`](limiter_core::Limit::fresh_at)), plus one period of its limit. A call
/// whose clock went back by less than a period (a skewed caller) still finds the state, so
/// dropping it never hands out a whole budget early.
fn droppable_at(check: &Check, state: &State, period: Micros) -> Micros {
    check.limit.fresh_at(state).saturating_add(period)
}

/// One check's key while a batch is decided: where it is, and its state, on the stack.
#[derive(Debug, Default)]
struct Work {
    fp: Fingerprint,
    shard: usize,
    /// Its slot in the shard, if the shard holds the key.
    pos: Option<usize>,
    /// Whether `state` was moved out of the shard's side map (and must go back).
    side: bool,
    state: State,
}

impl Work {
    fn new(fp: Fingerprint, shard: usize) -> Work {
        Work {
            fp,
            shard,
            ..Work::default()
        }
    }
}

impl Deref for Work {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Work {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

/// The locked shards of a batch.
struct Held<'g, 'm> {
    /// `guards[i]` is set for the first check (in lock order) of each shard.
    guards: &'g mut [Option<MutexGuard<'m, Shard>>],
    /// `holder[i]`: the check whose guard covers check `i`'s shard.
    holder: &'g [usize],
}

impl Held<'_, '_> {
    /// The locked shard of check `i`.
    fn shard(&mut self, i: usize) -> &mut Shard {
        self.guards[self.holder[i]]
            .as_deref_mut()
            .expect("every check's shard is locked before use")
    }

    /// Hands the side states taken for the batch back unchanged.
    fn put_back(&mut self, work: &mut [Work]) {
        for (i, w) in work.iter_mut().enumerate() {
            if w.side {
                let state = std::mem::take(&mut w.state);
                self.shard(i).restore(w.fp, state);
            }
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
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for MemoryStore {
    /// Never waits on I/O: `options.timeout` is not needed and not used.
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        let mut statuses = Vec::with_capacity(batch.len());
        let allowed = self.run(batch, options.now, options.mode, &mut statuses)?;
        Ok(BatchOutcome {
            allowed,
            statuses,
            at: options.now,
        })
    }

    async fn reset(&self, key: &Key) -> Result<(), Error> {
        self.reset_key(key);
        Ok(())
    }

    /// Always answers: the store never waits.
    fn evaluate_now(
        &self,
        batch: &Batch,
        options: &EvalOptions,
        out: &mut Statuses,
    ) -> Option<Result<bool, Error>> {
        Some(self.run(batch, options.now, options.mode, out))
    }

    /// Writes the notices a batch asks for to [`MemoryStore::outbox`], with the charge.
    fn keeps_notices(&self) -> bool {
        true
    }
}
