//! Batches: all or nothing, shadow checks, the empty batch.

use limiter_core::batch::Check;
use limiter_core::{Store, Unit, Verdict};

use super::run::Run;
use crate::fixtures::*;

/// When one limit of a batch denies, no limit of it is charged, whatever its position; the
/// other limits still report that they would allow.
pub async fn batch_is_all_or_nothing(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let now = BASE_NOW + 3 * HOUR;
    let loose = run.check("loose", &gcra(100, Unit::Minute), 1);
    let tight = run.check("tight", &sliding_log(1, Unit::Minute), 1);
    let daily = run.check("daily", &calendar(50, "Europe/Paris"), 1);
    let window = run.check("window", &sliding_window(20, Unit::Hour), 1);
    let all = [loose.clone(), tight.clone(), daily.clone(), window.clone()];

    let first = run.evaluate(&all, now).await;
    assert!(first.allowed, "{store}: a batch that fits: {first:?}");
    assert_eq!(
        first.statuses.len(),
        4,
        "{store}: one status per check: {first:?}"
    );
    let remaining: Vec<u64> = first.statuses.iter().map(|s| s.remaining).collect();
    assert_eq!(
        remaining,
        [99, 0, 49, 19],
        "{store}: statuses in batch order: {first:?}"
    );

    // The tight limit now denies, in every position of the batch.
    let orders = [[0, 1, 2, 3], [1, 0, 2, 3], [2, 3, 0, 1], [3, 2, 1, 0]];
    for order in orders {
        let checks: Vec<Check> = order.iter().map(|&i| all[i].clone()).collect();
        let outcome = run.evaluate(&checks, now).await;
        assert!(
            !outcome.allowed,
            "{store}: tight limit exhausted, order {order:?}: {outcome:?}"
        );
        for (check, status) in checks.iter().zip(&outcome.statuses) {
            let expected = if check.key == tight.key {
                Verdict::Denied
            } else {
                Verdict::Allowed
            };
            assert_eq!(
                status.verdict, expected,
                "{store}: {} in {order:?}: {outcome:?}",
                check.key
            );
        }
    }
    // An impossible cost denies the batch too, and charges nothing either.
    let impossible = Check {
        cost: 1_000,
        ..run.check("impossible", &gcra(10, Unit::Minute), 1)
    };
    let outcome = run
        .evaluate(&[loose.clone(), impossible, daily.clone()], now)
        .await;
    assert!(!outcome.allowed, "{store}: impossible cost: {outcome:?}");
    assert_eq!(
        outcome.statuses[1].verdict,
        Verdict::Impossible,
        "{store}: {outcome:?}"
    );

    let peeked = run.peek(&[loose, daily, window], now).await;
    let remaining: Vec<u64> = peeked.statuses.iter().map(|s| s.remaining).collect();
    // Charged once, by the first batch only (a peek reports what would remain after it).
    assert_eq!(
        remaining,
        [98, 48, 18],
        "{store}: denied batches charged something: {peeked:?}"
    );
}

/// A shadow check is evaluated and reported but never denies the batch; it consumes only when
/// it allows and the batch is admitted.
pub async fn shadow_checks_are_reported_not_enforced(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let now = BASE_NOW + 40 * MINUTE;
    let enforced = run.check("enforced", &gcra(10, Unit::Minute), 1);
    let shadow_limit = gcra(2, Unit::Minute);
    let shadow = run.check("shadow", &shadow_limit, 1).shadow();
    // The twin sees only the requests the shadow check allowed.
    let twin = run.check("twin", &shadow_limit, 1);

    for i in 0..2 {
        let outcome = run.evaluate(&[enforced.clone(), shadow.clone()], now).await;
        assert!(outcome.allowed, "{store}: request {}: {outcome:?}", i + 1);
        assert!(
            outcome.statuses[1].is_allowed(),
            "{store}: shadow within its limit: {outcome:?}"
        );
        assert!(run.one(&twin, now).await.is_allowed());
    }
    for i in 0..3 {
        let outcome = run.evaluate(&[shadow.clone(), enforced.clone()], now).await;
        assert!(
            outcome.allowed,
            "{store}: a denying shadow check must not deny: {outcome:?}"
        );
        assert_eq!(
            outcome.statuses[0].verdict,
            Verdict::Denied,
            "{store}: shadow reported: {outcome:?}"
        );
        assert!(outcome.statuses[0].retry_after >= 1, "{store}: {outcome:?}");
        assert_eq!(
            outcome.statuses[1].remaining,
            7 - i,
            "{store}: enforced charged: {outcome:?}"
        );
    }
    // An impossible shadow check is reported as such, and does not deny either.
    let outcome = run
        .evaluate(
            &[
                enforced.clone(),
                Check {
                    cost: 3,
                    ..shadow.clone()
                },
            ],
            now,
        )
        .await;
    assert!(outcome.allowed, "{store}: {outcome:?}");
    assert_eq!(
        outcome.statuses[1].verdict,
        Verdict::Impossible,
        "{store}: {outcome:?}"
    );

    // A batch denied by an enforced check charges its allowing shadow checks nothing.
    let fresh_shadow = run.check("fresh-shadow", &shadow_limit, 1).shadow();
    let blocker = run.check("blocker", &gcra(1, Unit::Hour), 1);
    assert!(run.one(&blocker, now).await.is_allowed());
    let outcome = run.evaluate(&[fresh_shadow.clone(), blocker], now).await;
    assert!(!outcome.allowed, "{store}: {outcome:?}");
    assert!(outcome.statuses[0].is_allowed(), "{store}: {outcome:?}");
    let peeked = run.peek_one(&fresh_shadow, now).await;
    assert_eq!(
        peeked.remaining, 1,
        "{store}: shadow charged by a denied batch: {peeked:?}"
    );

    // The denied shadow requests left no trace: the shadow key refills as its twin does.
    for dt in [
        1,
        10 * SECOND,
        30 * SECOND,
        45 * SECOND,
        60 * SECOND,
        2 * MINUTE,
    ] {
        let a = run
            .peek_one(
                &Check {
                    shadow: false,
                    ..shadow.clone()
                },
                now + dt,
            )
            .await;
        let b = run.peek_one(&twin, now + dt).await;
        assert_eq!(a, b, "{store}: shadow key vs twin at +{dt}µs");
    }
}

/// An empty batch is admitted, with no statuses.
pub async fn empty_batch_is_allowed(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let outcome = run.evaluate(&[], BASE_NOW).await;
    assert!(
        outcome.allowed && outcome.statuses.is_empty(),
        "{store}: {outcome:?}"
    );
    let outcome = run.peek(&[], BASE_NOW).await;
    assert!(
        outcome.allowed && outcome.statuses.is_empty(),
        "{store}: {outcome:?}"
    );
    run.refund(&[], BASE_NOW, BASE_NOW).await;
}
