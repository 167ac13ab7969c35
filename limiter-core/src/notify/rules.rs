//! Which limits notify, at which shares, and the identity of one notice.

use std::fmt;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::MessagesConfig;
use crate::Error;
use crate::event::EventKind;
use crate::policy::PolicyKind;
use crate::time::Micros;

/// What a notice says about a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotifyKind {
    /// Usage reached one of the threshold shares of the limit (80% by default).
    Approaching,
    /// The last unit of the limit was used.
    Exhausted,
    /// An exhausted limit resets within the lead time (1 hour by default).
    ResetsSoon,
    /// An exhausted limit has reset: access is back.
    Restored,
}

impl NotifyKind {
    /// Every kind, in declaration order.
    pub const ALL: [NotifyKind; 4] = [
        NotifyKind::Approaching,
        NotifyKind::Exhausted,
        NotifyKind::ResetsSoon,
        NotifyKind::Restored,
    ];

    /// The name stored and sent (`approaching`, `exhausted`, `resets_soon`, `restored`).
    pub const fn name(self) -> &'static str {
        match self {
            NotifyKind::Approaching => "approaching",
            NotifyKind::Exhausted => "exhausted",
            NotifyKind::ResetsSoon => "resets_soon",
            NotifyKind::Restored => "restored",
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<NotifyKind> {
        NotifyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The notice an event leads to, if any: approaching, exhausted and restored events do;
    /// "resets soon" comes from a scheduler, never from an event.
    pub fn of_event(kind: EventKind) -> Option<NotifyKind> {
        match kind {
            EventKind::Approaching => Some(NotifyKind::Approaching),
            EventKind::Exhausted => Some(NotifyKind::Exhausted),
            EventKind::Restored => Some(NotifyKind::Restored),
            _ => None,
        }
    }
}

impl fmt::Display for NotifyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The notification settings as written in a file (`[notify]`), before validation by
/// [`NotifyRules::from_config`].
///
/// ```
/// use limiter_core::notify::{NotifyConfig, NotifyRules};
///
/// let config: NotifyConfig = toml::from_str("policies = [\"plan_daily\"]\nthresholds = [50, 90]")?;
/// let rules = NotifyRules::from_config(&config)?;
/// assert_eq!(rules.thresholds(), [50, 90]);
/// assert!(!rules.notifies("plan_sustained"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// The policies whose limits notify, by name (`plan_daily`, `plan_sustained`, ...; `scope`
    /// covers every `scope.<name>`). Default: `plan_daily` and `plan_sustained`.
    pub policies: Vec<String>,
    /// The shares of a limit, in percent (1 to 100), whose crossing sends "approaching".
    /// Default: `[80]`.
    pub thresholds: Vec<u64>,
    /// How long before the reset of an exhausted limit "resets soon" is sent, in minutes (1 to
    /// 10080, a week). Default: 60.
    pub resets_soon_minutes: u64,
    /// The texts (`[notify.messages]`).
    pub messages: MessagesConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            policies: vec![
                PolicyKind::PlanDaily.name().to_owned(),
                PolicyKind::PlanSustained.name().to_owned(),
            ],
            thresholds: vec![80],
            resets_soon_minutes: DEFAULT_LEAD_MINUTES,
            messages: MessagesConfig::default(),
        }
    }
}

/// The default lead time of "resets soon": one hour.
const DEFAULT_LEAD_MINUTES: u64 = 60;
/// The longest lead time of "resets soon": one week.
const MAX_LEAD_MINUTES: u64 = 7 * 24 * 60;
const MICROS_PER_MINUTE: Micros = 60_000_000;

/// Which limits notify and at which shares: validated, pure rules.
///
/// By default the plan's daily and sustained limits notify (not its bursts, which refill in
/// seconds and would only make noise), at 80%.
///
/// ```
/// use limiter_core::notify::NotifyRules;
/// use limiter_core::policy::PolicyKind;
///
/// let rules = NotifyRules::new([PolicyKind::PlanDaily], [90, 50, 90])?;
/// assert_eq!(rules.thresholds(), [50, 90]);
/// // A charge of 10 taking a limit of 100 from 45 to 55 used crosses 50%.
/// assert_eq!(rules.crossed(100, 45, 10).collect::<Vec<_>>(), [50]);
///
/// let err = NotifyRules::new([PolicyKind::PlanDaily], [0]).unwrap_err();
/// assert!(err.to_string().contains("notify.thresholds[0]"));
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRules {
    policies: Vec<PolicyKind>,
    thresholds: Vec<u8>,
    lead: Micros,
}

