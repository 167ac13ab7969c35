//! [`PolicyKind`]: the built-in policies, by the name that the `[policies]` table, checks and
//! keys give them; and the reading of a table keyed by that name.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A built-in policy: what one of the checks of a request enforces.
///
/// A kind has a name (its table under `[policies]`, the policy of its checks, the middle part
/// of its keys), default settings
/// ([`PolicyConfig::default_for`](super::PolicyConfig::default_for)), and a rule in
/// [`PolicySet::resolve`](super::PolicySet::resolve) that says when it applies and at which
/// rate. Adding a kind is a variant here (with its name and its place in [`ALL`](Self::ALL)),
/// its default, and its rule.
///
/// ```
/// use limiter_core::policy::{Config, PolicyKind};
///
/// let mut config = Config::default();
/// config.policies[PolicyKind::Scope].shadow = true;
/// assert_eq!(PolicyKind::Scope.name(), "scope");
/// assert_eq!(PolicyKind::from_name("ip_burst"), Some(PolicyKind::IpBurst));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PolicyKind {
    /// `plan_sustained`: the plan's long-run rate (default: sliding window, per tenant).
    PlanSustained,
    /// `plan_burst`: the plan's short-term burst (default: GCRA, per tenant).
    PlanBurst,
    /// `plan_daily`: the plan's daily quota (default: calendar day, per tenant).
    PlanDaily,
    /// `role`: the most generous of the user's roles (default: sliding window, per user within
    /// the request's tenant).
    Role,
    /// `scope`: the limit of the request's scope, its checks named `scope.<name>` (default:
    /// `auto`, per user, or per IP when anonymous).
    Scope,
    /// `anon`: every anonymous request, at the rate of `scopes.anon` (default: sliding
    /// window, per IP).
    Anon,
    /// `ip_burst`: every request per client IP, at the rate of `ip_burst` (default: GCRA, per
    /// IP).
    IpBurst,
    /// `key_failures`: presented API keys that failed verification, per client IP, at the rate
    /// of `key_failures` (default: `auto`, per IP), so that keys cannot be guessed at speed.
    /// Only failed verifications count against it.
    KeyFailures,
}

impl PolicyKind {
    /// Every kind, in declaration order: the order of the `[policies]` table and of the
    /// "expected one of" list of an unknown name.
    pub const ALL: [PolicyKind; 8] = [
        PolicyKind::PlanSustained,
        PolicyKind::PlanBurst,
        PolicyKind::PlanDaily,
        PolicyKind::Role,
        PolicyKind::Scope,
        PolicyKind::Anon,
        PolicyKind::IpBurst,
        PolicyKind::KeyFailures,
    ];

    /// How many kinds there are: the size of a table indexed by kind.
    pub(super) const COUNT: usize = PolicyKind::ALL.len();

    /// The name in configuration, checks and keys.
    pub const fn name(self) -> &'static str {
        match self {
            PolicyKind::PlanSustained => "plan_sustained",
            PolicyKind::PlanBurst => "plan_burst",
            PolicyKind::PlanDaily => "plan_daily",
            PolicyKind::Role => "role",
            PolicyKind::Scope => "scope",
            PolicyKind::Anon => "anon",
            PolicyKind::IpBurst => "ip_burst",
            PolicyKind::KeyFailures => "key_failures",
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<PolicyKind> {
        PolicyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The position of the kind in [`ALL`](Self::ALL), and so in a table indexed by kind.
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// The names in [`PolicyKind::ALL`] order: the fields of a table keyed by kind, for serde.
pub(super) const NAMES: [&str; PolicyKind::COUNT] = {
    let mut names = [""; PolicyKind::COUNT];
    let mut i = 0;
    while i < PolicyKind::COUNT {
        names[i] = PolicyKind::ALL[i].name();
        i += 1;
    }
    names
};

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for PolicyKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for PolicyKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PolicyKind, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = PolicyKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a policy name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyKind, E> {
                // A policy's name is a key of the `[policies]` table, so an unknown one is
                // reported as an unknown field of that table.
                PolicyKind::from_name(v).ok_or_else(|| E::unknown_field(v, &NAMES))
            }
        }
        d.deserialize_identifier(NameVisitor)
    }
}

/// Reads a table keyed by policy name (`[policies]`, whole or as a patch) into a table indexed
/// by kind. A name may appear once, as a struct's field may.
pub(super) fn read_table<'de, A, V>(mut map: A) -> Result<[Option<V>; PolicyKind::COUNT], A::Error>
where
    A: MapAccess<'de>,
    V: Deserialize<'de>,
{
    let mut table: [Option<V>; PolicyKind::COUNT] = std::array::from_fn(|_| None);
    while let Some(kind) = map.next_key::<PolicyKind>()? {
        let slot = &mut table[kind.index()];
        if slot.is_some() {
            return Err(de::Error::duplicate_field(kind.name()));
        }
        *slot = Some(map.next_value()?);
    }
    Ok(table)
}

/// Reads the same table written as a list of its entries in [`PolicyKind::ALL`] order. The
/// derived tables around it (`[bypass]`, `[plans.<name>]`) read as a list of their fields, so
/// this one does too; as there, every entry must be present.
pub(super) fn read_list<'de, A, V>(
    mut seq: A,
    expected: &dyn de::Expected,
) -> Result<[Option<V>; PolicyKind::COUNT], A::Error>
where
    A: SeqAccess<'de>,
    V: Deserialize<'de>,
{
    let mut table: [Option<V>; PolicyKind::COUNT] = std::array::from_fn(|_| None);
    for (i, slot) in table.iter_mut().enumerate() {
        let entry = seq.next_element()?;
        *slot = Some(entry.ok_or_else(|| de::Error::invalid_length(i, expected))?);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once_at_its_index() {
        for (i, kind) in PolicyKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind}");
            assert_eq!(PolicyKind::from_name(kind.name()), Some(kind));
            assert_eq!(NAMES[i], kind.name());
        }
        assert_eq!(PolicyKind::from_name("scope.auth"), None);
    }
}
