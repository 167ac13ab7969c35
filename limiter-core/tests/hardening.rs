//! Regression tests of the hardening issue: each test is named after the gap it closes, and
//! failed before the fix.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use limiter_core::policy::{BypassReason, Config, PolicyKind, Resolution};
use limiter_core::{
    Batch, BatchOutcome, Check, Decision, Error, ErrorKind, EvalOptions, Event, FailMode,
    FailModeUsed, HeaderStyle, Hook, Key, Limiter, ManualClock, PolicySet, Request, Store,
};
use limiter_testkit::{CountingStore, ModelStore};

const T0: u64 = 1_795_687_200_000_000;

fn limiter() -> Limiter {
    Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(ManualClock::new(T0))
        .build()
}

fn remaining(decision: &Decision, policy: &str) -> u64 {
    decision
        .statuses()
        .iter()
        .find(|s| &*s.policy == policy)
        .unwrap_or_else(|| panic!("no {policy} in {decision:?}"))
        .status
        .remaining
}

/// A denied decision charges nothing, so every limit reports what stands: after 10 requests on
/// the free plan the burst limit denies the 11th, and the sustained limit (100/hour) still has
/// 90, in its status and in the `RateLimit` header; a first request of cost 11, which the
/// burst limit can never admit, leaves an untouched sustained limit at 100.
#[tokio::test]
async fn figures_on_a_denial_report_what_stands() {
    let limiter = limiter();
    let ann = Request::new()
        .tenant("acme")
        .plan("free")
        .user("ann")
        .ip([192, 0, 2, 1].into());
    for _ in 0..10 {
        assert!(limiter.check(&ann).await.expect("decided").is_allowed());
    }
    let denied = limiter.check(&ann).await.expect("decided");
    assert!(!denied.is_allowed());
    assert_eq!(
        &*denied.binding().expect("a binding limit").policy,
        "plan_burst"
    );
    assert_eq!(remaining(&denied, "plan_sustained"), 90, "{denied:?}");
    assert_eq!(remaining(&denied, "plan_daily"), 490, "{denied:?}");
    let headers = denied.headers(HeaderStyle::All);
    let ratelimit = headers
        .iter()
        .find(|(name, _)| *name == "RateLimit")
        .map(|(_, value)| value.as_str())
        .expect("a RateLimit header");
    assert!(!ratelimit.contains("r=89"), "{ratelimit}");

    let big = Request::new()
        .tenant("other")
        .plan("free")
        .user("bob")
        .ip([192, 0, 2, 2].into())
        .cost(11);
    let impossible = limiter.check(&big).await.expect("decided");
    assert!(!impossible.is_allowed());
    assert_eq!(
        remaining(&impossible, "plan_sustained"),
        100,
        "{impossible:?}"
    );
    assert_eq!(remaining(&impossible, "plan_daily"), 500, "{impossible:?}");
}

