//! Proptest strategies: rates, limits, batches, traffic traces and requests.
//!
//! Two families: the whole accepted domain ([`rate`], [`limit`], [`instant`]) for properties
//! that must hold everywhere, and small interacting values ([`batch`], [`trace`]) for
//! differential tests, where limits must actually be reached and windows must actually roll
//! over for a trace to say anything.
//!
//! ```
//! use limiter_core::testkit::strategies;
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::deterministic();
//! let rate = strategies::rate().new_tree(&mut runner).unwrap().current();
//! assert_eq!(rate.to_string().parse::<limiter_core::Rate>().unwrap(), rate);
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use crate::algorithm::SLIDING_LOG_MAX_LIMIT;
use crate::batch::{Batch, Check};
use crate::policy::{AlgorithmChoice, Config, IpNet, PlanConfig, PolicyConfig, Subject};
use crate::time::{MAX_TIMESTAMP, Micros};
use crate::{
    Calendar, Key, Limit, MAX_LIMIT, MAX_PERIOD_MICROS, Period, Rate, Request, SubjectKind, Unit,
};

/// Time zones that calendar windows are generated in: UTC, zones with DST on either hemisphere,
/// Lord Howe (a 30-minute DST shift), Santiago (skips midnight) and Kolkata (a half-hour
/// offset).
pub const TIME_ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
];

/// The plans of the default policies.
pub const PLANS: &[&str] = &["free", "starter", "professional", "enterprise"];

/// The roles of the default policies.
pub const ROLES: &[&str] = &[
    "owner",
    "admin",
    "supervisor",
    "hr",
    "marketer",
    "employee",
    "member",
];

/// The scopes of the default policies.
pub const SCOPES: &[&str] = &[
    "anon",
    "user",
    "auth",
    "token",
    "password",
    "registration",
    "file_upload",
    "export",
];

/// 2026-01-01T00:00:00Z.
const YEAR_2026: Micros = 1_767_225_600_000_000;
const DAY: Micros = 86_400_000_000;

/// Noon UTC (or midnight) the day before a DST change in one of [`TIME_ZONES`], so that traces
/// starting there cross it.
const DST_EVES: &[Micros] = &[
    1_774_699_200_000_000, // 2026-03-28T12:00Z, Europe/Paris springs forward next night
    1_792_843_200_000_000, // 2026-10-24T12:00Z, Europe/Paris falls back next night
    1_772_884_800_000_000, // 2026-03-07T12:00Z, America/New_York springs forward
    1_793_448_000_000_000, // 2026-10-31T12:00Z, America/New_York falls back
    1_775_260_800_000_000, // 2026-04-04T00:00Z, Australia/Lord_Howe falls back 30 minutes
    1_790_985_600_000_000, // 2026-10-03T00:00Z, Australia/Lord_Howe springs forward 30 minutes
    1_788_609_600_000_000, // 2026-09-05T12:00Z, America/Santiago skips midnight
];

fn max_count(unit: Unit) -> u32 {
    u32::try_from(MAX_PERIOD_MICROS / unit.micros()).unwrap_or(u32::MAX)
}

fn unit() -> impl Strategy<Value = Unit> {
    select(&[Unit::Second, Unit::Minute, Unit::Hour, Unit::Day][..])
}

/// Any valid period: one to the most units that fit in 366 days, biased towards a multiplier
/// of one and towards the longest.
pub fn period() -> BoxedStrategy<Period> {
    unit()
        .prop_flat_map(|unit| {
            let max = max_count(unit);
            (
                Just(unit),
                prop_oneof![4 => Just(1), 4 => 1..=max, 1 => Just(max)],
            )
        })
        .prop_filter_map("period within 366 days", |(unit, count)| {
            Period::new(count, unit)
        })
        .boxed()
}

/// Any limit `1..=max`, biased towards small ones and the extremes.
fn limit_up_to(max: u64) -> BoxedStrategy<u64> {
    prop_oneof![
        4 => 1..=max.min(100),
        4 => 1..=max,
        1 => Just(max),
        1 => Just(1),
    ]
    .boxed()
}

