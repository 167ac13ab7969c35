//! [`MemoryEventLog`]: events in process memory, for a single instance, tests and demos.
//!
//! Raw events sit in a bounded queue in append order, indexed by tenant; per-day aggregates
//! (denials and peak daily-quota usage per tenant and policy) are kept apart, so they survive
//! both [`prune`](EventLog::prune) and the eviction of the oldest raw events at capacity.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use limiter_core::event::{
    EventCursor, EventKind, EventLog, EventPage, EventQuery, LimitEvent, Pruned, QuotaUsage,
    Retention, TenantCount, TenantHits,
};
use limiter_core::{Calendar, Error, Micros};

/// Microseconds in a day: the period of a daily quota.
const DAY: Micros = 86_400_000_000;

/// What one day holds for one tenant and policy.
#[derive(Debug, Clone, Copy, Default)]
struct DayTotals {
    denied: u64,
    /// The highest usage of a daily quota recorded (used, limit), if any.
    peak: Option<(u64, u64)>,
}

/// What the restore rule remembers per tenant and policy (never pruned: a few bytes each).
#[derive(Debug, Default)]
struct Thresholds {
    exhausted: BTreeSet<Micros>,
    restored: Option<Micros>,
}

type Subject = (Option<String>, Option<String>);

#[derive(Debug, Default)]
struct State {
    /// Raw events with their sequence numbers, in append (so increasing) order.
    events: VecDeque<(u64, LimitEvent)>,
    /// Each tenant's sequence numbers, increasing.
    by_tenant: HashMap<String, VecDeque<u64>>,
    /// Day -> tenant -> policy ('' for none): nested, so that a lookup borrows its names.
    days: BTreeMap<Micros, BTreeMap<String, BTreeMap<String, DayTotals>>>,
    thresholds: HashMap<Subject, Thresholds>,
    next: u64,
    /// The bounds of the last local day looked up: events come in time order, so most fall
    /// in it and skip the time zone arithmetic.
    last_day: (Micros, Micros),
}

impl State {
    /// The event numbered `seq`, if still held.
    fn get(&self, seq: u64) -> Option<&LimitEvent> {
        let i = self.events.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        self.events.get(i).map(|(_, e)| e)
    }

    /// Evicts the oldest event: the oldest of its tenant too.
    fn evict_oldest(&mut self) {
        let Some((seq, event)) = self.events.pop_front() else {
            return;
        };
        if let Some(tenant) = &event.tenant
            && let Some(seqs) = self.by_tenant.get_mut(tenant)
        {
            if seqs.front() == Some(&seq) {
                seqs.pop_front();
            }
            if seqs.is_empty() {
                self.by_tenant.remove(tenant);
            }
        }
    }

    /// Rebuilds the tenant index from the events held (after a prune).
    fn reindex(&mut self) {
        self.by_tenant.clear();
        for (seq, event) in &self.events {
            if let Some(tenant) = &event.tenant {
                self.by_tenant
                    .entry(tenant.clone())
                    .or_default()
                    .push_back(*seq);
            }
        }
    }
}

/// An [`EventLog`] in memory: one process, lost on restart.
pub struct MemoryEventLog {
    calendar: Calendar,
    capacity: usize,
    state: Mutex<State>,
}

impl fmt::Debug for MemoryEventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MemoryEventLog(time_zone={}, capacity={})",
            self.calendar.name(),
            self.capacity
        )
    }
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        MemoryEventLog::new(Calendar::utc())
    }
}

impl MemoryEventLog {
    /// The default number of raw events kept before the oldest are evicted.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// An empty log counting days in `calendar`'s time zone, keeping up to
    /// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) raw events.
    pub fn new(calendar: Calendar) -> Self {
        MemoryEventLog::with_capacity(calendar, Self::DEFAULT_CAPACITY)
    }

