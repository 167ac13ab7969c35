//! The outbox and inbox suites on the in-memory outbox and inbox, and the store's notices:
//! written with the charge on every path, seen with it, and kept once per window however many
//! handles share the store.

use std::sync::Arc;

use limiter_core::batch::Statuses;
use limiter_core::notify::{
    ClaimRequest, Claimed, NoticePlan, NotifyKind, NotifyRules, Outbox, OutboxStats, Settlement,
};
use limiter_core::{
    Batch, Check, EvalOptions, Key, Limit, Micros, Rate, Request, Store, StoreExt, SubjectKind,
};
use limiter_memory::{MemoryOutbox, MemoryStore};

mod outbox {
    async fn new_outbox() -> Option<(limiter_memory::MemoryOutbox, ())> {
        Some((limiter_memory::MemoryOutbox::new(), ()))
    }
    limiter_testkit::outbox_suite!(new_outbox);
}

mod inbox {
    async fn new_inbox() -> Option<(limiter_memory::MemoryInbox, ())> {
        Some((limiter_memory::MemoryInbox::new(), ()))
    }
    limiter_testkit::inbox_suite!(new_inbox);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fleet_notifies_once_per_window() {
    let store = Arc::new(MemoryStore::default());
    let stores: Vec<Arc<dyn Store>> = (0..4)
        .map(|_| Arc::clone(&store) as Arc<dyn Store>)
        .collect();
    let outbox = store.outbox();
    let found =
        limiter_testkit::conformance::outbox::fleet_notifies_once_per_window(stores, &*outbox)
            .await;
    assert!(!found.is_empty(), "{outbox:?}");
}

/// Leases that ended come back with the next attempt, among the pending notices in due order.
#[tokio::test]
async fn ended_leases_are_claimed_again_in_due_order() {
    use limiter_testkit::conformance::outbox::notice;
    use limiter_testkit::fixtures::{BASE_NOW, HOUR, MINUTE, SECOND};

    let outbox = MemoryOutbox::new();
    let claim = |now| ClaimRequest {
        worker: "w".to_owned(),
        now,
        lease: MINUTE,
        max: 10,
    };
    let tenant = |c: &Claimed| c.notice.tenant.clone().unwrap_or_default();
    let (a, b) = (
        notice("a", NotifyKind::Exhausted, BASE_NOW),
        notice("b", NotifyKind::Exhausted, BASE_NOW + 2 * SECOND),
    );
    outbox.enqueue(&[a, b]).await.expect("enqueued");
    let first = outbox
        .claim(&claim(BASE_NOW + 2 * SECOND))
        .await
        .expect("claims");
    assert_eq!(first.iter().map(tenant).collect::<Vec<_>>(), ["a", "b"]);
    // Due between the two: it comes back between them.
    let c = notice("c", NotifyKind::Exhausted, BASE_NOW + SECOND);
    outbox.enqueue(&[c]).await.expect("enqueued");

    let again = outbox.claim(&claim(BASE_NOW + HOUR)).await.expect("claims");
    let got: Vec<(String, u32)> = again.iter().map(|c| (tenant(c), c.attempt)).collect();
    assert_eq!(
        got,
        [("a".into(), 2), ("c".into(), 1), ("b".into(), 2)],
        "{outbox:?}"
    );
    let done = Settlement::Delivered {
        at: BASE_NOW + HOUR,
    };
    assert!(!outbox.settle(&first[0], &done).await.expect("settles"));
    assert!(outbox.settle(&again[0], &done).await.expect("settles"));
}

const NOW: Micros = 1_795_651_200_000_000;
const DAY: Micros = 86_400_000_000;

/// A batch of one `plan_sustained` check of `tenant` at `rate`, asking for its notices under
/// the default rules (80%).
fn noticed(tenant: &str, rate: &str) -> Batch {
    let limit = Limit::gcra(rate.parse::<Rate>().expect("a valid rate"));
    let key = Key::new("api", "plan_sustained", SubjectKind::Tenant, tenant);
    let request = Request::new().tenant(tenant).plan("starter");
    let plan = NoticePlan::new(Arc::new(NotifyRules::default()), &request, None);
    Batch::new(vec![Check::new("plan_sustained", key, limit, 1)])
        .expect("one check")
        .with_notices(Arc::new(plan))
}

/// The kinds of every notice in `outbox`, sorted (claiming them all).
async fn kinds(outbox: &MemoryOutbox) -> Vec<NotifyKind> {
    let claim = ClaimRequest {
        worker: "check".to_owned(),
        now: NOW + 2 * DAY,
        lease: DAY,
        max: 100,
    };
    let mut kinds = Vec::new();
    loop {
        let claimed = outbox.claim(&claim).await.expect("claims");
        if claimed.is_empty() {
            break;
        }
        kinds.extend(claimed.iter().map(|c| c.notice.kind()));
    }
    kinds.sort();
    kinds
}

#[derive(Debug, Clone, Copy)]
enum Path {
    Evaluate,
    EvaluateNow,
}

/// Charges `batch` at `options` through `path`; whether it was admitted.
async fn charge(store: &MemoryStore, batch: &Batch, options: &EvalOptions, path: Path) -> bool {
    match path {
        Path::Evaluate => {
            store
                .evaluate(batch, options)
                .await
                .expect("evaluated")
                .allowed
        }
        Path::EvaluateNow => {
            let mut out = Statuses::new();
            store
                .evaluate_now(batch, options, &mut out)
                .expect("the memory store answers at once")
                .expect("evaluated")
        }
    }
}

#[tokio::test]
async fn both_paths_write_the_notices_of_an_admitted_crossing_and_nothing_else() {
    for path in [Path::Evaluate, Path::EvaluateNow] {
        let store = MemoryStore::default();
        let outbox = store.outbox();
        let batch = noticed("acme", "5/hour");
        let at = EvalOptions::at(NOW);
        for _ in 0..3 {
            assert!(charge(&store, &batch, &at, path).await, "{path:?}");
        }
        let stats = outbox.stats(NOW).await.expect("stats");
        assert_eq!(stats.pending, 0, "{path:?}: 3 of 5 is under 80%");

        assert!(charge(&store, &batch, &at, path).await, "{path:?}");
        let stats = outbox.stats(NOW).await.expect("stats");
        assert_eq!(stats.pending, 1, "{path:?}: the 4th of 5 crossed 80%");

        assert!(charge(&store, &batch, &at, path).await, "{path:?}");
        // Denied, peeked and refunded calls charge nothing, so they notify nothing.
        assert!(!charge(&store, &batch, &at, path).await, "{path:?}");
        store.peek(&batch, &at).await.expect("peeked");
        store.refund(&batch, &at, NOW).await.expect("refunded");
        assert!(charge(&store, &batch, &at, path).await, "{path:?}");

        assert_eq!(
            kinds(&outbox).await,
            [
                NotifyKind::Approaching,
                NotifyKind::Exhausted,
                NotifyKind::Restored
            ],
            "{path:?}: the last charge exhausted the limit again in the same window"
        );
    }
}

#[tokio::test]
async fn a_batch_without_notices_writes_none() {
    let store = MemoryStore::default();
    let with = noticed("acme", "5/hour");
    let without = Batch::new(with.checks().to_vec()).expect("one check");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        store
            .evaluate_sync(&without, NOW, &mut statuses)
            .expect("evaluated");
    }
    assert_eq!(statuses[0].remaining, 0, "the limit was exhausted");
    let stats = store.outbox().stats(NOW).await.expect("stats");
    assert_eq!(stats, OutboxStats::default());
}

