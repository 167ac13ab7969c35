//! The compiled policy set, and resolution of a request into a bypass or the checks to run.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;

use super::ip::{IpNet, IpSet};
use super::kind::PolicyKind;
use arrayvec::ArrayString;

use crate::batch::Checks;
use crate::key::KeyPrefix;
use crate::notify::{Messages, NotifyRules};
use crate::{Check, Error, Key, Limit, Rate, Request, SubjectKind};

/// Why a request was let through without counting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BypassReason {
    /// The user is staff.
    Staff,
    /// The user is a superuser.
    Superuser,
    /// The API key (its id) is flagged to bypass.
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
#[non_exhaustive]
pub enum Resolution {
    /// Let it through without counting anything.
    Bypass(BypassReason),
    /// Check these limits, all or nothing.
    Limits(Checks),
    /// Bypassed, but the policies that `bypass.keep` names still apply: check these.
    Kept {
        /// Why the other limits do not apply.
        bypass: BypassReason,
        /// The kept limits, all or nothing.
        checks: Checks,
    },
}

/// The compiled limits of one plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLimits {
    pub(super) name: Arc<str>,
    pub(super) sustained: Arc<Limit>,
    pub(super) burst: Arc<Limit>,
    pub(super) daily: Arc<Limit>,
    /// The next plan up, by sustained rate.
    pub(super) next: Option<Arc<str>>,
}

impl PlanLimits {
    /// The plan's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sustained limit (policy `plan_sustained`).
    pub fn sustained(&self) -> &Limit {
        &self.sustained
    }

    /// The burst limit (policy `plan_burst`).
    pub fn burst(&self) -> &Limit {
        &self.burst
    }

    /// The daily quota (policy `plan_daily`).
    pub fn daily(&self) -> &Limit {
        &self.daily
    }
}

/// How one policy applies: its name in checks and keys, what it is keyed by, its mode.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    pub(super) name: Arc<str>,
    /// What its keys start with (`namespace:name:{`).
    pub(super) key_prefix: KeyPrefix,
    pub(super) key: Vec<SubjectKind>,
    pub(super) shadow: bool,
    pub(super) in_headers: bool,
    pub(super) enabled: bool,
    /// The prefix lengths clients are counted by.
    pub(super) ipv4_prefix: u8,
    pub(super) ipv6_prefix: u8,
}

/// The policies that still apply to bypassed requests (`bypass.keep`).
#[derive(Debug, Clone, Default)]
pub(super) struct Kept {
    /// Whole kinds kept, indexed by kind.
    pub(super) kinds: [bool; PolicyKind::COUNT],
    /// Single scopes kept, by policy name (`scope.auth`).
    pub(super) scopes: HashSet<String>,
}

impl Kept {
    fn is_empty(&self) -> bool {
        !self.kinds.contains(&true) && self.scopes.is_empty()
    }

    /// Whether a check of `kind` named `name` is kept.
    fn keeps(&self, kind: PolicyKind, name: &str) -> bool {
        self.kinds[kind.index()] || (kind == PolicyKind::Scope && self.scopes.contains(name))
    }
}

/// A scope's limit and the policy name its checks carry (`scope.auth`).
#[derive(Debug, Clone)]
pub(super) struct ScopeLimit {
    pub(super) policy: Arc<str>,
    /// What its keys start with (`namespace:scope.<name>:{`).
    pub(super) key_prefix: KeyPrefix,
    pub(super) limit: Arc<Limit>,
}

