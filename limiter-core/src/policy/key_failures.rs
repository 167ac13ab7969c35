//! The `key_failures` policy: the check that a failed API key verification is charged to.
//!
//! It lives apart from [`resolve`](super::resolve) because it never applies to a request's
//! own limits: only [`Limiter::check_key`](crate::Limiter::check_key) charges it, once per
//! well-formed key that failed.

use std::sync::Arc;

use super::PolicySet;
use super::kind::PolicyKind;
use super::resolve::subject_of;
use crate::{Check, Key, Limit, Request, SubjectKind};

impl PolicySet {
    /// The check of one failed API key verification by `request`'s client: policy
    /// `key_failures`, keyed by the client network by default. `None` when the policy is
    /// disabled or the request has none of the subjects it is keyed by (an API key never
    /// counts: the one presented failed).
    ///
    /// ```
    /// use limiter_core::{PolicySet, Request};
    ///
    /// let policies = PolicySet::default();
    /// let req = Request::new().ip("203.0.113.9".parse().unwrap());
    /// let check = policies.key_failure_check(&req).unwrap();
    /// assert_eq!(check.key.as_str(), "limiter:key_failures:{ip=203.0.113.9}");
    /// assert_eq!(check.limit.to_string(), "20/minute (sliding_log)");
    /// ```
    pub fn key_failure_check(&self, request: &Request) -> Option<Check> {
        let policy = &self.policies[PolicyKind::KeyFailures.index()];
        if !policy.enabled {
            return None;
        }
        // Never the API key: the one presented failed.
        let (kind, value) = policy
            .key
            .iter()
            .filter(|&&kind| kind != SubjectKind::ApiKey)
            .find_map(|&kind| Some((kind, subject_of(request, policy, kind)?)))?;
        Some(Check {
            key: Key::with_prefix(&policy.key_prefix, kind, value.as_str()),
            policy: Arc::clone(&policy.name),
            limit: Arc::clone(&self.key_failures),
            cost: 1,
            shadow: policy.shadow,
            in_headers: policy.in_headers,
        })
    }

    /// The limit of failed API key verifications per client network.
    pub fn key_failures(&self) -> &Limit {
        &self.key_failures
    }
}
