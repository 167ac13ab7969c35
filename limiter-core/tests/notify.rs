//! Notification rules and messages: the report's four messages with the default policies,
//! custom templates, and configuration errors.

use std::time::Duration;

use limiter_core::notify::{
    MessageVars, Messages, MessagesConfig, NotificationId, NotifyConfig, NotifyKind, NotifyRules,
};
use limiter_core::policy::{Config, PolicyKind};
use limiter_core::{Error, PolicySet};

fn starter_daily(policies: &PolicySet) -> MessageVars {
    let starter = policies.plan("starter").expect("starter is a default plan");
    MessageVars::for_plan(policies, starter, PolicyKind::PlanDaily).expect("a plan policy")
}

#[test]
fn renders_the_four_messages_of_the_report_with_the_default_policies() {
    let policies = PolicySet::default();
    let messages = Messages::default();
    let vars = starter_daily(&policies)
        .percent(80)
        .resets_in(Duration::from_secs(3600));

    assert_eq!(
        messages.render(NotifyKind::Approaching, &vars).as_deref(),
        Some("You're at 80% of your daily limit")
    );
    assert_eq!(
        messages.render(NotifyKind::ResetsSoon, &vars).as_deref(),
        Some("Your rate limit resets in 1 hour")
    );
    assert_eq!(
        messages.upgrade_hint(&vars).as_deref(),
        Some("Upgrade to Professional for 20000/day; you are on Starter at 5000/day")
    );
    assert_eq!(
        messages.render(NotifyKind::Restored, &vars).as_deref(),
        Some("Your API access has been restored")
    );
    assert_eq!(
        messages.render(NotifyKind::Exhausted, &vars).as_deref(),
        Some("You've used all of your daily limit of 5000/day")
    );
}

#[test]
fn the_report_s_own_upgrade_wording_is_a_template_away() {
    let policies = PolicySet::default();
    let config = MessagesConfig {
        upgrade: "Upgrade to {next_plan} for higher limits".into(),
        ..MessagesConfig::default()
    };
    let messages = Messages::from_config(&config).unwrap();
    assert_eq!(
        messages.upgrade_hint(&starter_daily(&policies)).as_deref(),
        Some("Upgrade to Professional for higher limits")
    );
}

#[test]
fn the_upgrade_hint_follows_the_configured_plan_order_and_policy() {
    let policies = PolicySet::default();
    let messages = Messages::default();
    let free = policies.plan("free").unwrap();
    let sustained = MessageVars::for_plan(&policies, free, PolicyKind::PlanSustained).unwrap();
    assert_eq!(
        messages.upgrade_hint(&sustained).as_deref(),
        Some("Upgrade to Starter for 500/hour; you are on Free at 100/hour")
    );
    // The top plan has no next plan: no hint.
    let enterprise = policies.plan("enterprise").unwrap();
    let top = MessageVars::for_plan(&policies, enterprise, PolicyKind::PlanDaily).unwrap();
    assert_eq!(messages.upgrade_hint(&top), None);
    // Not a plan policy.
    assert!(MessageVars::for_plan(&policies, free, PolicyKind::IpBurst).is_none());

    // A configured plan takes its place in the order, and its name is capitalised.
    let config = Config::from_toml_str(
        "[plans.gold]\nsustained = \"5000/hour\"\nburst = \"200/minute\"\ndaily = \"50000/day\"",
    )
    .unwrap();
    let policies = PolicySet::from_config(&config).unwrap();
    let pro = policies.plan("professional").unwrap();
    let vars = MessageVars::for_plan(&policies, pro, PolicyKind::PlanDaily).unwrap();
    assert_eq!(
        messages.upgrade_hint(&vars).as_deref(),
        Some("Upgrade to Gold for 50000/day; you are on Professional at 20000/day")
    );
}

