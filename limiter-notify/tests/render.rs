//! The renderer gives the report's four messages, with the upgrade hint where it belongs, for
//! the notices the core's notice plan writes.

use std::sync::Arc;

use limiter_core::notify::{Notice, NoticePlan, NotifyKind, NotifyRules};
use limiter_core::policy::PolicyKind;
use limiter_core::{Check, Config, LimitStatus, PolicySet, Request, Resolution};
use limiter_notify::{Rendered, Renderer};
use limiter_testkit::fixtures::{BASE_NOW, HOUR};

/// The notices of one charge on `plan`'s limit of `policy` that left `remaining` of `limit`.
fn notices(
    policies: &PolicySet,
    plan: &str,
    policy: PolicyKind,
    remaining: u64,
    cost: u64,
) -> Vec<Notice> {
    let request = Request::new().tenant("acme").plan(plan).user("u-1");
    let Resolution::Limits(checks) = policies.resolve(&request).unwrap() else {
        panic!("no limits");
    };
    let check: Check = checks
        .iter()
        .find(|c| &*c.policy == policy.name())
        .unwrap()
        .clone();
    let check = Check { cost, ..check };
    let limit = check.limit.rate().limit();
    let rules = Arc::new(NotifyRules::new([policy], [80]).unwrap());
    let plan = NoticePlan::new(rules, &request, None);
    let mut out = Vec::new();
    // Six hours into the day: the daily quota resets 18 hours later.
    let at = BASE_NOW + 6 * HOUR;
    let status = LimitStatus::allowed(limit, remaining, 18 * HOUR);
    plan.crossed(&[check], &[status], at, &mut out);
    out
}

fn of(notices: &[Notice], kind: NotifyKind) -> &Notice {
    notices.iter().find(|n| n.kind() == kind).unwrap()
}

fn texts(message: &str, upgrade: Option<&str>) -> Rendered {
    Rendered::new(message, upgrade.map(str::to_owned))
}

const HINT: &str = "Upgrade to Professional for 20000/day; you are on Starter at 5000/day";

#[test]
fn the_four_messages_of_a_starter_tenants_daily_quota() {
    let policies = PolicySet::default();
    let renderer = Renderer::new(policies.clone());
    // 4000 of 5000 used after this request: 80% crossed.
    let approaching = notices(&policies, "starter", PolicyKind::PlanDaily, 1000, 1);
    assert_eq!(
        renderer.render(of(&approaching, NotifyKind::Approaching)),
        texts("You're at 80% of your daily limit", Some(HINT))
    );
    // The last unit: exhausted, with its resets-soon (an hour before midnight) and restored.
    let spent = notices(&policies, "starter", PolicyKind::PlanDaily, 0, 1);
    assert_eq!(
        renderer.render(of(&spent, NotifyKind::Exhausted)),
        texts(
            "You've used all of your daily limit of 5000/day",
            Some(HINT)
        )
    );
    assert_eq!(
        renderer.render(of(&spent, NotifyKind::ResetsSoon)),
        texts("Your rate limit resets in 1 hour", None)
    );
    assert_eq!(
        renderer.render(of(&spent, NotifyKind::Restored)),
        texts("Your API access has been restored", None)
    );
}

#[test]
fn the_hint_names_the_next_plan_of_the_same_limit_and_none_on_the_top_plan() {
    let policies = PolicySet::default();
    let renderer = Renderer::new(policies.clone());
    let hourly = notices(&policies, "free", PolicyKind::PlanSustained, 20, 1);
    assert_eq!(
        renderer.render(of(&hourly, NotifyKind::Approaching)),
        texts(
            "You're at 80% of your hourly limit",
            Some("Upgrade to Starter for 500/hour; you are on Free at 100/hour")
        )
    );
    let top = notices(&policies, "enterprise", PolicyKind::PlanDaily, 0, 1);
    assert_eq!(
        renderer.render(of(&top, NotifyKind::Exhausted)),
        texts("You've used all of your daily limit of 100000/day", None)
    );
}

#[test]
fn resets_in_counts_from_when_the_notice_is_due() {
    let policies = PolicySet::default();
    let renderer = Renderer::new(policies.clone());
    let spent = notices(&policies, "starter", PolicyKind::PlanDaily, 0, 1);
    let mut soon = of(&spent, NotifyKind::ResetsSoon).clone();
    soon.due = soon.reset_at - 45 * 60 * 1_000_000;
    assert_eq!(
        renderer.render(&soon).message,
        "Your rate limit resets in 45 minutes"
    );
}

#[test]
fn configured_texts_are_used_and_unfillable_ones_fall_back() {
    let mut config = Config::default();
    config.notify.messages.approaching = "{plan}: {percent}% of {limit} used".into();
    config.notify.messages.upgrade = "Go {next_plan} ({next_limit})".into();
    let policies = PolicySet::from_config(&config).unwrap();
    let renderer = Renderer::new(policies.clone());
    let daily = notices(&policies, "starter", PolicyKind::PlanDaily, 1000, 1);
    assert_eq!(
        renderer.render(of(&daily, NotifyKind::Approaching)),
        texts(
            "Starter: 80% of 5000/day used",
            Some("Go Professional (20000/day)")
        )
    );
    // A scope limit has no plan: `{plan}` cannot be filled, so the default text is used.
    let mut scope = of(&daily, NotifyKind::Approaching).clone();
    scope.identity.policy = "scope.export".into();
    scope.identity.limit = 10;
    scope.period = HOUR;
    scope.plan = None;
    assert_eq!(
        renderer.render(&scope),
        texts("You're at 80% of your hourly limit", None)
    );
}

#[test]
fn a_notice_of_a_limit_that_changed_since_gets_no_hint() {
    let policies = PolicySet::default();
    let renderer = Renderer::new(policies.clone());
    let spent = notices(&policies, "starter", PolicyKind::PlanDaily, 0, 1);
    let mut old = of(&spent, NotifyKind::Exhausted).clone();
    old.identity.limit = 4000;
    assert_eq!(
        renderer.render(&old),
        texts("You've used all of your daily limit of 4000/day", None)
    );
}
