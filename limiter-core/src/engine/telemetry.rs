//! What the engine tells the outside about each decision: metrics (bounded labels only, never
//! a tenant, user, IP or path), a `tracing` span, and the events handed to the recorder.
//!
//! Metrics and events cost nothing unless configured ([`LimiterBuilder::metrics`],
//! [`LimiterBuilder::events`]): a warm decision without them allocates nothing. The span is
//! disabled, and free, unless a `tracing` subscriber wants it.
//!
//! [`LimiterBuilder::metrics`]: super::LimiterBuilder::metrics
//! [`LimiterBuilder::events`]: super::LimiterBuilder::events

use std::sync::Arc;

use metrics::SharedString;

use crate::decision::{Decision, FailModeUsed};
use crate::event::{bypass_label, derive_events};
use crate::time::Micros;
use crate::{Error, ErrorKind, Request, Store};

use super::limiter::Inner;

/// What metrics need that does not change between decisions: present only when the limiter
/// emits metrics.
#[derive(Debug)]
pub(super) struct Metrics {
    /// The `backend` label: the store's name without its details (a path, a capacity), one
    /// value per backend, worked out once rather than on every store call.
    backend: SharedString,
}

impl Metrics {
    pub(super) fn new(store: &dyn Store) -> Metrics {
        let shown = store.to_string();
        let name: Arc<str> = shown.split('(').next().unwrap_or_default().into();
        Metrics {
            backend: SharedString::from(name),
        }
    }
}

/// The span of one decision, with the tenant as a field.
pub(super) fn span(request: &Request) -> tracing::Span {
    tracing::debug_span!("limiter.check", tenant = request.tenant.as_deref())
}

/// The clock's reading before a store call, if metrics want its latency.
pub(super) fn store_started(inner: &Inner) -> Option<Micros> {
    inner.metrics.as_ref().map(|_| inner.clock.now())
}

/// Records a store call's latency (by the limiter's clock) and its error, if any.
pub(super) fn store_finished(inner: &Inner, started: Option<Micros>, error: Option<&Error>) {
    let (Some(started), Some(metrics)) = (started, &inner.metrics) else {
        return;
    };
    let backend = &metrics.backend;
    let seconds = Micros::saturating_sub(inner.clock.now(), started) as f64 / 1e6;
    metrics::histogram!("limiter_store_duration_seconds", "backend" => backend.clone())
        .record(seconds);
    if let Some(error) = error {
        let kind = match error {
            Error::Timeout { .. } => "timeout",
            Error::Store { kind, .. } => match kind {
                ErrorKind::Temporary => "temporary",
                ErrorKind::Permanent => "permanent",
                ErrorKind::Indeterminate => "indeterminate",
            },
            _ => "other",
        };
        metrics::counter!("limiter_store_errors_total", "backend" => backend.clone(), "kind" => kind)
            .increment(1);
    }
}

/// Reports a consumed decision: metrics, then its events to the recorder. `now` is the time
/// it was decided at, if the caller read the clock.
pub(super) async fn decided(
    inner: &Inner,
    request: &Request,
    decision: &Decision,
    now: Option<Micros>,
) {
    if inner.metrics.is_some() {
        count(decision);
    }
    let Some(recorder) = &inner.recorder else {
        return;
    };
    let now = now.unwrap_or_else(|| inner.clock.now());
    // Pushed at once; only events that must wait for room (Overflow::Wait) are kept to await.
    let mut waiting = Vec::new();
    derive_events(request, decision, now, inner.approaching_percent, |e| {
        waiting.extend(recorder.push_now(e));
    });
    for event in waiting {
        recorder.record(event).await;
    }
}

/// `limiter_decisions_total{policy, outcome}` and `limiter_bypasses_total{reason}`.
fn count(decision: &Decision) {
    let outcome = match decision.failure().map(|f| f.mode) {
        Some(FailModeUsed::Open) => "fail_open",
        Some(FailModeUsed::Closed) => "fail_closed",
        _ if decision.bypass().is_some() && decision.statuses().is_empty() => "bypassed",
        _ if !decision.is_allowed() => "denied",
        _ if decision.shadow_denials().next().is_some() => "shadow_denied",
        _ => "allowed",
    };
    let policy = decision
        .binding()
        .map_or_else(|| "none".to_owned(), |b| b.policy.to_string());
    metrics::counter!("limiter_decisions_total", "policy" => policy, "outcome" => outcome)
        .increment(1);
    if let Some(reason) = decision.bypass() {
        metrics::counter!("limiter_bypasses_total", "reason" => bypass_label(reason)).increment(1);
    }
}