/// A reader that sees a charge sees its notices: the outbox is written before the shard locks
/// are released. In each round four threads charge a fresh limit of 100 while a reader peeks;
/// whenever the reader sees 80% used, the notice of that crossing must be in the outbox already.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_reader_sees_a_crossing_without_its_notice() {
    const ROUNDS: usize = 100;
    let store = Arc::new(MemoryStore::default());
    let outbox = store.outbox();
    let mut seen_crossed = 0;
    for round in 0..ROUNDS {
        let batch = Arc::new(noticed(&format!("t{round}"), "100/day"));
        let chargers: Vec<_> = (0..4)
            .map(|_| {
                let (store, batch) = (Arc::clone(&store), Arc::clone(&batch));
                tokio::task::spawn_blocking(move || {
                    let mut statuses = Vec::new();
                    for _ in 0..25 {
                        let admitted = store.evaluate_sync(&batch, NOW, &mut statuses);
                        assert!(admitted.expect("evaluated"));
                    }
                })
            })
            .collect();
        // Notices of earlier rounds: each exhausted its limit of a day (all four kinds).
        let before = 4 * u64::try_from(round).expect("few rounds");
        let mut out = Vec::new();
        loop {
            // Read before the peek: once every charger has finished, this peek sees their
            // last charge, and the round ends on what it shows.
            let finished = chargers.iter().all(|c| c.is_finished());
            let peek = EvalOptions::peek(NOW);
            store
                .evaluate_mode(&batch, &peek, &mut out)
                .expect("peeked");
            // A peek reports the figures the peeked request would leave: one unit more used.
            let used = if out[0].is_allowed() {
                100 - out[0].remaining - 1
            } else {
                100
            };
            if used >= 80 {
                let pending = outbox.stats(NOW).await.expect("stats").pending;
                assert!(
                    pending > before,
                    "round {round}: {used} used, yet {outbox:?}"
                );
                seen_crossed += 1;
            }
            // A charger that stopped early (it panicked) never lets the limit fill up.
            if used == 100 || finished {
                break;
            }
        }
        for charger in chargers {
            charger.await.expect("a charger");
        }
    }
    assert!(
        seen_crossed >= ROUNDS,
        "every round ends with its limit used up"
    );
    assert_eq!(kinds(&outbox).await.len(), 4 * ROUNDS, "{outbox:?}");
}
