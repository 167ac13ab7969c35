//! Resolution of requests into bypasses and checks, under the default and configured policies.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use limiter_core::policy::{Config, PlanConfig};
use limiter_core::{
    Algorithm, Batch, BypassReason, Check, Error, Key, PolicySet, Request, Resolution, SubjectKind,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a valid address in the test")
}

fn checks(set: &PolicySet, request: &Request) -> Vec<Check> {
    match set.resolve(request).expect("resolves") {
        Resolution::Limits(checks) => checks.into(),
        other => panic!("expected limits, got {other:?}"),
    }
}

fn bypass(set: &PolicySet, request: &Request) -> BypassReason {
    match set.resolve(request).expect("resolves") {
        Resolution::Bypass(reason) => reason,
        other => panic!("not bypassed: {other:?}"),
    }
}

/// `(policy, key, rate, algorithm name, cost, shadow)` of each check, for comparisons.
fn summary(checks: &[Check]) -> Vec<(String, String, String, &'static str, u64, bool)> {
    checks
        .iter()
        .map(|c| {
            (
                c.policy.to_string(),
                c.key.to_string(),
                c.limit.rate().to_string(),
                c.limit.algorithm().name(),
                c.cost,
                c.shadow,
            )
        })
        .collect()
}

fn set_from_toml(toml: &str) -> PolicySet {
    let config = Config::from_toml_str(toml).expect("valid config");
    PolicySet::from_config(&config).expect("valid policies")
}

fn member() -> Request {
    Request::new()
        .tenant("acme")
        .user("u-1")
        .ip(ip("203.0.113.9"))
}

#[test]
fn bypasses_come_first_with_their_reason() {
    let set = set_from_toml(
        r#"
        [bypass]
        ips = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
        tenants = ["internal"]
        users = ["monitor"]
        "#,
    );
    let base = member();
    assert_eq!(bypass(&set, &base.clone().staff(true)), BypassReason::Staff);
    assert_eq!(
        bypass(&set, &base.clone().superuser(true)),
        BypassReason::Superuser
    );
    assert_eq!(
        bypass(&set, &base.clone().api_key("k-1", true)),
        BypassReason::ApiKey("k-1".into())
    );
    for addr in [
        "10.1.2.3",
        "192.0.2.7",
        "2001:db8:abcd::1",
        "::ffff:10.9.9.9",
    ] {
        let req = base.clone().ip(ip(addr));
        assert_eq!(bypass(&set, &req), BypassReason::Ip(ip(addr)), "{addr}");
    }
    assert_eq!(
        bypass(&set, &base.clone().tenant("internal")),
        BypassReason::Tenant("internal".into())
    );
    assert_eq!(
        bypass(&set, &base.clone().user("monitor")),
        BypassReason::User("monitor".into())
    );
    // Near misses are counted.
    for addr in ["11.0.0.1", "192.0.2.8", "2001:db9::1"] {
        assert!(
            !checks(&set, &base.clone().ip(ip(addr))).is_empty(),
            "{addr}"
        );
    }
    assert!(!checks(&set, &base.clone().api_key("k-2", false)).is_empty());
    assert!(!checks(&set, &base).is_empty());
}

#[test]
fn switched_off_bypasses_are_counted_like_everyone_else() {
    let set = set_from_toml("[bypass]\nstaff = false\nsuperuser = false\napi_keys = false");
    let plain = summary(&checks(&set, &member()));
    assert_eq!(plain.len(), 4);
    for req in [
        member().staff(true),
        member().superuser(true),
        member().api_key("k-1", true),
    ] {
        // The API key does not change the key: the tenant comes first.
        assert_eq!(summary(&checks(&set, &req)), plain, "{req:?}");
    }
}

