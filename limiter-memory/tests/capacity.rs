//! At capacity: LRU eviction, counted, and never a fresh budget for the key in use.

use std::sync::Arc;

use limiter_core::{Batch, Check, Key, Limit, LimitStatus, Micros, Rate, Unit};
use limiter_memory::{MemoryConfig, MemoryStore};

const NOW: Micros = 1_795_651_200_000_000;
const CAPACITY: u64 = 1_000;

fn one(key: Key, limit: &Arc<Limit>) -> Batch {
    Batch::new(vec![Check::new("capacity", key, Arc::clone(limit), 1)]).expect("batch")
}

#[test]
fn a_new_key_at_capacity_gets_exactly_its_limit() {
    let store = MemoryStore::new(MemoryConfig::default().with_capacity(CAPACITY)).expect("store");
    let mut out: Vec<LimitStatus> = Vec::new();
    // Fill the store with live keys: each has used one unit of a limit that lasts an hour.
    let filler = Arc::new(Limit::gcra(Rate::per(5, Unit::Hour).expect("rate")));
    for i in 0..CAPACITY {
        let batch = one(Key::from_raw(format!("filler:{i}")), &filler);
        assert!(store.evaluate_sync(&batch, NOW, &mut out).expect("answer"));
    }
    // Nothing is fresh, so a sweep removes nothing; it settles moka's counts.
    assert_eq!(store.sweep(NOW), 0);
    assert_eq!(store.stats().keys, CAPACITY);
    assert_eq!(store.stats().evictions, 0);

    let limit = Arc::new(Limit::gcra(Rate::per(10, Unit::Minute).expect("rate")));
    let batch = one(Key::from_raw("newcomer"), &limit);
    let mut admitted = 0;
    for _ in 0..100 {
        if store.evaluate_sync(&batch, NOW, &mut out).expect("answer") {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);

    // The room came from the least recently used filler key, still live: counted.
    store.sweep(NOW);
    let stats = store.stats();
    assert!(stats.keys <= CAPACITY, "{stats:?}");
    assert!(stats.evictions >= 1, "{stats:?}");
    assert_eq!(stats.evicted_live, stats.evictions, "{stats:?}");
    // The newcomer is the most recently used key: it stays, and stays limited.
    assert!(!store.evaluate_sync(&batch, NOW, &mut out).expect("answer"));
}

#[test]
fn evicting_fresh_keys_is_not_counted_as_live() {
    // Sweeps off: otherwise the hour-later sweep removes the old keys before LRU has to.
    let config = MemoryConfig::default()
        .with_capacity(CAPACITY)
        .with_sweep_interval(None);
    let store = MemoryStore::new(config).expect("store");
    let mut out = Vec::new();
    let limit = Arc::new(Limit::gcra(Rate::per(5, Unit::Second).expect("rate")));
    for i in 0..CAPACITY {
        store
            .evaluate_sync(
                &one(Key::from_raw(format!("old:{i}")), &limit),
                NOW,
                &mut out,
            )
            .expect("answer");
    }
    store.sweep(0);
    // An hour later every old state is fresh again; new keys push them out.
    let later = NOW + 3_600_000_000;
    for i in 0..CAPACITY {
        store
            .evaluate_sync(
                &one(Key::from_raw(format!("new:{i}")), &limit),
                later,
                &mut out,
            )
            .expect("answer");
    }
    store.sweep(0);
    let stats = store.stats();
    assert!(stats.evictions > 0, "{stats:?}");
    assert_eq!(stats.evicted_live, 0, "{stats:?}");
}

/// A capacity smaller than one batch: calls may fail (temporarily), never deadlock, and every
/// budget handed out again is counted as a live eviction.
#[test]
fn capacity_below_the_batch_size_never_over_admits_uncounted() {
    const LIMIT: u64 = 5;
    let store =
        Arc::new(MemoryStore::new(MemoryConfig::default().with_capacity(2)).expect("store"));
    let limit = Arc::new(Limit::gcra(Rate::per(LIMIT, Unit::Hour).expect("rate")));
    let batch = Arc::new(
        Batch::new(
            (0..3)
                .map(|i| {
                    Check::new(
                        "tiny",
                        Key::from_raw(format!("tiny:{i}")),
                        Arc::clone(&limit),
                        1,
                    )
                })
                .collect::<Vec<_>>(),
        )
        .expect("batch"),
    );
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, batch) = (Arc::clone(&store), Arc::clone(&batch));
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let (mut admitted, mut failed) = (0u64, 0u64);
                for _ in 0..200 {
                    match store.evaluate_sync(&batch, NOW, &mut out) {
                        Ok(true) => admitted += 1,
                        Ok(false) => {}
                        Err(e) => {
                            assert!(e.is_temporary(), "{e}");
                            failed += 1;
                        }
                    }
                }
                (admitted, failed)
            })
        })
        .collect();
    let admitted: u64 = threads
        .into_iter()
        .map(|t| t.join().expect("thread finished").0)
        .sum();
    store.sweep(NOW);
    let stats = store.stats();
    assert!(
        admitted <= LIMIT * (1 + stats.evicted_live),
        "admitted {admitted} with {stats:?}"
    );
}
