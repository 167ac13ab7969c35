//! `LocalDenials` in front of a store: it decides as the store alone does (the model, on
//! random traces), answers a flood on a denied subject without the store, and forgets a denial
//! on a reset or refund made through it; one made elsewhere is seen within the bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use limiter_core::{Batch, BatchOutcome, Check, EvalOptions, Key, Limit, Store, StoreExt};
use limiter_core::{SubjectKind, Verdict};
use limiter_memory::{LocalDenials, MemoryConfig, MemoryStore};
use limiter_testkit::fixtures::{every_algorithm, proptest_cases};
use limiter_testkit::strategies::{self, Op, Trace};
use limiter_testkit::{CountingStore, ModelStore};
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const NOW: u64 = 1_795_651_200_000_000;

fn checks(subject: &str, cost: u64) -> Vec<Check> {
    every_algorithm(5)
        .into_iter()
        .enumerate()
        .map(|(i, limit)| {
            let policy = format!("p{i}");
            let key = Key::new("api", &policy, SubjectKind::Tenant, subject);
            Check::new(policy, key, limit, cost)
        })
        .collect()
}

fn batch(checks: Vec<Check>) -> Batch {
    Batch::new(checks).expect("distinct keys")
}

/// Whether two outcomes agree: always on the verdict and each limit's; entirely when the
/// store answered (`local` false). A local denial reports the store's last figures counted
/// down, which may differ from the current ones in `remaining`.
fn agree(got: &BatchOutcome, expected: &BatchOutcome, local: bool) -> bool {
    if !local {
        return got == expected;
    }
    let verdicts = |o: &BatchOutcome| o.statuses.iter().map(|s| s.verdict).collect::<Vec<_>>();
    got.allowed == expected.allowed && verdicts(got) == verdicts(expected)
}

