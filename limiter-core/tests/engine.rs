//! The engine's own contracts: fail modes, hooks, headers, shadow mode and invalid input.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::policy::Config;
use limiter_core::{
    Batch, BatchOutcome, Error, ErrorKind, EvalOptions, Event, FailMode, FailModeUsed, HeaderStyle,
    Hook, Key, Limiter, ManualClock, PolicySet, Request, Store, Threshold,
};
use limiter_testkit::{CountingStore, ModelStore};

const T0: u64 = 1_795_687_200_000_000;

/// A store that is down: every call fails with a temporary error.
#[derive(Debug)]
struct DownStore;

impl fmt::Display for DownStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DownStore")
    }
}

fn down() -> Error {
    Error::store(DownStore, ErrorKind::Temporary, "connection refused", None)
}

#[async_trait]
impl Store for DownStore {
    async fn evaluate(&self, _: &Batch, _: &EvalOptions) -> Result<BatchOutcome, Error> {
        Err(down())
    }
    async fn reset(&self, _: &Key) -> Result<(), Error> {
        Err(down())
    }
}

fn free_user() -> Request {
    Request::new()
        .tenant("acme")
        .plan("free")
        .user("ann")
        .ip("192.0.2.1".parse().expect("valid ip"))
}

fn with_fail_mode(mode: FailMode) -> Limiter {
    Limiter::builder(PolicySet::default(), DownStore)
        .clock(ManualClock::new(T0))
        .fail_mode(mode)
        .build()
}

#[tokio::test]
async fn fail_open_allows_and_records_the_failure() {
    let d = with_fail_mode(FailMode::Open)
        .check(&free_user())
        .await
        .expect("decided");
    assert!(d.is_allowed());
    let failure = d.failure().expect("the fail mode is recorded");
    assert_eq!(failure.mode, FailModeUsed::Open);
    assert!(failure.temporary);
    assert!(
        failure.error.contains("connection refused"),
        "{}",
        failure.error
    );
}

#[tokio::test]
async fn fail_closed_denies_with_a_retry_after() {
    let d = with_fail_mode(FailMode::Closed)
        .check(&free_user())
        .await
        .expect("decided");
    assert!(!d.is_allowed());
    assert_eq!(d.failure().map(|f| f.mode), Some(FailModeUsed::Closed));
    assert_eq!(d.retry_after_secs(), Some(1));
    assert!(
        d.headers(HeaderStyle::All)
            .contains(&("Retry-After", "1".to_string()))
    );
}

#[tokio::test]
async fn fallback_store_keeps_limits_enforced() {
    let limiter = with_fail_mode(FailMode::Fallback(Arc::new(ModelStore::new())));
    for _ in 0..10 {
        let d = limiter.check(&free_user()).await.expect("decided");
        assert!(d.is_allowed());
        assert_eq!(d.failure().map(|f| f.mode), Some(FailModeUsed::Fallback));
    }
    let d = limiter.check(&free_user()).await.expect("decided");
    assert!(
        !d.is_allowed(),
        "the fallback store enforces the burst limit"
    );
}

#[tokio::test]
async fn a_failing_fallback_returns_the_primary_error() {
    let limiter = with_fail_mode(FailMode::Fallback(Arc::new(DownStore)));
    let err = limiter
        .check(&free_user())
        .await
        .expect_err("both stores are down");
    assert!(err.is_temporary());
    assert!(err.to_string().contains("DownStore"), "{err}");
}

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<String>>);

impl Hook for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        let line = match event {
            Event::Decided { decision, .. } => format!("decided allowed={}", decision.is_allowed()),
            Event::Denied { status, .. } => format!("denied {}", status.policy),
            Event::ThresholdCrossed {
                status, threshold, ..
            } => match threshold {
                Threshold::Approaching { percent } => {
                    format!("approaching {} {percent}%", status.policy)
                }
                Threshold::Exhausted => format!("exhausted {}", status.policy),
                _ => format!("other threshold {}", status.policy),
            },
            Event::StoreFailed { mode, .. } => format!("store failed {mode:?}"),
            _ => "other".into(),
        };
        self.0.lock().expect("not poisoned").push(line);
    }
}

#[derive(Debug, Clone, Default)]
struct SharedRecorder(Arc<Recorder>);

impl Hook for SharedRecorder {
    fn on_event(&self, event: &Event<'_>) {
        self.0.on_event(event);
    }
}

impl SharedRecorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.0.lock().expect("not poisoned"))
    }
}

