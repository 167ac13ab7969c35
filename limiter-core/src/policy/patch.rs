//! The file form of [`Config`]: every setting optional, merged over a base configuration.
//!
//! A file (or the environment) names only what it changes. Deserializing yields a patch, and
//! [`ConfigPatch::apply`] merges it: a scalar or list replaces the base's, a plan, role or
//! scope entry merges into the base's entry of that name or adds one, and `"off"` in place of
//! an entry removes it. [`Config`]'s own serde impls go through this form too.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::config::{
    AlgorithmChoice, BypassConfig, Config, PlanConfig, PoliciesConfig, PolicyConfig, check_key,
    check_namespace, check_prefix,
};
use super::ip::IpNet;
use super::kind::{NAMES, PolicyKind, read_list, read_table};
use crate::notify::{Messages, NotifyConfig, NotifyRules};
use crate::{Calendar, Error, Rate, SubjectKind};

/// The word that removes a plan, role or scope.
pub(super) const OFF: &str = "off";

/// The top-level settings, as [`ConfigPatch`]'s fields name them (a test checks the two agree).
pub(super) const SETTINGS: &[&str] = &[
    "namespace",
    "default_plan",
    "time_zone",
    "ip_burst",
    "key_failures",
    "client",
    "bypass",
    "plans",
    "roles",
    "scopes",
    "policies",
    "notify",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of limiter settings")]
pub(super) struct ConfigPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_burst: Option<Rate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_failures: Option<Rate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<ClientPatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bypass: Option<BypassPatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plans: Option<BTreeMap<String, Entry<PlanPatch>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<BTreeMap<String, Entry<Rate>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<BTreeMap<String, Entry<Rate>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policies: Option<PoliciesPatch>,
    /// Replaces the notification settings as a whole (fields it leaves out take their
    /// defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<NotifyConfig>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of client settings")]
struct ClientPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4_prefix: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6_prefix: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_ip: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of bypass settings")]
struct BypassPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    staff: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    superuser: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_keys: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ips: Option<Vec<IpNet>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenants: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a plan (a table of sustained, burst and daily)"
)]
struct PlanPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    sustained: Option<Rate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<Rate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daily: Option<Rate>,
}

/// The `[policies]` table: the patch of each kind it names.
#[derive(Debug, Clone, Default)]
struct PoliciesPatch([Option<PolicyPatch>; PolicyKind::COUNT]);

impl Serialize for PoliciesPatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let named = PolicyKind::ALL.iter().zip(&self.0);
        s.collect_map(named.filter_map(|(kind, patch)| Some((kind, patch.as_ref()?))))
    }
}

impl<'de> Deserialize<'de> for PoliciesPatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PoliciesPatch, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = PoliciesPatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of policies")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PoliciesPatch, A::Error> {
                read_table(map).map(PoliciesPatch)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PoliciesPatch, A::Error> {
                let table = read_list::<A, Option<PolicyPatch>>(seq, &self)?;
                Ok(PoliciesPatch(table.map(Option::flatten)))
            }
        }
        d.deserialize_struct("PoliciesPatch", &NAMES, TableVisitor)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of policy settings (algorithm, key, shadow, headers, enabled, \
                 ipv4_prefix, ipv6_prefix)"
)]
struct PolicyPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithm: Option<AlgorithmChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Vec<SubjectKind>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv4_prefix: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ipv6_prefix: Option<u8>,
}

/// A map entry: a value (merged into the base's entry of that name), or `"off"` (removed).
#[derive(Debug, Clone)]
enum Entry<T> {
    Off,
    Set(T),
}

/// What an entry holds, for error messages.
trait Expecting {
    const EXPECTING: &'static str;
    /// Whether a string other than `"off"` can be a value.
    const FROM_STR: bool;
}

impl Expecting for Rate {
    const EXPECTING: &'static str = "a rate such as \"100/hour\", or \"off\" to remove the entry";
    const FROM_STR: bool = true;
}

impl Expecting for PlanPatch {
    const EXPECTING: &'static str =
        "a plan (a table of sustained, burst and daily), or \"off\" to remove the plan";
    const FROM_STR: bool = false;
}

