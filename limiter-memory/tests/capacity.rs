//! At capacity: droppable keys make room freely; live keys are never lost silently (refused by
//! default, or evicted nearest-fresh first and counted); lookups that charge nothing never add
//! a key.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use limiter_core::{
    Batch, Check, EvalOptions, Key, Limit, LimitStatus, Limiter, ManualClock, Micros, PolicySet,
    Rate, Request, Unit,
};
use limiter_memory::{AtCapacity, MemoryConfig, MemoryStore};

const NOW: Micros = 1_795_651_200_000_000;
const CAPACITY: u64 = 1_000;

fn one(key: &str, limit: &Arc<Limit>) -> Batch {
    Batch::new(vec![Check::new(
        "capacity",
        Key::from_raw(key),
        Arc::clone(limit),
        1,
    )])
    .expect("batch")
}

fn hourly(n: u64) -> Arc<Limit> {
    Arc::new(Limit::gcra(Rate::per(n, Unit::Hour).expect("rate")))
}

/// A store of `CAPACITY` keys under `policy`, full of live keys: each has used one unit of a
/// limit of 5 per hour.
fn full_store(policy: AtCapacity) -> MemoryStore {
    let config = MemoryConfig::default()
        .with_capacity(CAPACITY)
        .with_at_capacity(policy);
    let store = MemoryStore::new(config).expect("store");
    let mut out: Vec<LimitStatus> = Vec::new();
    let filler = hourly(5);
    for i in 0..CAPACITY {
        let batch = one(&format!("filler:{i}"), &filler);
        assert!(store.evaluate_sync(&batch, NOW, &mut out).expect("answer"));
    }
    assert_eq!(store.sweep(NOW), 0, "every filler is live");
    assert_eq!(store.stats().keys, CAPACITY);
    store
}

#[test]
fn by_default_a_new_key_is_refused_and_every_held_key_keeps_its_state() {
    let store = full_store(AtCapacity::Refuse);
    let mut out = Vec::new();
    let err = store
        .evaluate_sync(&one("newcomer", &hourly(10)), NOW, &mut out)
        .expect_err("no room for a new key");
    assert!(err.is_temporary(), "{err}");
    let message = err.to_string();
    assert!(message.contains("newcomer"), "{message}");
    assert!(message.contains("1000 keys"), "{message}");
    let stats = store.stats();
    assert_eq!(
        (stats.refused, stats.keys, stats.evictions),
        (1, CAPACITY, 0)
    );

    // Every filler still has exactly the 4 units it had left.
    let filler = hourly(5);
    for i in [0, CAPACITY / 2, CAPACITY - 1] {
        let batch = one(&format!("filler:{i}"), &filler);
        let admitted = (0..10)
            .filter(|_| store.evaluate_sync(&batch, NOW, &mut out).expect("answer"))
            .count();
        assert_eq!(admitted, 4, "filler:{i}");
    }
}

