//! [`MemoryOutbox`]: the notices a [`MemoryStore`](crate::MemoryStore) writes with its charges,
//! waiting in process memory for the workers that deliver them.
//!
//! One mutex guards the whole outbox: every operation is a few map and index updates. Notices
//! are held by id, and indexed by stage: pending ones by (due, id), claimed ones by (lease end,
//! id), settled ones by (settled at, id). A claim reads the front of the first two (the due
//! notices, and the leases that ended), never the notices that are not due; a prune reads the
//! front of the third.
//!
//! Lock order: the store enqueues while it holds the shard locks of the batch it charged (so
//! that the charge and its notices are one step), so the outbox's mutex is taken after shard
//! locks, and nothing here ever takes a shard lock: no two calls wait on each other in a cycle.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use limiter_core::notify::{ClaimRequest, Claimed, Notice, Outbox, OutboxStats, Settlement};
use limiter_core::{Error, Micros};
use parking_lot::Mutex;

/// An [`Outbox`] in process memory: for a single process, tests and development.
///
/// The outbox of a [`MemoryStore`](crate::MemoryStore)
/// ([`MemoryStore::outbox`](crate::MemoryStore::outbox)) receives the notices of each charge in
/// the same locked step as the charge. It is not durable: a restart loses the notices waiting
/// here, as it loses the store's counts that led to them, so the two stay consistent. Use the
/// SQLite or Redis backends to keep notices across a restart or share them between processes.
///
/// A notice is *pending* until a worker claims it, then *claimed* until its lease ends or the
/// worker settles the attempt: *delivered*, *failed*, or pending again until a retry time. The
/// notice a claim returns is the one enqueued, unchanged; its retry time is kept beside it.
/// Delivered and failed notices stay (their ids keep duplicates out) until
/// [`prune`](Outbox::prune) removes them.
///
/// ```
/// use limiter_core::notify::{ClaimRequest, Notice, NotificationId, NotifyKind, Outbox, Settlement};
/// use limiter_memory::MemoryOutbox;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let outbox = MemoryOutbox::new();
/// let id = NotificationId::new("t=acme", "plan_daily", NotifyKind::Exhausted, None, 0, 5000);
/// let notice = Notice::new(id, 1_000);
/// assert_eq!(outbox.enqueue(&[notice.clone(), notice.clone()]).await?, 1);
///
/// let claim = ClaimRequest { worker: "w1".into(), now: 1_000, lease: 60_000_000, max: 10 };
/// let claimed = outbox.claim(&claim).await?;
/// assert_eq!((claimed[0].notice.id(), claimed[0].attempt), (notice.id(), 1));
/// // Leased: nobody else gets it until the lease ends.
/// assert!(outbox.claim(&claim).await?.is_empty());
///
/// assert!(outbox.settle(&claimed[0], &Settlement::Delivered { at: 2_000 }).await?);
/// assert_eq!(outbox.stats(2_000).await?.delivered, 1);
/// // Its id is still known: the same notice is not queued again.
/// assert_eq!(outbox.enqueue(&[notice]).await?, 0);
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct MemoryOutbox {
    state: Mutex<State>,
}

/// Where one notice stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting until its due time.
    Pending,
    /// Leased to a worker, for the attempt numbered by the entry's `claims`, until
    /// `lease_until`.
    Claimed { lease_until: Micros },
    /// Settled at `at` (delivered or failed); prunable from then on.
    Settled { at: Micros, delivered: bool },
}

#[derive(Debug)]
struct Entry {
    /// The notice as enqueued: a claim returns it unchanged.
    notice: Notice,
    /// When it is due: the notice's own due time, or the retry time of its last attempt.
    due: Micros,
    stage: Stage,
    /// Claims made so far: the next claim is attempt `claims + 1`.
    claims: u32,
}

/// The indexes an entry can be in, each ordered by (time, id).
#[derive(Debug, Clone, Copy)]
enum Index {
    /// Pending notices by due time.
    Pending,
    /// Claimed notices by the end of their lease.
    Leased,
    /// Delivered and failed notices by settlement time.
    Settled,
}

