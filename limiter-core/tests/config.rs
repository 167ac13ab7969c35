//! The configuration model: defaults equal the design's tables, files and the environment
//! override only what they name, and every malformed input is an error that names its path.

use limiter_core::policy::{
    AlgorithmChoice, Config, IpNet, PlanConfig, PoliciesConfig, PolicyKind, PolicySet,
};
use limiter_core::{Algorithm, Error, Rate, SubjectKind};

/// DESIGN.md, "Default policies": plan -> (sustained, burst, daily).
const PLANS: [(&str, &str, &str, &str); 4] = [
    ("free", "100/hour", "10/minute", "500/day"),
    ("starter", "500/hour", "30/minute", "5000/day"),
    ("professional", "2000/hour", "100/minute", "20000/day"),
    ("enterprise", "10000/hour", "500/minute", "100000/day"),
];

/// DESIGN.md: roles, per user.
const ROLES: [(&str, &str); 7] = [
    ("owner", "5000/hour"),
    ("admin", "3000/hour"),
    ("supervisor", "2000/hour"),
    ("hr", "2000/hour"),
    ("marketer", "2000/hour"),
    ("employee", "1000/hour"),
    ("member", "500/hour"),
];

/// DESIGN.md: scopes, per endpoint group.
const SCOPES: [(&str, &str); 8] = [
    ("anon", "30/hour"),
    ("user", "1000/hour"),
    ("auth", "5/minute"),
    ("token", "10/minute"),
    ("password", "3/minute"),
    ("registration", "5/hour"),
    ("file_upload", "20/hour"),
    ("export", "10/hour"),
];

const EXAMPLE: &str = include_str!("../examples/limiter.toml");