/// Any rate that parses: a limit of 1 to [`MAX_LIMIT`] per any period up to 366 days, at most
/// one per microsecond.
pub fn rate() -> BoxedStrategy<Rate> {
    period()
        .prop_flat_map(|period| {
            let max = MAX_LIMIT.min(period.micros());
            (Just(period), limit_up_to(max))
        })
        .prop_filter_map("valid rate", |(period, limit)| {
            Rate::new(limit, period).ok()
        })
        .boxed()
}

/// Any rate whose period is one day, however it is spelled (`d`, `24h`, `1440m`, `86400s`).
pub fn daily_rate() -> BoxedStrategy<Rate> {
    let periods = [
        Period::new(1, Unit::Day),
        Period::new(24, Unit::Hour),
        Period::new(1_440, Unit::Minute),
        Period::new(86_400, Unit::Second),
    ];
    let periods: Vec<Period> = periods.into_iter().flatten().collect();
    (select(periods), limit_up_to(MAX_LIMIT))
        .prop_filter_map("valid rate", |(period, limit)| {
            Rate::new(limit, period).ok()
        })
        .boxed()
}

/// A calendar in one of [`TIME_ZONES`].
pub fn calendar() -> BoxedStrategy<Calendar> {
    select(TIME_ZONES)
        .prop_filter_map("known time zone", |zone| Calendar::new(zone).ok())
        .boxed()
}

/// Any valid limit, over all four algorithms and the whole accepted domain: GCRA and sliding
/// window on any [`rate`], sliding log up to [`SLIDING_LOG_MAX_LIMIT`], calendar on any
/// [`daily_rate`] in any of [`TIME_ZONES`].
pub fn limit() -> BoxedStrategy<Limit> {
    let log_rate = rate().prop_flat_map(|r| {
        let max = SLIDING_LOG_MAX_LIMIT.min(r.limit());
        (Just(r.period()), limit_up_to(max))
    });
    prop_oneof![
        rate().prop_map(Limit::gcra),
        rate().prop_map(Limit::sliding_window),
        log_rate.prop_filter_map("valid sliding log", |(period, limit)| {
            Limit::sliding_log(Rate::new(limit, period).ok()?).ok()
        }),
        (daily_rate(), calendar())
            .prop_filter_map("valid calendar", |(r, c)| Limit::calendar(r, c).ok()),
    ]
    .boxed()
}

/// A small limit that traces can reach and see roll over: 1 to 12 units per a few seconds to
/// a few hours, or per calendar day; all four algorithms.
pub fn small_limit() -> BoxedStrategy<Limit> {
    let period = prop_oneof![
        (1..=120u32).prop_map(|n| Period::new(n, Unit::Second)),
        (1..=90u32).prop_map(|n| Period::new(n, Unit::Minute)),
        (1..=6u32).prop_map(|n| Period::new(n, Unit::Hour)),
    ]
    .prop_filter_map("valid period", |p| p);
    let rate = (1..=12u64, period).prop_filter_map("valid rate", |(l, p)| Rate::new(l, p).ok());
    let daily = (1..=12u64).prop_filter_map("valid rate", |l| Rate::per(l, Unit::Day).ok());
    prop_oneof![
        rate.clone().prop_map(Limit::gcra),
        rate.clone().prop_map(Limit::sliding_window),
        rate.prop_filter_map("valid sliding log", |r| Limit::sliding_log(r).ok()),
        (daily, calendar()).prop_filter_map("valid calendar", |(r, c)| Limit::calendar(r, c).ok()),
    ]
    .boxed()
}

/// A realistic instant: any time in 2026 or 2027, or shortly before a DST change.
pub fn instant() -> BoxedStrategy<Micros> {
    prop_oneof![
        3 => (0..=2 * 366 * DAY).prop_map(|offset| YEAR_2026 + offset),
        1 => (select(DST_EVES), 0..=2 * DAY).prop_map(|(eve, offset)| eve + offset),
    ]
    .boxed()
}