/// Which index holds a notice in `stage` due at `due`, and under which time.
fn place(stage: Stage, due: Micros) -> (Index, Micros) {
    match stage {
        Stage::Pending => (Index::Pending, due),
        Stage::Claimed { lease_until } => (Index::Leased, lease_until),
        Stage::Settled { at, .. } => (Index::Settled, at),
    }
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Arc<str>, Entry>,
    /// Pending notices by (due, id): a claim takes the due ones from the front.
    pending: BTreeSet<(Micros, Arc<str>)>,
    /// Claimed notices by (lease end, id): the front holds the leases that ended.
    leased: BTreeSet<(Micros, Arc<str>)>,
    /// Delivered and failed notices by (settled at, id): a prune takes from the front.
    settled: BTreeSet<(Micros, Arc<str>)>,
    /// Notices per stage. Its `due` stays 0: that figure depends on the time asked about.
    counts: OutboxStats,
}

impl State {
    fn index(&mut self, index: Index) -> &mut BTreeSet<(Micros, Arc<str>)> {
        match index {
            Index::Pending => &mut self.pending,
            Index::Leased => &mut self.leased,
            Index::Settled => &mut self.settled,
        }
    }

    fn count(&mut self, stage: Stage) -> &mut u64 {
        match stage {
            Stage::Pending => &mut self.counts.pending,
            Stage::Claimed { .. } => &mut self.counts.claimed,
            Stage::Settled {
                delivered: true, ..
            } => &mut self.counts.delivered,
            Stage::Settled {
                delivered: false, ..
            } => &mut self.counts.failed,
        }
    }

    /// Files the notice `id`, in `stage` and due at `due`, in its index and count.
    fn file(&mut self, id: &Arc<str>, stage: Stage, due: Micros) {
        let (index, at) = place(stage, due);
        self.index(index).insert((at, Arc::clone(id)));
        *self.count(stage) += 1;
    }

    /// Takes the notice `id`, in `stage` and due at `due`, out of its index and count.
    fn unfile(&mut self, id: &Arc<str>, stage: Stage, due: Micros) {
        let (index, at) = place(stage, due);
        self.index(index).remove(&(at, Arc::clone(id)));
        let count = self.count(stage);
        *count = count.saturating_sub(1);
    }

    /// Moves the notice `id` to `stage`, due at `due`, keeping the indexes and counts in step.
    /// Returns the notice's entry as it now is.
    fn set(&mut self, id: &Arc<str>, stage: Stage, due: Micros) -> Option<&Entry> {
        let entry = self.entries.get(id)?;
        let (from, from_due) = (entry.stage, entry.due);
        self.unfile(id, from, from_due);
        self.file(id, stage, due);
        let entry = self.entries.get_mut(id)?;
        entry.stage = stage;
        entry.due = due;
        Some(entry)
    }

    /// Up to `max` notices claimable at `now`, earliest due first (ties by id): pending ones
    /// due by then, and claimed ones whose lease ended (ordered by their due time too).
    fn claimable(&self, now: Micros, max: usize) -> Vec<(Micros, Arc<str>)> {
        let due_by_now = |(at, _): &&(Micros, Arc<str>)| *at <= now;
        let mut chosen: Vec<(Micros, Arc<str>)> = self
            .pending
            .iter()
            .take_while(due_by_now)
            .take(max)
            .cloned()
            .collect();
        // Ended leases are few (their workers stopped): each is placed by its due time.
        chosen.extend(
            self.leased
                .iter()
                .take_while(due_by_now)
                .filter_map(|(_, id)| Some((self.entries.get(id)?.due, Arc::clone(id)))),
        );
        chosen.sort_unstable();
        chosen.truncate(max);
        chosen
    }
}

impl MemoryOutbox {
    /// An empty outbox.
    pub fn new() -> MemoryOutbox {
        MemoryOutbox::default()
    }

