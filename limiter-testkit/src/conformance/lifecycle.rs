//! Peek, reset and refund.

use limiter_core::batch::Check;
use limiter_core::{Store, Verdict};

use super::run::Run;
use crate::fixtures::*;

/// `peek` reports what `evaluate` would answer and charges nothing.
pub async fn peek_charges_nothing(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let now = BASE_NOW + 7 * HOUR;
    for (i, limit) in every_algorithm(5).into_iter().enumerate() {
        let check = run.check(&format!("peeked{i}"), &limit, 1);
        for _ in 0..20 {
            let status = run.peek_one(&check, now).await;
            assert!(status.is_allowed(), "{store}: {limit}: {status:?}");
            assert_eq!(
                status.remaining, 4,
                "{store}: {limit}: peek charged: {status:?}"
            );
        }
        let peeked = run.peek_one(&check, now).await;
        let evaluated = run.one(&check, now).await;
        assert_eq!(
            peeked, evaluated,
            "{store}: {limit}: peek must answer what evaluate does"
        );
        run.admits_exactly(&check, now, 4, "after peeks").await;
        let peeked = run.peek_one(&check, now).await;
        let evaluated = run.one(&check, now).await;
        assert_eq!(peeked, evaluated, "{store}: {limit}: peek of a denial");
        assert_eq!(
            peeked.verdict,
            Verdict::Denied,
            "{store}: {limit}: {peeked:?}"
        );
        let batch = [run.check(&format!("other{i}"), &limit, 1), check];
        let outcome = run.peek(&batch, now).await;
        assert!(
            !outcome.allowed,
            "{store}: {limit}: peek of a denied batch: {outcome:?}"
        );
    }
}

/// `reset` forgets a key: it admits a whole budget again; other keys keep theirs.
pub async fn reset_forgets_a_key(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let now = BASE_NOW + 11 * HOUR;
    for (i, limit) in every_algorithm(3).into_iter().enumerate() {
        let a = run.check(&format!("reset{i}"), &limit, 1);
        let b = run.check(&format!("kept{i}"), &limit, 1);
        run.admits_exactly(&a, now, 3, "before reset").await;
        run.admits_exactly(&b, now, 3, "before reset").await;
        run.reset(&a.key).await;
        run.admits_exactly(&a, now, 3, "after reset").await;
        run.admits_exactly(&b, now, 0, "another key's reset").await;
    }
    // Resetting a key that never held state is no error.
    run.reset(&run.key("never-used")).await;
    run.reset(&run.key("never-used")).await;
}

/// `refund` gives units back, and never more than were taken.
pub async fn refund_gives_units_back(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let now = BASE_NOW + 13 * HOUR + 5 * SECOND;
    for (i, limit) in every_algorithm(5).into_iter().enumerate() {
        let three = run.check(&format!("refunded{i}"), &limit, 3);
        let status = run.one(&three, now).await;
        assert!(status.is_allowed(), "{store}: {limit}: {status:?}");
        assert_eq!(status.remaining, 2, "{store}: {limit}: {status:?}");
        run.refund(
            &[Check {
                cost: 2,
                ..three.clone()
            }],
            now,
        )
        .await;
        let unit = Check {
            cost: 1,
            ..three.clone()
        };
        let peeked = run.peek_one(&unit, now).await;
        // 3 taken, 2 refunded: 1 taken, and a peek reports what would remain after it.
        assert_eq!(
            peeked.remaining, 3,
            "{store}: {limit}: 3 taken, 2 refunded: {peeked:?}"
        );
        // Refunding more than is still taken gives back only what is.
        run.refund(
            &[Check {
                cost: 10,
                ..three.clone()
            }],
            now,
        )
        .await;
        run.admits_exactly(&unit, now, 5, "after refunding more than taken")
            .await;

        // A refund to a key with no state gives it nothing extra.
        let fresh = run.check(&format!("fresh{i}"), &limit, 4);
        run.refund(std::slice::from_ref(&fresh), now).await;
        run.admits_exactly(&Check { cost: 1, ..fresh }, now, 5, "refunded while fresh")
            .await;
    }
}
