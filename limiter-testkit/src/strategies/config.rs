//! Configurations: the whole accepted domain of policies, plans, roles and scopes.

use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use limiter_core::algorithm::SLIDING_LOG_MAX_LIMIT;
use limiter_core::policy::{AlgorithmChoice, Config, IpNet, PlanConfig, PolicyConfig, PolicyKind};
use limiter_core::{Rate, SubjectKind};

use super::rate::limit_up_to;
use super::request::one_of;
use super::*;

/// A rate that every algorithm in `algorithms` accepts: per day if one is a calendar, at most
/// [`SLIDING_LOG_MAX_LIMIT`] if one is a sliding log (`auto` accepts any rate).
pub fn rate_for(algorithms: &[AlgorithmChoice]) -> BoxedStrategy<Rate> {
    let daily = algorithms.contains(&AlgorithmChoice::Calendar);
    let logged = algorithms.contains(&AlgorithmChoice::SlidingLog);
    let rates = if daily { daily_rate() } else { rate() };
    if logged {
        rates
            .prop_flat_map(|r| {
                (
                    Just(r.period()),
                    limit_up_to(SLIDING_LOG_MAX_LIMIT.min(r.limit())),
                )
            })
            .prop_filter_map("valid rate", |(p, l)| Rate::new(l, p).ok())
            .boxed()
    } else {
        rates
    }
}

/// A policy's settings: one of `algorithms`, a non-empty key list in any order, shadow one
/// time in five, disabled one time in ten, client prefixes of its own one time in four.
fn policy_config(algorithms: &[AlgorithmChoice]) -> BoxedStrategy<PolicyConfig> {
    let subjects = vec![
        SubjectKind::Tenant,
        SubjectKind::User,
        SubjectKind::ApiKey,
        SubjectKind::Ip,
    ];
    (
        select(algorithms.to_vec()),
        subsequence(subjects, 1..=4).prop_shuffle(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.9),
        prop::option::weighted(0.25, (0..=32u8, 0..=128u8)),
    )
        .prop_map(|(algorithm, key, shadow, enabled, prefixes)| {
            let mut policy = PolicyConfig::new(algorithm, key);
            policy.shadow = shadow;
            policy.enabled = enabled;
            policy.ipv4_prefix = prefixes.map(|(v4, _)| v4);
            policy.ipv6_prefix = prefixes.map(|(_, v6)| v6);
            policy
        })
        .boxed()
}

/// Names of plans, roles or scopes: the default ones and made-up ones.
fn names(defaults: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        3 => one_of(defaults),
        1 => "[a-z][a-z0-9_]{0,10}",
    ]
    .boxed()
}