/// The compiled policies: resolves each request into a bypass or the limits to check.
///
/// Compiled once from a [`Config`](super::Config) by [`PolicySet::from_config`]: every rate is
/// parsed and every [`Limit`] built up front, and plans, roles and scopes are indexed by name,
/// so that resolving a request costs a few hash lookups whatever the size of the configuration.
///
/// ```
/// use limiter_core::{PolicySet, Request, Resolution};
///
/// let policies = PolicySet::default();
/// let req = Request::new().tenant("acme").user("u-1").ip("192.0.2.1".parse().unwrap());
/// let Resolution::Limits(checks) = policies.resolve(&req)? else { unreachable!() };
/// let names: Vec<&str> = checks.iter().map(|c| &*c.policy).collect();
/// assert_eq!(names, ["plan_sustained", "plan_burst", "plan_daily", "ip_burst"]);
/// assert_eq!(checks[1].limit.to_string(), "10/minute (gcra)"); // the free plan's burst
///
/// let staff = Request::new().user("admin").staff(true);
/// assert!(matches!(policies.resolve(&staff)?, Resolution::Bypass(_)));
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub(super) namespace: Arc<str>,
    pub(super) bypass_staff: bool,
    pub(super) bypass_superuser: bool,
    pub(super) bypass_api_keys: bool,
    pub(super) bypass_ips: IpSet,
    pub(super) bypass_tenants: HashSet<String>,
    pub(super) bypass_users: HashSet<String>,
    pub(super) kept: Kept,
    pub(super) default_plan: Arc<str>,
    pub(super) plans: HashMap<String, PlanLimits>,
    /// Plan names from the least to the most generous, comma separated, for errors.
    pub(super) plan_names: String,
    pub(super) roles: HashMap<String, Arc<Limit>>,
    pub(super) scopes: HashMap<String, ScopeLimit>,
    pub(super) anon: Option<Arc<Limit>>,
    pub(super) ip_burst: Arc<Limit>,
    /// The limit of failed API key verifications per client network.
    pub(super) key_failures: Arc<Limit>,
    /// Whether an anonymous request must carry its client IP.
    pub(super) require_client_ip: bool,
    /// How each kind applies, indexed by kind.
    pub(super) policies: [Policy; PolicyKind::COUNT],
    /// Which limits notify (`[notify]`).
    pub(super) notify_rules: NotifyRules,
    /// The notification texts (`[notify.messages]`).
    pub(super) messages: Messages,
}

impl PolicySet {
    /// The namespace every key starts with.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The notification rules of the configuration's `[notify]` (the defaults without one),
    /// for [`LimiterBuilder::notify`](crate::LimiterBuilder::notify).
    pub fn notify_rules(&self) -> &NotifyRules {
        &self.notify_rules
    }

    /// The notification texts of the configuration's `[notify.messages]`.
    pub fn messages(&self) -> &Messages {
        &self.messages
    }

    /// The limits of the plan `name`, if configured.
    pub fn plan(&self, name: &str) -> Option<&PlanLimits> {
        self.plans.get(name)
    }

    /// The next plan up from `name` (the least generous of the plans with a higher sustained
    /// rate), for an upgrade hint; `None` for the top plan or an unknown one.
    pub fn next_plan(&self, name: &str) -> Option<&PlanLimits> {
        let next = self.plans.get(name)?.next.as_deref()?;
        self.plans.get(next)
    }

    /// The plan of an authenticated request that names none.
    pub fn default_plan(&self) -> &str {
        &self.default_plan
    }

    /// Resolves `request`: a bypass (decided before any store I/O), or every limit that applies.
    ///
    /// - Bypass, in this order: staff, superuser (each if enabled), an API key flagged bypass
    ///   (if enabled), an allow-listed IP, tenant or user.
    /// - Anonymous (no user and no API key: a tenant alone, which a service may know from a
    ///   host name before anyone signs in, does not authenticate): `anon` (the rate of
    ///   `scopes.anon`), per client network.
    /// - Authenticated: the plan's `plan_sustained`, `plan_burst` and `plan_daily` (the
    ///   request's plan, or `default_plan`), and `role`: the most generous of the user's
    ///   configured roles. Roles grant capacity, so a user who is both owner and member is
    ///   held to the owner's limit, not capped by the member's; unconfigured roles are ignored.
    /// - Either: `scope.<name>` when the request's scope is configured (unknown scopes are
    ///   ignored), and `ip_burst`.
    ///
    /// Each applies only if enabled and if the request has one of the subjects it is keyed by.
    /// All of them are checked, all or nothing, so the strictest decides.
    ///
    /// IP-keyed limits count the client's network ([`IpNet::client`](super::IpNet::client):
    /// each IPv4 address and each IPv6 /64 by default).
    ///
    /// Errors: a cost of 0, an empty id (tenant, user, role, scope or API key), a plan that is
    /// not configured, or an anonymous request without its client IP (unless
    /// `client.require_ip` is off).
    pub fn resolve(&self, request: &Request) -> Result<Resolution, Error> {
        check_request(request)?;
        let Some(bypass) = self.bypass(request) else {
            return Ok(Resolution::Limits(self.limits(request, None)?));
        };
        // A bypass reads no store unless a policy is kept for bypassed requests and applies.
        if self.kept.is_empty() {
            return Ok(Resolution::Bypass(bypass));
        }
        let checks = self.limits(request, Some(&self.kept))?;
        Ok(if checks.is_empty() {
            Resolution::Bypass(bypass)
        } else {
            Resolution::Kept { bypass, checks }
        })
    }

