//! The answer to one request ([`Decision`]): allowed or not, why, and what to tell the client.

mod headers;

pub use headers::HeaderStyle;

use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::{LimitStatus, Verdict};
use crate::api_key::KeyRejection;
use crate::batch::{Check, InlineVec};
use crate::time::{MICROS_PER_SECOND, Micros, duration};
use crate::{BypassReason, Key, Limit, Rate};

/// The status of one policy's limit for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatus {
    /// The policy (`plan_burst`).
    pub policy: Arc<str>,
    /// The store key it was counted under.
    pub key: Key,
    /// The rate enforced.
    pub rate: Rate,
    /// The limit enforced: the rate and the algorithm.
    pub limit: Arc<Limit>,
    /// Whether the policy is in shadow mode (reported, never enforced).
    pub shadow: bool,
    /// Whether response headers name the policy
    /// ([`PolicyConfig::headers`](crate::policy::PolicyConfig::headers)).
    pub in_headers: bool,
    /// What the limit said.
    pub status: LimitStatus,
}

impl PolicyStatus {
    /// Whether this status can deny the request: enforced and not allowed.
    pub fn denies(&self) -> bool {
        !self.shadow && !self.status.is_allowed()
    }
}

/// Which fail mode decided a request because the store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailModeUsed {
    /// The request was allowed without counting.
    Open,
    /// The request was denied.
    Closed,
    /// The fallback store decided.
    Fallback,
}

/// A store failure that the fail mode turned into a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    /// The fail mode that decided.
    pub mode: FailModeUsed,
    /// The store error, as text.
    pub error: String,
    /// Whether the error was temporary. A permanent failure is decided by a fail mode only if
    /// the limiter was built with
    /// [`permanent_fail_mode`](crate::LimiterBuilder::permanent_fail_mode).
    pub temporary: bool,
    /// Whether the failed call may have charged anyway
    /// ([`Error::may_have_charged`](crate::Error::may_have_charged)): a request denied by the
    /// closed fail mode after a timeout may still have cost one unit, never the reverse.
    pub may_have_charged: bool,
}

/// The limiter's answer to one request.
///
/// Being limited is a decision (`is_allowed() == false`), never an error. A decision carries the
/// status of every limit checked, the binding one (the one the client should heed), the bypass
/// reason if nothing was counted, and the store failure if a fail mode decided.
///
/// ```
/// use limiter_core::{Decision, HeaderStyle};
///
/// let d = Decision::bypassed(limiter_core::BypassReason::Staff);
/// assert!(d.is_allowed());
/// assert!(d.headers(HeaderStyle::All).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub(crate) allowed: bool,
    pub(crate) statuses: InlineVec<PolicyStatus>,
    pub(crate) binding: Option<usize>,
    pub(crate) bypass: Option<BypassReason>,
    pub(crate) failure: Option<StoreFailure>,
    /// Why the presented API key was refused ([`Limiter::check_key`](crate::Limiter::check_key)).
    pub(crate) key_rejection: Option<KeyRejection>,
    pub(crate) cost: u64,
    /// What an admitted decision charged, until [`Limiter::refund`](crate::Limiter::refund)
    /// gives it back.
    pub(crate) charge: Option<Charge>,
}

/// The charge of an admitted decision: the time the store charged its statuses' limits at
/// (those that allowed), and whether the fallback store did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Charge {
    pub(crate) at: Micros,
    pub(crate) fallback: bool,
}

impl PolicyStatus {
    /// The status of `check`, which its store reported as `status`.
    pub(crate) fn of(check: Check, status: LimitStatus) -> PolicyStatus {
        PolicyStatus {
            rate: check.limit.rate(),
            policy: check.policy,
            key: check.key,
            limit: check.limit,
            shadow: check.shadow,
            in_headers: check.in_headers,
            status,
        }
    }

    /// The check that produced this status, charging `cost`: what a refund gives back.
    pub(crate) fn check(&self, cost: u64) -> Check {
        Check {
            policy: Arc::clone(&self.policy),
            key: self.key.clone(),
            limit: Arc::clone(&self.limit),
            cost,
            shadow: self.shadow,
            in_headers: self.in_headers,
        }
    }
}

/// Retry-After for a request denied by a failed store under the closed fail mode.
const CLOSED_RETRY_AFTER: Micros = MICROS_PER_SECOND;

impl Decision {
    /// A request let through without counting.
    pub fn bypassed(reason: BypassReason) -> Decision {
        Decision {
            allowed: true,
            statuses: InlineVec::new(),
            binding: None,
            bypass: Some(reason),
            failure: None,
            key_rejection: None,
            cost: 0,
            charge: None,
        }
    }

    /// A decision from the statuses a store reported.
    pub fn from_statuses(
        allowed: bool,
        statuses: impl Into<InlineVec<PolicyStatus>>,
        cost: u64,
        failure: Option<StoreFailure>,
    ) -> Decision {
        let statuses = statuses.into();
        let binding = binding_index(allowed, &statuses);
        Decision {
            allowed,
            statuses,
            binding,
            bypass: None,
            failure,
            key_rejection: None,
            cost,
            charge: None,
        }
    }