#[test]
fn peeks_refunds_and_denied_requests_never_add_a_key() {
    let store = full_store(AtCapacity::Refuse);
    let mut out = Vec::new();
    let unknown = one("unknown", &hourly(10));
    // A full store answers them all: none needs room.
    let peek = EvalOptions::peek(NOW);
    assert!(
        store
            .evaluate_mode(&unknown, &peek, &mut out)
            .expect("peek")
    );
    assert_eq!(out[0].remaining, 9);
    let refund = EvalOptions::refund(NOW, NOW);
    store
        .evaluate_mode(&unknown, &refund, &mut out)
        .expect("refund");
    // A cost above the limit is denied.
    let too_big = Batch::new(vec![Check::new(
        "capacity",
        Key::from_raw("unknown"),
        hourly(10),
        11,
    )])
    .expect("batch");
    assert!(
        !store
            .evaluate_sync(&too_big, NOW, &mut out)
            .expect("denied")
    );
    // A batch denied by a held, spent key adds none of its unknown keys.
    let spent = hourly(1);
    let spender = one("filler:7", &spent);
    assert!(
        !store
            .evaluate_sync(&spender, NOW, &mut out)
            .expect("denied")
    );
    let mixed = Batch::new(vec![
        Check::new("capacity", Key::from_raw("filler:7"), Arc::clone(&spent), 1),
        Check::new("capacity", Key::from_raw("unknown"), hourly(10), 1),
    ])
    .expect("batch");
    assert!(!store.evaluate_sync(&mixed, NOW, &mut out).expect("denied"));

    let stats = store.stats();
    assert_eq!((stats.keys, stats.refused), (CAPACITY, 0), "{stats:?}");

    // The same holds below capacity: only an admitted charge adds a key.
    let roomy = MemoryStore::default();
    roomy
        .evaluate_mode(&unknown, &peek, &mut out)
        .expect("peek");
    roomy
        .evaluate_mode(&unknown, &refund, &mut out)
        .expect("refund");
    assert!(
        !roomy
            .evaluate_sync(&too_big, NOW, &mut out)
            .expect("denied")
    );
    assert_eq!(roomy.stats().keys, 0);
    assert!(
        roomy
            .evaluate_sync(&unknown, NOW, &mut out)
            .expect("admitted")
    );
    assert_eq!(roomy.stats().keys, 1);
}

#[test]
fn droppable_keys_make_room_without_counting_a_loss() {
    // Sweeps off: the room must come from the capacity path itself.
    let config = MemoryConfig::default()
        .with_capacity(CAPACITY)
        .with_sweep_interval(None);
    let store = MemoryStore::new(config).expect("store");
    let mut out = Vec::new();
    let limit = Arc::new(Limit::gcra(Rate::per(5, Unit::Second).expect("rate")));
    for i in 0..CAPACITY {
        assert!(
            store
                .evaluate_sync(&one(&format!("old:{i}"), &limit), NOW, &mut out)
                .expect("answer")
        );
    }
    // An hour later every old state is droppable; new keys take their places.
    let later = NOW + 3_600_000_000;
    for i in 0..CAPACITY {
        assert!(
            store
                .evaluate_sync(&one(&format!("new:{i}"), &limit), later, &mut out)
                .expect("room is made")
        );
    }
    let stats = store.stats();
    assert_eq!(stats.keys, CAPACITY, "{stats:?}");
    assert_eq!(stats.swept, CAPACITY, "{stats:?}");
    assert_eq!(
        (stats.evictions, stats.evicted_live, stats.refused),
        (0, 0, 0)
    );
}

#[test]
fn the_evict_policy_admits_the_new_key_and_counts_the_live_loss() {
    let store = full_store(AtCapacity::EvictNearestFresh);
    let mut out = Vec::new();
    let batch = one(
        "newcomer",
        &Arc::new(Limit::gcra(Rate::per(10, Unit::Minute).expect("rate"))),
    );
    let admitted = (0..100)
        .filter(|_| store.evaluate_sync(&batch, NOW, &mut out).expect("answer"))
        .count();
    assert_eq!(admitted, 10, "the newcomer gets exactly its limit");
    let stats = store.stats();
    assert_eq!(stats.keys, CAPACITY, "{stats:?}");
    assert_eq!(stats.evictions, 1, "{stats:?}");
    assert_eq!(stats.evicted_live, 1, "a filler was live: {stats:?}");
    assert_eq!(stats.refused, 0, "{stats:?}");
}

