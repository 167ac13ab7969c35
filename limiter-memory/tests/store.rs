//! The memory store's own behaviour: construction, sweeps, reset, large batches.

use std::sync::Arc;
use std::time::Duration;

use limiter_core::{Batch, Check, EvalOptions, Key, Limit, Micros, Rate, Store, Unit};
use limiter_memory::{MemoryConfig, MemoryStore};

const NOW: Micros = 1_795_651_200_000_000;
const MINUTE: Micros = 60_000_000;

fn limit(n: u64, unit: Unit) -> Arc<Limit> {
    Arc::new(Limit::gcra(Rate::per(n, unit).expect("rate")))
}

fn one(key: &str, limit: &Arc<Limit>) -> Batch {
    Batch::new(vec![Check::new(
        "p",
        Key::from_raw(key),
        Arc::clone(limit),
        1,
    )])
    .expect("batch")
}

fn remaining(store: &MemoryStore, batch: &Batch, now: Micros) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let peek = runtime.block_on(store.evaluate(batch, &EvalOptions::peek(now)));
    peek.expect("peek").statuses[0].remaining
}

#[test]
fn display_names_the_capacity_and_zero_is_refused() {
    let store = MemoryStore::new(MemoryConfig::new().with_capacity(1234)).expect("store");
    assert_eq!(store.to_string(), "MemoryStore(capacity=1234)");
    assert_eq!(
        MemoryStore::default().to_string(),
        format!("MemoryStore(capacity={})", MemoryConfig::default().capacity)
    );
    let err = MemoryStore::new(MemoryConfig::new().with_capacity(0)).expect_err("capacity 0");
    assert!(!err.is_temporary());
    assert!(err.to_string().contains("capacity 0"), "{err}");
}

#[test]
fn sweep_removes_fresh_keys_only() {
    let store = MemoryStore::new(MemoryConfig::new().with_sweep_interval(None)).expect("store");
    let mut out = Vec::new();
    let short = one("short", &limit(10, Unit::Minute));
    let long = one("long", &limit(10, Unit::Hour));
    assert!(store.evaluate_sync(&short, NOW, &mut out).expect("answer"));
    assert!(store.evaluate_sync(&long, NOW, &mut out).expect("answer"));
    assert_eq!(store.sweep(NOW), 0, "both states are live");
    assert_eq!(store.stats().keys, 2);

    // Two minutes on, the minute limit is whole again, the hour limit is not.
    assert_eq!(store.sweep(NOW + 2 * MINUTE), 1);
    assert_eq!(store.stats().keys, 1);
    assert_eq!(store.stats().swept, 1);
    // A peek reports what would remain after the request: 10 - 1 used - 1 peeked.
    assert_eq!(
        remaining(&store, &long, NOW + 2 * MINUTE),
        8,
        "the live key kept its state"
    );
    // Removing the fresh key changed nothing it would answer, and the peek added no key.
    assert_eq!(remaining(&store, &short, NOW + 2 * MINUTE), 9);
    assert_eq!(store.stats().keys, 1);

    assert_eq!(store.sweep(NOW + 120 * MINUTE), 1);
    assert_eq!(store.stats().keys, 0);
}

