//! The configuration model: what a file, the environment or code can set, with DESIGN's tables
//! as defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Index, IndexMut};

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ip::IpNet;
use super::kind::{NAMES, PolicyKind, read_list, read_table};
use crate::notify::NotifyConfig;
use crate::{Error, Rate, SubjectKind, Unit};

/// The complete configuration of a [`PolicySet`](super::PolicySet).
///
/// [`Config::default()`] holds the default policies (the plan, role and scope tables of the
/// project's design); files and environment variables override only what they name (see the
/// [module docs](super) for the file format and the environment scheme).
///
/// Build one in code by changing the defaults:
///
/// ```
/// use limiter_core::policy::{Config, PolicyKind, PolicySet};
///
/// let mut config = Config::default();
/// config.roles.insert("auditor".into(), "200/hour".parse()?);
/// config.scopes.remove("export");
/// config.policies[PolicyKind::Scope].shadow = true;
/// let policies = PolicySet::from_config(&config)?;
/// # Ok::<(), limiter_core::Error>(())
/// ```
///
/// Its serde form is the file format: deserializing merges the input over the defaults, and
/// serializing writes every setting, with `"off"` for a default plan, role or scope that was
/// removed, so that a serialized configuration reads back equal.
// Serialize and Deserialize go through the file form, so they live beside it in `patch.rs`;
// this file stays a model that imports none of its loaders.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The first part of every store key (default `limiter`): several services, or several
    /// environments, can share one store under different namespaces. Non-empty, without `:`,
    /// `{` or `}`.
    pub namespace: String,
    /// The plan of a request that is authenticated but names no plan (default `free`). Must be
    /// a configured plan.
    pub default_plan: String,
    /// The IANA time zone in which daily (calendar) quotas reset at midnight (default `UTC`).
    pub time_zone: String,
    /// How clients are told apart by their address.
    pub client: ClientConfig,
    /// Who is let through without counting.
    pub bypass: BypassConfig,
    /// Plans by name: each applies a sustained, a burst and a daily limit to its tenants.
    pub plans: BTreeMap<String, PlanConfig>,
    /// Role limits by role name, per user (within the request's tenant, if it has one). A user
    /// with several configured roles gets one role limit: the most generous of them.
    pub roles: BTreeMap<String, Rate>,
    /// Scope (endpoint group) limits by scope name. `anon` is also the rate of the `anon` policy
    /// that every anonymous request counts against.
    pub scopes: BTreeMap<String, Rate>,
    /// The burst limit of every request per client IP (default `600/minute`, GCRA).
    ///
    /// It protects against one address flooding the service across users and tenants. It must
    /// not throttle a legitimate client below its plan: an enterprise tenant may send its whole
    /// plan burst of 500/minute from one server, so the default leaves 20% headroom above it.
    pub ip_burst: Rate,
    /// How many failed API key verifications one client network may make (default
    /// `20/minute`, policy `key_failures`): enough for a client whose key was just revoked or
    /// mistyped, far too few to guess one.
    pub key_failures: Rate,
    /// How each policy counts and keys its limits.
    pub policies: PoliciesConfig,
    /// Which limits notify, at which shares, and the texts (`[notify]`).
    pub notify: NotifyConfig,
}

/// How clients are told apart by their address: the networks IP-keyed limits count, and what an
/// anonymous request without an address means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The prefix length an IPv4 client is counted by (default 32: each address).
    pub ipv4_prefix: u8,
    /// The prefix length an IPv6 client is counted by (default 64: each /64, the block one
    /// residential line or one cloud host gets, so that a client cannot draw a fresh budget
    /// from each of its addresses).
    pub ipv6_prefix: u8,
    /// Whether an anonymous request must carry its client IP (default true). Anonymous limits
    /// count per client network, so without the address such a request could be counted by
    /// nothing: `resolve` refuses it with an error that says the service must pass the IP.
    /// With `false`, it is let through by the IP-keyed limits, as before.
    pub require_ip: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            require_ip: true,
        }
    }
}