#[test]
fn a_free_plan_user_gets_the_free_plan_and_the_ip_burst() {
    let set = PolicySet::default();
    let got = summary(&checks(&set, &member().cost(3)));
    let expected = [
        (
            "plan_sustained",
            "limiter:plan_sustained:{t=acme}",
            "100/hour",
            "sliding_window",
        ),
        (
            "plan_burst",
            "limiter:plan_burst:{t=acme}",
            "10/minute",
            "gcra",
        ),
        (
            "plan_daily",
            "limiter:plan_daily:{t=acme}",
            "500/day",
            "calendar",
        ),
        (
            "ip_burst",
            "limiter:ip_burst:{ip=203.0.113.9}",
            "600/minute",
            "gcra",
        ),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(p, k, r, a)| {
            (
                (*p).to_owned(),
                (*k).to_owned(),
                (*r).to_owned(),
                *a,
                3,
                false,
            )
        })
        .collect();
    assert_eq!(got, expected);
    // The daily quota resets at midnight UTC.
    let daily = &checks(&set, &member())[2];
    assert!(matches!(daily.limit.algorithm(), Algorithm::Calendar(c) if c.name() == "UTC"));
}

#[test]
fn the_named_plan_applies_and_keys_fall_back_when_there_is_no_tenant() {
    let set = PolicySet::default();
    let req = Request::new().user("u-7").plan("enterprise");
    let got = summary(&checks(&set, &req));
    let rates: Vec<_> = got.iter().map(|c| (c.1.as_str(), c.2.as_str())).collect();
    assert_eq!(
        rates,
        [
            ("limiter:plan_sustained:{u=u-7}", "10000/hour"),
            ("limiter:plan_burst:{u=u-7}", "500/minute"),
            ("limiter:plan_daily:{u=u-7}", "100000/day"),
        ]
    );
    // An API key alone is keyed by the key, not by the address it comes from.
    let req = Request::new().api_key("k-9", false).ip(ip("192.0.2.1"));
    let keys: Vec<_> = checks(&set, &req)
        .iter()
        .map(|c| c.key.to_string())
        .collect();
    assert_eq!(keys[0], "limiter:plan_sustained:{k=k-9}");
}

#[test]
fn anonymous_requests_get_anon_per_ip_and_the_ip_burst() {
    let set = PolicySet::default();
    let req = Request::new().ip(ip("198.51.100.4"));
    let got = summary(&checks(&set, &req));
    let expected = vec![
        (
            "anon".to_owned(),
            "limiter:anon:{ip=198.51.100.4}".to_owned(),
            "30/hour".to_owned(),
            "sliding_window",
            1,
            false,
        ),
        (
            "ip_burst".to_owned(),
            "limiter:ip_burst:{ip=198.51.100.4}".to_owned(),
            "600/minute".to_owned(),
            "gcra",
            1,
            false,
        ),
    ];
    assert_eq!(got, expected);
    // The anon scope of an anonymous request is the anon policy itself, not a second count.
    let scoped = summary(&checks(&set, &req.clone().scope("anon")));
    assert_eq!(scoped, expected);
    // IPv4-mapped IPv6 addresses are keyed as their IPv4 address.
    let mapped = summary(&checks(&set, &Request::new().ip(ip("::ffff:198.51.100.4"))));
    assert_eq!(mapped, expected);
}

#[test]
fn checks_are_listed_in_a_fixed_order() {
    let set = PolicySet::default();
    let names = |req: &Request| -> Vec<String> {
        checks(&set, req)
            .iter()
            .map(|c| c.policy.to_string())
            .collect()
    };
    let anonymous = Request::new().ip(ip("198.51.100.4")).scope("auth");
    assert_eq!(names(&anonymous), ["anon", "scope.auth", "ip_burst"]);
    let owner = member().role("owner").scope("export");
    assert_eq!(
        names(&owner),
        [
            "plan_sustained",
            "plan_burst",
            "plan_daily",
            "role",
            "scope.export",
            "ip_burst"
        ]
    );
}

#[test]
fn the_auth_scope_is_per_user_or_per_ip_when_anonymous() {
    let set = PolicySet::default();
    let find = |req: &Request| {
        checks(&set, req)
            .into_iter()
            .find(|c| &*c.policy == "scope.auth")
            .expect("a scope check")
    };
    let user = find(&member().scope("auth"));
    assert_eq!(user.limit.rate().to_string(), "5/minute");
    assert_eq!(user.limit.algorithm(), &Algorithm::SlidingLog);
    assert_eq!(
        user.key,
        Key::new("limiter", "scope.auth", SubjectKind::User, "u-1")
    );
    let anon = find(&Request::new().ip(ip("198.51.100.4")).scope("auth"));
    assert_eq!(anon.limit.rate().to_string(), "5/minute");
    assert_eq!(
        anon.key,
        Key::new("limiter", "scope.auth", SubjectKind::Ip, "198.51.100.4")
    );
    // The large user scope is counted by a sliding window, and only when named.
    let user_scope = find_policy(&set, &member().scope("user"), "scope.user");
    assert_eq!(user_scope.limit.algorithm(), &Algorithm::SlidingWindow);
    assert!(
        checks(&set, &member())
            .iter()
            .all(|c| !c.policy.starts_with("scope"))
    );
    // Unknown scopes are ignored.
    assert_eq!(
        summary(&checks(&set, &member().scope("reports"))),
        summary(&checks(&set, &member()))
    );
}