#[test]
fn automatic_sweeps_follow_injected_time_a_slice_per_call() {
    const KEYS: u64 = 20_000;
    let config = MemoryConfig::new().with_sweep_interval(Some(Duration::from_secs(60)));
    let store = MemoryStore::new(config).expect("store");
    let mut out = Vec::new();
    let minute = limit(5, Unit::Minute);
    for i in 0..KEYS {
        store
            .evaluate_sync(&one(&format!("k{i}"), &minute), NOW, &mut out)
            .expect("answer");
    }
    assert_eq!(store.stats().swept, 0);
    // However long this test runs in real time, nothing is swept until injected time moves.
    store
        .evaluate_sync(&one("k0", &minute), NOW + MINUTE / 2, &mut out)
        .expect("answer");
    assert_eq!(store.stats().swept, 0);
    // Ten minutes later every state but the last one's is droppable. One call sweeps one
    // bounded slice, not the whole table...
    let later = NOW + 10 * MINUTE;
    let other = one("other", &minute);
    store
        .evaluate_sync(&other, later, &mut out)
        .expect("answer");
    let first = store.stats().swept;
    assert!(first > 0 && first < KEYS / 4, "one call swept {first}");
    // ...and the following calls finish the pass.
    let mut calls = 1;
    while store.stats().swept < KEYS && calls < 10_000 {
        store
            .evaluate_sync(&other, later, &mut out)
            .expect("answer");
        calls += 1;
    }
    assert_eq!(store.stats().swept, KEYS, "after {calls} calls");
    assert_eq!(store.stats().keys, 1, "only `other` is left");
}

#[tokio::test]
async fn reset_gives_a_whole_budget_back() {
    let store = MemoryStore::default();
    let batch = one("reset", &limit(3, Unit::Hour));
    let at = EvalOptions::at(NOW);
    for _ in 0..3 {
        assert!(store.evaluate(&batch, &at).await.expect("answer").allowed);
    }
    assert!(!store.evaluate(&batch, &at).await.expect("answer").allowed);
    store.reset(&Key::from_raw("reset")).await.expect("reset");
    assert!(store.evaluate(&batch, &at).await.expect("answer").allowed);
    // Resetting a key never seen is a no-op.
    store.reset(&Key::from_raw("unknown")).await.expect("reset");
}

/// Batches above the on-stack size take the heap path; all or nothing holds there too.
#[test]
fn large_batches_are_all_or_nothing() {
    let store = MemoryStore::default();
    let mut out = Vec::new();
    let wide = limit(100, Unit::Hour);
    let narrow = limit(1, Unit::Hour);
    let checks: Vec<Check> = (0..20)
        .map(|i| {
            let l = if i == 13 { &narrow } else { &wide };
            Check::new("p", Key::from_raw(format!("wide:{i}")), Arc::clone(l), 1)
        })
        .collect();
    let batch = Batch::new(checks).expect("batch");
    assert!(store.evaluate_sync(&batch, NOW, &mut out).expect("answer"));
    assert_eq!(out.len(), 20);
    assert!(!store.evaluate_sync(&batch, NOW, &mut out).expect("answer"));
    assert_eq!(out.len(), 20);
    assert!(!out[13].is_allowed());
    for (i, status) in out.iter().enumerate().filter(|(i, _)| *i != 13) {
        assert!(status.is_allowed(), "check {i}");
        // One charge stands; the denied batch charged nothing, and says so.
        assert_eq!(
            status.remaining, 99,
            "check {i}: the denied batch charged nothing"
        );
    }
}

#[test]
fn the_store_and_its_trait_object_are_send_and_sync() {
    fn assert<T: Send + Sync + 'static>() {}
    assert::<MemoryStore>();
    let _: Arc<dyn Store> = Arc::new(MemoryStore::default());
}

#[test]
fn a_sweep_keeps_state_that_a_caller_behind_by_less_than_a_period_still_needs() {
    let store = MemoryStore::new(MemoryConfig::new().with_sweep_interval(None)).expect("store");
    let mut out = Vec::new();
    let hourly = one("skewed", &limit(1, Unit::Hour));
    assert!(store.evaluate_sync(&hourly, NOW, &mut out).expect("answer"));
    // At NOW + 61 minutes the state is fresh, but a caller whose clock is 30 minutes behind
    // still needs it: the sweep must keep it.
    assert_eq!(store.sweep(NOW + 61 * MINUTE), 0);
    assert!(
        !store
            .evaluate_sync(&hourly, NOW + 31 * MINUTE, &mut out)
            .expect("answer"),
        "the skewed caller is still limited"
    );
    // A period later it goes.
    assert_eq!(store.sweep(NOW + 121 * MINUTE), 1);
}