    /// A decision made by a fail mode without any limit status.
    pub fn failed(allowed: bool, failure: StoreFailure) -> Decision {
        Decision {
            allowed,
            statuses: InlineVec::new(),
            binding: None,
            bypass: None,
            failure: Some(failure),
            key_rejection: None,
            cost: 0,
            charge: None,
        }
    }

    /// A request refused because its API key was, with the status of the `key_failures` limit
    /// it was charged to, if any.
    pub fn key_rejected(rejection: KeyRejection, statuses: Vec<PolicyStatus>) -> Decision {
        let mut decision = Decision::from_statuses(false, statuses, 1, None);
        decision.key_rejection = Some(rejection);
        decision
    }

    /// Why the presented API key was refused, if it was: answer 401 then, unless
    /// [`retry_after`](Self::retry_after) says that the client's network also made too many
    /// failed attempts (429).
    pub fn key_rejection(&self) -> Option<KeyRejection> {
        self.key_rejection
    }

    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Every limit checked, enforced and shadow, in policy order.
    pub fn statuses(&self) -> &[PolicyStatus] {
        &self.statuses
    }

    /// The limit the client should heed: when denied, the enforced limit that keeps it waiting
    /// longest (a limit the cost can never fit first); when allowed, the enforced limit with the
    /// fewest units remaining.
    pub fn binding(&self) -> Option<&PolicyStatus> {
        self.binding.map(|i| &self.statuses[i])
    }

    /// Why nothing was counted, if the request bypassed the limits.
    pub fn bypass(&self) -> Option<&BypassReason> {
        self.bypass.as_ref()
    }

    /// The store failure, if a fail mode decided this request.
    pub fn failure(&self) -> Option<&StoreFailure> {
        self.failure.as_ref()
    }

    /// The shadow policies that would have denied the request.
    pub fn shadow_denials(&self) -> impl Iterator<Item = &PolicyStatus> {
        self.statuses
            .iter()
            .filter(|s| s.shadow && !s.status.is_allowed())
    }

    /// Whether the request can never be admitted: its cost exceeds what a limit admits in a
    /// whole period. Waiting does not help.
    pub fn is_impossible(&self) -> bool {
        !self.allowed
            && self
                .binding()
                .is_some_and(|b| b.status.verdict == Verdict::Impossible)
    }

    /// How long to wait before retrying, when denied and waiting helps: the longest wait among
    /// the denying limits, exact to the microsecond (the same request fits after it, if nothing
    /// else is admitted meanwhile). `None` when allowed or when the cost can never fit.
    pub fn retry_after(&self) -> Option<Duration> {
        if self.allowed || self.is_impossible() {
            return None;
        }
        // A refused key within the failure limit: waiting does not help, a valid key does.
        if self.key_rejection.is_some() && self.binding.is_none() {
            return None;
        }
        let wait = match self.binding() {
            Some(b) => b.status.retry_after,
            None => CLOSED_RETRY_AFTER,
        };
        Some(duration(wait))
    }

    /// [`retry_after`](Self::retry_after) in whole seconds, rounded up and never 0: the value
    /// of the `Retry-After` header.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after()
            .map(|d| crate::time::micros(d).div_ceil(MICROS_PER_SECOND).max(1))
    }

    /// Django REST Framework's message for a throttled request, or `None` when allowed.
    ///
    /// ```text
    /// Request was throttled. Expected available in 6 seconds.
    /// ```
    pub fn message(&self) -> Option<String> {
        if self.allowed {
            return None;
        }
        if let Some(rejection) = self.key_rejection.filter(|_| self.binding.is_none()) {
            return Some(format!("Invalid API key: {}.", rejection.name()));
        }
        if self.is_impossible() {
            let limit = self.binding().map_or(0, |b| b.status.limit);
            return Some(format!(
                "Request was throttled. Its cost of {} exceeds the limit of {limit} and can \
                 never be admitted.",
                self.cost
            ));
        }
        let secs = self.retry_after_secs().unwrap_or(1);
        Some(format!(
            "Request was throttled. Expected available in {secs} second{}.",
            if secs == 1 { "" } else { "s" }
        ))
    }
}

fn binding_index(allowed: bool, statuses: &[PolicyStatus]) -> Option<usize> {
    let enforced = statuses.iter().enumerate().filter(|(_, s)| !s.shadow);
    if allowed {
        enforced
            .min_by_key(|(_, s)| (s.status.remaining, std::cmp::Reverse(s.status.reset_after)))
            .map(|(i, _)| i)
    } else {
        enforced
            .filter(|(_, s)| !s.status.is_allowed())
            .max_by_key(|(_, s)| {
                (
                    s.status.verdict == Verdict::Impossible,
                    s.status.retry_after,
                )
            })
            .map(|(i, _)| i)
    }
}