#[test]
fn custom_templates_use_every_placeholder() {
    let config = MessagesConfig {
        approaching: "{plan}: {percent}% of {limit} ({period}), resets in {resets_in}; \
                      {next_plan} has {next_limit} {{braces}}"
            .into(),
        restored: "Back in business".into(),
        ..MessagesConfig::default()
    };
    let messages = Messages::from_config(&config).unwrap();
    let policies = PolicySet::default();
    let vars = starter_daily(&policies)
        .percent(90)
        .resets_in(Duration::from_secs(2 * 3600 + 15 * 60));
    assert_eq!(
        messages.render(NotifyKind::Approaching, &vars).as_deref(),
        Some(
            "Starter: 90% of 5000/day (daily), resets in 2 hours 15 minutes; \
             Professional has 20000/day {braces}"
        )
    );
    assert_eq!(
        messages.render(NotifyKind::Restored, &vars).as_deref(),
        Some("Back in business")
    );
    // A placeholder without a value renders nothing rather than a broken sentence.
    let bare = MessageVars::new("100/5m".parse().unwrap());
    assert_eq!(messages.render(NotifyKind::Approaching, &bare), None);
    let period_only = Messages::from_config(&MessagesConfig {
        exhausted: "{period} limit of {limit} used".into(),
        ..MessagesConfig::default()
    })
    .unwrap();
    assert_eq!(
        period_only.render(NotifyKind::Exhausted, &bare).as_deref(),
        Some("5-minute limit of 100/5m used")
    );
}

