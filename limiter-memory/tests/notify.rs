//! The outbox and inbox suites on the in-memory outbox and inbox.

use limiter_core::notify::{ClaimRequest, Claimed, NotifyKind, Outbox, Settlement};
use limiter_memory::MemoryOutbox;

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
