//! The bodies of refusals: RFC 9457 `application/problem+json`, and gRPC's status headers.

use limiter_core::{Decision, PolicySet, PolicyStatus};
use serde_json::{Value, json};

/// What kind of limit a policy is, in words a client understands.
pub(crate) fn limit_kind(policy: &str) -> &'static str {
    match policy {
        "plan_burst" => "burst",
        "plan_sustained" => "sustained",
        "plan_daily" => "daily quota",
        "role" => "role",
        "anon" => "anonymous",
        "ip_burst" => "network burst",
        "key_failures" => "failed keys",
        p if p.starts_with("scope") => "scope",
        _ => "limit",
    }
}

fn limit(status: &PolicyStatus) -> Value {
    json!({
        "policy": &*status.policy,
        "kind": limit_kind(&status.policy),
        "quota": status.status.limit,
        "window_seconds": status.rate.period().micros().div_ceil(1_000_000),
        "remaining": status.status.remaining,
    })
}

/// The problem body of a denial (429): the DRF message, the binding limit and its kind, the
/// retry delay and, for a plan limit, the next plan up.
pub(crate) fn throttled(decision: &Decision, plan: Option<&str>, policies: &PolicySet) -> Value {
    let mut body = json!({
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": decision.message().unwrap_or_default(),
    });
    if let Some(binding) = decision.binding() {
        body["limit"] = limit(binding);
        if binding.policy.starts_with("plan_")
            && let Some(next) = plan.and_then(|p| policies.next_plan(p))
        {
            body["upgrade"] = json!({
                "plan": next.name(),
                "sustained": next.sustained().rate().to_string(),
                "burst": next.burst().rate().to_string(),
                "daily": next.daily().rate().to_string(),
            });
        }
    }
    if let Some(secs) = decision.retry_after_secs() {
        body["retry_after"] = json!(secs);
    }
    body
}

/// The problem body of a refused API key (401).
pub(crate) fn key_refused(decision: &Decision) -> Value {
    json!({
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": decision.message().unwrap_or_else(|| "Invalid API key.".into()),
    })
}

/// The problem body of a limiter that could not decide (503).
pub(crate) fn unavailable(retry_after: u64) -> Value {
    json!({
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": format!("Rate limits cannot be checked right now. Retry in {retry_after} second{}.", if retry_after == 1 { "" } else { "s" }),
        "retry_after": retry_after,
    })
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2): everything outside printable ASCII,
/// and `%` itself.
pub(crate) fn grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
