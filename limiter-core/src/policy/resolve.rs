//! Resolution of a request into a bypass or the checks to run (placeholder until the
//! configuration model lands).

use std::fmt;
use std::net::IpAddr;

use crate::{Check, Error, Request};

/// Why a request was let through without counting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BypassReason {
    /// The user is staff.
    Staff,
    /// The user is a superuser.
    Superuser,
    /// The API key is flagged to bypass.
    ApiKey(String),
    /// The client IP is allow-listed.
    Ip(IpAddr),
    /// The tenant is allow-listed.
    Tenant(String),
    /// The user is allow-listed.
    User(String),
}

impl fmt::Display for BypassReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BypassReason::Staff => f.write_str("staff"),
            BypassReason::Superuser => f.write_str("superuser"),
            BypassReason::ApiKey(id) => write!(f, "api key {id}"),
            BypassReason::Ip(ip) => write!(f, "allow-listed ip {ip}"),
            BypassReason::Tenant(t) => write!(f, "allow-listed tenant {t}"),
            BypassReason::User(u) => write!(f, "allow-listed user {u}"),
        }
    }
}

/// What the policy set says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Let it through without counting anything.
    Bypass(BypassReason),
    /// Check these limits, all or nothing.
    Limits(Vec<Check>),
}

/// The compiled policies.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    checks: Vec<Check>,
}

impl PolicySet {
    /// Resolves `request`.
    pub fn resolve(&self, request: &Request) -> Result<Resolution, Error> {
        if request.is_staff {
            return Ok(Resolution::Bypass(BypassReason::Staff));
        }
        Ok(Resolution::Limits(self.checks.clone()))
    }
}