/// A hook that panics never breaks a decision: `check` returns its decision, the other hooks
/// still see every event, and the panics are counted, with the first one's message kept.
#[tokio::test]
async fn a_panicking_hook_never_breaks_a_decision() {
    #[derive(Debug)]
    struct Panics;
    impl Hook for Panics {
        fn on_event(&self, _: &Event<'_>) {
            panic!("telemetry is down");
        }
    }
    #[derive(Debug, Default)]
    struct Counts(AtomicU64);
    impl Hook for Counts {
        fn on_event(&self, event: &Event<'_>) {
            if matches!(event, Event::Decided { .. }) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let counts = Arc::new(Counts::default());
    let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(ManualClock::new(T0))
        .hook(Panics)
        .hook(Arc::clone(&counts))
        .build();
    let req = Request::new().user("ann").ip([192, 0, 2, 1].into());
    for _ in 0..3 {
        let decision = limiter
            .check(&req)
            .await
            .expect("a decision despite the hook");
        assert!(decision.is_allowed());
    }
    assert_eq!(
        counts.0.load(Ordering::Relaxed),
        3,
        "the other hook saw every decision"
    );
    let panics = limiter.hook_panics();
    assert!(panics.count() >= 3, "{}", panics.count());
    let first = panics.first().expect("the first panic is kept");
    assert!(
        first.contains("telemetry is down") && first.contains("Panics"),
        "{first}"
    );
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Variables of other components that share the `LIMITER_` prefix do not abort startup; the
/// configuration's own settings still apply beside them.
#[test]
fn unrelated_environment_variables_do_not_abort_startup() {
    let mut config = Config::default();
    config
        .apply_env(vars(&[
            ("LIMITER_LOG_LEVEL", "debug"),
            (
                "LIMITER_REDIS_CLUSTER_URL",
                "redis-cluster://127.0.0.1:7000",
            ),
            ("LIMITER_PROPTEST_CASES", "5"),
            ("LIMITER_BENCH_REPORT", "/tmp/report"),
            ("LIMITER_PLANS__FREE__BURST", "20/minute"),
        ]))
        .expect("unrelated variables are skipped");
    assert_eq!(config.plans["free"].burst.to_string(), "20/minute");
}

/// A misspelt path inside the configuration's tree still fails, naming the variable and the
/// expected names; so does a near miss of a top-level setting.
#[test]
fn a_misspelt_setting_in_the_environment_still_fails() {
    for (var, expected) in [
        (
            "LIMITER_PLANS__FREE__BRUST",
            "unknown field `brust`, expected one of `sustained`, `burst`, `daily`",
        ),
        (
            "LIMITER_POLICIES__SCOPE__SHADW",
            "unknown field `shadw`, expected one of `algorithm`, `key`, `shadow`, `headers`",
        ),
        (
            "LIMITER_TIMEZONE",
            "unknown field `timezone`, expected one of `namespace`",
        ),
    ] {
        let error = Config::default()
            .apply_env(vars(&[(var, "x")]))
            .expect_err("a misspelt setting")
            .to_string();
        assert!(
            error.contains(var) && error.contains(expected),
            "{var}: {error}"
        );
    }
}

/// The error for an unknown plan names it and a few configured plans, not all of them: with
/// 10,000 plans it stays short.
#[test]
fn an_unknown_plan_error_is_bounded() {
    let mut config = Config::default();
    for i in 0..10_000 {
        let plan = config.plans["free"];
        config.plans.insert(format!("plan-{i:05}"), plan);
    }
    let policies = PolicySet::from_config(&config).expect("valid");
    let request = Request::new().user("ann").plan("platinum");
    let error = refusal(&policies, &request);
    assert!(
        error.contains("\"platinum\"") && error.contains("and 9999 more"),
        "{error}"
    );
    assert!(error.len() < 200, "{} bytes: {error}", error.len());
}

/// A scope whose name headers cannot render distinctly is refused when the configuration
/// loads, naming it.
#[test]
fn a_scope_name_headers_cannot_render_is_refused() {
    for name in ["exp\u{f6}rt", "two words", "tab\there"] {
        let mut config = Config::default();
        config
            .scopes
            .insert(name.to_owned(), "10/hour".parse().expect("valid"));
        let error = PolicySet::from_config(&config).expect_err(name).to_string();
        assert!(
            error.contains(&format!("scopes.{name}")) && error.contains("ASCII"),
            "{error}"
        );
    }
}

/// No arithmetic panic on any `u64` time up to `u64::MAX`: every algorithm's check, apply,
/// refund, standing and fresh_at, calendar day bounds in several zones, and the headers of the
/// decisions such times produce.
#[tokio::test]
async fn no_arithmetic_panic_on_any_time() {
    use limiter_core::time::MAX_TIMESTAMP;
    use limiter_core::{Calendar, State};
    use limiter_testkit::fixtures::every_algorithm;

    let times = [
        0,
        1,
        MAX_TIMESTAMP - 1,
        MAX_TIMESTAMP,
        MAX_TIMESTAMP + 1,
        u64::MAX - 1,
        u64::MAX,
    ];
    for zone in [
        "UTC",
        "Europe/Paris",
        "Pacific/Kiritimati",
        "America/Santiago",
    ] {
        let calendar = Calendar::new(zone).expect("a zone");
        for &now in &times {
            let (start, end) = calendar.day_bounds(now);
            assert!(start <= end, "{zone} at {now}: {start} > {end}");
        }
    }
    for limit in every_algorithm(5) {
        for &first in &times {
            let mut state = State::Fresh;
            limit.apply(&mut state, first, 2);
            for &now in &times {
                for cost in [0, 1, 5, 6, u64::MAX] {
                    let _ = limit.check(&state, now, cost);
                }
                let _ = limit.standing(&state, now);
                let _ = limit.fresh_at(&state);
                let mut refunded = state.clone();
                limit.refund(&mut refunded, now, u64::MAX, first);
                let mut charged = state.clone();
                limit.apply(&mut charged, now, u64::MAX);
                let _ = limit.fresh_at(&charged);
            }
        }
    }
    for &now in &times {
        let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
            .clock(ManualClock::new(now))
            .build();
        let req = Request::new().user("ann").ip([192, 0, 2, 1].into());
        for _ in 0..12 {
            let decision = limiter.check(&req).await.expect("decided");
            let _ = decision.headers(HeaderStyle::All);
            let _ = decision.message();
        }
    }
}

/// The error `policies` answer `request` with.
fn refusal(policies: &PolicySet, request: &Request) -> String {
    match policies.resolve(request) {
        Ok(resolution) => panic!("{request:?} resolved to {resolution:?}"),
        Err(error) => error.to_string(),
    }
}

fn checks_of(policies: &PolicySet, request: &Request) -> Vec<Check> {
    match policies.resolve(request).expect("resolved") {
        Resolution::Limits(checks) => checks.into(),
        other => panic!("expected limits, got {other:?}"),
    }
}

/// The review's probe P1: 100 password attempts within a minute from 100 addresses of one
/// IPv6 /64, against `scope.password` (3/minute), admit 3: the /64 is one client.
#[tokio::test]
async fn an_ipv6_network_is_one_client() {
    let limiter = limiter();
    let mut admitted = 0;
    for i in 1..=100u16 {
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, 0, 0, i));
        let attempt = Request::new().scope("password").ip(ip);
        admitted += u32::from(limiter.check(&attempt).await.expect("decided").is_allowed());
    }
    assert_eq!(admitted, 3);
}

/// IPv4-mapped and NAT64 addresses count as the IPv4 client they carry, in keys and in the
/// allow-list; a policy can count clients by its own prefix.
#[test]
fn mapped_and_nat64_addresses_count_as_ipv4() {
    let policies = PolicySet::default();
    let key_of = |ip: &str| {
        let request = Request::new().ip(ip.parse().expect("an address"));
        let checks = checks_of(&policies, &request);
        let ip_burst = checks
            .iter()
            .find(|c| &*c.policy == "ip_burst")
            .expect("ip_burst");
        ip_burst.key.clone()
    };
    let v4 = key_of("192.0.2.7");
    assert_eq!(key_of("::ffff:192.0.2.7"), v4);
    assert_eq!(key_of("64:ff9b::192.0.2.7"), v4);
    assert_ne!(key_of("192.0.2.8"), v4);

    let mut config = Config::default();
    config.bypass.ips = vec!["::ffff:10.0.0.0/104".parse().expect("a mapped network")];
    config.policies[PolicyKind::Scope].ipv6_prefix = Some(48);
    let policies = PolicySet::from_config(&config).expect("valid");
    for ip in ["10.1.2.3", "::ffff:10.1.2.3", "64:ff9b::10.1.2.3"] {
        let request = Request::new().ip(ip.parse().expect("an address"));
        let resolution = policies.resolve(&request).expect("resolved");
        assert!(
            matches!(resolution, Resolution::Bypass(_)),
            "{ip}: {resolution:?}"
        );
    }
    let scope_key = |ip: &str| {
        let request = Request::new()
            .scope("auth")
            .ip(ip.parse().expect("an address"));
        let checks = checks_of(&policies, &request);
        checks
            .into_iter()
            .find(|c| &*c.policy == "scope.auth")
            .expect("scope.auth")
            .key
    };
    assert_eq!(
        scope_key("2001:db8:1:2::1"),
        scope_key("2001:db8:1:ffff::1")
    );
    assert_ne!(scope_key("2001:db8:1::1"), scope_key("2001:db8:2::1"));
}

/// A tenant alone does not authenticate: anonymous limits apply, and the tenant's plan is not
/// spent by a client nobody signed in.
#[test]
fn a_tenant_alone_is_not_authenticated() {
    let request = Request::new().tenant("victim").ip([192, 0, 2, 1].into());
    let policies: Vec<String> = checks_of(&PolicySet::default(), &request)
        .iter()
        .map(|c| c.policy.to_string())
        .collect();
    assert_eq!(policies, ["anon", "ip_burst"]);
}

/// An empty id is an error naming the field; ids of any length are accepted and their keys
/// stay bounded.
#[test]
fn empty_ids_are_refused_and_long_ids_keep_keys_bounded() {
    let policies = PolicySet::default();
    let ip: IpAddr = [192, 0, 2, 1].into();
    let base = || Request::new().user("ann").ip(ip);
    for (request, field) in [
        (base().tenant(""), "tenant"),
        (Request::new().user("").ip(ip), "user"),
        (base().role(""), "role"),
        (base().scope(""), "scope"),
        (base().api_key("", false), "api key id"),
    ] {
        let error = refusal(&policies, &request);
        assert!(
            error.contains(&format!("{field} is empty")),
            "{field}: {error}"
        );
    }
    let long = "x".repeat(100_000);
    let request = Request::new().tenant(long.clone()).user(long).ip(ip);
    for check in checks_of(&policies, &request) {
        assert!(check.key.as_str().len() < 128, "{}", check.key);
    }
}

/// An anonymous request without its client IP is not silently unlimited: an error says the
/// service must pass it, unless the configuration lets such requests through.
#[test]
fn an_anonymous_request_without_an_ip_is_refused() {
    let request = Request::new().scope("password");
    let error = refusal(&PolicySet::default(), &request);
    assert!(
        error.contains("no client IP") && error.contains("Request::ip"),
        "{error}"
    );
    let mut config = Config::default();
    config.client.require_ip = false;
    let policies = PolicySet::from_config(&config).expect("valid");
    assert!(policies.resolve(&request).is_ok());
}

/// Configuration can keep abuse protection applying to bypassed requests: a staff user's
/// password attempts still meet `scope.password` (3/minute), and the decision still says why
/// the other limits did not apply. By default a bypass counts nothing and reads no store.
#[tokio::test]
async fn bypass_can_keep_abuse_protection() {
    let staff = Request::new()
        .user("admin")
        .staff(true)
        .scope("password")
        .ip([192, 0, 2, 1].into());

    let store = Arc::new(CountingStore::new(ModelStore::new()));
    let limiter = Limiter::builder(PolicySet::default(), Arc::clone(&store))
        .clock(ManualClock::new(T0))
        .build();
    for _ in 0..10 {
        let decision = limiter.check(&staff).await.expect("decided");
        assert!(decision.is_allowed() && decision.bypass().is_some());
    }
    assert_eq!(store.calls(), 0, "a bypass reads no store by default");

    let mut config = Config::default();
    config.bypass.keep = vec!["ip_burst".into(), "scope.password".into()];
    let limiter = Limiter::builder(
        PolicySet::from_config(&config).expect("valid"),
        ModelStore::new(),
    )
    .clock(ManualClock::new(T0))
    .build();
    let mut admitted = 0;
    for _ in 0..10 {
        let decision = limiter.check(&staff).await.expect("decided");
        assert_eq!(
            decision.bypass(),
            Some(&BypassReason::Staff),
            "{decision:?}"
        );
        let kept: Vec<&str> = decision.statuses().iter().map(|s| &*s.policy).collect();
        assert_eq!(kept, ["scope.password", "ip_burst"]);
        admitted += u32::from(decision.is_allowed());
    }
    assert_eq!(admitted, 3);

    config.bypass.keep = vec!["scope.nope".into()];
    let error = PolicySet::from_config(&config)
        .expect_err("unknown")
        .to_string();
    assert!(
        error.contains("bypass.keep[0]") && error.contains("scope.nope"),
        "{error}"
    );
}

/// A store that always fails with the error it was built with.
#[derive(Debug)]
struct Failing(fn() -> Error);

impl std::fmt::Display for Failing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Failing")
    }
}