#[test]
fn unknown_placeholders_name_the_template_and_the_placeholder() {
    let config = MessagesConfig {
        upgrade: "Upgrade to {next_plan} for {next_limt}".into(),
        ..MessagesConfig::default()
    };
    let err = Messages::from_config(&config).unwrap_err();
    let Error::InvalidConfig { path, message } = &err else {
        panic!("expected InvalidConfig, got {err:?}");
    };
    assert_eq!(path, "notify.messages.upgrade");
    assert!(message.starts_with("unknown placeholder {next_limt}; expected one of: {percent}"));

    for (text, expected) in [
        ("{percent", "unclosed \"{\""),
        ("100}%", "unmatched \"}\""),
        ("{}", "unknown placeholder {}"),
    ] {
        let config = MessagesConfig {
            resets_soon: text.into(),
            ..MessagesConfig::default()
        };
        let err = Messages::from_config(&config).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid configuration at notify.messages.resets_soon: "),
            "{err}"
        );
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn messages_read_from_toml_and_reject_unknown_templates() {
    let config: MessagesConfig = toml::from_str("resets_soon = \"Back in {resets_in}\"").unwrap();
    assert_eq!(config.restored, MessagesConfig::default().restored);
    let messages = Messages::from_config(&config).unwrap();
    let vars = MessageVars::default().resets_in(Duration::from_secs(30));
    assert_eq!(
        messages.render(NotifyKind::ResetsSoon, &vars).as_deref(),
        Some("Back in 30 seconds")
    );
    assert!(toml::from_str::<MessagesConfig>("restord = \"x\"").is_err());
}

#[test]
fn default_rules_notify_daily_and_sustained_plan_limits_at_80_percent() {
    let rules = NotifyRules::default();
    assert_eq!(
        rules,
        NotifyRules::from_config(&NotifyConfig::default()).unwrap()
    );
    assert_eq!(rules.thresholds(), [80]);
    assert!(rules.notifies("plan_daily"));
    assert!(rules.notifies("plan_sustained"));
    for other in [
        "plan_burst",
        "role",
        "scope.auth",
        "anon",
        "ip_burst",
        "nope",
    ] {
        assert!(!rules.notifies(other), "{other}");
    }
    let scoped = NotifyRules::new([PolicyKind::Scope], [80]).unwrap();
    assert!(scoped.notifies("scope.auth"));
}

#[test]
fn thresholds_are_crossed_once_each() {
    let rules = NotifyRules::new([PolicyKind::PlanDaily], [80, 50, 100]).unwrap();
    assert_eq!(rules.thresholds(), [50, 80, 100]);
    // One unit at a time over a limit of 10: each threshold crossed by exactly one charge.
    let mut crossed = Vec::new();
    for used in 1..=10u64 {
        crossed.extend(rules.crossed(10, 10 - used, 1).map(|t| (used, t)));
    }
    assert_eq!(crossed, [(5, 50), (8, 80), (10, 100)]);
    // One large charge crosses several.
    assert_eq!(rules.crossed(10, 0, 10).collect::<Vec<_>>(), [50, 80, 100]);
    // Nothing crossed by a charge that stays below, or that starts above.
    assert_eq!(rules.crossed(10, 8, 1).count(), 0);
    assert_eq!(rules.crossed(10, 1, 1).count(), 0);
    // Huge numbers do not overflow.
    assert_eq!(rules.crossed(u64::MAX, 0, u64::MAX).count(), 3);
}

#[test]
fn bad_rules_name_the_setting_and_what_is_expected() {
    for (config, path, expected) in [
        (
            "thresholds = [80, 0]",
            "notify.thresholds[1]",
            "0 is not a share of the limit; expected a percentage from 1 to 100",
        ),
        (
            "thresholds = [101]",
            "notify.thresholds[0]",
            "101 is not a share",
        ),
        (
            "policies = [\"plan_daily\", \"plan_dialy\"]",
            "notify.policies[1]",
            "unknown policy \"plan_dialy\"; expected one of: plan_sustained, plan_burst",
        ),
    ] {
        let config: NotifyConfig = toml::from_str(config).unwrap();
        let err = NotifyRules::from_config(&config).unwrap_err();
        let Error::InvalidConfig { path: at, message } = &err else {
            panic!("expected InvalidConfig, got {err:?}");
        };
        assert_eq!(at, path);
        assert!(message.starts_with(expected), "{message}");
    }
    assert!(toml::from_str::<NotifyConfig>("threshold = [80]").is_err());
    // An empty list of thresholds is allowed: exhausted notices only.
    let rules = NotifyRules::new([PolicyKind::PlanDaily], []).unwrap();
    assert_eq!(rules.crossed(10, 0, 10).count(), 0);
}

#[test]
fn notification_ids_are_stable_and_distinct_per_identity() {
    let base = NotificationId::new(
        "tenant=acme",
        "plan_daily",
        NotifyKind::Approaching,
        Some(80),
        1_764_547_200_000_000,
        5000,
    );
    // Pinned: the id must not change across processes, versions or platforms.
    let pinned = base.id();
    assert_eq!(pinned, "ntf_5f074802c7174c9e8a046df8553223ca");
    assert_eq!(pinned.len(), 36);
    assert!(pinned.starts_with("ntf_"));
    assert!(pinned[4..].bytes().all(|b| b.is_ascii_hexdigit()));

    let variants = [
        NotificationId {
            subject: "tenant=acme2".into(),
            ..base.clone()
        },
        NotificationId {
            policy: "plan_sustained".into(),
            ..base.clone()
        },
        NotificationId {
            kind: NotifyKind::Exhausted,
            threshold: None,
            ..base.clone()
        },
        NotificationId {
            threshold: Some(90),
            ..base.clone()
        },
        NotificationId {
            window_start: base.window_start + 86_400_000_000,
            ..base.clone()
        },
        NotificationId {
            limit: 20000,
            ..base.clone()
        },
        // Field boundaries are part of the encoding.
        NotificationId {
            subject: "tenant=acmeplan_daily".into(),
            policy: String::new(),
            ..base.clone()
        },
    ];
    let mut ids: Vec<String> = variants.iter().map(NotificationId::id).collect();
    ids.push(pinned);
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count);
}