/// Who is let through without counting (checked before anything else, with no store I/O).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BypassConfig {
    /// Staff users bypass (default true).
    pub staff: bool,
    /// Superusers bypass (default true).
    pub superuser: bool,
    /// API keys flagged `bypass` bypass (default true).
    pub api_keys: bool,
    /// Client IPs and networks that bypass: `192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`.
    pub ips: Vec<IpNet>,
    /// Tenants that bypass.
    pub tenants: Vec<String>,
    /// Users that bypass.
    pub users: Vec<String>,
    /// Policies that still apply to bypassed requests (default none: a bypass counts nothing
    /// and reads no store). Abuse protection that even trusted callers must not escape, such as
    /// `["ip_burst", "scope.auth", "scope.password", "scope.registration"]`: an allow-listed
    /// tenant's login page still limits password guesses. Names are policy kinds (`ip_burst`,
    /// `scope` for every scope) or one scope's policy (`scope.auth`).
    pub keep: Vec<String>,
}

impl Default for BypassConfig {
    fn default() -> Self {
        BypassConfig {
            staff: true,
            superuser: true,
            api_keys: true,
            ips: Vec::new(),
            tenants: Vec::new(),
            users: Vec::new(),
            keep: Vec::new(),
        }
    }
}

/// The three limits of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PlanConfig {
    /// The long-run rate (`2000/hour`), policy `plan_sustained`.
    pub sustained: Rate,
    /// The short-term burst (`100/minute`), policy `plan_burst`.
    pub burst: Rate,
    /// The daily quota, reset at midnight (`20000/day`), policy `plan_daily`.
    pub daily: Rate,
}

impl PlanConfig {
    /// A plan of these three limits.
    pub fn new(sustained: Rate, burst: Rate, daily: Rate) -> PlanConfig {
        PlanConfig {
            sustained,
            burst,
            daily,
        }
    }
}

/// The settings of every policy, indexed by kind:
/// `config.policies[PolicyKind::Scope].shadow = true`.
///
/// Its serde form is the `[policies]` table: one entry per kind, named by
/// [`PolicyKind::name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoliciesConfig([PolicyConfig; PolicyKind::COUNT]);

impl PoliciesConfig {
    /// Every policy with its kind, in the order of [`PolicyKind::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (PolicyKind, &PolicyConfig)> {
        PolicyKind::ALL.into_iter().zip(&self.0)
    }
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        PoliciesConfig(PolicyKind::ALL.map(PolicyConfig::default_for))
    }
}

impl Index<PolicyKind> for PoliciesConfig {
    type Output = PolicyConfig;

    fn index(&self, kind: PolicyKind) -> &PolicyConfig {
        &self.0[kind.index()]
    }
}

impl IndexMut<PolicyKind> for PoliciesConfig {
    fn index_mut(&mut self, kind: PolicyKind) -> &mut PolicyConfig {
        &mut self.0[kind.index()]
    }
}

impl Serialize for PoliciesConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for PoliciesConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PoliciesConfig, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = PoliciesConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of policies")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PoliciesConfig, A::Error> {
                every_policy(read_table(map)?)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PoliciesConfig, A::Error> {
                every_policy(read_list(seq, &self)?)
            }
        }
        d.deserialize_struct("PoliciesConfig", &NAMES, TableVisitor)
    }
}

/// Every policy must be present, as every field of a struct must.
fn every_policy<E: de::Error>(
    mut table: [Option<PolicyConfig>; PolicyKind::COUNT],
) -> Result<PoliciesConfig, E> {
    let mut policies = PoliciesConfig::default();
    for kind in PolicyKind::ALL {
        policies[kind] = table[kind.index()]
            .take()
            .ok_or_else(|| E::missing_field(kind.name()))?;
    }
    Ok(policies)
}

