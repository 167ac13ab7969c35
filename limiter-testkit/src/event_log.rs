//! [`ReferenceEventLog`]: the simplest correct [`EventLog`], every answer a scan of what was
//! appended. The conformance suite compares each backend's answers with its answers.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use limiter_core::event::{
    EventCursor, EventKind, EventLog, EventPage, EventQuery, LimitEvent, Pruned, QuotaUsage,
    Retention, TenantCount, TenantHits,
};
use limiter_core::{Calendar, Error, Micros};

/// Microseconds in a day: the period of a daily quota.
const DAY: Micros = 86_400_000_000;

/// One appended event as the aggregates see it: kept after its raw event is pruned.
#[derive(Debug, Clone)]
struct Entry {
    day: Micros,
    event: LimitEvent,
}

#[derive(Debug, Default)]
struct State {
    /// Raw events with their sequence numbers, in append order.
    events: Vec<(u64, LimitEvent)>,
    /// Every kept event with a tenant, by the local day it happened in.
    aggregates: Vec<Entry>,
    /// Every exhaustion and restore ever kept, for the restore rule (never pruned).
    thresholds: Vec<LimitEvent>,
    next: u64,
}

/// An [`EventLog`] in a vector: obviously right, slow on purpose.
#[derive(Debug)]
pub struct ReferenceEventLog {
    calendar: Calendar,
    state: Mutex<State>,
}

impl Default for ReferenceEventLog {
    fn default() -> Self {
        ReferenceEventLog::new()
    }
}

impl ReferenceEventLog {
    /// An empty log counting days in UTC.
    pub fn new() -> Self {
        ReferenceEventLog::with_calendar(Calendar::utc())
    }

    /// An empty log counting days in `calendar`'s time zone.
    pub fn with_calendar(calendar: Calendar) -> Self {
        ReferenceEventLog {
            calendar,
            state: Mutex::new(State::default()),
        }
    }

    /// Every raw event kept, in append order.
    pub fn events(&self) -> Vec<LimitEvent> {
        self.lock().events.iter().map(|(_, e)| e.clone()).collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the restore candidate `event` is kept: the latest exhaustion of its tenant and
/// policy in an earlier window has no restore after it.
fn restores(thresholds: &[LimitEvent], event: &LimitEvent) -> bool {
    let same = |e: &&LimitEvent| e.tenant == event.tenant && e.policy == event.policy;
    let exhausted = thresholds
        .iter()
        .filter(same)
        .filter(|e| e.kind == EventKind::Exhausted && e.window_start < event.window_start)
        .map(|e| e.window_start)
        .max();
    exhausted.is_some_and(|exhausted| {
        !thresholds
            .iter()
            .filter(same)
            .any(|e| e.kind == EventKind::Restored && e.window_start > exhausted)
    })
}

#[async_trait]
impl EventLog for ReferenceEventLog {
    async fn append(&self, events: &[LimitEvent]) -> Result<(), Error> {
        let mut state = self.lock();
        for event in events {
            if event.kind == EventKind::Restored && !restores(&state.thresholds, event) {
                continue;
            }
            if matches!(event.kind, EventKind::Exhausted | EventKind::Restored) {
                state.thresholds.push(event.clone());
            }
            let seq = state.next;
            state.next += 1;
            state.events.push((seq, event.clone()));
            if event.tenant.is_some() {
                let day = self.calendar.day_bounds(event.at).0;
                state.aggregates.push(Entry {
                    day,
                    event: event.clone(),
                });
            }
        }
        Ok(())
    }

    async fn hits(&self, from: Micros, to: Micros) -> Result<Vec<TenantHits>, Error> {
        let state = self.lock();
        let mut by_tenant: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (_, e) in &state.events {
            if let (EventKind::Denied, Some(tenant)) = (e.kind, &e.tenant)
                && from <= e.at
                && e.at < to
            {
                let policy = e.policy.clone().unwrap_or_default();
                *by_tenant
                    .entry(tenant.clone())
                    .or_default()
                    .entry(policy)
                    .or_default() += 1;
            }
        }
        Ok(by_tenant
            .into_iter()
            .map(|(tenant, by_policy)| TenantHits {
                tenant,
                total: by_policy.values().sum(),
                by_policy: by_policy.into_iter().collect(),
            })
            .collect())
    }

    async fn top_hit_tenants(&self, day: Micros, n: usize) -> Result<Vec<TenantCount>, Error> {
        let day = self.calendar.day_bounds(day).0;
        let state = self.lock();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for entry in state.aggregates.iter().filter(|a| a.day == day) {
            if let (EventKind::Denied, Some(tenant)) = (entry.event.kind, &entry.event.tenant) {
                *counts.entry(tenant.clone()).or_default() += 1;
            }
        }
        let mut top: Vec<TenantCount> = counts
            .into_iter()
            .map(|(tenant, count)| TenantCount { tenant, count })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.tenant.cmp(&b.tenant)));
        top.truncate(n);
        Ok(top)
    }

    async fn near_quota(&self, now: Micros, percent: u8) -> Result<Vec<QuotaUsage>, Error> {
        let day = self.calendar.day_bounds(now).0;
        let state = self.lock();
        let mut peaks: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for entry in state.aggregates.iter().filter(|a| a.day == day) {
            let e = &entry.event;
            let (Some(tenant), Some(policy)) = (&e.tenant, &e.policy) else {
                continue;
            };
            if e.period != DAY || e.limit == 0 {
                continue;
            }
            let peak = peaks.entry((tenant.clone(), policy.clone())).or_default();
            if e.used() >= peak.0 {
                *peak = (e.used(), e.limit);
            }
        }
        Ok(peaks
            .into_iter()
            .filter(|(_, (used, limit))| used * 100 >= u64::from(percent) * limit)
            .map(|((tenant, policy), (used, limit))| QuotaUsage {
                tenant,
                policy,
                used,
                limit,
            })
            .collect())
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, Error> {
        let before = match &query.cursor {
            Some(EventCursor(c)) => c.parse::<u64>().map_err(|_| {
                Error::InvalidRequest(format!("cursor {c:?} is not one this log returned"))
            })?,
            None => u64::MAX,
        };
        let state = self.lock();
        let mut matching = state
            .events
            .iter()
            .rev()
            .filter(|(seq, e)| *seq < before && query.matches(e));
        let events: Vec<(u64, LimitEvent)> = matching
            .by_ref()
            .take(query.limit.max(1))
            .cloned()
            .collect();
        let next = match (matching.next(), events.last()) {
            (Some(_), Some((seq, _))) => Some(EventCursor(seq.to_string())),
            _ => None,
        };
        Ok(EventPage {
            events: events.into_iter().map(|(_, e)| e).collect(),
            next,
        })
    }

    async fn prune(&self, retention: &Retention) -> Result<Pruned, Error> {
        let mut state = self.lock();
        let before = state.events.len();
        state
            .events
            .retain(|(_, e)| e.at >= retention.events_before);
        let events = before - state.events.len();
        let mut days: Vec<Micros> = state
            .aggregates
            .iter()
            .filter(|a| a.day < retention.aggregates_before)
            .map(|a| a.day)
            .collect();
        days.sort_unstable();
        days.dedup();
        state
            .aggregates
            .retain(|a| a.day >= retention.aggregates_before);
        Ok(Pruned {
            events: u64::try_from(events).unwrap_or(u64::MAX),
            aggregates: u64::try_from(days.len()).unwrap_or(u64::MAX),
        })
    }
}