    /// An empty log keeping at most `capacity` raw events (at least 1): the oldest are evicted
    /// first, the aggregates stay.
    pub fn with_capacity(calendar: Calendar, capacity: usize) -> Self {
        MemoryEventLog {
            calendar,
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Raw events held.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether no raw event is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every statement leaves the state consistent: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a restore candidate in `window` is kept: the latest exhaustion of an earlier window
/// has no restore after it.
fn restores(thresholds: &Thresholds, window: Micros) -> bool {
    thresholds
        .exhausted
        .range(..window)
        .next_back()
        .is_some_and(|&exhausted| thresholds.restored.is_none_or(|r| r <= exhausted))
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[async_trait]
impl EventLog for MemoryEventLog {
    async fn append(&self, events: &[LimitEvent]) -> Result<(), Error> {
        let mut state = self.lock();
        for event in events {
            let subject = || (event.tenant.clone(), event.policy.clone());
            match event.kind {
                EventKind::Restored => {
                    let thresholds = state.thresholds.entry(subject()).or_default();
                    if !restores(thresholds, event.window_start) {
                        continue;
                    }
                    thresholds.restored = thresholds.restored.max(Some(event.window_start));
                }
                EventKind::Exhausted => {
                    let thresholds = state.thresholds.entry(subject()).or_default();
                    thresholds.exhausted.insert(event.window_start);
                }
                _ => {}
            }
            let seq = state.next;
            state.next += 1;
            if let Some(tenant) = &event.tenant {
                // Looked up by reference first: a name is copied only the first time it is seen.
                match state.by_tenant.get_mut(tenant) {
                    Some(seqs) => seqs.push_back(seq),
                    None => {
                        state
                            .by_tenant
                            .insert(tenant.clone(), VecDeque::from([seq]));
                    }
                }
                let (start, end) = state.last_day;
                let day = if (start..end).contains(&event.at) {
                    start
                } else {
                    state.last_day = self.calendar.day_bounds(event.at);
                    state.last_day.0
                };
                let tenants = state.days.entry(day).or_default();
                if !tenants.contains_key(tenant) {
                    tenants.insert(tenant.clone(), BTreeMap::new());
                }
                let policy = event.policy.as_deref().unwrap_or_default();
                let Some(policies) = tenants.get_mut(tenant) else {
                    continue;
                };
                if !policies.contains_key(policy) {
                    policies.insert(policy.to_owned(), DayTotals::default());
                }
                let Some(totals) = policies.get_mut(policy) else {
                    continue;
                };
                if event.kind == EventKind::Denied {
                    totals.denied += 1;
                }
                if event.period == DAY
                    && event.limit > 0
                    && event.policy.is_some()
                    && totals.peak.is_none_or(|(used, _)| event.used() >= used)
                {
                    totals.peak = Some((event.used(), event.limit));
                }
            }
            state.events.push_back((seq, event.clone()));
            while state.events.len() > self.capacity {
                state.evict_oldest();
            }
        }
        Ok(())
    }

    async fn hits(&self, from: Micros, to: Micros) -> Result<Vec<TenantHits>, Error> {
        let state = self.lock();
        let mut by_tenant: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        for (_, e) in &state.events {
            if let (EventKind::Denied, Some(tenant)) = (e.kind, &e.tenant)
                && (from..to).contains(&e.at)
            {
                let policy = e.policy.as_deref().unwrap_or_default();
                *by_tenant
                    .entry(tenant)
                    .or_default()
                    .entry(policy)
                    .or_default() += 1;
            }
        }
        Ok(by_tenant
            .into_iter()
            .map(|(tenant, by_policy)| TenantHits {
                tenant: tenant.to_owned(),
                total: by_policy.values().sum(),
                by_policy: by_policy
                    .into_iter()
                    .map(|(p, n)| (p.to_owned(), n))
                    .collect(),
            })
            .collect())
    }

    async fn top_hit_tenants(&self, day: Micros, n: usize) -> Result<Vec<TenantCount>, Error> {
        let day = self.calendar.day_bounds(day).0;
        let state = self.lock();
        let mut top: Vec<TenantCount> = state
            .days
            .get(&day)
            .into_iter()
            .flatten()
            .map(|(tenant, policies)| TenantCount {
                tenant: tenant.clone(),
                count: policies.values().map(|t| t.denied).sum(),
            })
            .filter(|t| t.count > 0)
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.tenant.cmp(&b.tenant)));
        top.truncate(n);
        Ok(top)
    }

    async fn near_quota(&self, now: Micros, percent: u8) -> Result<Vec<QuotaUsage>, Error> {
        let day = self.calendar.day_bounds(now).0;
        let state = self.lock();
        let mut near = Vec::new();
        let today = state.days.get(&day).into_iter().flatten();
        for (tenant, policy, totals) in
            today.flat_map(|(t, ps)| ps.iter().map(move |(p, x)| (t, p, x)))
        {
            if let Some((used, limit)) = totals.peak
                && used * 100 >= u64::from(percent) * limit
            {
                near.push(QuotaUsage {
                    tenant: tenant.clone(),
                    policy: policy.clone(),
                    used,
                    limit,
                });
            }
        }
        Ok(near)
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, Error> {
        let before = match &query.cursor {
            Some(EventCursor(c)) => c.parse::<u64>().map_err(|_| {
                Error::InvalidRequest(format!(
                    "cursor {c:?} is not one this log returned: expected a decimal number"
                ))
            })?,
            None => u64::MAX,
        };
        let state = self.lock();
        let Some(seqs) = state.by_tenant.get(&query.tenant) else {
            return Ok(EventPage {
                events: Vec::new(),
                next: None,
            });
        };
        let mut matching = seqs
            .iter()
            .rev()
            .skip_while(|seq| **seq >= before)
            .filter_map(|seq| state.get(*seq).map(|e| (*seq, e)))
            .filter(|(_, e)| query.matches(e));
        let page: Vec<(u64, &LimitEvent)> = matching.by_ref().take(query.limit.max(1)).collect();
        let next = match (matching.next(), page.last()) {
            (Some(_), Some((seq, _))) => Some(EventCursor(seq.to_string())),
            _ => None,
        };
        Ok(EventPage {
            events: page.into_iter().map(|(_, e)| e.clone()).collect(),
            next,
        })
    }

    async fn prune(&self, retention: &Retention) -> Result<Pruned, Error> {
        let mut state = self.lock();
        let held = state.events.len();
        state
            .events
            .retain(|(_, e)| e.at >= retention.events_before);
        let events = held - state.events.len();
        if events > 0 {
            state.reindex();
        }
        let kept = state.days.split_off(&retention.aggregates_before);
        let days = std::mem::replace(&mut state.days, kept);
        Ok(Pruned {
            events: count(events),
            aggregates: count(days.len()),
        })
    }
}