/// How one policy counts and keys its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// The algorithm that enforces the policy's rates.
    pub algorithm: AlgorithmChoice,
    /// What the limit is counted per: the first of these subjects that the request has. A
    /// request with none of them is not subject to the policy.
    pub key: Vec<SubjectKind>,
    /// Evaluate and report, never enforce (default false): the dark launch of a new limit.
    pub shadow: bool,
    /// Whether response headers name the policy and its quota (default true). Set it to false
    /// for abuse controls (`ip_burst`, `scope`) whose exact quota should not guide an attacker;
    /// `Retry-After` is still sent when such a policy denies.
    #[serde(default = "shown")]
    pub headers: bool,
    /// Whether the policy applies at all (default true).
    pub enabled: bool,
    /// The IPv4 prefix length this policy counts clients by, instead of
    /// [`ClientConfig::ipv4_prefix`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_prefix: Option<u8>,
    /// The IPv6 prefix length this policy counts clients by, instead of
    /// [`ClientConfig::ipv6_prefix`] (a /48 for a stricter brute-force limit, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_prefix: Option<u8>,
}

impl PolicyConfig {
    /// The default settings of `kind` (the table in the [module docs](super)).
    pub fn default_for(kind: PolicyKind) -> PolicyConfig {
        use AlgorithmChoice::{Auto, Calendar, Gcra, SlidingWindow};
        use SubjectKind::{ApiKey, Ip, Tenant, User};
        match kind {
            PolicyKind::PlanSustained => {
                PolicyConfig::new(SlidingWindow, vec![Tenant, User, ApiKey, Ip])
            }
            PolicyKind::PlanBurst => PolicyConfig::new(Gcra, vec![Tenant, User, ApiKey, Ip]),
            PolicyKind::PlanDaily => PolicyConfig::new(Calendar, vec![Tenant, User, ApiKey, Ip]),
            PolicyKind::Role => PolicyConfig::new(SlidingWindow, vec![User]),
            PolicyKind::Scope => PolicyConfig::new(Auto, vec![User, ApiKey, Ip]),
            PolicyKind::Anon => PolicyConfig::new(SlidingWindow, vec![Ip]),
            PolicyKind::IpBurst => PolicyConfig::new(Gcra, vec![Ip]),
            PolicyKind::KeyFailures => PolicyConfig::new(Auto, vec![Ip]),
        }
    }

    /// An enabled, enforced policy.
    pub fn new(algorithm: AlgorithmChoice, key: Vec<SubjectKind>) -> PolicyConfig {
        PolicyConfig {
            algorithm,
            key,
            shadow: false,
            headers: true,
            enabled: true,
            ipv4_prefix: None,
            ipv6_prefix: None,
        }
    }
}

/// The algorithm a policy uses, by its configuration name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlgorithmChoice {
    /// `gcra`: a token bucket; bursts up to the limit, smooth refill.
    Gcra,
    /// `sliding_window`: a weighted two-window counter; constant state, approximate at the
    /// window edge.
    SlidingWindow,
    /// `sliding_log`: exact, one timestamp per admitted unit; limits up to
    /// [`SLIDING_LOG_MAX_LIMIT`](crate::algorithm::SLIDING_LOG_MAX_LIMIT).
    SlidingLog,
    /// `calendar`: a quota per local day in `time_zone`; rates must be per day.
    Calendar,
    /// `auto`: `sliding_log` for limits up to [`AUTO_SLIDING_LOG_MAX`], `sliding_window` above.
    ///
    /// The default for scopes: small strict limits (`auth 5/minute`, `password 3/minute`)
    /// guard against brute force, where the sliding window's approximation at the window edge
    /// would let a few extra attempts through; their logs are small. Large limits
    /// (`user 1000/hour`) would carry a thousand timestamps per key for little gain.
    Auto,
}

/// The largest limit that [`AlgorithmChoice::Auto`] enforces with a sliding log.
pub const AUTO_SLIDING_LOG_MAX: u64 = 100;

impl AlgorithmChoice {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            AlgorithmChoice::Gcra => "gcra",
            AlgorithmChoice::SlidingWindow => "sliding_window",
            AlgorithmChoice::SlidingLog => "sliding_log",
            AlgorithmChoice::Calendar => "calendar",
            AlgorithmChoice::Auto => "auto",
        }
    }
}

