//! [`LocalDenials`]: denials remembered in process, in front of any store, so that a flood on
//! a subject that is already denied costs no round trip.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use limiter_core::{
    Batch, BatchOutcome, Error, EvalOptions, Key, Limit, LimitStatus, Micros, Mode, Store, Verdict,
};
use moka::Expiry;
use moka::sync::Cache;

/// How long a denial is remembered at most, by default (see [`LocalDenials::with_max_hold`]).
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(1);

/// How many keys are remembered at most, by default.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

/// A [`Store`] wrapper that answers, in process and without calling the store, a request the
/// store would certainly deny.
///
/// When the store denies a batch, the wrapper remembers, for each of its keys, the limit, the
/// cost and the status the store reported, until the denial's retry time (at most
/// [`max_hold`](Self::with_max_hold)). A later batch of the same keys, limits and costs, made
/// before that time, is denied locally: its statuses are the remembered ones, counted down
/// (`reset_after` and `retry_after` less the time elapsed), at the call's `now`. Anything else
/// goes to the store, which decides.
///
/// # Guarantees
///
/// - **It never admits anything the store would deny**: every admission comes from the store.
/// - **A local denial is one the store would give**: a denial lasts until its retry time
///   unless the state is given back, and other requests' charges only make it last longer.
///   A refund or a reset made *through the wrapper* forgets what it remembers of those keys
///   first, and so does a batch the store admits (its keys' figures changed).
/// - **The one exception**: a refund or reset made elsewhere (another process, or the store
///   directly) is not seen here, so the wrapper may keep denying a request the store would now
///   admit, for at most the rest of the denial's retry time and never longer than
///   `max_hold` (1 second by default) after the store denied it.
/// - Peeks always go to the store; so do batches with a key it has not seen denied.
///
/// Time is the caller's: a denial at `now` holds while a later call's `now` is before
/// `now + retry_after`, and in any case for at most `max_hold` of this process's monotonic
/// time. A store on its own clock (Redis server time) decides at or after the caller's `now`,
/// so the denial ends here no later than on the server.
///
/// ```
/// # async fn run() -> Result<(), limiter_core::Error> {
/// use limiter_core::{Batch, Check, EvalOptions, Key, Limit, Store, SubjectKind};
/// use limiter_memory::{LocalDenials, MemoryStore};
///
/// let store = LocalDenials::new(MemoryStore::default());
/// let key = Key::new("api", "burst", SubjectKind::User, "u-1");
/// let limit = Limit::gcra("1/minute".parse()?);
/// let batch = Batch::new(vec![Check::new("burst", key, limit, 1)])?;
/// assert!(store.evaluate(&batch, &EvalOptions::at(0)).await?.allowed);
/// // Denied by the store, then in process until the minute is over.
/// assert!(!store.evaluate(&batch, &EvalOptions::at(1)).await?.allowed);
/// assert!(!store.evaluate(&batch, &EvalOptions::at(2)).await?.allowed);
/// assert_eq!(store.answered_locally(), 1);
/// # Ok(())
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
pub struct LocalDenials<S> {
    inner: S,
    remembered: Cache<Key, Arc<Remembered>>,
    max_hold: Duration,
    max_entries: u64,
    /// Counts refunds and resets made through the wrapper: a denial read before one of them
    /// finished is not remembered (it may predate what was given back).
    generation: AtomicU64,
    answered_locally: AtomicU64,
}

/// What the store said of one key in a denied batch.
#[derive(Debug)]
struct Remembered {
    limit: Arc<Limit>,
    cost: u64,
    shadow: bool,
    status: LimitStatus,
    /// The caller's `now` of the call the store denied.
    seen_at: Micros,
    /// Whether this check denied the batch (an enforced check, denied or impossible), so that
    /// the same check denies again until `until`.
    denies: bool,
    /// Until when (in the caller's time) the entry answers.
    until: Micros,
    /// How long it lives in this process's time.
    hold: Duration,
}

/// Each entry lives for its own hold.
struct HoldExpiry;

impl Expiry<Key, Arc<Remembered>> for HoldExpiry {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<Remembered>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.hold)
    }
}

impl<S: Store> LocalDenials<S> {
    /// Wraps `inner`, remembering up to [`DEFAULT_MAX_ENTRIES`] keys for at most
    /// [`DEFAULT_MAX_HOLD`] each.
    pub fn new(inner: S) -> LocalDenials<S> {
        LocalDenials {
            inner,
            remembered: cache(DEFAULT_MAX_ENTRIES),
            max_hold: DEFAULT_MAX_HOLD,
            max_entries: DEFAULT_MAX_ENTRIES,
            generation: AtomicU64::new(0),
            answered_locally: AtomicU64::new(0),
        }
    }

    /// The same, holding a denial for at most `max_hold`: the bound on how long a refund or
    /// reset made by another process may go unseen here. A longer hold saves more store calls
    /// under a flood (one per key per hold); zero turns local answers off.
    pub fn with_max_hold(mut self, max_hold: Duration) -> LocalDenials<S> {
        self.max_hold = max_hold;
        self
    }