/// Any instant the algorithms handle, biased towards the epoch, the present and
/// [`MAX_TIMESTAMP`].
pub fn any_instant() -> BoxedStrategy<Micros> {
    prop_oneof![
        2 => instant(),
        2 => 0..=MAX_TIMESTAMP,
        1 => (0..=2 * MAX_PERIOD_MICROS).prop_map(|d| MAX_TIMESTAMP - d),
        1 => 0..=2 * MAX_PERIOD_MICROS,
        1 => Just(MAX_TIMESTAMP),
    ]
    .boxed()
}

/// A cost for `limit`: mostly 1, sometimes up to the limit, sometimes above it (impossible).
pub fn cost(limit: u64) -> BoxedStrategy<u64> {
    let limit = limit.max(1);
    prop_oneof![
        6 => Just(1),
        2 => 1..=limit,
        1 => (limit + 1)..=(2 * limit + 1),
    ]
    .boxed()
}

/// A key of a trace's or batch's pool, with the limit it is always checked against (a key's
/// limit does not change within a trace, as it does not between configuration changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    /// The policy name.
    pub policy: Arc<str>,
    /// The store key.
    pub key: Key,
    /// The limit.
    pub limit: Arc<Limit>,
}

/// A pool of 1 to 4 distinct keys in `namespace`, each with a [`small_limit`]. Subjects
/// sometimes hold the characters keys escape (`:`, `{`, `}`, `%`).
pub fn key_pool(namespace: &str) -> BoxedStrategy<Vec<PoolKey>> {
    let namespace: Arc<str> = namespace.into();
    let kinds = vec![
        SubjectKind::User,
        SubjectKind::Tenant,
        SubjectKind::Ip,
        SubjectKind::ApiKey,
    ];
    let subjects = vec!["u-1", "acme", "a:b", "{x}", "100%", "203.0.113.9"];
    let entry = (select(kinds), select(subjects), small_limit());
    prop::collection::vec(entry, 1..=4)
        .prop_map(move |entries| {
            entries
                .into_iter()
                .enumerate()
                .map(|(i, (kind, subject, limit))| {
                    // The index makes keys distinct whatever the subjects drawn.
                    let policy: Arc<str> = format!("p{i}").into();
                    PoolKey {
                        key: Key::new(&namespace, &policy, kind, subject),
                        policy,
                        limit: Arc::new(limit),
                    }
                })
                .collect()
        })
        .boxed()
}

/// The check of one pool key: a [`cost`], shadow one time in six.
fn check(entry: &PoolKey) -> BoxedStrategy<Check> {
    let entry = entry.clone();
    (
        cost(entry.limit.rate().limit()),
        prop::bool::weighted(1.0 / 6.0),
    )
        .prop_map(move |(cost, shadow)| {
            let check = Check::new(
                entry.policy.clone(),
                entry.key.clone(),
                entry.limit.clone(),
                cost,
            );
            if shadow { check.shadow() } else { check }
        })
        .boxed()
}

/// A batch over some of `pool`'s keys (possibly none), in any order.
pub fn batch_from(pool: Vec<PoolKey>) -> BoxedStrategy<Batch> {
    let n = pool.len();
    let pool = Arc::new(pool);
    subsequence((0..n).collect::<Vec<_>>(), 0..=n)
        .prop_shuffle()
        .prop_flat_map(move |picked| {
            picked
                .into_iter()
                .map(|i| check(&pool[i]))
                .collect::<Vec<_>>()
        })
        .prop_filter_map("distinct keys", |checks| Batch::new(checks).ok())
        .boxed()
}

/// The checks of a batch in `namespace`: distinct keys from a small pool, costs mostly 1,
/// sometimes larger, sometimes above the limit, some in shadow mode.
pub fn checks(namespace: &str) -> BoxedStrategy<Vec<Check>> {
    batch(namespace).prop_map(|b| b.checks().to_vec()).boxed()
}

/// A batch in `namespace`, as [`checks`].
pub fn batch(namespace: &str) -> BoxedStrategy<Batch> {
    key_pool(namespace).prop_flat_map(batch_from).boxed()
}

/// One operation of a traffic trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// [`Store::evaluate`](crate::Store::evaluate).
    Evaluate(Batch),
    /// [`Store::peek`](crate::Store::peek).
    Peek(Batch),
    /// [`Store::refund`](crate::Store::refund).
    Refund(Batch),
    /// [`Store::reset`](crate::Store::reset).
    Reset(Key),
}