fn rate(s: &str) -> Rate {
    s.parse().expect("a valid rate in the test")
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The default configuration with professional's sustained rate at 3000/hour.
fn professional_3000() -> Config {
    let mut expected = Config::default();
    let pro = expected
        .plans
        .get_mut("professional")
        .expect("professional is a default plan");
    pro.sustained = rate("3000/hour");
    expected
}

#[test]
fn defaults_are_the_design_tables() {
    let config = Config::default();
    assert_eq!(config.plans.len(), PLANS.len());
    for (name, sustained, burst, daily) in PLANS {
        let plan = &config.plans[name];
        assert_eq!(plan.sustained, rate(sustained), "{name}");
        assert_eq!(plan.burst, rate(burst), "{name}");
        assert_eq!(plan.daily, rate(daily), "{name}");
    }
    assert_eq!(config.roles.len(), ROLES.len());
    for (name, r) in ROLES {
        assert_eq!(config.roles[name], rate(r), "{name}");
    }
    assert_eq!(config.scopes.len(), SCOPES.len());
    for (name, r) in SCOPES {
        assert_eq!(config.scopes[name], rate(r), "{name}");
    }
    assert_eq!(config.namespace, "limiter");
    assert_eq!(config.default_plan, "free");
    assert_eq!(config.time_zone, "UTC");
    // Above the enterprise burst of 500/minute, so one enterprise server is never held below
    // its plan by the per-IP limit.
    assert_eq!(config.ip_burst, rate("600/minute"));
    assert!(config.ip_burst.limit() > config.plans["enterprise"].burst.limit());
    let b = &config.bypass;
    assert!(b.staff && b.superuser && b.api_keys);
    assert!(b.ips.is_empty() && b.tenants.is_empty() && b.users.is_empty());

    use AlgorithmChoice::*;
    use SubjectKind::*;
    let p = &config.policies;
    let expected = [
        (
            "plan_sustained",
            SlidingWindow,
            vec![Tenant, User, ApiKey, Ip],
        ),
        ("plan_burst", Gcra, vec![Tenant, User, ApiKey, Ip]),
        ("plan_daily", Calendar, vec![Tenant, User, ApiKey, Ip]),
        ("role", SlidingWindow, vec![User]),
        ("scope", Auto, vec![User, ApiKey, Ip]),
        ("anon", SlidingWindow, vec![Ip]),
        ("ip_burst", Gcra, vec![Ip]),
        ("key_failures", Auto, vec![Ip]),
    ];
    let actual: Vec<_> = p.iter().collect();
    assert_eq!(actual.len(), expected.len());
    for ((kind, policy), (name, algorithm, key)) in actual.into_iter().zip(expected) {
        assert_eq!(kind.name(), name);
        assert_eq!(policy.algorithm, algorithm, "{name}");
        assert_eq!(policy.key, key, "{name}");
        assert!(policy.enabled && !policy.shadow, "{name}");
    }
}

#[test]
fn the_default_policy_set_compiles_the_tables() {
    let set = PolicySet::default();
    for (name, sustained, burst, daily) in PLANS {
        let plan = set.plan(name).expect("a default plan");
        assert_eq!(plan.sustained().rate(), rate(sustained));
        assert_eq!(plan.sustained().algorithm(), &Algorithm::SlidingWindow);
        assert_eq!(plan.burst().rate(), rate(burst));
        assert_eq!(plan.burst().algorithm(), &Algorithm::Gcra);
        assert_eq!(plan.daily().rate(), rate(daily));
        assert_eq!(plan.daily().algorithm().name(), "calendar");
    }
    assert_eq!(set.namespace(), "limiter");
    assert_eq!(set.default_plan(), "free");
}

#[test]
fn the_next_plan_up_follows_the_sustained_rates() {
    let set = PolicySet::default();
    let next = |p: &str| set.next_plan(p).map(|n| n.name().to_owned());
    assert_eq!(next("free").as_deref(), Some("starter"));
    assert_eq!(next("starter").as_deref(), Some("professional"));
    assert_eq!(next("professional").as_deref(), Some("enterprise"));
    assert_eq!(next("enterprise"), None);
    assert_eq!(next("platinum"), None);

    // A plan inserted by configuration takes its place by rate, not by name.
    let config = Config::from_toml_str(
        "[plans.aardvark]\nsustained = \"1000/hour\"\nburst = \"50/minute\"\ndaily = \"9000/day\"",
    )
    .expect("valid");
    let set = PolicySet::from_config(&config).expect("valid");
    let next = |p: &str| set.next_plan(p).map(|n| n.name().to_owned());
    assert_eq!(next("starter").as_deref(), Some("aardvark"));
    assert_eq!(next("aardvark").as_deref(), Some("professional"));
}

#[test]
fn the_example_file_lists_every_default() {
    assert_eq!(
        Config::from_toml_str(EXAMPLE).expect("example"),
        Config::default()
    );
    // Since a file overrides only what it names, equality above would also hold for a file
    // that omits settings: compare the documents themselves.
    let example: toml::Table = EXAMPLE.parse().expect("example parses");
    let defaults = toml::Table::try_from(Config::default()).expect("serializes");
    assert_eq!(example, defaults);
}

#[test]
fn a_file_overrides_only_what_it_names() {
    assert_eq!(
        Config::default().plans["professional"].sustained,
        rate("2000/hour")
    );
    let config =
        Config::from_toml_str("[plans.professional]\nsustained = \"3000/hour\"\n").expect("valid");
    assert_eq!(config.plans["professional"].sustained, rate("3000/hour"));
    assert_eq!(config, professional_3000());

    let json = r#"{"plans": {"professional": {"sustained": "3000/hour"}}}"#;
    assert_eq!(
        Config::from_json_str(json).expect("valid"),
        professional_3000()
    );

    let mut config = Config::default();
    config
        .apply_env(vars(&[(
            "LIMITER_PLANS__PROFESSIONAL__SUSTAINED",
            "3000/hour",
        )]))
        .expect("valid");
    assert_eq!(config, professional_3000());
}

#[test]
fn the_environment_overrides_the_file() {
    let mut config = Config::from_toml_str(
        r#"
        namespace = "billing"
        [bypass]
        staff = false
        ips = ["192.0.2.0/24"]
        [plans.professional]
        sustained = "3000/hour"
        "#,
    )
    .expect("valid");
    config
        .apply_env(vars(&[
            ("LIMITER_PLANS__PROFESSIONAL__BURST", "150/minute"),
            ("LIMITER_ROLES__OWNER", "6000/hour"),
            ("LIMITER_SCOPES__EXPORT", "off"),
            ("LIMITER_BYPASS__SUPERUSER", "false"),
            (
                "LIMITER_BYPASS__IPS",
                "10.0.0.0/8, 192.168.1.1,2001:db8::/32",
            ),
            ("LIMITER_BYPASS__TENANTS", "acme,initech"),
            ("LIMITER_TIME_ZONE", "Europe/Paris"),
            ("LIMITER_POLICIES__SCOPE__SHADOW", "true"),
            ("LIMITER_POLICIES__PLAN_BURST__KEY", "tenant,ip"),
            ("LIMITER_POLICIES__SCOPE__ALGORITHM", "sliding_window"),
            ("LIMITER_IP_BURST", "1000/minute"),
            ("LIMITER_REDIS_URL", "redis://127.0.0.1:6379"),
            ("PATH", "/usr/bin"),
            ("limiter_namespace", "lower-case names are not ours"),
        ]))
        .expect("valid");
    let mut expected = professional_3000();
    expected.namespace = "billing".into();
    expected.bypass.staff = false;
    expected.bypass.superuser = false;
    expected.bypass.ips = ["10.0.0.0/8", "192.168.1.1", "2001:db8::/32"]
        .iter()
        .map(|s| s.parse::<IpNet>().expect("net"))
        .collect();
    expected.bypass.tenants = vec!["acme".into(), "initech".into()];
    if let Some(pro) = expected.plans.get_mut("professional") {
        pro.burst = rate("150/minute");
    }
    expected.roles.insert("owner".into(), rate("6000/hour"));
    expected.scopes.remove("export");
    expected.time_zone = "Europe/Paris".into();
    expected.policies[PolicyKind::Scope].shadow = true;
    expected.policies[PolicyKind::Scope].algorithm = AlgorithmChoice::SlidingWindow;
    expected.policies[PolicyKind::PlanBurst].key = vec![SubjectKind::Tenant, SubjectKind::Ip];
    expected.ip_burst = rate("1000/minute");
    assert_eq!(config, expected);
    PolicySet::from_config(&config).expect("valid");
}

#[test]
fn a_new_plan_from_the_environment_sets_all_three_limits() {
    let mut config = Config::default();
    config
        .apply_env(vars(&[
            ("LIMITER_PLANS__GOLD__SUSTAINED", "5000/hour"),
            ("LIMITER_PLANS__GOLD__BURST", "200/minute"),
            ("LIMITER_PLANS__GOLD__DAILY", "50000/day"),
            ("LIMITER_DEFAULT_PLAN", "gold"),
        ]))
        .expect("valid");
    let expected = PlanConfig::new(rate("5000/hour"), rate("200/minute"), rate("50000/day"));
    assert_eq!(config.plans["gold"], expected);
    let set = PolicySet::from_config(&config).expect("valid");
    assert_eq!(set.default_plan(), "gold");
}

#[test]
fn another_prefix_can_be_used() {
    let mut config = Config::default();
    config
        .apply_env_with_prefix(
            "MYAPP_LIMITS_",
            vars(&[
                ("MYAPP_LIMITS_PLANS__PROFESSIONAL__SUSTAINED", "3000/hour"),
                ("LIMITER_NOT_A_SETTING", "ignored: another prefix"),
            ]),
        )
        .expect("valid");
    assert_eq!(config, professional_3000());
}

#[test]
fn off_removes_defaults_and_survives_a_round_trip() {
    let config = Config::from_toml_str(
        r#"
        [plans]
        starter = "off"
        [plans.gold]
        sustained = "5000/hour"
        burst = "200/minute"
        daily = "50000/day"
        [roles]
        member = "off"
        [scopes]
        export = "off"
        reports = "2/minute"
        [bypass]
        ips = ["2001:db8::/32", "192.0.2.7"]
        users = ["ops:{1}"]
        [policies.plan_daily]
        enabled = false
        "#,
    )
    .expect("valid");
    assert!(!config.plans.contains_key("starter"));
    assert!(config.plans.contains_key("gold"));
    assert!(!config.roles.contains_key("member"));
    assert!(!config.scopes.contains_key("export"));
    assert_eq!(config.scopes["reports"], rate("2/minute"));
    assert!(!config.policies[PolicyKind::PlanDaily].enabled);

    let toml = config.to_toml_string().expect("serializes");
    assert_eq!(Config::from_toml_str(&toml).expect("reads back"), config);
    let json = serde_json::to_string(&config).expect("serializes");
    assert_eq!(Config::from_json_str(&json).expect("reads back"), config);
    assert_eq!(
        serde_json::from_str::<Config>(&json).expect("serde"),
        config
    );
    assert_eq!(toml::from_str::<Config>(&toml).expect("serde"), config);
}

#[test]
fn a_failed_merge_changes_nothing() {
    let mut config = Config::default();
    let err = config
        .apply_env(vars(&[
            ("LIMITER_NAMESPACE", "changed"),
            ("LIMITER_PLANS__FREE__BURST", "10/fortnight"),
        ]))
        .expect_err("a bad rate");
    assert!(matches!(err, Error::InvalidConfig { .. }));
    assert_eq!(config, Config::default());
    config
        .merge_toml_str("namespace = \"changed\"\n[bypass]\nips = [\"x\"]")
        .expect_err("a bad ip");
    assert_eq!(config, Config::default());
}

/// Loads a TOML file and compiles it; the error text.
fn toml_error(input: &str) -> String {
    match Config::from_toml_str(input).and_then(|c| PolicySet::from_config(&c)) {
        Ok(_) => panic!("{input:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

fn json_error(input: &str) -> String {
    match Config::from_json_str(input).and_then(|c| PolicySet::from_config(&c)) {
        Ok(_) => panic!("{input:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

fn env_error(pairs: &[(&str, &str)]) -> String {
    let mut config = Config::default();
    match config
        .apply_env(vars(pairs))
        .and_then(|()| PolicySet::from_config(&config))
    {
        Ok(_) => panic!("{pairs:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

const RATE_EXPECTED: &str = "(expected N/period such as 100/hour, 10/5m or 1000/1d, with units \
                             s, m, h or d, optionally with a multiplier such as 5m)";

#[test]
fn malformed_files_name_the_path_the_value_and_what_is_expected() {
    let cases: Vec<(&str, String)> = vec![
        (
            "[plans.free]\nsustaned = \"1/hour\"",
            "invalid configuration at plans.free.sustaned: unknown field `sustaned`, expected \
             one of `sustained`, `burst`, `daily`"
                .into(),
        ),
        (
            "rate_limit = true",
            "invalid configuration at rate_limit: unknown field `rate_limit`, expected one of \
             `namespace`, `default_plan`, `time_zone`, `ip_burst`, `key_failures`, `client`, `bypass`, `plans`, `roles`, \
             `scopes`, `policies`, `notify`"
                .into(),
        ),
        (
            "[plans.free]\nburst = \"10/fortnight\"",
            format!(
                "invalid configuration at plans.free.burst: invalid rate \"10/fortnight\": \
                 unknown period unit \"fortnight\" {RATE_EXPECTED}"
            ),
        ),
        (
            "[roles]\nowner = \"0/hour\"",
            "invalid configuration at roles.owner: invalid rate \"0/hour\": the limit must be at \
             least 1"
                .into(),
        ),
        (
            "[policies.scope]\nalgorithm = \"leaky_bucket\"",
            "invalid configuration at policies.scope.algorithm: unknown variant `leaky_bucket`, \
             expected one of `gcra`, `sliding_window`, `sliding_log`, `calendar`, `auto`"
                .into(),
        ),
        (
            "time_zone = \"Mars/Olympus_Mons\"",
            "invalid configuration at time_zone: unknown time zone \"Mars/Olympus_Mons\" (failed \
             to find time zone `Mars/Olympus_Mons` in time zone database); expected an IANA name \
             such as UTC or Europe/Paris"
                .into(),
        ),
        (
            "[bypass]\nips = [\"10.0.0.0/8\", \"::1\", \"10.0.0.0/33\"]",
            "invalid configuration at bypass.ips[2]: invalid IP address or network \
             \"10.0.0.0/33\": prefix length 33 is too long for IPv4 (expected 0 to 32)"
                .into(),
        ),
        (
            "[bypass]\nips = [\"2001:db8::1/32\"]",
            "invalid configuration at bypass.ips[0]: invalid IP address or network \
             \"2001:db8::1/32\": 2001:db8::1 has bits set after the first 32; did you mean \
             2001:db8::/32?"
                .into(),
        ),
        (
            "default_plan = \"platinum\"",
            "invalid configuration at default_plan: \"platinum\" is not a configured plan; \
             expected one of: enterprise, free, professional, starter"
                .into(),
        ),
        (
            "[plans]\nfree = \"off\"",
            "invalid configuration at default_plan: \"free\" is not a configured plan; expected \
             one of: enterprise, professional, starter"
                .into(),
        ),
        (
            "[policies.scope]\nalgorithm = \"sliding_log\"\n[scopes]\nuser = \"1001/hour\"",
            "invalid configuration at scopes.user: invalid rate \"1001/hour\": a sliding log \
             keeps one timestamp per request, so its limit must be at most 1000; use \
             sliding_window or gcra for larger limits; policies.scope.algorithm is sliding_log"
                .into(),
        ),
        (
            "[plans.free]\ndaily = \"500/12h\"",
            "invalid configuration at plans.free.daily: invalid rate \"500/12h\": a calendar \
             window counts per local day, so its period must be one day (such as 500/day); \
             policies.plan_daily.algorithm is calendar"
                .into(),
        ),
        (
            "[policies.plan_burst]\nalgorithm = \"calendar\"",
            "invalid configuration at plans.enterprise.burst: invalid rate \"500/minute\": a \
             calendar window counts per local day, so its period must be one day (such as \
             500/day); policies.plan_burst.algorithm is calendar"
                .into(),
        ),
        (
            "[bypass]\nstaff = \"yes\"",
            "invalid configuration at bypass.staff: invalid type: string \"yes\", expected a \
             boolean"
                .into(),
        ),
        (
            "[plans.free]\nburst = 10",
            "invalid configuration at plans.free.burst: invalid type: integer `10`, expected a \
             rate string such as \"100/hour\" or \"10/5m\""
                .into(),
        ),
        (
            "[roles]\nowner = 5000",
            "invalid configuration at roles.owner: invalid type: integer `5000`, expected a rate \
             such as \"100/hour\", or \"off\" to remove the entry"
                .into(),
        ),
        (
            "namespace = 1979-05-27",
            "invalid configuration at namespace: invalid type: date-time 1979-05-27, expected a \
             string"
                .into(),
        ),
        (
            "[policies.role]\nkey = []",
            "invalid configuration at policies.role.key: the key list is empty; expected one or \
             more of tenant, user, api_key, ip (the first the request has is used)"
                .into(),
        ),
        (
            "[policies.role]\nkey = [\"user\", \"session\"]",
            "invalid configuration at policies.role.key[1]: unknown variant `session`, expected \
             one of `tenant`, `user`, `api_key`, `ip`"
                .into(),
        ),
        (
            "[policies.plan_hourly]\nshadow = true",
            "invalid configuration at policies.plan_hourly: unknown field `plan_hourly`, \
             expected one of `plan_sustained`, `plan_burst`, `plan_daily`, `role`, `scope`, \
             `anon`, `ip_burst`, `key_failures`"
                .into(),
        ),
        (
            "policies = 5",
            "invalid configuration at policies: invalid type: integer `5`, expected a table of \
             policies"
                .into(),
        ),
        (
            "[policies]\nscope = \"off\"",
            "invalid configuration at policies.scope: invalid type: string \"off\", expected a \
             table of policy settings (algorithm, key, shadow, headers, enabled, ipv4_prefix, ipv6_prefix)"
                .into(),
        ),
        (
            "[policies.role]\nkey = [\"user\", 3]",
            "invalid configuration at policies.role.key[1]: invalid type: integer `3`, expected \
             a subject: tenant, user, api_key or ip"
                .into(),
        ),
        (
            "[policies.anon]\nshadow = true\nlimit = 5",
            "invalid configuration at policies.anon.limit: unknown field `limit`, expected one \
             of `algorithm`, `key`, `shadow`, `headers`, `enabled`, `ipv4_prefix`, `ipv6_prefix`"
                .into(),
        ),
        (
            "namespace = \"api:v2\"",
            "invalid configuration at namespace: invalid namespace \"api:v2\": expected a \
             non-empty name without ':', '{' or '}' (it starts every store key)"
                .into(),
        ),
        (
            "namespace = \"\"",
            "invalid configuration at namespace: invalid namespace \"\": expected a non-empty \
             name without ':', '{' or '}' (it starts every store key)"
                .into(),
        ),
        (
            "[plans]\nstarter = \"of\"",
            "invalid configuration at plans.starter: invalid value: string \"of\", expected a \
             plan (a table of sustained, burst and daily), or \"off\" to remove the plan"
                .into(),
        ),
        (
            "[plans.gold]\nsustained = \"5000/hour\"",
            "invalid configuration at plans.gold: new plan \"gold\" is missing burst and daily; \
             a plan that is not already configured must set sustained, burst and daily"
                .into(),
        ),
        (
            "[scopes]\nanon = \"off\"",
            "invalid configuration at scopes.anon: the anon policy is enabled but scopes.anon is \
             not set; set its rate (such as \"30/hour\") or set policies.anon.enabled = false"
                .into(),
        ),
        (
            "[plans.free]\nburst = \"10/minute\"\n\nnamespace = ",
            "invalid configuration at line 4, column 13: string values must be quoted, expected \
             literal string"
                .into(),
        ),
    ];
    for (input, expected) in &cases {
        assert_eq!(&toml_error(input), expected, "for {input:?}");
    }
}

#[test]
fn malformed_json_names_the_path_too() {
    let cases = [
        (
            r#"{"plans": {"free": {"burst": "1/fortnight"}}}"#,
            format!(
                "invalid configuration at plans.free.burst: invalid rate \"1/fortnight\": \
                 unknown period unit \"fortnight\" {RATE_EXPECTED}"
            ),
        ),
        (
            r#"{"bypass": {"ips": ["192.0.2.1", "localhost"]}}"#,
            "invalid configuration at bypass.ips[1]: invalid IP address or network \
             \"localhost\": \"localhost\" is not an IP address (expected an IP address such as \
             192.0.2.7 or 2001:db8::1, or a network such as 10.0.0.0/8 or 2001:db8::/32)"
                .into(),
        ),
        (
            r#"{"policies": {"scope": {"shadow": "true"}}}"#,
            "invalid configuration at policies.scope.shadow: invalid type: string \"true\", \
             expected a boolean"
                .into(),
        ),
        (
            "{\"namespace\": \"api\",\n \"plans\" 1}",
            "invalid configuration at line 2, column 10: expected `:`".into(),
        ),
    ];
    for (input, expected) in &cases {
        assert_eq!(&json_error(input), expected, "for {input:?}");
    }
}

#[test]
fn malformed_environment_variables_are_named() {
    let cases: Vec<(&[(&str, &str)], String)> =
        vec![
        (
            &[("LIMITER_PLANS__FREE__BURST", "10/fortnight")],
            format!(
                "invalid configuration at LIMITER_PLANS__FREE__BURST: invalid rate \
                 \"10/fortnight\": unknown period unit \"fortnight\" {RATE_EXPECTED}"
            ),
        ),
        (
            &[("LIMITER_PLANS__FREE__BURTS", "10/minute")],
            "invalid configuration at LIMITER_PLANS__FREE__BURTS: unknown field `burts`, \
             expected one of `sustained`, `burst`, `daily`"
                .into(),
        ),
        (
            &[("LIMITER_NAMESPACE", "ok"), ("LIMITER_TIMEZONE", "Europe/Paris")],
            "invalid configuration at LIMITER_TIMEZONE: unknown field `timezone`, expected one \
             of `namespace`, `default_plan`, `time_zone`, `ip_burst`, `key_failures`, `client`, `bypass`, `plans`, `roles`, \
             `scopes`, `policies`, `notify`"
                .into(),
        ),
        (
            &[("LIMITER_BYPASS__STAFF", "maybe")],
            "invalid configuration at LIMITER_BYPASS__STAFF: invalid type: string \"maybe\", \
             expected a boolean"
                .into(),
        ),
        (
            &[("LIMITER_BYPASS__IPS", "10.0.0.0/8,300.1.1.1")],
            "invalid configuration at LIMITER_BYPASS__IPS (bypass.ips[1]): invalid IP address or \
             network \"300.1.1.1\": \"300.1.1.1\" is not an IP address (expected an IP address \
             such as 192.0.2.7 or 2001:db8::1, or a network such as 10.0.0.0/8 or 2001:db8::/32)"
                .into(),
        ),
        (
            &[("LIMITER_TIME_ZONE", "Europe/Pariss")],
            "invalid configuration at LIMITER_TIME_ZONE: unknown time zone \"Europe/Pariss\" \
             (failed to find time zone `Europe/Pariss` in time zone database); expected an IANA \
             name such as UTC or Europe/Paris"
                .into(),
        ),
        (
            &[("LIMITER_POLICIES__ROLE__KEY", "")],
            "invalid configuration at LIMITER_POLICIES__ROLE__KEY: the key list is empty; \
             expected one or more of tenant, user, api_key, ip (the first the request has is \
             used)"
                .into(),
        ),
        (
            &[("LIMITER_POLICIES__PLAN_HOURLY__SHADOW", "true")],
            "invalid configuration at LIMITER_POLICIES__PLAN_HOURLY__SHADOW \
             (policies.plan_hourly): unknown field `plan_hourly`, expected one of \
             `plan_sustained`, `plan_burst`, `plan_daily`, `role`, `scope`, `anon`, `ip_burst`, `key_failures`"
                .into(),
        ),
        (
            &[("LIMITER_PLANS__GOLD__SUSTAINED", "5000/hour")],
            "invalid configuration at LIMITER_PLANS__GOLD__SUSTAINED (plans.gold): new plan \
             \"gold\" is missing burst and daily; a plan that is not already configured must set \
             sustained, burst and daily"
                .into(),
        ),
        (
            &[("LIMITER_PLANS__FREE", "off"), ("LIMITER_PLANS__FREE__BURST", "1/hour")],
            "invalid configuration at LIMITER_PLANS__FREE__BURST: conflicts with \
             LIMITER_PLANS__FREE: one sets plans.free as a whole, the other a part of it"
                .into(),
        ),
        (
            &[("LIMITER_PLANS_FREE_BURST", "10/minute")],
            "invalid configuration at LIMITER_PLANS_FREE_BURST: unknown field `plans_free_burst`, \
             expected one of `namespace`, `default_plan`, `time_zone`, `ip_burst`, `key_failures`, `client`, `bypass`, \
             `plans`, `roles`, `scopes`, `policies`, `notify`"
                .into(),
        ),
        (
            &[("LIMITER_PLANS____BURST", "10/minute")],
            "invalid configuration at LIMITER_PLANS____BURST: expected the path of a setting in \
             upper case, its parts separated by \"__\", such as LIMITER_PLANS__FREE__BURST or \
             LIMITER_BYPASS__STAFF"
                .into(),
        ),
        (
            &[("LIMITER_BYPASS", "true")],
            "invalid configuration at LIMITER_BYPASS: invalid type: string \"true\", expected a \
             table of bypass settings"
                .into(),
        ),
    ];
    for (pairs, expected) in &cases {
        assert_eq!(&env_error(pairs), expected, "for {pairs:?}");
    }
}

#[test]
fn policies_are_written_in_the_order_of_the_table() {
    let order = [
        "plan_sustained",
        "plan_burst",
        "plan_daily",
        "role",
        "scope",
        "anon",
        "ip_burst",
    ];
    let toml = Config::default().to_toml_string().expect("serializes");
    let json = serde_json::to_string(&Config::default()).expect("serializes");
    for (text, pattern) in [(&toml, "[policies.{}]\n"), (&json, "\"{}\":{\"algorithm\"")] {
        let positions: Vec<usize> = order
            .iter()
            .map(|name| {
                let needle = pattern.replace("{}", name);
                text.find(&needle)
                    .unwrap_or_else(|| panic!("{needle} in {text}"))
            })
            .collect();
        assert!(positions.is_sorted(), "{text}");
    }
}

#[test]
fn a_policy_named_twice_is_an_error() {
    let json = r#"{"policies": {"scope": {}, "scope": {"shadow": true}}}"#;
    let err = serde_json::from_str::<Config>(json).expect_err("a duplicate");
    assert!(
        err.to_string().starts_with("duplicate field `scope`"),
        "{err}"
    );
}

#[test]
fn the_policies_table_reads_back_on_its_own_and_needs_every_policy() {
    let mut policies = PoliciesConfig::default();
    policies[PolicyKind::Role].shadow = true;
    let json = serde_json::to_string(&policies).expect("serializes");
    let back: PoliciesConfig = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, policies);

    let scope =
        r#"{"scope": {"algorithm": "auto", "key": ["ip"], "shadow": false, "enabled": true}}"#;
    let err = serde_json::from_str::<PoliciesConfig>(scope).expect_err("incomplete");
    assert!(
        err.to_string()
            .starts_with("missing field `plan_sustained`"),
        "{err}"
    );
}

#[test]
fn the_policies_table_also_reads_as_a_list_like_the_tables_around_it() {
    let config =
        Config::from_toml_str("policies = [{}, {}, {}, { shadow = true }, {}, {}, {}, {}]")
            .expect("valid");
    let mut expected = Config::default();
    expected.policies[PolicyKind::Role].shadow = true;
    assert_eq!(config, expected);
    assert_eq!(
        toml_error("policies = [{}, {}]"),
        "invalid configuration at policies: invalid length 2, expected a table of policies"
    );
}