    /// The limits that apply to `request`, or only those of `kept` for a bypassed one.
    fn limits(&self, request: &Request, kept: Option<&Kept>) -> Result<Checks, Error> {
        use PolicyKind::{Anon, IpBurst, PlanBurst, PlanDaily, PlanSustained, Role, Scope};
        let keeps = |kind: PolicyKind| kept.is_none_or(|k| k.kinds[kind.index()]);
        let cost = u64::from(request.cost);
        let mut checks = Checks::new();
        // A check of `kind` against `limit`, of the scope `scope` if given (a scope's checks are
        // named `scope.<name>`), else named after its kind.
        let mut push = |kind: PolicyKind, limit: &Arc<Limit>, scope: Option<&ScopeLimit>| {
            let policy = self.policy(kind);
            let (name, prefix) = match scope {
                Some(scope) => (&scope.policy, &scope.key_prefix),
                None => (&policy.name, &policy.key_prefix),
            };
            if !policy.enabled || kept.is_some_and(|k| !k.keeps(kind, name)) {
                return;
            }
            if let Some((subject_kind, value)) = subject(request, policy) {
                // A role is a user's membership of a tenant: a user's role limit counts within
                // the request's tenant, and its key shares the tenant's hash tag (one Redis
                // Cluster slot for the tenant's limits and its members').
                let tenant = request.tenant.as_deref();
                let key = match tenant {
                    Some(tenant) if kind == Role && subject_kind == SubjectKind::User => {
                        Key::in_tenant_with_prefix(prefix, tenant, subject_kind, value.as_str())
                    }
                    _ => Key::with_prefix(prefix, subject_kind, value.as_str()),
                };
                checks.push(Check {
                    key,
                    policy: Arc::clone(name),
                    limit: Arc::clone(limit),
                    cost,
                    shadow: policy.shadow,
                    in_headers: policy.in_headers,
                });
            }
        };
        let anonymous = request.is_anonymous();
        // A bypassed request is let through whatever it carries; only the kept limits count.
        if anonymous && request.client_ip.is_none() && self.require_client_ip && kept.is_none() {
            return Err(Error::InvalidRequest(
                "an anonymous request has no client IP: anonymous limits count per client \
                 network, so the service must pass it (Request::ip); set client.require_ip = \
                 false to let such requests through the IP-keyed limits"
                    .into(),
            ));
        }
        if anonymous {
            if let Some(limit) = &self.anon {
                push(Anon, limit, None);
            }
        } else if [PlanSustained, PlanBurst, PlanDaily, Role]
            .into_iter()
            .any(keeps)
        {
            let plan_name = request.plan.as_deref().unwrap_or(&self.default_plan);
            let Some(plan) = self.plans.get(plan_name) else {
                return Err(Error::UnknownPlan {
                    plan: plan_name.to_owned(),
                    known: self.plan_names.clone(),
                });
            };
            push(PlanSustained, &plan.sustained, None);
            push(PlanBurst, &plan.burst, None);
            push(PlanDaily, &plan.daily, None);
            let role = request
                .roles
                .iter()
                .filter_map(|r| self.roles.get(r))
                .max_by(|a, b| compare_rates(a.rate(), b.rate()));
            if let Some(limit) = role {
                push(Role, limit, None);
            }
        }
        if let Some(scope) = request.scope.as_deref() {
            // For an anonymous request the anon policy already counts the anon rate per IP.
            let counted = anonymous && scope == "anon" && self.policy(Anon).enabled;
            if let Some(s) = self.scopes.get(scope).filter(|_| !counted) {
                push(Scope, &s.limit, Some(s));
            }
        }
        push(IpBurst, &self.ip_burst, None);
        Ok(checks)
    }

    fn policy(&self, kind: PolicyKind) -> &Policy {
        &self.policies[kind.index()]
    }

