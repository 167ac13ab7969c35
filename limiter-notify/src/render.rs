//! [`Renderer`]: the texts of a notice, from the configuration's messages and plans.

use std::sync::Arc;
use std::time::Duration;

use limiter_core::notify::{MessageVars, Messages, Notice, NotifyKind};
use limiter_core::policy::PolicyKind;
use limiter_core::time::duration;
use limiter_core::{Period, PolicySet, Rate, Unit};

/// The texts of one notice: the message of its kind and, where one applies, the upgrade hint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rendered {
    /// The text of the notice's kind: `You're at 80% of your daily limit`.
    pub message: String,
    /// `Upgrade to Professional for 20000/day; you are on Starter at 5000/day`, for
    /// approaching and exhausted notices of a plan limit when there is a next plan up.
    pub upgrade: Option<String>,
}

impl Rendered {
    /// Texts given as they are (for tests and sinks of your own).
    pub fn new(message: impl Into<String>, upgrade: Option<String>) -> Rendered {
        Rendered {
            message: message.into(),
            upgrade,
        }
    }
}

/// Turns notices into the texts of the configuration's `[notify.messages]`, with the upgrade
/// hint to the next plan up.
///
/// The placeholders take their values from the notice and the policy set:
/// `{percent}` is the threshold crossed, `{limit}` and `{period}` the limit of the notice's
/// window, `{plan}`, `{next_plan}` and `{next_limit}` come from the plans (for plan limits),
/// and `{resets_in}` is the time from when a "resets soon" notice is due to the reset.
///
/// The hint names the plan's configured limit, so it is left out when the notice's limit is
/// not the one configured now (the configuration changed since): no hint beats a wrong one.
/// A template that uses a placeholder with no value for a notice (`{plan}` on a scope limit)
/// falls back to the default text of its kind.
///
/// ```
/// use limiter_core::notify::{NotificationId, Notice, NotifyKind};
/// use limiter_core::PolicySet;
/// use limiter_notify::Renderer;
///
/// let renderer = Renderer::new(PolicySet::default());
/// let id = NotificationId::new("t=acme", "plan_daily", NotifyKind::Exhausted, None, 0, 5000);
/// let mut notice = Notice::new(id, 0);
/// notice.plan = Some("starter".into());
/// let texts = renderer.render(&notice);
/// assert_eq!(texts.message, "You've used all of your daily limit of 5000/day");
/// assert_eq!(
///     texts.upgrade.as_deref(),
///     Some("Upgrade to Professional for 20000/day; you are on Starter at 5000/day")
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Renderer {
    policies: Arc<PolicySet>,
    /// The built-in texts, for a configured template that a notice cannot fill.
    fallback: Arc<Messages>,
}

impl Renderer {
    /// A renderer of the messages and plans of `policies`.
    pub fn new(policies: impl Into<Arc<PolicySet>>) -> Renderer {
        Renderer {
            policies: policies.into(),
            fallback: Arc::new(Messages::default()),
        }
    }

    /// The policy set it renders with.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The texts of `notice`.
    pub fn render(&self, notice: &Notice) -> Rendered {
        let kind = notice.kind();
        let vars = self.vars(notice);
        let message = self
            .policies
            .messages()
            .render(kind, &vars)
            .or_else(|| self.fallback.render(kind, &vars))
            // Only a notice whose limit is no rate at all (a limit of 0) gets here.
            .unwrap_or_else(|| notice.identity.to_string());
        let upgrade = matches!(kind, NotifyKind::Approaching | NotifyKind::Exhausted)
            .then(|| self.policies.messages().upgrade_hint(&vars))
            .flatten();
        Rendered { message, upgrade }
    }

    /// The placeholders' values for `notice`.
    fn vars(&self, notice: &Notice) -> MessageVars {
        let crossed = rate_of(notice);
        let vars = self
            .plan_vars(notice, crossed)
            .or_else(|| crossed.map(MessageVars::new))
            .unwrap_or_default();
        match notice.kind() {
            NotifyKind::Approaching => match notice.identity.threshold {
                Some(percent) => vars.percent(percent),
                None => vars,
            },
            NotifyKind::ResetsSoon => vars.resets_in(resets_in(notice)),
            _ => vars,
        }
    }

    /// The values of a plan limit's notice, with its next plan, if the notice is about the
    /// limit its plan has now.
    fn plan_vars(&self, notice: &Notice, crossed: Option<Rate>) -> Option<MessageVars> {
        let policy = PolicyKind::from_name(&notice.identity.policy)?;
        let plan = self.policies.plan(notice.plan.as_deref()?)?;
        let configured = match policy {
            PolicyKind::PlanDaily => plan.daily().rate(),
            PolicyKind::PlanSustained => plan.sustained().rate(),
            PolicyKind::PlanBurst => plan.burst().rate(),
            _ => return None,
        };
        let same = |rate: Rate| {
            rate.limit() == configured.limit()
                && rate.period().micros() == configured.period().micros()
        };
        if crossed.is_some_and(|rate| !same(rate)) {
            return None;
        }
        MessageVars::for_plan(&self.policies, plan, policy)
    }
}

/// The time from when a "resets soon" notice is due to the reset it announces.
fn resets_in(notice: &Notice) -> Duration {
    duration(notice.reset_at.saturating_sub(notice.due))
}

/// The rate of the notice's window: its limit per its period, in the largest whole unit.
fn rate_of(notice: &Notice) -> Option<Rate> {
    let micros = notice.period;
    let unit = [Unit::Day, Unit::Hour, Unit::Minute, Unit::Second]
        .into_iter()
        .find(|unit| micros > 0 && micros.is_multiple_of(unit.micros()))?;
    let count = u32::try_from(micros / unit.micros()).ok()?;
    Rate::new(notice.identity.limit, Period::new(count, unit)?).ok()
}