/// One step of a traffic trace: time moves forward by `advance`, then back by `back` (a clock
/// that went back, as a host with a skewed clock sharing the store; usually 0), then `op`
/// runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Microseconds since the previous step (or the trace's start).
    pub advance: Micros,
    /// Microseconds time then goes back.
    pub back: Micros,
    /// What runs.
    pub op: Op,
}

/// A traffic trace: operations on a small pool of keys, at instants that mostly move forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The namespace of every key.
    pub namespace: String,
    /// The instant before the first step.
    pub start: Micros,
    /// The steps.
    pub steps: Vec<Step>,
}

impl Trace {
    /// The steps with the instant each runs at.
    pub fn timed_steps(&self) -> impl Iterator<Item = (Micros, &Op)> {
        self.steps.iter().scan(self.start, |now, step| {
            *now = now.saturating_add(step.advance).saturating_sub(step.back);
            Some((*now, &step.op))
        })
    }

    /// The same trace with every key moved to `namespace`, so that one generated trace can be
    /// replayed on a shared store without meeting the state an earlier replay left.
    pub fn in_namespace(&self, namespace: &str) -> Trace {
        let rekey = |key: &Key| renamespace(key, namespace);
        let rebatch = |batch: &Batch| {
            let checks = batch
                .checks()
                .iter()
                .map(|c| Check {
                    key: rekey(&c.key),
                    ..c.clone()
                })
                .collect();
            // Renaming every key alike keeps them distinct.
            Batch::new(checks).unwrap_or_default()
        };
        Trace {
            namespace: namespace.to_owned(),
            start: self.start,
            steps: self
                .steps
                .iter()
                .map(|s| Step {
                    advance: s.advance,
                    back: s.back,
                    op: match &s.op {
                        Op::Evaluate(b) => Op::Evaluate(rebatch(b)),
                        Op::Peek(b) => Op::Peek(rebatch(b)),
                        Op::Refund(b) => Op::Refund(rebatch(b)),
                        Op::Reset(k) => Op::Reset(rekey(k)),
                    },
                })
                .collect(),
        }
    }
}

/// `key` with its namespace (the escaped text before the first `:`) replaced.
fn renamespace(key: &Key, namespace: &str) -> Key {
    let escaped = Key::new(namespace, "", SubjectKind::User, "");
    let prefix = escaped.as_str().split(':').next().unwrap_or_default();
    let rest = key.as_str().find(':').map_or("", |i| &key.as_str()[i..]);
    Key::from_raw(format!("{prefix}{rest}"))
}

/// How far time moves before one step, given the periods of the pool: often not at all (so
/// limits are reached), often a fraction of a period, sometimes past whole windows; and, one
/// step in twelve, how far it then goes back (up to a quarter period).
fn advance(periods: Vec<Micros>) -> BoxedStrategy<(Micros, Micros)> {
    select(periods)
        .prop_flat_map(|period| {
            let forward = prop_oneof![
                3 => Just(0),
                3 => 0..=period / 8,
                2 => 0..=period,
                1 => period..=3 * period,
            ];
            let back = prop_oneof![11 => Just(0), 1 => 1..=(period / 4).max(1)];
            (forward, back)
        })
        .boxed()
}

/// A traffic trace in `namespace`: 1 to 40 steps over a [`key_pool`], starting at an
/// [`instant`]. Each step moves time (now and then backwards), then evaluates (most often),
/// peeks at, refunds or resets.
pub fn trace(namespace: &str) -> BoxedStrategy<Trace> {
    let namespace = namespace.to_owned();
    (key_pool(&namespace), instant())
        .prop_flat_map(move |(pool, start)| {
            let periods: Vec<Micros> = pool
                .iter()
                .map(|k| k.limit.rate().period().micros())
                .collect();
            let keys: Vec<Key> = pool.iter().map(|k| k.key.clone()).collect();
            let op = prop_oneof![
                6 => batch_from(pool.clone()).prop_map(Op::Evaluate),
                2 => batch_from(pool.clone()).prop_map(Op::Peek),
                1 => batch_from(pool).prop_map(Op::Refund),
                1 => select(keys).prop_map(Op::Reset),
            ];
            let step =
                (advance(periods), op).prop_map(|((advance, back), op)| Step { advance, back, op });
            (
                Just(namespace.clone()),
                Just(start),
                prop::collection::vec(step, 1..=40),
            )
        })
        .prop_map(|(namespace, start, steps)| Trace {
            namespace,
            start,
            steps,
        })
        .boxed()
}

