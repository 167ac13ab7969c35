//! Compiling a [`Config`] into a [`PolicySet`]: every setting checked, every rate parsed and
//! every [`Limit`] built once, up front.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::config::{
    AUTO_SLIDING_LOG_MAX, AlgorithmChoice, ClientConfig, Config, PolicyConfig, check_key,
    check_namespace,
};
use super::ip::IpSet;
use super::kind::PolicyKind;
use super::resolve::{Kept, PlanLimits, Policy, PolicySet, ScopeLimit, compare_rates};
use crate::algorithm::Algorithm;
use crate::key::KeyPrefix;
use crate::notify::{Messages, NotifyRules};
use crate::{Calendar, Error, Limit, Rate};

impl Default for PolicySet {
    /// The default policies (those of [`Config::default`]).
    fn default() -> Self {
        // The default configuration is valid (a test asserts it); should that ever break, an
        // empty set that bypasses nothing and limits nothing would be worse than a clear panic
        // at startup.
        #[allow(clippy::expect_used)]
        PolicySet::from_config(&Config::default()).expect("the default configuration is valid")
    }
}

impl PolicySet {
    /// Validates `config` and compiles it. Every error names the path of the offending setting
    /// and says what is expected.
    pub fn from_config(config: &Config) -> Result<PolicySet, Error> {
        use PolicyKind::{
            Anon, IpBurst, KeyFailures, PlanBurst, PlanDaily, PlanSustained, Role, Scope,
        };
        check_namespace(&config.namespace, "namespace")?;
        let calendar = Calendar::new(&config.time_zone)?;
        let p = &config.policies;
        for (kind, policy) in p.iter() {
            check_key(&policy.key, &format!("policies.{kind}.key"))?;
        }
        // The limit that `kind` enforces at `rate`, set at `path`.
        let build = |rate: Rate, kind: PolicyKind, path: &str| {
            let choice = p[kind].algorithm;
            let algorithm = match choice {
                AlgorithmChoice::Gcra => Algorithm::Gcra,
                AlgorithmChoice::SlidingWindow => Algorithm::SlidingWindow,
                AlgorithmChoice::SlidingLog => Algorithm::SlidingLog,
                AlgorithmChoice::Calendar => Algorithm::Calendar(calendar.clone()),
                AlgorithmChoice::Auto if rate.limit() <= AUTO_SLIDING_LOG_MAX => {
                    Algorithm::SlidingLog
                }
                AlgorithmChoice::Auto => Algorithm::SlidingWindow,
            };
            Limit::new(rate, algorithm).map(Arc::new).map_err(|e| {
                Error::config(path, format!("{e}; policies.{kind}.algorithm is {choice}"))
            })
        };

        let mut order: Vec<(&String, Rate)> = Vec::with_capacity(config.plans.len());
        let mut plans = HashMap::with_capacity(config.plans.len());
        for (name, plan) in &config.plans {
            let path = |field: &str| format!("plans.{name}.{field}");
            let limits = PlanLimits {
                name: name.as_str().into(),
                sustained: build(plan.sustained, PlanSustained, &path("sustained"))?,
                burst: build(plan.burst, PlanBurst, &path("burst"))?,
                daily: build(plan.daily, PlanDaily, &path("daily"))?,
                next: None,
            };
            plans.insert(name.clone(), limits);
            order.push((name, plan.sustained));
        }
        if !plans.contains_key(&config.default_plan) {
            return Err(Error::config(
                "default_plan",
                format!(
                    "{:?} is not a configured plan; expected one of: {}",
                    config.default_plan,
                    names(&config.plans)
                ),
            ));
        }
        // Upgrade order: by sustained rate, then by name so that equal rates order stably.
        order.sort_by(|a, b| compare_rates(a.1, b.1).then_with(|| a.0.cmp(b.0)));
        for pair in order.windows(2) {
            if let Some(plan) = plans.get_mut(pair[0].0) {
                plan.next = Some(pair[1].0.as_str().into());
            }
        }
        let plan_names = some_names(order.iter().map(|(n, _)| n.as_str()), order.len());

        let mut roles = HashMap::with_capacity(config.roles.len());
        for (name, rate) in &config.roles {
            let limit = build(*rate, Role, &format!("roles.{name}"))?;
            roles.insert(name.clone(), limit);
        }
        let mut scopes = HashMap::with_capacity(config.scopes.len());
        for (name, rate) in &config.scopes {
            check_header_name(name, &format!("scopes.{name}"))?;
            let limit = build(*rate, Scope, &format!("scopes.{name}"))?;
            let policy: Arc<str> = format!("scope.{name}").into();
            let key_prefix = KeyPrefix::new(&config.namespace, &policy);
            let scope = ScopeLimit {
                policy,
                key_prefix,
                limit,
            };
            scopes.insert(name.clone(), scope);
        }
        let anon = match config.scopes.get("anon") {
            Some(rate) => Some(build(*rate, Anon, "scopes.anon")?),
            None if p[Anon].enabled => {
                return Err(Error::config(
                    "scopes.anon",
                    "the anon policy is enabled but scopes.anon is not set; set its rate \
                     (such as \"30/hour\") or set policies.anon.enabled = false",
                ));
            }
            None => None,
        };
        let ip_burst = build(config.ip_burst, IpBurst, "ip_burst")?;
        let key_failures = build(config.key_failures, KeyFailures, "key_failures")?;

        let b = &config.bypass;
        let kept = Kept::compile(&b.keep, &scopes)?;
        let notify_rules = NotifyRules::from_config(&config.notify)?;
        let messages = Messages::from_config(&config.notify.messages)?;
        Ok(PolicySet {
            notify_rules,
            messages,
            namespace: config.namespace.as_str().into(),
            bypass_staff: b.staff,
            bypass_superuser: b.superuser,
            bypass_api_keys: b.api_keys,
            bypass_ips: IpSet::new(&b.ips),
            bypass_tenants: b.tenants.iter().cloned().collect(),
            bypass_users: b.users.iter().cloned().collect(),
            kept,
            default_plan: config.default_plan.as_str().into(),
            plans,
            plan_names,
            roles,
            scopes,
            anon,
            ip_burst,
            key_failures,
            require_client_ip: config.client.require_ip,
            policies: PolicyKind::ALL
                .map(|kind| Policy::new(kind, &p[kind], &config.client, &config.namespace)),
        })
    }
}