fn find_policy(set: &PolicySet, req: &Request, policy: &str) -> Check {
    checks(set, req)
        .into_iter()
        .find(|c| &*c.policy == policy)
        .expect("the policy applies")
}

#[test]
fn several_roles_give_one_limit_the_most_generous() {
    let set = PolicySet::default();
    for roles in [
        &["member", "owner"][..],
        &["owner", "member"][..],
        &["member", "unconfigured", "owner", "employee"][..],
    ] {
        let mut req = member();
        for r in roles {
            req = req.role(*r);
        }
        let role_checks: Vec<_> = checks(&set, &req)
            .into_iter()
            .filter(|c| &*c.policy == "role")
            .collect();
        assert_eq!(role_checks.len(), 1, "{roles:?}");
        assert_eq!(
            role_checks[0].limit.rate().to_string(),
            "5000/hour",
            "{roles:?}"
        );
        // A role counts per membership: the user within its tenant.
        assert_eq!(
            role_checks[0].key,
            Key::in_tenant("limiter", "role", "acme", SubjectKind::User, "u-1")
        );
    }
    let hr = find_policy(&set, &member().role("member").role("hr"), "role");
    assert_eq!(hr.limit.rate().to_string(), "2000/hour");
    // Only unconfigured roles: no role limit.
    assert!(
        checks(&set, &member().role("guest"))
            .iter()
            .all(|c| &*c.policy != "role")
    );
    // Generosity is per unit of time, not by the bare number: 100/minute beats 5000/hour.
    let set = set_from_toml("[roles]\nbot = \"100/minute\"");
    let bot = find_policy(&set, &member().role("owner").role("bot"), "role");
    assert_eq!(bot.limit.rate().to_string(), "100/minute");
}

#[test]
fn an_unknown_plan_is_an_error_naming_the_configured_plans() {
    let set = PolicySet::default();
    let err = set
        .resolve(&member().plan("platinum"))
        .expect_err("unknown plan");
    assert!(matches!(&err, Error::UnknownPlan { plan, .. } if plan == "platinum"));
    assert_eq!(
        err.to_string(),
        "unknown plan \"platinum\" (configured plans: free, starter, professional, enterprise)"
    );
    // An anonymous request's plan is not looked at: no plan limits apply to it.
    let anonymous = Request::new().plan("platinum").ip([192, 0, 2, 1].into());
    assert!(set.resolve(&anonymous).is_ok());
}