/// A valid configuration: random plans (with a default plan among them), roles, scopes, IP
/// burst, namespace, time zone, bypass lists, and policy settings, every rate acceptable to
/// the algorithm its policy uses. [`PolicySet::from_config`](limiter_core::PolicySet::from_config)
/// compiles every one of them.
pub fn config() -> BoxedStrategy<Config> {
    use AlgorithmChoice::{Auto, Calendar, Gcra, SlidingLog, SlidingWindow};
    let every = [Gcra, SlidingWindow, SlidingLog, Auto];
    let daily = [Calendar, Gcra, SlidingWindow, SlidingLog];
    let policies = (
        (
            policy_config(&every),
            policy_config(&every),
            policy_config(&daily),
        ),
        (policy_config(&every), policy_config(&every)),
        (policy_config(&every), policy_config(&every)),
    );
    let bypass = (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.8),
        prop::collection::vec(
            select(vec![
                "192.0.2.7",
                "10.0.0.0/8",
                "203.0.113.0/24",
                "2001:db8::/32",
                "::1",
            ])
            .prop_filter_map("valid network", |s| s.parse::<IpNet>().ok()),
            0..=3,
        ),
        prop::collection::vec(
            select(vec!["t-1", "t-2", "acme"]).prop_map(str::to_owned),
            0..=2,
        ),
        prop::collection::vec(
            select(vec!["u-1", "u-2", "root"]).prop_map(str::to_owned),
            0..=2,
        ),
    );
    // Policies kept for bypassed requests: kinds only, which every configuration has.
    let keep = subsequence(vec!["ip_burst", "scope", "anon", "role"], 0..=2).prop_map(|names| {
        names
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<String>>()
    });
    let client = (
        prop_oneof![3 => Just(32u8), 1 => 0..=32u8],
        prop_oneof![3 => Just(64u8), 1 => 0..=128u8],
        prop::bool::weighted(0.8),
    );
    let settings = (
        "[a-z][a-z0-9_-]{0,15}",
        select(TIME_ZONES),
        bypass,
        prop::bool::weighted(0.8),
        (client, keep),
    );
    (policies, settings)
        .prop_flat_map(
            |(((sustained, burst, daily), (role, scope), (anon, ip_burst)), settings)| {
                let (namespace, zone, bypass, with_anon, (client, keep)) = settings;
                let mut config = Config::default();
                config.namespace = namespace;
                config.time_zone = zone.to_owned();
                (
                    config.client.ipv4_prefix,
                    config.client.ipv6_prefix,
                    config.client.require_ip,
                ) = client;
                let (staff, superuser, api_keys, ips, tenants, users) = bypass;
                config.bypass.keep = keep;
                config.bypass.staff = staff;
                config.bypass.superuser = superuser;
                config.bypass.api_keys = api_keys;
                config.bypass.ips = ips;
                config.bypass.tenants = tenants;
                config.bypass.users = users;
                // Without `scopes.anon`, the anon policy must be off.
                let mut anon = anon;
                anon.enabled &= with_anon;
                let plan = (
                    rate_for(&[sustained.algorithm]),
                    rate_for(&[burst.algorithm]),
                    rate_for(&[daily.algorithm]),
                )
                    .prop_map(|(s, b, d)| PlanConfig::new(s, b, d));
                let plans = prop::collection::btree_map(names(PLANS), plan, 1..=5);
                let roles =
                    prop::collection::btree_map(names(ROLES), rate_for(&[role.algorithm]), 0..=8);
                let scopes = prop::collection::btree_map(
                    names(SCOPES).prop_filter("anon is set apart", |n| n != "anon"),
                    rate_for(&[scope.algorithm]),
                    0..=8,
                );
                let anon_rate = if with_anon {
                    rate_for(&[scope.algorithm, anon.algorithm])
                        .prop_map(Some)
                        .boxed()
                } else {
                    Just(None).boxed()
                };
                let ip_burst_rate = rate_for(&[ip_burst.algorithm]);
                config.policies[PolicyKind::PlanSustained] = sustained;
                config.policies[PolicyKind::PlanBurst] = burst;
                config.policies[PolicyKind::PlanDaily] = daily;
                config.policies[PolicyKind::Role] = role;
                config.policies[PolicyKind::Scope] = scope;
                config.policies[PolicyKind::Anon] = anon;
                config.policies[PolicyKind::IpBurst] = ip_burst;
                (
                    Just(config),
                    plans,
                    roles,
                    scopes,
                    anon_rate,
                    ip_burst_rate,
                    any::<prop::sample::Index>(),
                )
            },
        )
        .prop_map(
            |(mut config, plans, roles, scopes, anon_rate, ip_burst, default_plan)| {
                let names: Vec<&String> = plans.keys().collect();
                // `plans` has at least one entry.
                config.default_plan = names[default_plan.index(names.len())].clone();
                config.plans = plans;
                config.roles = roles;
                config.scopes = scopes;
                if let Some(rate) = anon_rate {
                    config.scopes.insert("anon".to_owned(), rate);
                }
                config.ip_burst = ip_burst;
                config
            },
        )
        .boxed()
}