impl<T: Serialize> Serialize for Entry<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Entry::Off => s.serialize_str(OFF),
            Entry::Set(v) => v.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de> + Expecting> Deserialize<'de> for Entry<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry<T>, D::Error> {
        struct EntryVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Expecting> Visitor<'de> for EntryVisitor<T> {
            type Value = Entry<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Entry<T>, E> {
                if v == OFF {
                    return Ok(Entry::Off);
                }
                if !T::FROM_STR {
                    return Err(E::invalid_value(de::Unexpected::Str(v), &self));
                }
                T::deserialize(de::value::StrDeserializer::<E>::new(v)).map(Entry::Set)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Entry::Set)
            }
        }
        d.deserialize_any(EntryVisitor(PhantomData))
    }
}

impl ConfigPatch {
    /// Merges the patch into `base`. Errors name the path of the offending setting.
    pub(super) fn apply(self, base: &mut Config) -> Result<(), Error> {
        if let Some(namespace) = self.namespace {
            check_namespace(&namespace, "namespace")?;
            base.namespace = namespace;
        }
        if let Some(plan) = self.default_plan {
            base.default_plan = plan;
        }
        if let Some(tz) = self.time_zone {
            Calendar::new(&tz)?;
            base.time_zone = tz;
        }
        if let Some(rate) = self.ip_burst {
            base.ip_burst = rate;
        }
        if let Some(rate) = self.key_failures {
            base.key_failures = rate;
        }
        if let Some(notify) = self.notify {
            NotifyRules::from_config(&notify)?;
            Messages::from_config(&notify.messages)?;
            base.notify = notify;
        }
        if let Some(c) = self.client {
            let base = &mut base.client;
            set(&mut base.ipv4_prefix, c.ipv4_prefix);
            set(&mut base.ipv6_prefix, c.ipv6_prefix);
            set(&mut base.require_ip, c.require_ip);
            check_prefix(base.ipv4_prefix, 32, "client.ipv4_prefix")?;
            check_prefix(base.ipv6_prefix, 128, "client.ipv6_prefix")?;
        }
        if let Some(b) = self.bypass {
            let base = &mut base.bypass;
            set(&mut base.staff, b.staff);
            set(&mut base.superuser, b.superuser);
            set(&mut base.api_keys, b.api_keys);
            set(&mut base.ips, b.ips);
            set(&mut base.tenants, b.tenants);
            set(&mut base.users, b.users);
            set(&mut base.keep, b.keep);
        }
        for (name, entry) in self.plans.into_iter().flatten() {
            match entry {
                Entry::Off => {
                    base.plans.remove(&name);
                }
                Entry::Set(patch) => {
                    let plan = match base.plans.get(&name) {
                        Some(plan) => PlanConfig::new(
                            patch.sustained.unwrap_or(plan.sustained),
                            patch.burst.unwrap_or(plan.burst),
                            patch.daily.unwrap_or(plan.daily),
                        ),
                        None => new_plan(&name, patch)?,
                    };
                    base.plans.insert(name, plan);
                }
            }
        }
        merge_rates(&mut base.roles, self.roles);
        merge_rates(&mut base.scopes, self.scopes);
        if let Some(p) = self.policies {
            for (kind, patch) in PolicyKind::ALL.into_iter().zip(p.0) {
                apply_policy(&mut base.policies[kind], patch, kind)?;
            }
        }
        Ok(())
    }
}

/// A plan that is not in the base has nothing to inherit: it must set all three limits.
fn new_plan(name: &str, patch: PlanPatch) -> Result<PlanConfig, Error> {
    match (patch.sustained, patch.burst, patch.daily) {
        (Some(s), Some(b), Some(d)) => Ok(PlanConfig::new(s, b, d)),
        (s, b, d) => {
            let missing: Vec<&str> = [("sustained", s), ("burst", b), ("daily", d)]
                .into_iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| n)
                .collect();
            Err(Error::config(
                format!("plans.{name}"),
                format!(
                    "new plan {name:?} is missing {}; a plan that is not already configured must \
                     set sustained, burst and daily",
                    missing.join(" and ")
                ),
            ))
        }
    }
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn merge_rates(base: &mut BTreeMap<String, Rate>, patch: Option<BTreeMap<String, Entry<Rate>>>) {
    for (name, entry) in patch.into_iter().flatten() {
        match entry {
            Entry::Off => base.remove(&name),
            Entry::Set(rate) => base.insert(name, rate),
        };
    }
}

