//! Response headers, rendered without an HTTP dependency.
//!
//! - IETF `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10):
//!   `RateLimit-Policy: "plan_burst";q=10;w=60` and `RateLimit: "plan_burst";r=3;t=42`, one
//!   list item per enforced limit;
//! - the legacy `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until
//!   the budget is whole), from the binding limit;
//! - `Retry-After` on a denial: whole seconds, rounded up, never 0.

use std::fmt::Write as _;

use super::Decision;
use crate::time::MICROS_PER_SECOND;

/// Which headers to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderStyle {
    /// IETF, legacy and `Retry-After`.
    #[default]
    All,
    /// IETF `RateLimit-Policy` and `RateLimit`, and `Retry-After`.
    Ietf,
    /// `X-RateLimit-*` and `Retry-After`.
    Legacy,
}

fn secs_ceil(micros: u64) -> u64 {
    micros.div_ceil(MICROS_PER_SECOND)
}

impl Decision {
    /// The response headers for this decision, as `(name, value)` pairs.
    ///
    /// A bypassed request, or one decided by a fail mode without limits, carries no rate-limit
    /// headers (a closed fail mode still sends `Retry-After`).
    pub fn headers(&self, style: HeaderStyle) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let enforced: Vec<_> = self
            .statuses
            .iter()
            .filter(|s| !s.shadow && s.in_headers)
            .collect();
        if matches!(style, HeaderStyle::All | HeaderStyle::Ietf) && !enforced.is_empty() {
            let mut policy = String::new();
            let mut current = String::new();
            for (i, s) in enforced.iter().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let name = sf_string(&s.policy);
                let window = secs_ceil(s.rate.period().micros());
                let _ = write!(policy, "{sep}{name};q={};w={window}", s.status.limit);
                let _ = write!(
                    current,
                    "{sep}{name};r={};t={}",
                    s.status.remaining,
                    secs_ceil(s.status.reset_after)
                );
            }
            out.push(("RateLimit-Policy", policy));
            out.push(("RateLimit", current));
        }
        if matches!(style, HeaderStyle::All | HeaderStyle::Legacy)
            && let Some(b) = self.binding().filter(|b| b.in_headers)
        {
            out.push(("X-RateLimit-Limit", b.status.limit.to_string()));
            out.push(("X-RateLimit-Remaining", b.status.remaining.to_string()));
            out.push((
                "X-RateLimit-Reset",
                secs_ceil(b.status.reset_after).to_string(),
            ));
        }
        if let Some(secs) = self.retry_after_secs() {
            out.push(("Retry-After", secs.to_string()));
        }
        out
    }
}

/// A structured-field String: quoted, with `"` and `\` escaped and anything outside printable
/// ASCII dropped (policy names come from configuration).
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
    out
}