impl Default for NotifyRules {
    fn default() -> Self {
        NotifyRules {
            policies: vec![PolicyKind::PlanSustained, PolicyKind::PlanDaily],
            thresholds: vec![80],
            lead: DEFAULT_LEAD_MINUTES * MICROS_PER_MINUTE,
        }
    }
}

impl NotifyRules {
    /// Rules for `policies` at `thresholds` (percent, each 1 to 100; sorted, duplicates
    /// dropped). An error names the offending threshold as `notify.thresholds[i]`.
    pub fn new(
        policies: impl IntoIterator<Item = PolicyKind>,
        thresholds: impl IntoIterator<Item = u8>,
    ) -> Result<NotifyRules, Error> {
        let thresholds: Vec<u64> = thresholds.into_iter().map(u64::from).collect();
        let mut policies: Vec<PolicyKind> = policies.into_iter().collect();
        policies.sort();
        policies.dedup();
        Ok(NotifyRules {
            policies,
            thresholds: check_thresholds(&thresholds)?,
            lead: DEFAULT_LEAD_MINUTES * MICROS_PER_MINUTE,
        })
    }

    /// Validates `config`: every policy a known name, every threshold 1 to 100. Errors name
    /// the path (`notify.policies[1]`, `notify.thresholds[0]`) and what is expected.
    pub fn from_config(config: &NotifyConfig) -> Result<NotifyRules, Error> {
        let mut policies = Vec::with_capacity(config.policies.len());
        for (i, name) in config.policies.iter().enumerate() {
            let kind = PolicyKind::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = PolicyKind::ALL.iter().map(|k| k.name()).collect();
                Error::config(
                    format!("notify.policies[{i}]"),
                    format!(
                        "unknown policy {name:?}; expected one of: {}",
                        names.join(", ")
                    ),
                )
            })?;
            policies.push(kind);
        }
        policies.sort();
        policies.dedup();
        let minutes = config.resets_soon_minutes;
        if !(1..=MAX_LEAD_MINUTES).contains(&minutes) {
            return Err(Error::config(
                "notify.resets_soon_minutes",
                format!("{minutes} is out of range; expected 1 to {MAX_LEAD_MINUTES} minutes"),
            ));
        }
        Ok(NotifyRules {
            policies,
            thresholds: check_thresholds(&config.thresholds)?,
            lead: minutes * MICROS_PER_MINUTE,
        })
    }

    /// The same rules with "resets soon" sent `lead` before the reset of an exhausted limit.
    #[must_use]
    pub fn with_resets_soon_lead(mut self, lead: std::time::Duration) -> NotifyRules {
        self.lead = Micros::try_from(lead.as_micros()).unwrap_or(Micros::MAX);
        self
    }

    /// How long before the reset of an exhausted limit "resets soon" is due, in microseconds
    /// (one hour by default).
    pub fn resets_soon_lead(&self) -> Micros {
        self.lead
    }

    /// The policies that notify.
    pub fn policies(&self) -> &[PolicyKind] {
        &self.policies
    }

    /// The threshold shares in percent, ascending.
    pub fn thresholds(&self) -> &[u8] {
        &self.thresholds
    }

    /// Whether the limits of the policy named `policy` (as checks and events name it:
    /// `plan_daily`, `scope.auth`) notify.
    pub fn notifies(&self, policy: &str) -> bool {
        let kind = PolicyKind::from_name(policy)
            .or_else(|| policy.starts_with("scope.").then_some(PolicyKind::Scope));
        kind.is_some_and(|kind| self.policies.contains(&kind))
    }

    /// The thresholds that one charge of `cost` crossed on a limit of `limit` that it left with
    /// `remaining`: those with usage below the share before the charge and at or above it
    /// after. Exact, as the store applied the charge atomically, so one request per window
    /// crosses each threshold.
    pub fn crossed(&self, limit: u64, remaining: u64, cost: u64) -> impl Iterator<Item = u8> + '_ {
        let used_after = limit.saturating_sub(remaining);
        let used_before = used_after.saturating_sub(cost);
        self.thresholds.iter().copied().filter(move |&percent| {
            // u128: a limit and a cost may be anything a caller passes.
            let share = u128::from(percent) * u128::from(limit);
            u128::from(used_before) * 100 < share && u128::from(used_after) * 100 >= share
        })
    }
}