impl fmt::Display for AlgorithmChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Default for Config {
    fn default() -> Self {
        let plans = [
            (
                "free",
                (100, Unit::Hour),
                (10, Unit::Minute),
                (500, Unit::Day),
            ),
            (
                "starter",
                (500, Unit::Hour),
                (30, Unit::Minute),
                (5_000, Unit::Day),
            ),
            (
                "professional",
                (2_000, Unit::Hour),
                (100, Unit::Minute),
                (20_000, Unit::Day),
            ),
            (
                "enterprise",
                (10_000, Unit::Hour),
                (500, Unit::Minute),
                (100_000, Unit::Day),
            ),
        ];
        let roles = [
            ("owner", 5_000, Unit::Hour),
            ("admin", 3_000, Unit::Hour),
            ("supervisor", 2_000, Unit::Hour),
            ("hr", 2_000, Unit::Hour),
            ("marketer", 2_000, Unit::Hour),
            ("employee", 1_000, Unit::Hour),
            ("member", 500, Unit::Hour),
        ];
        let scopes = [
            ("anon", 30, Unit::Hour),
            ("user", 1_000, Unit::Hour),
            ("auth", 5, Unit::Minute),
            ("token", 10, Unit::Minute),
            ("password", 3, Unit::Minute),
            ("registration", 5, Unit::Hour),
            ("file_upload", 20, Unit::Hour),
            ("export", 10, Unit::Hour),
        ];
        Config {
            namespace: "limiter".into(),
            default_plan: "free".into(),
            time_zone: "UTC".into(),
            client: ClientConfig::default(),
            bypass: BypassConfig::default(),
            plans: plans
                .into_iter()
                .map(|(name, s, b, d)| {
                    let plan = PlanConfig::new(rate(s), rate(b), rate(d));
                    (name.to_owned(), plan)
                })
                .collect(),
            roles: roles
                .into_iter()
                .map(|(name, n, u)| (name.to_owned(), rate((n, u))))
                .collect(),
            scopes: scopes
                .into_iter()
                .map(|(name, n, u)| (name.to_owned(), rate((n, u))))
                .collect(),
            ip_burst: rate((600, Unit::Minute)),
            key_failures: rate((20, Unit::Minute)),
            policies: PoliciesConfig::default(),
            notify: NotifyConfig::default(),
        }
    }
}

/// A default rate.
fn rate((limit, unit): (u64, Unit)) -> Rate {
    // Every default is far inside the valid range (at most 100,000 per minute or longer).
    #[allow(clippy::expect_used)]
    Rate::per(limit, unit).expect("the default rates are valid")
}

/// Checks a namespace: it starts every store key, so it must not be empty nor hold the
/// characters that delimit a key's parts. The error names `path` and the namespace.
///
/// ```
/// use limiter_core::policy::check_namespace;
///
/// assert!(check_namespace("api", "namespace").is_ok());
/// let err = check_namespace("a:b", "RedisOutbox::namespace").unwrap_err();
/// assert!(err.to_string().contains("RedisOutbox::namespace"));
/// ```
pub fn check_namespace(namespace: &str, path: &str) -> Result<(), Error> {
    if namespace.is_empty() || namespace.contains([':', '{', '}']) {
        return Err(Error::config(
            path,
            format!(
                "invalid namespace {namespace:?}: expected a non-empty name without ':', '{{' or \
                 '}}' (it starts every store key)"
            ),
        ));
    }
    Ok(())
}

/// Checks a policy's key list: a policy keyed by nothing could never apply.
pub(super) fn check_key(key: &[SubjectKind], path: &str) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::config(
            path,
            "the key list is empty; expected one or more of tenant, user, api_key, ip \
             (the first the request has is used)",
        ));
    }
    Ok(())
}

/// A policy is named in headers unless its configuration says otherwise.
fn shown() -> bool {
    true
}

/// Checks a prefix length for its address family.
pub(super) fn check_prefix(prefix: u8, max: u8, path: &str) -> Result<(), Error> {
    if prefix > max {
        return Err(Error::config(
            path,
            format!("prefix length {prefix} is too long; expected 0 to {max}"),
        ));
    }
    Ok(())
}