fn one_of(names: &'static [&'static str]) -> BoxedStrategy<String> {
    select(names).prop_map(str::to_owned).boxed()
}

fn ip() -> BoxedStrategy<IpAddr> {
    prop_oneof![
        3 => (0..4u8).prop_map(|n| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n))),
        1 => any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        1 => any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
    ]
    .boxed()
}

/// A request as a service would describe it: maybe a tenant on one of [`PLANS`], a user with
/// some of [`ROLES`], staff or superuser now and then, maybe an API key (sometimes flagged
/// bypass), maybe a client IP, maybe one of [`SCOPES`], a cost of mostly 1. Tenants, users and
/// IPs come from small pools, so requests share keys.
pub fn request() -> BoxedStrategy<Request> {
    let who = (
        prop::option::of(select(&["t-1", "t-2", "t-3"][..])),
        prop::option::of(one_of(PLANS)),
        prop::option::of(select(&["u-1", "u-2", "u-3", "u-4"][..])),
        prop::collection::vec(one_of(ROLES), 0..=2),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.05),
    );
    let how = (
        prop::option::weighted(
            0.2,
            (select(&["k-1", "k-2"][..]), prop::bool::weighted(0.3)),
        ),
        prop::option::weighted(0.8, ip()),
        prop::option::of(one_of(SCOPES)),
        prop_oneof![8 => Just(1u32), 1 => 2..=10u32],
        prop::option::weighted(
            0.3,
            (
                select(&["GET", "POST"][..]),
                select(&["/", "/v1/export"][..]),
            ),
        ),
    );
    (who, how)
        .prop_map(
            |((tenant, plan, user, roles, staff, superuser), (key, ip, scope, cost, endpoint))| {
                let mut r = Request::new().staff(staff).superuser(superuser).cost(cost);
                r.tenant = tenant.map(str::to_owned);
                r.plan = plan;
                r.user = user.map(str::to_owned);
                r.roles = roles;
                r.client_ip = ip;
                r.scope = scope;
                if let Some((id, bypass)) = key {
                    r = r.api_key(id, bypass);
                }
                if let Some((method, path)) = endpoint {
                    r = r.endpoint(method, path);
                }
                r
            },
        )
        .boxed()
}

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
/// time in five, disabled one time in ten.
fn policy_config(algorithms: &[AlgorithmChoice]) -> BoxedStrategy<PolicyConfig> {
    let subjects = vec![Subject::Tenant, Subject::User, Subject::ApiKey, Subject::Ip];
    (
        select(algorithms.to_vec()),
        subsequence(subjects, 1..=4).prop_shuffle(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.9),
    )
        .prop_map(|(algorithm, key, shadow, enabled)| {
            let mut policy = PolicyConfig::new(algorithm, key);
            policy.shadow = shadow;
            policy.enabled = enabled;
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
/// the algorithm its policy uses. [`PolicySet::from_config`](crate::PolicySet::from_config)
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
    let settings = (
        "[a-z][a-z0-9_-]{0,15}",
        select(TIME_ZONES),
        bypass,
        prop::bool::weighted(0.8),
    );
    (policies, settings)
        .prop_flat_map(
            |(((sustained, burst, daily), (role, scope), (anon, ip_burst)), settings)| {
                let (namespace, zone, bypass, with_anon) = settings;
                let mut config = Config {
                    namespace,
                    time_zone: zone.to_owned(),
                    ..Config::default()
                };
                let (staff, superuser, api_keys, ips, tenants, users) = bypass;
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
                config.policies.plan_sustained = sustained;
                config.policies.plan_burst = burst;
                config.policies.plan_daily = daily;
                config.policies.role = role;
                config.policies.scope = scope;
                config.policies.anon = anon;
                config.policies.ip_burst = ip_burst;
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
