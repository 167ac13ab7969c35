//! [`EventLog`]: where events are persisted, and the questions a dashboard asks of them.

use std::fmt;

use async_trait::async_trait;

use super::{EventKind, LimitEvent};
use crate::Error;
use crate::time::Micros;

/// Persisted events and the queries over them. Every backend implements it; the test kit's
/// conformance suite (`event_log_suite!`) holds each implementation to the same answers as
/// its reference log.
///
/// A log keeps two tiers: raw events (what [`events`](Self::events) and
/// [`hits`](Self::hits) read) and per-day aggregates per tenant and policy (what
/// [`top_hit_tenants`](Self::top_hit_tenants) and [`near_quota`](Self::near_quota) read),
/// which survive the pruning or trimming of raw events. Days are local days in the log's
/// configured time zone (UTC by default).
///
/// Events without a tenant are kept as raw events but appear in no per-tenant answer.
#[async_trait]
pub trait EventLog: fmt::Debug + Send + Sync {
    /// Appends `events` (a batch, in order) and updates the aggregates.
    ///
    /// A [`Restored`](EventKind::Restored) event is a candidate: it is kept only if the log
    /// holds an [`Exhausted`](EventKind::Exhausted) event of the same tenant and policy in an
    /// earlier window and no restore of that tenant and policy since that exhaustion.
    async fn append(&self, events: &[LimitEvent]) -> Result<(), Error>;

    /// The tenants that hit limits ([`Denied`](EventKind::Denied) events) with
    /// `from <= at < to`, with their counts by policy; by tenant name.
    async fn hits(&self, from: Micros, to: Micros) -> Result<Vec<TenantHits>, Error>;

    /// The `n` tenants with the most denials in the local day that holds `day`, most first
    /// (ties by tenant name).
    async fn top_hit_tenants(&self, day: Micros, n: usize) -> Result<Vec<TenantCount>, Error>;

    /// The tenants whose recorded usage of a daily quota (a limit whose period is one day)
    /// reached at least `percent` of it in the local day that holds `now`; by tenant, then
    /// policy. Usage is the highest `limit - remaining` among the day's events of that tenant
    /// and policy: exact at or below the approaching share (an event is recorded when it is
    /// crossed) and at 100% (exhausted), a lower bound in between.
    async fn near_quota(&self, now: Micros, percent: u8) -> Result<Vec<QuotaUsage>, Error>;

    /// One tenant's events matching `query`, newest first (in the order they were appended),
    /// at most `query.limit` of them, and the cursor of the next page if there is one.
    async fn events(&self, query: &EventQuery) -> Result<EventPage, Error>;

    /// Removes raw events older than `retention.events_before` and the aggregates of days
    /// that started before `retention.aggregates_before`.
    async fn prune(&self, retention: &Retention) -> Result<Pruned, Error>;
}

/// One tenant's denials in a time range ([`EventLog::hits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantHits {
    /// The tenant.
    pub tenant: String,
    /// All its denials.
    pub total: u64,
    /// Its denials by policy, by policy name.
    pub by_policy: Vec<(String, u64)>,
}

/// A tenant and a count ([`EventLog::top_hit_tenants`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCount {
    /// The tenant.
    pub tenant: String,
    /// Its denials that day.
    pub count: u64,
}

/// A tenant's usage of one daily quota ([`EventLog::near_quota`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUsage {
    /// The tenant.
    pub tenant: String,
    /// The policy of the quota.
    pub policy: String,
    /// The highest usage recorded that day.
    pub used: u64,
    /// The quota.
    pub limit: u64,
}

/// Which of one tenant's events to read ([`EventLog::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventQuery {
    /// The tenant.
    pub tenant: String,
    /// Only these kinds (all if empty).
    pub kinds: Vec<EventKind>,
    /// Only this policy.
    pub policy: Option<String>,
    /// Only events with `from <= at`.
    pub from: Micros,
    /// Only events with `at < to`.
    pub to: Micros,
    /// At most this many events per page (at least 1).
    pub limit: usize,
    /// Where the page starts: the previous page's [`EventPage::next`].
    pub cursor: Option<EventCursor>,
}

impl EventQuery {
    /// All of `tenant`'s events, 100 per page.
    pub fn tenant(tenant: impl Into<String>) -> EventQuery {
        EventQuery {
            tenant: tenant.into(),
            kinds: Vec::new(),
            policy: None,
            from: 0,
            to: Micros::MAX,
            limit: 100,
            cursor: None,
        }
    }

    /// Only events of `kind` (call again to add kinds).
    #[must_use]
    pub fn kind(mut self, kind: EventKind) -> EventQuery {
        self.kinds.push(kind);
        self
    }

    /// Only events of `policy`.
    #[must_use]
    pub fn policy(mut self, policy: impl Into<String>) -> EventQuery {
        self.policy = Some(policy.into());
        self
    }

    /// Only events with `from <= at < to`.
    #[must_use]
    pub fn between(mut self, from: Micros, to: Micros) -> EventQuery {
        self.from = from;
        self.to = to;
        self
    }

    /// Pages of `limit` events.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> EventQuery {
        self.limit = limit.max(1);
        self
    }

    /// The page that starts at `cursor`.
    #[must_use]
    pub fn after(mut self, cursor: EventCursor) -> EventQuery {
        self.cursor = Some(cursor);
        self
    }

    /// Whether `event` matches the tenant, kinds, policy and time range (not the cursor).
    pub fn matches(&self, event: &LimitEvent) -> bool {
        event.tenant.as_deref() == Some(self.tenant.as_str())
            && (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && (self.policy.is_none() || event.policy == self.policy)
            && self.from <= event.at
            && event.at < self.to
    }
}

/// Where the next page of [`EventLog::events`] starts; opaque, meaningful only to the log that
/// returned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventCursor(pub String);

/// One page of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// The events, newest first.
    pub events: Vec<LimitEvent>,
    /// The cursor of the next page, if more events match.
    pub next: Option<EventCursor>,
}

/// What [`EventLog::prune`] removes: raw events and aggregates age separately (by default,
/// [`Retention::before`] keeps 30 days of events and 400 days of aggregates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw events with `at` before this are removed.
    pub events_before: Micros,
    /// Aggregates of days that started before this are removed.
    pub aggregates_before: Micros,
}

impl Retention {
    /// Microseconds in a day.
    const DAY: Micros = 86_400_000_000;

    /// The default retention as of `now`: raw events for 30 days, aggregates for 400.
    pub fn before(now: Micros) -> Retention {
        Retention {
            events_before: now.saturating_sub(30 * Self::DAY),
            aggregates_before: now.saturating_sub(400 * Self::DAY),
        }
    }
}

/// What [`EventLog::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Raw events removed.
    pub events: u64,
    /// Days of aggregates removed.
    pub aggregates: u64,
}