#[async_trait::async_trait]
impl Store for Failing {
    async fn evaluate(&self, _: &Batch, _: &EvalOptions) -> Result<BatchOutcome, Error> {
        Err((self.0)())
    }
    async fn reset(&self, _: &Key) -> Result<(), Error> {
        Err((self.0)())
    }
}

/// A limiter over a store that fails with `error`, decided by `mode`.
fn failing(error: fn() -> Error, mode: FailMode) -> limiter_core::LimiterBuilder {
    Limiter::builder(PolicySet::default(), Failing(error)).fail_mode(mode)
}

/// An authenticated request.
fn ann() -> Request {
    Request::new().user("ann").ip([192, 0, 2, 1].into())
}

fn corrupt() -> Error {
    Error::store(
        Failing(corrupt),
        ErrorKind::Permanent,
        "corrupt state at key k",
        None,
    )
}

fn timed_out() -> Error {
    Error::Timeout {
        backend: "Failing".into(),
        timeout: std::time::Duration::from_millis(50),
    }
}

/// Fail modes decide temporary failures only: a permanent failure is returned to the caller,
/// never quietly admitted, unless a separate setting says to decide those too.
#[tokio::test]
async fn a_permanent_failure_is_never_silently_admitted() {
    let req = ann();
    let error = failing(corrupt, FailMode::Open)
        .build()
        .check(&req)
        .await
        .expect_err("a permanent failure");
    assert!(
        !error.is_temporary() && error.to_string().contains("corrupt"),
        "{error}"
    );

    let chosen = failing(corrupt, FailMode::Open)
        .permanent_fail_mode(FailMode::Closed)
        .build();
    let decision = chosen
        .check(&req)
        .await
        .expect("decided by the explicit setting");
    assert!(!decision.is_allowed());
    let failure = decision.failure().expect("recorded");
    assert!(
        !failure.temporary && failure.mode == FailModeUsed::Closed,
        "{failure:?}"
    );
}