    /// The same, remembering at most `max_entries` keys (the least used go first, which only
    /// sends their requests to the store again).
    pub fn with_max_entries(mut self, max_entries: u64) -> LocalDenials<S> {
        self.max_entries = max_entries;
        self.remembered = cache(max_entries);
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many calls were answered here, without the store.
    pub fn answered_locally(&self) -> u64 {
        self.answered_locally.load(Ordering::Relaxed)
    }

    /// The local answer to `batch` at `now`, if the store would certainly deny it.
    fn answer(&self, batch: &Batch, now: Micros) -> Option<BatchOutcome> {
        let mut denied = false;
        let mut statuses = Vec::with_capacity(batch.len());
        for check in batch.checks() {
            let entry = self.remembered.get(&check.key)?;
            // Only the same limit at the same cost, while the entry holds; never for a time
            // before the denial (a clock that went back).
            if entry.limit != check.limit
                || entry.cost != check.cost
                || entry.shadow != check.shadow
                || now < entry.seen_at
                || now >= entry.until
            {
                return None;
            }
            denied |= entry.denies;
            statuses.push(counted_down(entry.status, now - entry.seen_at));
        }
        denied.then_some(BatchOutcome {
            allowed: false,
            statuses,
            at: now,
        })
    }

    /// Remembers the keys of `batch`, which the store denied at `now` with `outcome`.
    fn remember(&self, batch: &Batch, outcome: &BatchOutcome, now: Micros, generation: u64) {
        let max_hold = micros(self.max_hold);
        // How long each status holds as it is: a denial until its retry time (an impossible
        // cost, for good), within the bound; an allowed status for as long as the batch is
        // denied (a state only moves towards fresh, and an admitted batch forgets its keys).
        let own: Vec<Option<Micros>> = outcome
            .statuses
            .iter()
            .map(|status| match status.verdict {
                Verdict::Denied => Some(status.retry_after.min(max_hold)),
                Verdict::Impossible => Some(max_hold),
                Verdict::Allowed => None,
            })
            .collect();
        // The batch stays denied while one of its enforced denials holds.
        let longest = batch
            .checks()
            .iter()
            .zip(&own)
            .filter(|(check, _)| !check.shadow)
            .filter_map(|(_, hold)| *hold)
            .max()
            .filter(|&hold| hold > 0);
        let Some(longest) = longest else {
            return;
        };
        // A refund or reset finished since the call began: what it read may be stale.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        for ((check, status), hold) in batch.checks().iter().zip(&outcome.statuses).zip(own) {
            let held = hold.unwrap_or(longest);
            let entry = Remembered {
                limit: check.limit.clone(),
                cost: check.cost,
                shadow: check.shadow,
                status: *status,
                seen_at: now,
                denies: hold.is_some() && !check.shadow,
                until: now.saturating_add(held),
                hold: limiter_core::time::duration(held),
            };
            self.remembered.insert(check.key.clone(), Arc::new(entry));
        }
    }

    /// Forgets `batch`'s keys.
    fn forget(&self, batch: &Batch) {
        for check in batch.checks() {
            self.remembered.invalidate(&check.key);
        }
    }
}

fn cache(max_entries: u64) -> Cache<Key, Arc<Remembered>> {
    Cache::builder()
        .max_capacity(max_entries)
        .expire_after(HoldExpiry)
        .build()
}

fn micros(d: Duration) -> Micros {
    limiter_core::time::micros(d)
}

/// `status`, `elapsed` later: the spans less the time elapsed (a denial's retry at least 1 µs).
fn counted_down(status: LimitStatus, elapsed: Micros) -> LimitStatus {
    let mut status = status;
    status.reset_after = status.reset_after.saturating_sub(elapsed);
    if status.verdict == Verdict::Denied {
        status.retry_after = status.retry_after.saturating_sub(elapsed).max(1);
    }
    status
}

#[async_trait]
impl<S: Store> Store for LocalDenials<S> {
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        match options.mode {
            Mode::Consume => {
                if let Some(outcome) = self.answer(batch, options.now) {
                    self.answered_locally.fetch_add(1, Ordering::Relaxed);
                    return Ok(outcome);
                }
                let generation = self.generation.load(Ordering::Acquire);
                let outcome = self.inner.evaluate(batch, options).await?;
                if outcome.allowed {
                    // Its keys' figures changed: what was remembered of them is stale.
                    self.forget(batch);
                } else if !self.max_hold.is_zero() {
                    self.remember(batch, &outcome, options.now, generation);
                }
                Ok(outcome)
            }
            Mode::Peek => self.inner.evaluate(batch, options).await,
            Mode::Refund { .. } => {
                let result = self.inner.evaluate(batch, options).await;
                // Whatever the result (a failed call may have given back), a denial read
                // before now may no longer hold.
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.forget(batch);
                result
            }
        }
    }

    async fn reset(&self, key: &Key) -> Result<(), Error> {
        let result = self.inner.reset(key).await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.remembered.invalidate(key);
        result
    }

    /// As the inner store: every charge is the inner store's, made with the batch and its
    /// notices; a local denial charges nothing, so it owes no notice.
    fn keeps_notices(&self) -> bool {
        self.inner.keeps_notices()
    }
}

impl<S: fmt::Display> fmt::Display for LocalDenials<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalDenials({})", self.inner)
    }
}

impl<S: fmt::Debug> fmt::Debug for LocalDenials<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDenials")
            .field("inner", &self.inner)
            .field("max_hold", &self.max_hold)
            .field("max_entries", &self.max_entries)
            .field("remembered", &self.remembered.entry_count())
            .field(
                "answered_locally",
                &self.answered_locally.load(Ordering::Relaxed),
            )
            .finish()
    }
}
