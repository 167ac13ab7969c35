//! [`LimitEvent`]: one typed record of something an operator wants to see on a dashboard.

use std::fmt;
use std::net::IpAddr;

use crate::time::Micros;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// An enforced limit denied the request (one event per denying limit).
    Denied,
    /// A shadow limit would have denied the request (reported, never enforced).
    ShadowDenied,
    /// The request bypassed the limits (`reason` says why, `key_id` names an API key).
    Bypassed,
    /// An admitted request took a limit's usage to the approaching share (80% by default).
    Approaching,
    /// An admitted request used a limit's last unit.
    Exhausted,
    /// The first admitted request of a daily (calendar) window after a window that was
    /// exhausted. The engine proposes one candidate per key and window (the request that
    /// found the window unused); the [`EventLog`](super::EventLog) keeps it only if the log
    /// holds an exhaustion of the same tenant and policy in an earlier window, with no restore
    /// since.
    Restored,
    /// The store failed and a fail mode decided (`reason` names the mode).
    StoreFailed,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 7] = [
        EventKind::Denied,
        EventKind::ShadowDenied,
        EventKind::Bypassed,
        EventKind::Approaching,
        EventKind::Exhausted,
        EventKind::Restored,
        EventKind::StoreFailed,
    ];

    /// The name stored and shown (`denied`, `shadow_denied`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Denied => "denied",
            EventKind::ShadowDenied => "shadow_denied",
            EventKind::Bypassed => "bypassed",
            EventKind::Approaching => "approaching",
            EventKind::Exhausted => "exhausted",
            EventKind::Restored => "restored",
            EventKind::StoreFailed => "store_failed",
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether notifications depend on it (approaching, exhausted, restored): the recorder
    /// never drops one silently.
    pub const fn is_threshold(self) -> bool {
        matches!(
            self,
            EventKind::Approaching | EventKind::Exhausted | EventKind::Restored
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One event: who, what limit, when, from where.
///
/// Per-limit fields (`policy`, `limit`, `remaining`, `retry_after`, `window_start`,
/// `period`) are empty (`None`, 0) for a bypass or a store failure, which concern no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitEvent {
    /// When, in microseconds since the epoch (the limiter's clock, or the store's for a store
    /// that keeps its own).
    pub at: Micros,
    /// What happened.
    pub kind: EventKind,
    /// The tenant.
    pub tenant: Option<String>,
    /// The user.
    pub user: Option<String>,
    /// The id of the API key the request came with (never the secret).
    pub key_id: Option<String>,
    /// The policy (`plan_daily`, `scope.export`).
    pub policy: Option<String>,
    /// The limit: units per period.
    pub limit: u64,
    /// Units left: after the request if it was admitted, before it if denied.
    pub remaining: u64,
    /// When denied, microseconds until the same request would be admitted.
    pub retry_after: Micros,
    /// The start of the limit's window that holds the event: the local day of a calendar
    /// limit; for the other algorithms, the period-aligned span that holds `at` (an identity
    /// for grouping, not a reset time).
    pub window_start: Micros,
    /// The limit's period in microseconds (one day for a daily quota).
    pub period: Micros,
    /// The HTTP method.
    pub method: Option<String>,
    /// The route: the request's path as the service gave it (give the route template, such
    /// as `/orders/{id}`, to keep identifiers and personal data out of the log).
    pub route: Option<String>,
    /// The client's network ([`client_network`]): never the full address.
    pub network: Option<String>,
    /// The bypass reason (`staff`, `api_key`, ...) or the fail mode (`open`, `closed`,
    /// `fallback`).
    pub reason: Option<String>,
}

impl LimitEvent {
    /// An event of `kind` at `at` with nothing else known: the start of a record built field
    /// by field (tests, imports).
    pub fn new(at: Micros, kind: EventKind) -> LimitEvent {
        LimitEvent {
            at,
            kind,
            tenant: None,
            user: None,
            key_id: None,
            policy: None,
            limit: 0,
            remaining: 0,
            retry_after: 0,
            window_start: 0,
            period: 0,
            method: None,
            route: None,
            network: None,
            reason: None,
        }
    }

    /// The units used in the window when the event happened: `limit - remaining`.
    pub fn used(&self) -> u64 {
        self.limit.saturating_sub(self.remaining)
    }
}

/// The network of `ip` that an event keeps: its /24 for IPv4, its /48 for IPv6, in CIDR
/// notation. Enough to see an abusive network, not enough to name a household.
///
/// ```
/// use limiter_core::event::client_network;
///
/// assert_eq!(client_network("203.0.113.9".parse().unwrap()), "203.0.113.0/24");
/// assert_eq!(client_network("2001:db8:1:2::7".parse().unwrap()), "2001:db8:1::/48");
/// ```
pub fn client_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let network = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{network}/48")
        }
    }
}