impl Policy {
    fn new(
        kind: PolicyKind,
        config: &PolicyConfig,
        client: &ClientConfig,
        namespace: &str,
    ) -> Policy {
        Policy {
            name: kind.name().into(),
            key_prefix: KeyPrefix::new(namespace, kind.name()),
            key: config.key.clone(),
            shadow: config.shadow,
            in_headers: config.headers,
            enabled: config.enabled,
            ipv4_prefix: config.ipv4_prefix.unwrap_or(client.ipv4_prefix),
            ipv6_prefix: config.ipv6_prefix.unwrap_or(client.ipv6_prefix),
        }
    }
}

fn names<V>(map: &BTreeMap<String, V>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many plan names an unknown-plan error lists: enough to show the spelling expected,
/// bounded whatever the number of plans, since the error is built on every such request.
const NAMES_LISTED: usize = 5;

/// The first [`NAMES_LISTED`] of `names`, comma separated, and how many more there are.
fn some_names<'a>(names: impl Iterator<Item = &'a str>, count: usize) -> String {
    let mut listed = names.take(NAMES_LISTED).collect::<Vec<_>>().join(", ");
    if count > NAMES_LISTED {
        listed.push_str(&format!(" and {} more", count - NAMES_LISTED));
    }
    listed
}

/// A scope's name becomes its policy name (`scope.<name>`) in `RateLimit` headers, which carry
/// ASCII only: a name that would render as another, or not at all, is refused at load.
fn check_header_name(name: &str, path: &str) -> Result<(), Error> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::config(
            path,
            format!(
                "invalid scope name {name:?}: expected ASCII letters, digits and punctuation \
                 (it names the policy scope.<name> in RateLimit headers)"
            ),
        ));
    }
    Ok(())
}

impl Kept {
    /// The policies of `bypass.keep`: kind names, or `scope.<name>` of a configured scope.
    fn compile(names: &[String], scopes: &HashMap<String, ScopeLimit>) -> Result<Kept, Error> {
        let mut kept = Kept::default();
        for (i, name) in names.iter().enumerate() {
            if let Some(kind) = PolicyKind::from_name(name) {
                kept.kinds[kind.index()] = true;
            } else if name
                .strip_prefix("scope.")
                .is_some_and(|scope| scopes.contains_key(scope))
            {
                kept.scopes.insert(name.clone());
            } else {
                return Err(Error::config(
                    format!("bypass.keep[{i}]"),
                    format!(
                        "unknown policy {name:?}; expected a policy ({}) or scope.<name> of a \
                         configured scope",
                        PolicyKind::ALL.map(PolicyKind::name).join(", ")
                    ),
                ));
            }
        }
        Ok(kept)
    }
}
