//! [`Notice`]: one notification as an outbox keeps it, and [`NoticePlan`]: what turns the
//! crossings of one admitted charge into notices, inside the store's own atomic step.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{NotificationId, NotifyKind, NotifyRules};
use crate::Check;
use crate::algorithm::LimitStatus;
use crate::event::window;
use crate::request::Request;
use crate::time::Micros;

/// One notification: its identity, whom it is for, the numbers it reports and when it is due.
///
/// Its [`id`](Self::id) is unique per (subject, policy, kind, threshold, window start, limit):
/// an outbox keeps one notice per id however many instances propose it.
///
/// ```
/// use limiter_core::notify::{NotificationId, Notice, NotifyKind};
///
/// let id = NotificationId::new("t=acme", "plan_daily", NotifyKind::Exhausted, None, 0, 5000);
/// let notice = Notice::new(id, 3_600_000_000);
/// assert_eq!(notice.due, notice.at);
/// assert!(notice.id().starts_with("ntf_"));
/// let json = serde_json::to_string(&notice)?;
/// assert_eq!(serde_json::from_str::<Notice>(&json)?, notice);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notice {
    /// What the notice is about; its [`NotificationId::id`] is the notice's id.
    pub identity: NotificationId,
    /// The tenant of the request that crossed the threshold.
    pub tenant: Option<String>,
    /// The user of that request.
    pub user: Option<String>,
    /// The plan the limit belongs to, when it is a plan limit.
    pub plan: Option<String>,
    /// When the threshold was crossed (microseconds since the Unix epoch).
    pub at: Micros,
    /// Not to be delivered before this: `at` for approaching and exhausted; the lead time
    /// before the reset for "resets soon"; the reset for "restored".
    pub due: Micros,
    /// Units used in the window when the threshold was crossed.
    pub used: u64,
    /// The limit's period in microseconds.
    pub period: Micros,
    /// When the limit's budget is whole again, as seen at the crossing: the end of the local
    /// day for a daily quota.
    pub reset_at: Micros,
}

impl Notice {
    /// A notice of `identity` crossed at `at`, due at once, with nothing else known.
    pub fn new(identity: NotificationId, at: Micros) -> Notice {
        Notice {
            identity,
            tenant: None,
            user: None,
            plan: None,
            at,
            due: at,
            used: 0,
            period: 0,
            reset_at: at,
        }
    }

    /// The stable id ([`NotificationId::id`]): the `webhook-id` of a webhook, the unique key of
    /// an outbox row.
    pub fn id(&self) -> String {
        self.identity.id()
    }

    /// What the notice says.
    pub fn kind(&self) -> NotifyKind {
        self.identity.kind
    }

    /// The notice of the same limit and window, of `kind`, due at `due`.
    fn follow_up(&self, kind: NotifyKind, due: Micros) -> Notice {
        Notice {
            identity: NotificationId {
                kind,
                threshold: None,
                ..self.identity.clone()
            },
            due,
            ..self.clone()
        }
    }
}

/// What a store needs to turn the crossings of one admitted charge into notices: the rules and
/// who made the request. The engine attaches one to a [`Batch`](crate::Batch) when the limiter
/// notifies and the batch holds a limit that notifies; a store that keeps an outbox
/// ([`Store::keeps_notices`](crate::Store::keeps_notices)) writes [`NoticePlan::crossed`] in
/// the same atomic step as the charge.
///
/// ```
/// use std::sync::Arc;
/// use limiter_core::notify::{NoticePlan, NotifyKind, NotifyRules};
/// use limiter_core::{Check, Key, Limit, LimitStatus, Rate, Request, SubjectKind};
///
/// let rules = Arc::new(NotifyRules::default());
/// let plan = NoticePlan::new(rules, &Request::new().tenant("acme").plan("starter"), None);
/// let limit = Limit::gcra("100/hour".parse::<Rate>()?);
/// let check = Check::new("plan_sustained", Key::new("api", "plan_sustained", SubjectKind::Tenant, "acme"), limit, 1);
/// // This charge took usage from 79 to 80 of 100: it crossed 80%.
/// let status = LimitStatus::allowed(100, 20, 0);
/// let mut notices = Vec::new();
/// plan.crossed(&[check], &[status], 0, &mut notices);
/// assert_eq!(notices.len(), 1);
/// assert_eq!(notices[0].kind(), NotifyKind::Approaching);
/// assert_eq!(notices[0].tenant.as_deref(), Some("acme"));
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticePlan {
    rules: Arc<NotifyRules>,
    tenant: Option<String>,
    user: Option<String>,
    plan: Option<String>,
}

