//! [`WebhookEvent`]: the JSON body of a webhook, in the Standard Webhooks shape
//! (`type`, `timestamp`, `data`).

use limiter_core::Micros;
use limiter_core::notify::NotifyKind;
use limiter_core::time::{MAX_TIMESTAMP, MICROS_PER_SECOND};
use serde::{Deserialize, Serialize};

use crate::Delivery;

/// The body of one webhook: `{"type": "limit.<kind>", "timestamp": ..., "data": {...}}`.
///
/// Receivers written in Rust can read it back with `serde_json`; others see this JSON (times
/// in RFC 3339, UTC):
///
/// ```json
/// {
///   "type": "limit.approaching",
///   "timestamp": "2026-12-01T14:03:12.5Z",
///   "data": {
///     "id": "ntf_5c0ffee5...", "kind": "approaching",
///     "tenant": "acme", "user": "u-42", "plan": "starter",
///     "subject": "t=acme", "policy": "plan_daily", "threshold": 80,
///     "limit": 5000, "used": 4000,
///     "window_start": "2026-12-01T00:00:00Z", "period_seconds": 86400,
///     "at": "2026-12-01T14:03:12.5Z", "due": "2026-12-01T14:03:12.5Z",
///     "reset_at": "2026-12-02T00:00:00Z",
///     "message": "You're at 80% of your daily limit",
///     "upgrade": "Upgrade to Professional for 20000/day; you are on Starter at 5000/day"
///   }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// `limit.approaching`, `limit.exhausted`, `limit.resets_soon` or `limit.restored`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened: the crossing, or the due time of "resets soon" and "restored".
    pub timestamp: String,
    /// The notice.
    pub data: WebhookData,
}

/// The notice in a [`WebhookEvent`]: every field of the notice, with its texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookData {
    /// The notice's id, also in `webhook-id`: drop a repeat by it.
    pub id: String,
    /// What the notice says.
    pub kind: NotifyKind,
    /// The tenant of the request that crossed the threshold.
    pub tenant: Option<String>,
    /// Its user.
    pub user: Option<String>,
    /// Its plan, for a plan limit.
    pub plan: Option<String>,
    /// Whom the limit counts (`t=acme`).
    pub subject: String,
    /// The policy of the limit (`plan_daily`, `scope.export`).
    pub policy: String,
    /// The share crossed, in percent, for "approaching".
    pub threshold: Option<u8>,
    /// The limit of the window.
    pub limit: u64,
    /// Units used in the window at the crossing.
    pub used: u64,
    /// The start of the window.
    pub window_start: String,
    /// The limit's period in seconds.
    pub period_seconds: u64,
    /// When the threshold was crossed.
    pub at: String,
    /// When the notice was due.
    pub due: String,
    /// When the limit's budget is whole again.
    pub reset_at: String,
    /// The text of the notice.
    pub message: String,
    /// The upgrade hint, if any.
    pub upgrade: Option<String>,
}

impl WebhookEvent {
    /// The body of `delivery`.
    pub fn of(delivery: &Delivery) -> WebhookEvent {
        let notice = &delivery.notice;
        let identity = &notice.identity;
        WebhookEvent {
            event_type: event_type(notice.kind()),
            timestamp: rfc3339(delivery.happened_at()),
            data: WebhookData {
                id: delivery.id.clone(),
                kind: notice.kind(),
                tenant: notice.tenant.clone(),
                user: notice.user.clone(),
                plan: notice.plan.clone(),
                subject: identity.subject.clone(),
                policy: identity.policy.clone(),
                threshold: identity.threshold,
                limit: identity.limit,
                used: notice.used,
                window_start: rfc3339(identity.window_start),
                period_seconds: notice.period / MICROS_PER_SECOND,
                at: rfc3339(notice.at),
                due: rfc3339(notice.due),
                reset_at: rfc3339(notice.reset_at),
                message: delivery.message.clone(),
                upgrade: delivery.upgrade.clone(),
            },
        }
    }

    /// The body as sent: compact JSON, the bytes that are signed.
    pub fn to_body(&self) -> Vec<u8> {
        // Strings, integers and options only: serializing them cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `limit.<kind>`.
fn event_type(kind: NotifyKind) -> String {
    format!("limit.{}", kind.name())
}

/// `at` in RFC 3339 (UTC, fractional seconds as needed).
fn rfc3339(at: Micros) -> String {
    // Instants past MAX_TIMESTAMP are treated as it everywhere in the limiter.
    let at = i64::try_from(at.min(MAX_TIMESTAMP)).unwrap_or(0);
    jiff::Timestamp::from_microsecond(at).map_or_else(|_| at.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_651_200_500_000), "2026-11-26T00:00:00.5Z");
        assert_eq!(rfc3339(u64::MAX), "2253-03-13T12:55:10.563328Z");
    }
}