    fn bypass(&self, request: &Request) -> Option<BypassReason> {
        if self.bypass_staff && request.is_staff {
            return Some(BypassReason::Staff);
        }
        if self.bypass_superuser && request.is_superuser {
            return Some(BypassReason::Superuser);
        }
        if let Some(key) = request
            .api_key
            .as_ref()
            .filter(|k| k.bypass && self.bypass_api_keys)
        {
            return Some(BypassReason::ApiKey(key.id.clone()));
        }
        if let Some(ip) = request.client_ip.filter(|ip| self.bypass_ips.contains(*ip)) {
            return Some(BypassReason::Ip(ip));
        }
        if let Some(tenant) = request
            .tenant
            .as_ref()
            .filter(|t| self.bypass_tenants.contains(*t))
        {
            return Some(BypassReason::Tenant(tenant.clone()));
        }
        if let Some(user) = request
            .user
            .as_ref()
            .filter(|u| self.bypass_users.contains(*u))
        {
            return Some(BypassReason::User(user.clone()));
        }
        None
    }
}

/// A subject's value: an id the request carries, or a client network rendered on the stack.
pub(super) enum Subject<'r> {
    Id(&'r str),
    Net(ArrayString<NET_LEN>),
    /// Never built: no network renders longer than `NET_LEN`.
    Long(String),
}

/// Room for the longest network: `ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128`.
const NET_LEN: usize = 48;

impl Subject<'_> {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Subject::Id(id) => id,
            Subject::Net(net) => net.as_str(),
            Subject::Long(net) => net,
        }
    }
}

/// The first subject of `policy`'s key that the request has.
fn subject<'r>(request: &'r Request, policy: &Policy) -> Option<(SubjectKind, Subject<'r>)> {
    policy
        .key
        .iter()
        .find_map(|&kind| Some((kind, subject_of(request, policy, kind)?)))
}

/// The request's subject of `kind`, as `policy` counts it, if the request has one.
pub(super) fn subject_of<'r>(
    request: &'r Request,
    policy: &Policy,
    kind: SubjectKind,
) -> Option<Subject<'r>> {
    Some(match kind {
        SubjectKind::Tenant => Subject::Id(request.tenant.as_deref()?),
        SubjectKind::User => Subject::Id(request.user.as_deref()?),
        SubjectKind::ApiKey => Subject::Id(request.api_key.as_ref()?.id.as_str()),
        // The client's network, not its address: a client holding a whole IPv6 /64 is one
        // subject, not 2^64.
        SubjectKind::Ip => {
            let net = IpNet::client(request.client_ip?, policy.ipv4_prefix, policy.ipv6_prefix);
            let mut text = ArrayString::new();
            match write!(text, "{net}") {
                Ok(()) => Subject::Net(text),
                Err(_) => Subject::Long(net.to_string()),
            }
        }
    })
}

/// Refuses what no limit could count: a cost of 0, and an empty id, which would make every
/// request that has one share a single subject.
fn check_request(request: &Request) -> Result<(), Error> {
    if request.cost == 0 {
        return Err(Error::InvalidRequest(
            "the request's cost is 0; expected at least 1".into(),
        ));
    }
    let ids = [
        ("tenant", request.tenant.as_deref()),
        ("user", request.user.as_deref()),
        ("scope", request.scope.as_deref()),
        (
            "api key id",
            request.api_key.as_ref().map(|k| k.id.as_str()),
        ),
        ("plan", request.plan.as_deref()),
    ];
    let roles = request.roles.iter().map(|r| ("role", Some(r.as_str())));
    if let Some((field, _)) = ids.into_iter().chain(roles).find(|(_, v)| *v == Some("")) {
        return Err(Error::InvalidRequest(format!(
            "the request's {field} is empty; expected a non-empty id, or none"
        )));
    }
    Ok(())
}

/// Orders rates by requests per unit of time (`a.limit / a.period` against `b`'s), exactly.
pub(super) fn compare_rates(a: Rate, b: Rate) -> Ordering {
    let lhs = u128::from(a.limit()) * u128::from(b.period().micros());
    let rhs = u128::from(b.limit()) * u128::from(a.period().micros());
    lhs.cmp(&rhs).then_with(|| a.limit().cmp(&b.limit()))
}