/// A capacity smaller than one batch: every call fails (temporarily) under either policy, none
/// deadlocks, and nothing is admitted uncounted.
#[test]
fn capacity_below_the_batch_size_fails_temporarily_without_deadlock() {
    const LIMIT: u64 = 5;
    for policy in [AtCapacity::Refuse, AtCapacity::EvictNearestFresh] {
        let config = MemoryConfig::default()
            .with_capacity(2)
            .with_at_capacity(policy);
        let store = Arc::new(MemoryStore::new(config).expect("store"));
        let limit = hourly(LIMIT);
        let batch = Arc::new(
            Batch::new(
                (0..3)
                    .map(|i| {
                        let key = Key::from_raw(format!("tiny:{i}"));
                        Check::new("tiny", key, Arc::clone(&limit), 1)
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
                    let mut admitted = 0u64;
                    for _ in 0..200 {
                        match store.evaluate_sync(&batch, NOW, &mut out) {
                            Ok(true) => admitted += 1,
                            Ok(false) => {}
                            Err(e) => assert!(e.is_temporary(), "{e}"),
                        }
                    }
                    admitted
                })
            })
            .collect();
        let admitted: u64 = threads
            .into_iter()
            .map(|t| t.join().expect("thread finished"))
            .sum();
        let stats = store.stats();
        assert_eq!(admitted, 0, "{policy:?}: {stats:?}");
        assert_eq!(stats.refused, 800, "{policy:?}: {stats:?}");
        assert_eq!(stats.keys, 0, "{policy:?}: {stats:?}");
    }
}

/// The review's probe P2: a user spends the free plan's burst, then 2,000 anonymous requests
/// arrive from fresh IPv6 networks at capacity 1,000, then the same user asks again at the same
/// instant.
fn probe_p2(policy: AtCapacity) -> (usize, MemoryStore) {
    let config = MemoryConfig::default()
        .with_capacity(CAPACITY)
        .with_at_capacity(policy);
    let store = Arc::new(MemoryStore::new(config).expect("store"));
    let limiter = Limiter::builder(PolicySet::default(), Arc::clone(&store))
        .clock(ManualClock::new(NOW))
        .build();
    let user = Request::new()
        .tenant("acme")
        .plan("free")
        .user("ann")
        .ip("192.0.2.1".parse().expect("ip"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut spent = 0;
        while limiter.check(&user).await.expect("decided").is_allowed() {
            spent += 1;
            assert!(spent <= 100, "the burst never ran out");
        }
        assert_eq!(spent, 10, "the free plan's burst");
        for i in 0..2_000u16 {
            let network = Ipv6Addr::new(0x2001, 0xdb8, 0x1000 + i, 0, 0, 0, 0, 1);
            let anonymous = Request::new().ip(IpAddr::V6(network));
            limiter.check(&anonymous).await.expect("decided");
        }
        let mut again = 0;
        for _ in 0..20 {
            again += usize::from(limiter.check(&user).await.expect("decided").is_allowed());
        }
        drop(limiter);
        let store = Arc::try_unwrap(store)
            .map_err(|_| "the limiter is gone")
            .expect("owned");
        (again, store)
    })
}

#[test]
fn probe_p2_a_flood_of_new_subjects_gives_a_spent_user_nothing() {
    let (again, store) = probe_p2(AtCapacity::Refuse);
    let stats = store.stats();
    assert_eq!(again, 0, "admitted again after the flood: {stats:?}");
    assert!(stats.refused > 0, "the flood met a full store: {stats:?}");
    assert_eq!((stats.evictions, stats.evicted_live), (0, 0), "{stats:?}");
    assert!(stats.keys <= CAPACITY, "{stats:?}");
}

#[test]
fn probe_p2_under_the_evict_policy_any_over_admission_is_counted() {
    let (again, store) = probe_p2(AtCapacity::EvictNearestFresh);
    let stats = store.stats();
    assert!(
        stats.evicted_live > 0,
        "the flood evicted live keys: {stats:?}"
    );
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert!(stats.keys <= CAPACITY, "{stats:?}");
    // Whatever the user got again came from evicted live state, and the stats say so.
    if again > 0 {
        assert!(stats.evicted_live >= 1, "{again} admitted with {stats:?}");
    }
}