impl NoticePlan {
    /// The plan of `request` under `rules`; `default_plan` names the plan of a tenant's request
    /// that names none.
    pub fn new(rules: Arc<NotifyRules>, request: &Request, default_plan: Option<&str>) -> Self {
        let plan = match (&request.plan, &request.tenant) {
            (Some(plan), _) => Some(plan.clone()),
            (None, Some(_)) => default_plan.map(str::to_owned),
            (None, None) => None,
        };
        NoticePlan {
            rules,
            tenant: request.tenant.clone(),
            user: request.user.clone(),
            plan,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &NotifyRules {
        &self.rules
    }

    /// Pushes onto `out` the notices of an admitted charge of `checks` that left `statuses`
    /// (in order) at `at`: "approaching" for every threshold a notifying limit crossed, and
    /// for a limit this charge exhausted, "exhausted" with its "resets soon" (due the lead
    /// time before the reset, if that is still ahead) and "restored" (due at the reset).
    ///
    /// Exact: the store applied the charge atomically, so one charge in the whole fleet
    /// crosses each threshold of a window.
    pub fn crossed(
        &self,
        checks: &[Check],
        statuses: &[LimitStatus],
        at: Micros,
        out: &mut Vec<Notice>,
    ) {
        for (check, status) in checks.iter().zip(statuses) {
            if !status.is_allowed() || !self.rules.notifies(&check.policy) {
                continue;
            }
            for percent in self
                .rules
                .crossed(status.limit, status.remaining, check.cost)
            {
                out.push(self.notice(check, status, at, NotifyKind::Approaching, Some(percent)));
            }
            let used_before = status
                .limit
                .saturating_sub(status.remaining)
                .saturating_sub(check.cost);
            if status.remaining == 0 && used_before < status.limit {
                self.exhausted(check, status, at, out);
            }
        }
    }

    /// Pushes onto `out` the notices that `statuses` show are owed, whether or not this call
    /// crossed them: "approaching" for every threshold a notifying limit's usage has reached,
    /// and "exhausted" (with its follow-ups) for one with nothing left. Works on the statuses
    /// of any call, admitted or denied.
    ///
    /// A store that writes notices after the charge rather than with it (Redis) proposes these
    /// again, at most once per id and process, so that a notice lost to a crash between the
    /// charge and its write is written by the next decision on that limit in the window.
    pub fn reached(
        &self,
        checks: &[Check],
        statuses: &[LimitStatus],
        at: Micros,
        out: &mut Vec<Notice>,
    ) {
        for (check, status) in checks.iter().zip(statuses) {
            if !self.rules.notifies(&check.policy) {
                continue;
            }
            let used = status.limit.saturating_sub(status.remaining);
            for &percent in self.rules.thresholds() {
                let share = u128::from(percent) * u128::from(status.limit);
                if u128::from(used) * 100 >= share {
                    out.push(self.notice(
                        check,
                        status,
                        at,
                        NotifyKind::Approaching,
                        Some(percent),
                    ));
                }
            }
            if status.remaining == 0 && status.limit > 0 {
                self.exhausted(check, status, at, out);
            }
        }
    }

    fn exhausted(&self, check: &Check, status: &LimitStatus, at: Micros, out: &mut Vec<Notice>) {
        let exhausted = self.notice(check, status, at, NotifyKind::Exhausted, None);
        let reset_at = exhausted.reset_at;
        let lead = self.rules.resets_soon_lead();
        let soon = reset_at.saturating_sub(lead);
        if soon > at {
            out.push(exhausted.follow_up(NotifyKind::ResetsSoon, soon));
        }
        out.push(exhausted.follow_up(NotifyKind::Restored, reset_at));
        out.push(exhausted);
    }

    fn notice(
        &self,
        check: &Check,
        status: &LimitStatus,
        at: Micros,
        kind: NotifyKind,
        threshold: Option<u8>,
    ) -> Notice {
        let (window_start, period) = window(&check.limit, at);
        Notice {
            identity: NotificationId::new(
                check.key.hash_tag(),
                &*check.policy,
                kind,
                threshold,
                window_start,
                status.limit,
            ),
            tenant: self.tenant.clone(),
            user: self.user.clone(),
            plan: check
                .policy
                .starts_with("plan_")
                .then(|| self.plan.clone())
                .flatten(),
            at,
            due: at,
            used: status.limit.saturating_sub(status.remaining),
            period,
            reset_at: at.saturating_add(status.reset_after),
        }
    }
}