/// A denial after a timeout says the call may have charged: the request may have cost one
/// unit, never the reverse.
#[tokio::test]
async fn a_decision_records_that_a_failed_call_may_have_charged() {
    let closed = failing(timed_out, FailMode::Closed).build();
    let decision = closed.check(&ann()).await.expect("decided");
    assert!(!decision.is_allowed());
    assert!(decision.failure().expect("recorded").may_have_charged);
}

/// Abuse controls can stay out of the response headers, so that a client cannot read the
/// exact quota it must stay under; a denial by one still sends `Retry-After`.
#[tokio::test]
async fn abuse_controls_can_stay_out_of_headers() {
    let mut config = Config::default();
    config.policies[PolicyKind::IpBurst].headers = false;
    config.policies[PolicyKind::Scope].headers = false;
    let limiter = Limiter::builder(
        PolicySet::from_config(&config).expect("valid"),
        ModelStore::new(),
    )
    .clock(ManualClock::new(T0))
    .build();
    let attempt = Request::new().scope("password").ip([192, 0, 2, 1].into());
    let mut last = None;
    for _ in 0..4 {
        last = Some(limiter.check(&attempt).await.expect("decided"));
    }
    let denied = last.expect("four attempts");
    assert!(!denied.is_allowed());
    assert_eq!(
        &*denied.binding().expect("binding").policy,
        "scope.password"
    );
    let headers = denied.headers(HeaderStyle::All);
    let text = format!("{headers:?}");
    assert!(
        !text.contains("ip_burst") && !text.contains("scope."),
        "{text}"
    );
    assert!(
        text.contains("anon"),
        "the quota policies are still named: {text}"
    );
    assert!(
        headers.iter().any(|(name, _)| *name == "Retry-After"),
        "{text}"
    );
    assert!(
        !headers
            .iter()
            .any(|(name, _)| name.starts_with("X-RateLimit")),
        "{text}"
    );
}