#[test]
fn kinds_follow_the_events() {
    use limiter_core::event::EventKind;
    for kind in NotifyKind::ALL {
        assert_eq!(NotifyKind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(
        NotifyKind::of_event(EventKind::Approaching),
        Some(NotifyKind::Approaching)
    );
    assert_eq!(
        NotifyKind::of_event(EventKind::Exhausted),
        Some(NotifyKind::Exhausted)
    );
    assert_eq!(
        NotifyKind::of_event(EventKind::Restored),
        Some(NotifyKind::Restored)
    );
    assert_eq!(NotifyKind::of_event(EventKind::Denied), None);
}

mod plans {
    //! What a store writes for one charge: the notices `NoticePlan` derives from statuses.

    use std::sync::Arc;
    use std::time::Duration;

    use limiter_core::notify::{Notice, NoticePlan, NotifyKind, NotifyRules};
    use limiter_core::policy::PolicyKind;
    use limiter_core::{
        Calendar, Check, Key, Limit, LimitStatus, Micros, Rate, Request, State, SubjectKind,
    };

    const HOUR: Micros = 3_600_000_000;

    fn rules(thresholds: &[u8]) -> Arc<NotifyRules> {
        let rules = NotifyRules::new(
            [PolicyKind::PlanDaily, PolicyKind::PlanSustained],
            thresholds.iter().copied(),
        )
        .expect("valid rules");
        Arc::new(rules)
    }

    fn check(policy: &str, limit: Limit, cost: u64) -> Check {
        let key = Key::new("test", policy, SubjectKind::Tenant, "acme");
        Check::new(policy, key, limit, cost)
    }

    fn daily(limit: u64, zone: &str) -> Limit {
        let rate: Rate = format!("{limit}/day").parse().expect("a rate");
        Limit::calendar(rate, Calendar::new(zone).expect("a zone")).expect("a limit")
    }

    /// Charges `check` `times` times from a fresh state at `at`, and returns the notices
    /// each admitted charge crossed.
    fn charge(plan: &NoticePlan, check: &Check, times: u64, at: Micros) -> Vec<Notice> {
        let mut state = State::Fresh;
        let mut out = Vec::new();
        for _ in 0..times {
            let status = check.limit.check(&state, at, check.cost);
            if status.is_allowed() {
                check.limit.apply(&mut state, at, check.cost);
                plan.crossed(std::slice::from_ref(check), &[status], at, &mut out);
            }
        }
        out
    }

    fn kinds(notices: &[Notice]) -> Vec<(NotifyKind, Option<u8>)> {
        notices
            .iter()
            .map(|n| (n.kind(), n.identity.threshold))
            .collect()
    }

    #[test]
    fn a_day_crosses_each_threshold_once_then_exhausts_with_its_follow_ups() {
        let request = Request::new().tenant("acme");
        let plan = NoticePlan::new(rules(&[50, 80]), &request, Some("starter"));
        let check = check("plan_daily", daily(10, "UTC"), 1);
        let notices = charge(&plan, &check, 15, 9 * HOUR);
        assert_eq!(
            kinds(&notices),
            [
                (NotifyKind::Approaching, Some(50)),
                (NotifyKind::Approaching, Some(80)),
                (NotifyKind::ResetsSoon, None),
                (NotifyKind::Restored, None),
                (NotifyKind::Exhausted, None),
            ]
        );
        let by_kind = |kind| notices.iter().find(|n| n.kind() == kind).expect("present");
        assert_eq!(by_kind(NotifyKind::Exhausted).used, 10);
        assert_eq!(by_kind(NotifyKind::Exhausted).reset_at, 24 * HOUR);
        assert_eq!(by_kind(NotifyKind::ResetsSoon).due, 23 * HOUR);
        assert_eq!(by_kind(NotifyKind::Restored).due, 24 * HOUR);
        // The plan defaulted: the request named a tenant but no plan.
        assert!(notices.iter().all(|n| n.plan.as_deref() == Some("starter")));
        let ids: std::collections::HashSet<String> = notices.iter().map(Notice::id).collect();
        assert_eq!(ids.len(), notices.len(), "every notice has its own id");
    }

    #[test]
    fn a_charge_that_jumps_several_thresholds_crosses_them_all() {
        let plan = NoticePlan::new(rules(&[50, 80]), &Request::new().tenant("acme"), None);
        let check = check("plan_daily", daily(10, "UTC"), 10);
        let notices = charge(&plan, &check, 1, 0);
        assert_eq!(
            kinds(&notices),
            [
                (NotifyKind::Approaching, Some(50)),
                (NotifyKind::Approaching, Some(80)),
                (NotifyKind::ResetsSoon, None),
                (NotifyKind::Restored, None),
                (NotifyKind::Exhausted, None),
            ]
        );
    }

    #[test]
    fn limits_that_do_not_notify_and_denials_cross_nothing() {
        let plan = NoticePlan::new(rules(&[80]), &Request::new().tenant("acme"), None);
        let burst = check(
            "plan_burst",
            Limit::gcra("10/minute".parse().expect("rate")),
            1,
        );
        assert!(charge(&plan, &burst, 20, 0).is_empty());
        let daily = check("plan_daily", daily(10, "UTC"), 1);
        let denied = LimitStatus {
            remaining: 0,
            ..daily.limit.check(&State::Fresh, 0, 11)
        };
        let mut out = Vec::new();
        plan.crossed(std::slice::from_ref(&daily), &[denied], 0, &mut out);
        assert!(out.is_empty(), "a denial crosses nothing: {out:?}");
    }

    #[test]
    fn reached_proposes_what_a_denied_status_shows_is_owed() {
        let plan = NoticePlan::new(rules(&[50, 80]), &Request::new().tenant("acme"), None);
        let check = check("plan_daily", daily(10, "UTC"), 1);
        let mut state = State::Fresh;
        check.limit.apply(&mut state, HOUR, 10);
        let denied = check.limit.check(&state, 2 * HOUR, 1);
        assert!(!denied.is_allowed());
        let mut reached = Vec::new();
        plan.reached(
            std::slice::from_ref(&check),
            &[denied],
            2 * HOUR,
            &mut reached,
        );
        // The same ids as the crossing at 1h would have written: a re-proposal dedups.
        let whole_day = Check {
            cost: 10,
            ..check.clone()
        };
        let crossed = charge(&plan, &whole_day, 1, HOUR);
        let ids = |n: &[Notice]| {
            let mut ids: Vec<String> = n.iter().map(Notice::id).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&reached), ids(&crossed));
    }

    #[test]
    fn a_raised_limit_re_arms_the_thresholds_of_the_same_window() {
        let plan = NoticePlan::new(rules(&[80]), &Request::new().tenant("acme"), None);
        let (starter, professional) = (
            check("plan_daily", daily(10, "UTC"), 1),
            check("plan_daily", daily(40, "UTC"), 1),
        );
        // The same key and day: the upgrade keeps the day's usage and raises the limit.
        assert_eq!(starter.key, professional.key);
        let mut state = State::Fresh;
        let mut notices = Vec::new();
        for check in [&starter, &professional] {
            loop {
                let status = check.limit.check(&state, HOUR, 1);
                if !status.is_allowed() {
                    break;
                }
                check.limit.apply(&mut state, HOUR, 1);
                plan.crossed(std::slice::from_ref(check), &[status], HOUR, &mut notices);
            }
        }
        let approaching: Vec<&Notice> = notices
            .iter()
            .filter(|n| n.kind() == NotifyKind::Approaching)
            .collect();
        let limits: Vec<u64> = approaching.iter().map(|n| n.identity.limit).collect();
        assert_eq!(limits, [10, 40], "one per limit");
        assert_eq!(approaching[1].used, 32);
        assert_ne!(approaching[0].id(), approaching[1].id());
        assert_eq!(
            approaching[0].identity.window_start,
            approaching[1].identity.window_start
        );
    }

    #[test]
    fn a_lead_longer_than_what_is_left_of_the_window_sends_no_resets_soon() {
        let rules = NotifyRules::new([PolicyKind::PlanDaily], [80])
            .expect("valid")
            .with_resets_soon_lead(Duration::from_secs(3 * 3600));
        let plan = NoticePlan::new(Arc::new(rules), &Request::new().tenant("acme"), None);
        let check = check("plan_daily", daily(10, "UTC"), 10);
        let late = charge(&plan, &check, 1, 22 * HOUR);
        assert!(late.iter().all(|n| n.kind() != NotifyKind::ResetsSoon));
        assert!(late.iter().any(|n| n.kind() == NotifyKind::Restored));
        let early = charge(&plan, &check, 1, 20 * HOUR);
        let soon = early.iter().find(|n| n.kind() == NotifyKind::ResetsSoon);
        assert_eq!(soon.map(|n| n.due), Some(21 * HOUR));
    }

    #[test]
    fn resets_soon_is_an_hour_before_local_midnight_across_dst_days() {
        let plan = NoticePlan::new(rules(&[80]), &Request::new().tenant("acme"), None);
        let check = check("plan_daily", daily(10, "America/New_York"), 10);
        // (local noon of the day in UTC, local midnight that ends it in UTC)
        let days: [(&str, &str, &str); 3] = [
            // 2026-03-08: clocks spring forward, a 23-hour day (EST until 2:00, then EDT).
            (
                "2026-03-08T17:00:00Z",
                "2026-03-09T04:00:00Z",
                "2026-03-09T03:00:00Z",
            ),
            // 2026-11-01: clocks fall back, a 25-hour day (EDT until 2:00, then EST).
            (
                "2026-11-01T16:00:00Z",
                "2026-11-02T05:00:00Z",
                "2026-11-02T04:00:00Z",
            ),
            // An ordinary day for comparison.
            (
                "2026-11-03T17:00:00Z",
                "2026-11-04T05:00:00Z",
                "2026-11-04T04:00:00Z",
            ),
        ];
        for (noon, midnight, soon) in days {
            let micros = |s: &str| -> Micros {
                let ts: jiff::Timestamp = s.parse().expect("a timestamp");
                Micros::try_from(ts.as_microsecond()).expect("after 1970")
            };
            let notices = charge(&plan, &check, 1, micros(noon));
            let due = |kind| {
                notices
                    .iter()
                    .find(|n| n.kind() == kind)
                    .map(|n| n.due)
                    .expect("present")
            };
            assert_eq!(due(NotifyKind::ResetsSoon), micros(soon), "{noon}");
            assert_eq!(due(NotifyKind::Restored), micros(midnight), "{noon}");
        }
    }
}

#[test]
fn the_notify_table_of_a_config_file_reaches_the_policy_set() {
    let config = Config::from_toml_str(
        "[notify]\npolicies = [\"plan_daily\"]\nthresholds = [90, 50]\nresets_soon_minutes = 30\n\
         [notify.messages]\nrestored = \"Back in business\"\n",
    )
    .expect("a valid file");
    let policies = PolicySet::from_config(&config).expect("valid");
    let rules = policies.notify_rules();
    assert_eq!(rules.thresholds(), [50, 90]);
    assert!(!rules.notifies("plan_sustained"));
    assert_eq!(rules.resets_soon_lead(), 30 * 60 * 1_000_000);
    let vars = MessageVars::new("5/day".parse().expect("a rate"));
    assert_eq!(
        policies
            .messages()
            .render(NotifyKind::Restored, &vars)
            .as_deref(),
        Some("Back in business")
    );
    // The defaults, without a [notify] table.
    let defaults = PolicySet::default();
    assert_eq!(defaults.notify_rules(), &NotifyRules::default());
}

#[test]
fn a_bad_notify_table_names_the_setting() {
    for (text, path, expected) in [
        (
            "[notify]\nresets_soon_minutes = 0",
            "notify.resets_soon_minutes",
            "expected 1 to 10080 minutes",
        ),
        (
            "[notify]\nthresholds = [101]",
            "notify.thresholds[0]",
            "expected a percentage from 1 to 100",
        ),
        (
            "[notify.messages]\nrestored = \"{nope}\"",
            "notify.messages.restored",
            "nope",
        ),
        ("[notify]\nlead = 5", "notify", "unknown field `lead`"),
    ] {
        let err = Config::from_toml_str(text).expect_err(text).to_string();
        assert!(err.contains(path), "{text}: {err}");
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn a_limiter_notifies_only_through_a_store_that_keeps_an_outbox() {
    let builder =
        limiter_core::Limiter::builder(PolicySet::default(), limiter_testkit::ModelStore::new());
    let err = builder
        .notify(NotifyRules::default())
        .expect_err("the model store keeps no outbox");
    let message = err.to_string();
    assert!(message.contains("keeps no outbox"), "{message}");
    assert!(message.contains("notify"), "{message}");
}