fn apply_policy(
    base: &mut PolicyConfig,
    patch: Option<PolicyPatch>,
    kind: PolicyKind,
) -> Result<(), Error> {
    if let Some(p) = patch {
        if let Some(key) = &p.key {
            check_key(key, &format!("policies.{kind}.key"))?;
        }
        set(&mut base.algorithm, p.algorithm);
        set(&mut base.key, p.key);
        set(&mut base.shadow, p.shadow);
        set(&mut base.headers, p.headers);
        set(&mut base.enabled, p.enabled);
        if let Some(prefix) = p.ipv4_prefix {
            check_prefix(prefix, 32, &format!("policies.{kind}.ipv4_prefix"))?;
            base.ipv4_prefix = Some(prefix);
        }
        if let Some(prefix) = p.ipv6_prefix {
            check_prefix(prefix, 128, &format!("policies.{kind}.ipv6_prefix"))?;
            base.ipv6_prefix = Some(prefix);
        }
    }
    Ok(())
}

/// Reads the file form over the defaults, as [`Config::from_toml_str`] does.
impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
        let mut config = Config::default();
        ConfigPatch::deserialize(d)?
            .apply(&mut config)
            .map_err(de::Error::custom)?;
        Ok(config)
    }
}

/// Writes the complete file form (see `From<Config> for ConfigPatch`).
impl Serialize for Config {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ConfigPatch::from(self.clone()).serialize(s)
    }
}

/// The complete file form of `config`: every setting, and `"off"` for each default plan, role
/// or scope that `config` does not have, so that it reads back equal.
impl From<Config> for ConfigPatch {
    fn from(config: Config) -> ConfigPatch {
        let defaults = Config::default();
        let mut plans: BTreeMap<String, Entry<PlanPatch>> = config
            .plans
            .into_iter()
            .map(|(name, p)| {
                let patch = PlanPatch {
                    sustained: Some(p.sustained),
                    burst: Some(p.burst),
                    daily: Some(p.daily),
                };
                (name, Entry::Set(patch))
            })
            .collect();
        for name in defaults.plans.into_keys() {
            plans.entry(name).or_insert(Entry::Off);
        }
        ConfigPatch {
            namespace: Some(config.namespace),
            default_plan: Some(config.default_plan),
            time_zone: Some(config.time_zone),
            ip_burst: Some(config.ip_burst),
            key_failures: Some(config.key_failures),
            client: Some(ClientPatch {
                ipv4_prefix: Some(config.client.ipv4_prefix),
                ipv6_prefix: Some(config.client.ipv6_prefix),
                require_ip: Some(config.client.require_ip),
            }),
            bypass: Some(bypass_patch(config.bypass)),
            plans: Some(plans),
            roles: Some(rates_patch(config.roles, defaults.roles)),
            scopes: Some(rates_patch(config.scopes, defaults.scopes)),
            policies: Some(policies_patch(&config.policies)),
            notify: Some(config.notify),
        }
    }
}

fn bypass_patch(b: BypassConfig) -> BypassPatch {
    BypassPatch {
        staff: Some(b.staff),
        superuser: Some(b.superuser),
        api_keys: Some(b.api_keys),
        ips: Some(b.ips),
        tenants: Some(b.tenants),
        users: Some(b.users),
        keep: Some(b.keep),
    }
}

fn rates_patch(
    rates: BTreeMap<String, Rate>,
    defaults: BTreeMap<String, Rate>,
) -> BTreeMap<String, Entry<Rate>> {
    let mut out: BTreeMap<_, _> = rates.into_iter().map(|(n, r)| (n, Entry::Set(r))).collect();
    for name in defaults.into_keys() {
        out.entry(name).or_insert(Entry::Off);
    }
    out
}

fn policies_patch(p: &PoliciesConfig) -> PoliciesPatch {
    PoliciesPatch(PolicyKind::ALL.map(|kind| {
        let c = &p[kind];
        Some(PolicyPatch {
            algorithm: Some(c.algorithm),
            key: Some(c.key.clone()),
            shadow: Some(c.shadow),
            headers: Some(c.headers),
            enabled: Some(c.enabled),
            ipv4_prefix: c.ipv4_prefix,
            ipv6_prefix: c.ipv6_prefix,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SETTINGS` lists exactly the fields serde knows: its error for an unknown field names
    /// them all, in order.
    #[test]
    fn settings_are_the_patch_fields() {
        let error = toml::from_str::<ConfigPatch>("no_such_setting = 1")
            .expect_err("unknown field")
            .to_string();
        let expected = SETTINGS
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(error.contains(&expected), "{error}\nexpected: {expected}");
    }
}