#[test]
fn a_zero_cost_is_an_invalid_request() {
    let set = PolicySet::default();
    for req in [member().cost(0), member().staff(true).cost(0)] {
        let err = set.resolve(&req).expect_err("cost 0");
        assert!(matches!(err, Error::InvalidRequest(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "invalid request: the request's cost is 0; expected at least 1"
        );
    }
}

#[test]
fn keys_never_collide_across_subjects() {
    let set = PolicySet::default();
    let subjects = [
        "a", "b", "a:b", "a%3Ab", "a}", "{a}", "a%7D", "a:{b}", "x\u{0}",
    ];
    let mut seen = HashSet::new();
    let mut total = 0;
    for s in subjects {
        // A tenant and a tenant-less user of the same name count apart, and no two names
        // share a key.
        for req in [
            Request::new().tenant(s).user("u"),
            Request::new().user(s).scope("auth").role("owner"),
        ] {
            for c in checks(&set, &req) {
                total += 1;
                seen.insert(c.key.to_string());
                assert_eq!(c.key.hash_tag().matches('{').count(), 0, "{}", c.key);
            }
        }
    }
    assert_eq!(seen.len(), total);
    let a = checks(&set, &member().tenant("tenant-a"));
    let b = checks(&set, &member().tenant("tenant-b"));
    for (x, y) in a.iter().zip(&b).take(3) {
        assert_ne!(x.key, y.key);
        assert_eq!(x.policy, y.policy);
    }
    // The plan limits of one tenant share its hash tag (one Redis Cluster slot).
    let tags: HashSet<_> = a
        .iter()
        .take(3)
        .map(|c| c.key.hash_tag().to_owned())
        .collect();
    assert_eq!(tags.len(), 1);
}

#[test]
fn every_resolution_is_a_valid_batch_of_shared_prebuilt_limits() {
    let set = PolicySet::default();
    let req = member().role("owner").scope("export").api_key("k", false);
    let first = checks(&set, &req);
    let second = checks(&set, &req);
    assert_eq!(first.len(), 6);
    Batch::new(first.clone()).expect("distinct keys");
    for (a, b) in first.iter().zip(&second) {
        assert!(
            Arc::ptr_eq(&a.limit, &b.limit),
            "{} is rebuilt per request",
            a.policy
        );
        assert!(Arc::ptr_eq(&a.policy, &b.policy) || a.policy == b.policy);
    }
}

#[test]
fn shadow_and_disabled_policies() {
    let set = set_from_toml(
        "[policies.plan_daily]\nenabled = false\n[policies.ip_burst]\nshadow = true\n\
         [policies.scope]\nkey = [\"ip\"]",
    );
    let got = summary(&checks(&set, &member().scope("export")));
    let flags: Vec<_> = got.iter().map(|c| (c.0.as_str(), c.5)).collect();
    assert_eq!(
        flags,
        [
            ("plan_sustained", false),
            ("plan_burst", false),
            ("scope.export", false),
            ("ip_burst", true),
        ]
    );
    assert_eq!(got[2].1, "limiter:scope.export:{ip=203.0.113.9}");
    // A policy keyed only by subjects the request lacks does not apply to it.
    let no_ip = summary(&checks(&set, &Request::new().user("u").scope("export")));
    assert!(
        no_ip
            .iter()
            .all(|c| c.0 != "scope.export" && c.0 != "ip_burst")
    );
}

#[test]
fn the_namespace_and_time_zone_reach_every_check() {
    let set = set_from_toml("namespace = \"billing\"\ntime_zone = \"Europe/Paris\"");
    assert_eq!(set.namespace(), "billing");
    let all = checks(&set, &member());
    assert!(all.iter().all(|c| c.key.as_str().starts_with("billing:")));
    assert!(
        matches!(all[2].limit.algorithm(), Algorithm::Calendar(c) if c.name() == "Europe/Paris")
    );
}

/// The default configuration plus `extra` plans (`p0`, `p1`, ...) with distinct rates.
fn with_plans(extra: usize) -> PolicySet {
    let mut config = Config::default();
    for i in 0..extra {
        let n = u64::try_from(i).expect("small") + 1;
        let rate = |s: String| s.parse().expect("valid rate");
        let plan = PlanConfig::new(
            rate(format!("{}/hour", 20_000 + n)),
            rate(format!("{}/minute", 1_000 + n)),
            rate(format!("{}/day", 200_000 + n)),
        );
        config.plans.insert(format!("p{i}"), plan);
    }
    PolicySet::from_config(&config).expect("valid")
}

#[test]
fn resolution_does_not_depend_on_the_number_of_plans() {
    let small = PolicySet::default();
    let large = with_plans(297);
    assert!(large.plan("p296").is_some());
    for req in [
        member(),
        member().plan("starter").role("admin").scope("token"),
        member().plan("enterprise").cost(7),
        Request::new().ip(ip("192.0.2.1")).scope("password"),
    ] {
        assert_eq!(
            summary(&checks(&small, &req)),
            summary(&checks(&large, &req)),
            "{req:?}"
        );
    }
    let extra = checks(&large, &member().plan("p150"));
    assert_eq!(extra[0].limit.rate().to_string(), "20151/hour");
    assert_eq!(large.next_plan("enterprise").map(|p| p.name()), Some("p0"));
}