    /// Adds the notices whose id is new, as pending; returns how many. The store calls it with
    /// the shard locks of a charge held (see the module's lock order), so the ids are worked
    /// out before the outbox's lock is taken.
    pub(crate) fn add(&self, notices: &[Notice]) -> u64 {
        let ids: Vec<Arc<str>> = notices.iter().map(|n| Arc::from(n.id())).collect();
        let mut state = self.state.lock();
        let mut added = 0;
        for (id, notice) in ids.into_iter().zip(notices) {
            if state.entries.contains_key(&id) {
                continue;
            }
            state.file(&id, Stage::Pending, notice.due);
            let entry = Entry {
                notice: notice.clone(),
                due: notice.due,
                stage: Stage::Pending,
                claims: 0,
            };
            state.entries.insert(id, entry);
            added += 1;
        }
        added
    }
}

impl fmt::Debug for MemoryOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `try_lock`: a Debug call made while this thread holds the lock must not deadlock.
        match self.state.try_lock() {
            Some(state) => {
                let c = state.counts;
                write!(
                    f,
                    "MemoryOutbox(pending={}, claimed={}, delivered={}, failed={})",
                    c.pending, c.claimed, c.delivered, c.failed
                )
            }
            None => f.write_str("MemoryOutbox(<locked>)"),
        }
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn enqueue(&self, notices: &[Notice]) -> Result<u64, Error> {
        Ok(self.add(notices))
    }

    async fn claim(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>, Error> {
        let lease_until = claim.now.saturating_add(claim.lease);
        let mut state = self.state.lock();
        // Chosen before any is leased: a lease of 0 would put a notice back within reach.
        let chosen = state.claimable(claim.now, claim.max.max(1));
        let mut claimed = Vec::with_capacity(chosen.len());
        for (due, id) in chosen {
            let Some(entry) = state.entries.get_mut(&id) else {
                continue;
            };
            entry.claims = entry.claims.saturating_add(1);
            if let Some(entry) = state.set(&id, Stage::Claimed { lease_until }, due) {
                claimed.push(Claimed {
                    notice: entry.notice.clone(),
                    attempt: entry.claims,
                    lease_until,
                });
            }
        }
        Ok(claimed)
    }

    async fn settle(&self, claimed: &Claimed, settlement: &Settlement) -> Result<bool, Error> {
        let (stage, retry_at) = match settlement {
            Settlement::Delivered { at } => (
                Stage::Settled {
                    at: *at,
                    delivered: true,
                },
                None,
            ),
            Settlement::Retry { retry_at, .. } => (Stage::Pending, Some(*retry_at)),
            Settlement::Failed { at, .. } => (
                Stage::Settled {
                    at: *at,
                    delivered: false,
                },
                None,
            ),
            _ => {
                return Err(Error::InvalidRequest(format!(
                    "the settlement of notice {} is of a kind this outbox does not know; \
                     expected Delivered, Retry or Failed",
                    claimed.notice.id()
                )));
            }
        };
        let id: Arc<str> = Arc::from(claimed.notice.id());
        let mut state = self.state.lock();
        let Some(entry) = state.entries.get(&id) else {
            return Ok(false);
        };
        // Fenced by the attempt: only the notice's current claim may settle it.
        if !matches!(entry.stage, Stage::Claimed { .. }) || entry.claims != claimed.attempt {
            return Ok(false);
        }
        let due = retry_at.unwrap_or(entry.due);
        state.set(&id, stage, due);
        Ok(true)
    }

    async fn stats(&self, now: Micros) -> Result<OutboxStats, Error> {
        let state = self.state.lock();
        let due = state
            .pending
            .iter()
            .take_while(|(at, _)| *at <= now)
            .count();
        Ok(OutboxStats {
            due: u64::try_from(due).unwrap_or(u64::MAX),
            ..state.counts
        })
    }

    async fn prune(&self, before: Micros) -> Result<u64, Error> {
        let mut state = self.state.lock();
        let mut removed = 0;
        while let Some((at, _)) = state.settled.first()
            && *at < before
        {
            let Some((_, id)) = state.settled.pop_first() else {
                break;
            };
            if let Some(entry) = state.entries.remove(&id) {
                // The index entry is gone already; only the count is left.
                let count = state.count(entry.stage);
                *count = count.saturating_sub(1);
            }
            removed += 1;
        }
        Ok(removed)
    }
}