#[tokio::test]
async fn hooks_see_thresholds_exhaustion_and_denials_once() {
    let recorder = SharedRecorder::default();
    let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(ManualClock::new(T0))
        .hook(recorder.clone())
        .build();
    // The free plan's burst is 10/minute: the 8th request reaches 80%, the 10th exhausts it.
    for _ in 0..7 {
        limiter.check(&free_user()).await.expect("decided");
    }
    let events = recorder.take();
    assert!(
        !events.iter().any(|e| e.contains("plan_burst")),
        "{events:?}"
    );
    limiter.check(&free_user()).await.expect("decided");
    let events = recorder.take();
    assert!(
        events.contains(&"approaching plan_burst 80%".to_string()),
        "{events:?}"
    );
    limiter.check(&free_user()).await.expect("decided");
    assert!(
        !recorder.take().iter().any(|e| e.contains("plan_burst")),
        "crossed only once"
    );
    limiter.check(&free_user()).await.expect("decided");
    assert!(
        recorder
            .take()
            .contains(&"exhausted plan_burst".to_string())
    );
    limiter.check(&free_user()).await.expect("decided");
    assert_eq!(
        recorder.take(),
        vec![
            "decided allowed=false".to_string(),
            "denied plan_burst".to_string()
        ]
    );
}

#[tokio::test]
async fn peek_emits_nothing_and_charges_nothing() {
    let recorder = SharedRecorder::default();
    let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(ManualClock::new(T0))
        .hook(recorder.clone())
        .build();
    for _ in 0..20 {
        assert!(
            limiter
                .peek(&free_user())
                .await
                .expect("decided")
                .is_allowed()
        );
    }
    assert!(recorder.take().is_empty());
}

#[tokio::test]
async fn headers_follow_the_ietf_draft_and_the_legacy_convention() {
    let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(ManualClock::new(T0))
        .build();
    let d = limiter.check(&free_user()).await.expect("decided");
    let headers = d.headers(HeaderStyle::All);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("missing {name} in {headers:?}"))
    };
    let policy = get("RateLimit-Policy");
    assert!(policy.contains("\"plan_burst\";q=10;w=60"), "{policy}");
    assert!(
        policy.contains("\"plan_sustained\";q=100;w=3600"),
        "{policy}"
    );
    let current = get("RateLimit");
    assert!(current.contains("\"plan_burst\";r=9;t=6"), "{current}");
    // The binding limit is the one with the fewest units left: the burst, 9 of 10.
    assert_eq!(get("X-RateLimit-Limit"), "10");
    assert_eq!(get("X-RateLimit-Remaining"), "9");
    assert!(!headers.iter().any(|(n, _)| *n == "Retry-After"));
    let legacy = d.headers(HeaderStyle::Legacy);
    assert!(!legacy.iter().any(|(n, _)| n.starts_with("RateLimit")));
}

#[tokio::test]
async fn shadow_policies_are_reported_but_not_enforced() {
    let config = Config::from_toml_str("[policies.plan_burst]\nshadow = true\n").expect("valid");
    let limiter = Limiter::builder(
        PolicySet::from_config(&config).expect("valid"),
        ModelStore::new(),
    )
    .clock(ManualClock::new(T0))
    .build();
    for _ in 0..15 {
        let d = limiter.check(&free_user()).await.expect("decided");
        assert!(d.is_allowed(), "a shadow limit never denies");
    }
    let d = limiter.check(&free_user()).await.expect("decided");
    let shadow: Vec<_> = d.shadow_denials().map(|s| s.policy.to_string()).collect();
    assert_eq!(shadow, vec!["plan_burst".to_string()]);
}

#[tokio::test]
async fn a_cost_that_can_never_fit_is_not_a_wait() {
    let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(ManualClock::new(T0))
        .build();
    let d = limiter.check(&free_user().cost(11)).await.expect("decided");
    assert!(!d.is_allowed());
    assert!(d.is_impossible());
    assert_eq!(d.retry_after(), None, "waiting does not help");
    let msg = d.message().expect("denied");
    assert!(msg.contains("cost of 11 exceeds the limit of 10"), "{msg}");
    // Nothing was charged.
    assert!(
        limiter
            .check(&free_user().cost(10))
            .await
            .expect("decided")
            .is_allowed()
    );
}

#[tokio::test]
async fn invalid_requests_are_errors_that_say_why() {
    let store = Arc::new(CountingStore::new(ModelStore::new()));
    let limiter = Limiter::new(PolicySet::default(), store.clone());
    let err = limiter
        .check(&free_user().cost(0))
        .await
        .expect_err("cost 0");
    assert!(
        err.to_string().contains("cost is 0; expected at least 1"),
        "{err}"
    );
    let err = limiter
        .check(&free_user().plan("platinum"))
        .await
        .expect_err("unknown plan");
    let msg = err.to_string();
    assert!(
        msg.contains("\"platinum\"") && msg.contains("free"),
        "{msg}"
    );
    assert_eq!(store.calls(), 0);
}

#[tokio::test]
async fn retry_after_is_honest_the_request_fits_after_it() {
    let clock = ManualClock::new(T0);
    let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
        .clock(clock.clone())
        .build();
    for _ in 0..10 {
        limiter.check(&free_user()).await.expect("decided");
    }
    let d = limiter.check(&free_user()).await.expect("decided");
    let wait = d.retry_after().expect("denied, waiting helps");
    clock.advance(wait - Duration::from_micros(1));
    assert!(
        !limiter
            .check(&free_user())
            .await
            .expect("decided")
            .is_allowed()
    );
    clock.advance(Duration::from_micros(1));
    assert!(
        limiter
            .check(&free_user())
            .await
            .expect("decided")
            .is_allowed()
    );
}