async fn replay(
    store: &LocalDenials<MemoryStore>,
    trace: &Trace,
    local_answers: &AtomicU64,
) -> Result<(), TestCaseError> {
    let model = ModelStore::new();
    for (step, (now, op)) in trace.timed_steps().enumerate() {
        let error = |e: limiter_core::Error| TestCaseError::fail(format!("step {step}: {e}"));
        let options = match op {
            Op::Evaluate(_) => EvalOptions::at(now),
            Op::Peek(_) => EvalOptions::peek(now),
            Op::Refund(_) => EvalOptions::refund(now, now),
            Op::Reset(key) => {
                store.reset(key).await.map_err(error)?;
                model.reset(key).await.map_err(error)?;
                continue;
            }
        };
        let (Op::Evaluate(b) | Op::Peek(b) | Op::Refund(b)) = op else {
            unreachable!("resets are handled above")
        };
        // A charge is sent twice, as a client retrying at once would: the repeat of a denial
        // is what the wrapper answers locally. A denied one is sent once more when its
        // earliest retry time comes (if soon), when the wrapper must let the store decide.
        let mut times = vec![now];
        if matches!(op, Op::Evaluate(_)) {
            times.push(now);
        }
        let mut send = 0;
        while let Some(&at) = times.get(send) {
            let mut options = options.clone();
            options.now = at;
            let before = store.answered_locally();
            let got = store.evaluate(b, &options).await.map_err(error)?;
            let local = store.answered_locally() > before;
            local_answers.fetch_add(u64::from(local), Ordering::Relaxed);
            let expected = model.evaluate(b, &options).await.map_err(error)?;
            if !agree(&got, &expected, local) {
                return Err(TestCaseError::fail(format!(
                    "step {step}, send {send} ({op:?} at {at}, local answer: {local}): got \
                     {got:?}, the model {expected:?}"
                )));
            }
            let retry = got
                .statuses
                .iter()
                .filter(|s| s.verdict == Verdict::Denied)
                .map(|s| s.retry_after)
                .min();
            // Within a quarter of the shortest period: the trace itself goes back no further,
            // and the store's sweep keeps every state that time may come back to.
            let quarter = b
                .checks()
                .iter()
                .map(|c| c.limit.rate().period().micros() / 4)
                .min()
                .unwrap_or(0);
            if let (1, false, Some(retry)) = (send, got.allowed, retry)
                && retry <= quarter
            {
                times.push(at.saturating_add(retry));
            }
            send += 1;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_the_models_on_random_traces() {
    let config = Config {
        cases: proptest_cases(256),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let local_answers = AtomicU64::new(0);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategies::trace("denials"), |trace| {
            // A fresh wrapper and store per trace, holding denials as long as they last. The
            // store sweeps in the callers' time, with a margin of the longest period it has
            // seen; traces go back by up to a quarter of any period of their pool, before the
            // store may have seen it: sweeps are off, so that the store keeps what the model
            // keeps.
            let unswept = MemoryConfig::new().with_sweep_interval(None);
            let store = LocalDenials::new(MemoryStore::new(unswept).expect("valid config"))
                .with_max_hold(Duration::from_secs(365 * 86_400));
            handle.block_on(replay(&store, &trace, &local_answers))
        })
    });
    if let Err(e) = result {
        panic!("LocalDenials differs from the model: {e}");
    }
    // The traces did exercise local answers.
    let local = local_answers.load(Ordering::Relaxed);
    assert!(local > 0, "no local answer in any trace");
}

#[tokio::test]
async fn a_flood_on_a_denied_subject_reaches_the_store_once() {
    let store = LocalDenials::new(CountingStore::new(MemoryStore::default()))
        .with_max_hold(Duration::from_secs(3600));
    let b = batch(checks("flooded", 1));
    let mut admitted = 0;
    for n in 0..5 {
        admitted += u64::from(
            store
                .evaluate(&b, &EvalOptions::at(NOW + n))
                .await
                .expect("spend")
                .allowed,
        );
    }
    assert_eq!(admitted, 5);
    assert_eq!(store.inner().calls(), 5);
    // The first denial goes to the store; the next 10 000, within the minute, do not.
    for n in 0..10_000 {
        let outcome = store
            .evaluate(&b, &EvalOptions::at(NOW + 10 + n))
            .await
            .expect("flood");
        assert!(!outcome.allowed, "request {n}: {outcome:?}");
    }
    assert_eq!(
        store.inner().calls(),
        6,
        "store calls for 10 000 denied requests"
    );
    assert_eq!(store.answered_locally(), 9_999);
    // A higher cost on the same keys is not the denial remembered: the store decides it.
    let heavier = batch(checks("flooded", 2));
    assert!(
        !store
            .evaluate(&heavier, &at(NOW + 20))
            .await
            .expect("heavier")
            .allowed
    );
    assert_eq!(store.inner().calls(), 7);
}

fn at(now: u64) -> EvalOptions {
    EvalOptions::at(now)
}

#[tokio::test]
async fn a_local_denial_counts_down_the_stores_figures_and_ends_at_the_retry_time() {
    let store = LocalDenials::new(CountingStore::new(MemoryStore::default()))
        .with_max_hold(Duration::from_secs(3600));
    let key = Key::new("api", "burst", SubjectKind::User, "u");
    let limit = Limit::gcra("1/minute".parse().expect("rate"));
    let b = batch(vec![Check::new("burst", key, limit, 1)]);
    assert!(store.evaluate(&b, &at(NOW)).await.expect("first").allowed);
    // A second later: denied for the other 59.
    let denied = store
        .evaluate(&b, &at(NOW + 1_000_000))
        .await
        .expect("denied");
    let retry = denied.statuses[0].retry_after;
    assert_eq!(retry, 59_000_000);
    let local = store
        .evaluate(&b, &at(NOW + 31_000_000))
        .await
        .expect("local");
    assert_eq!(store.answered_locally(), 1);
    assert_eq!(local.at, NOW + 31_000_000);
    assert_eq!(local.statuses[0].verdict, Verdict::Denied);
    assert_eq!(local.statuses[0].retry_after, retry - 30_000_000);
    // At the retry time the store decides again, and admits.
    let calls = store.inner().calls();
    assert!(
        store
            .evaluate(&b, &at(NOW + 60_000_000))
            .await
            .expect("retry")
            .allowed
    );
    assert_eq!(store.inner().calls(), calls + 1);
}

#[tokio::test]
async fn a_reset_or_refund_through_the_wrapper_ends_the_denial_and_elsewhere_within_the_bound() {
    let inner = Arc::new(MemoryStore::default());
    let store = LocalDenials::new(inner.clone()).with_max_hold(Duration::from_millis(300));
    let key = Key::new("api", "burst", SubjectKind::User, "u");
    let limit = Limit::gcra("1/hour".parse().expect("rate"));
    let b = batch(vec![Check::new("burst", key.clone(), limit, 1)]);
    let deny_twice = || async {
        assert!(!store.evaluate(&b, &at(NOW)).await.expect("store").allowed);
        let before = store.answered_locally();
        assert!(!store.evaluate(&b, &at(NOW)).await.expect("local").allowed);
        assert_eq!(store.answered_locally(), before + 1, "denied locally");
    };

    assert!(store.evaluate(&b, &at(NOW)).await.expect("first").allowed);
    deny_twice().await;
    store.reset(&key).await.expect("reset");
    assert!(
        store
            .evaluate(&b, &at(NOW))
            .await
            .expect("after reset")
            .allowed
    );

    deny_twice().await;
    store.refund(&b, &at(NOW), NOW).await.expect("refund");
    assert!(
        store
            .evaluate(&b, &at(NOW))
            .await
            .expect("after refund")
            .allowed
    );

    // Reset behind the wrapper's back (another process): still denied here, for at most the
    // hold of 300 ms; then the store decides again. (The wait is the bound under test.)
    deny_twice().await;
    inner.reset(&key).await.expect("reset elsewhere");
    assert!(!store.evaluate(&b, &at(NOW)).await.expect("held").allowed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store
            .evaluate(&b, &at(NOW))
            .await
            .expect("after the hold")
            .allowed
    );
}

#[tokio::test]
async fn notices_go_through_to_a_store_that_keeps_them() {
    use limiter_core::notify::{NotifyRules, Outbox};
    use limiter_core::policy::PolicyKind;
    use limiter_core::{Limiter, ManualClock, Request};
    use limiter_testkit::conformance::events::{TRACE_QUOTA, trace_policies};

    assert!(!LocalDenials::new(ModelStore::new()).keeps_notices());
    let store = Arc::new(MemoryStore::default());
    let denials = LocalDenials::new(Arc::clone(&store));
    assert!(denials.keeps_notices());
    let rules = NotifyRules::new([PolicyKind::PlanDaily], [80]).expect("valid rules");
    let limiter = Limiter::builder(trace_policies(), denials)
        .clock(ManualClock::new(NOW))
        .notify(rules)
        .expect("the wrapped store keeps notices")
        .build();
    let request = Request::new().tenant("acme").plan("tiny").user("u");
    let mut admitted = 0;
    for _ in 0..TRACE_QUOTA + 5 {
        admitted += u64::from(limiter.check(&request).await.expect("decided").is_allowed());
    }
    assert_eq!(admitted, TRACE_QUOTA);
    // Approaching, exhausted, resets soon and restored: each once, whoever denied the rest.
    let stats = store.outbox().stats(NOW).await.expect("stats");
    assert_eq!(stats.pending, 4, "{:?}", store.outbox());
}