fn check_thresholds(thresholds: &[u64]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(thresholds.len());
    for (i, &t) in thresholds.iter().enumerate() {
        match u8::try_from(t) {
            Ok(percent @ 1..=100) => out.push(percent),
            _ => {
                return Err(Error::config(
                    format!("notify.thresholds[{i}]"),
                    format!("{t} is not a share of the limit; expected a percentage from 1 to 100"),
                ));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The identity of one notification: at most one notice per (subject, policy, kind,
/// threshold, window start, limit).
///
/// The limit is part of it so that a raised limit (a plan upgrade) re-arms the thresholds of
/// the same window. [`id`](Self::id) is a stable string for it (the `webhook-id` of a webhook,
/// the unique key of an outbox): the same identity gives the same id in every process and
/// version.
///
/// ```
/// use limiter_core::notify::{NotificationId, NotifyKind};
///
/// let id = NotificationId::new("tenant=acme", "plan_daily", NotifyKind::Approaching, Some(80), 0, 5000);
/// assert!(id.id().starts_with("ntf_"));
/// assert_eq!(id.id().len(), 4 + 32);
/// let upgraded = NotificationId { limit: 20000, ..id.clone() };
/// assert_ne!(id.id(), upgraded.id());
/// assert_eq!(id.to_string(), "approaching 80% of plan_daily for tenant=acme, window 0, limit 5000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NotificationId {
    /// Whom the limit counts: the subject of its key (`tenant=acme`, `user=u-1`).
    pub subject: String,
    /// The policy, as checks name it (`plan_daily`).
    pub policy: String,
    /// What the notice says.
    pub kind: NotifyKind,
    /// The threshold share in percent, for [`NotifyKind::Approaching`]; `None` otherwise.
    pub threshold: Option<u8>,
    /// The start of the window the notice is about (microseconds since the Unix epoch).
    pub window_start: Micros,
    /// The limit of that window.
    pub limit: u64,
}

impl NotificationId {
    /// The identity of a notice.
    pub fn new(
        subject: impl Into<String>,
        policy: impl Into<String>,
        kind: NotifyKind,
        threshold: Option<u8>,
        window_start: Micros,
        limit: u64,
    ) -> NotificationId {
        NotificationId {
            subject: subject.into(),
            policy: policy.into(),
            kind,
            threshold,
            window_start,
            limit,
        }
    }

    /// The stable id: `ntf_` and 32 hex digits of the SHA-256 of the fields, each length
    /// prefixed so that no two identities share an encoding. Safe in an HTTP header whatever
    /// the subject holds.
    pub fn id(&self) -> String {
        let mut hasher = Sha256::new();
        let threshold = self.threshold.map_or(String::new(), |t| t.to_string());
        for field in [
            "v1",
            self.subject.as_str(),
            self.policy.as_str(),
            self.kind.name(),
            threshold.as_str(),
            &self.window_start.to_string(),
            &self.limit.to_string(),
        ] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        let digest = hasher.finalize();
        let mut id = String::with_capacity(36);
        id.push_str("ntf_");
        for byte in &digest[..16] {
            // Writing to a String cannot fail.
            let _ = write!(id, "{byte:02x}");
        }
        id
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        if let Some(t) = self.threshold {
            write!(f, " {t}%")?;
        }
        write!(
            f,
            " of {} for {}, window {}, limit {}",
            self.policy, self.subject, self.window_start, self.limit
        )
    }
}
