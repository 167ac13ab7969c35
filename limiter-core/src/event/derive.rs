//! The events of one decision: what the engine hands to the recorder.

use super::{EventKind, LimitEvent, client_network};
use crate::algorithm::{Algorithm, LimitStatus};
use crate::decision::{Decision, FailModeUsed, PolicyStatus};
use crate::policy::BypassReason;
use crate::time::Micros;
use crate::{Limit, Request};

/// The thresholds one admitted charge crossed on one limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Crossing {
    /// Usage went from below `percent` of the limit to at or above it.
    pub(crate) approaching: bool,
    /// The charge used the last unit.
    pub(crate) exhausted: bool,
    /// The charge was the first of its window (usage was 0 before it).
    pub(crate) first: bool,
}

/// What the charge of `cost` units that left `status` crossed. Exact: it compares the usage
/// before and after this one charge, which the store applied atomically, so exactly one
/// request of a window (in the whole fleet) crosses each threshold.
pub(crate) fn crossing(status: &LimitStatus, cost: u64, percent: u8) -> Crossing {
    let limit = status.limit;
    let percent = u64::from(percent);
    let used_after = limit.saturating_sub(status.remaining);
    let used_before = used_after.saturating_sub(cost);
    // Limits are at most 1e9, so these products stay far below u64::MAX.
    Crossing {
        approaching: used_before * 100 < percent * limit && used_after * 100 >= percent * limit,
        exhausted: status.remaining == 0 && used_before < limit,
        first: used_before == 0,
    }
}

/// The start and period of the window of `limit` that holds `at`.
pub(crate) fn window(limit: &Limit, at: Micros) -> (Micros, Micros) {
    let period = limit.rate().period().micros().max(1);
    match limit.algorithm() {
        Algorithm::Calendar(calendar) => (calendar.day_bounds(at).0, period),
        _ => (at - at % period, period),
    }
}

/// The bounded name of a bypass reason (never the allow-listed value itself).
pub(crate) fn bypass_label(reason: &BypassReason) -> &'static str {
    match reason {
        BypassReason::Staff => "staff",
        BypassReason::Superuser => "superuser",
        BypassReason::ApiKey(_) => "api_key",
        BypassReason::Ip(_) => "ip",
        BypassReason::Tenant(_) => "tenant",
        BypassReason::User(_) => "user",
    }
}

/// The name of a fail mode.
pub(crate) fn fail_label(mode: FailModeUsed) -> &'static str {
    match mode {
        FailModeUsed::Open => "open",
        FailModeUsed::Closed => "closed",
        FailModeUsed::Fallback => "fallback",
    }
}

/// Calls `out` with every event of `decision` on `request`, decided at `now`; `percent` is
/// the approaching threshold.
pub(crate) fn derive_events(
    request: &Request,
    decision: &Decision,
    now: Micros,
    percent: u8,
    mut out: impl FnMut(LimitEvent),
) {
    let at = decision.charge.as_ref().map_or(now, |charge| charge.at);
    let base = |kind: EventKind| LimitEvent {
        tenant: request.tenant.clone(),
        user: request.user.clone(),
        key_id: request.api_key.as_ref().map(|key| key.id.clone()),
        method: request.method.clone(),
        route: request.path.clone(),
        network: request.client_ip.map(client_network),
        ..LimitEvent::new(at, kind)
    };
    let of_status = |kind: EventKind, status: &PolicyStatus| {
        let (window_start, period) = window(&status.limit, at);
        LimitEvent {
            policy: Some(status.policy.to_string()),
            limit: status.status.limit,
            remaining: status.status.remaining,
            retry_after: status.status.retry_after,
            window_start,
            period,
            ..base(kind)
        }
    };
    if let Some(reason) = decision.bypass() {
        out(LimitEvent {
            reason: Some(bypass_label(reason).to_owned()),
            ..base(EventKind::Bypassed)
        });
    }
    if let Some(failure) = decision.failure() {
        out(LimitEvent {
            reason: Some(fail_label(failure.mode).to_owned()),
            ..base(EventKind::StoreFailed)
        });
    }
    for status in decision.statuses() {
        if status.denies() {
            out(of_status(EventKind::Denied, status));
        } else if status.shadow && !status.status.is_allowed() {
            out(of_status(EventKind::ShadowDenied, status));
        }
    }
    // Only a charge crosses thresholds: an admitted decision charged every limit that allowed.
    if !decision.is_allowed() || decision.charge.is_none() {
        return;
    }
    for status in decision.statuses().iter().filter(|s| s.status.is_allowed()) {
        let crossed = crossing(&status.status, decision.cost, percent);
        if crossed.approaching {
            out(of_status(EventKind::Approaching, status));
        }
        if crossed.exhausted {
            out(of_status(EventKind::Exhausted, status));
        }
        if crossed.first && matches!(status.limit.algorithm(), Algorithm::Calendar(_)) {
            out(of_status(EventKind::Restored, status));
        }
    }
}
