//! Peek, reset and refund.

use limiter_core::batch::Check;
use limiter_core::{Limit, Store, Unit, Verdict};

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
            now,
        )
        .await;
        run.admits_exactly(&unit, now, 5, "after refunding more than taken")
            .await;

        // A refund to a key with no state gives it nothing extra.
        let fresh = run.check(&format!("fresh{i}"), &limit, 4);
        run.refund(std::slice::from_ref(&fresh), now, now).await;
        run.admits_exactly(&Check { cost: 1, ..fresh }, now, 5, "refunded while fresh")
            .await;
    }
}

/// R1 charges 5 of 10 just before a window (or a day) ends; R2 charges 5 just after, in the next
/// one; then R1's charge is given back, naming the time it was charged. The key must then read
/// exactly as its twin that only R2 charged, at once and later: the refund took nothing of
/// R2's. (A refund that took from the newest charge, or from the current window, would leave
/// the key more generous than its twin.)
async fn refund_never_removes_another_requests_charge(
    store: &dyn Store,
    namespace: &str,
    limit: Limit,
) {
    let run = Run { store, namespace };
    // The end of a window (or a day): BASE_NOW is a UTC midnight.
    let boundary = BASE_NOW + 10 * span(&limit);
    let (r1_at, r2_at) = (boundary - SECOND, boundary + SECOND);
    let refunded = run.check("refunded", &limit, 5);
    let twin = run.check("twin", &limit, 5);
    for (check, at) in [(&refunded, r1_at), (&refunded, r2_at), (&twin, r2_at)] {
        let status = run.one(check, at).await;
        assert!(status.is_allowed(), "{store}: {limit} at {at}: {status:?}");
    }
    run.refund(std::slice::from_ref(&refunded), r2_at, r1_at)
        .await;
    for later in [
        r2_at,
        r2_at + 29 * SECOND,
        r1_at + 61 * SECOND,
        boundary + span(&limit),
    ] {
        let unit = |c: &Check| Check {
            cost: 1,
            ..c.clone()
        };
        let got = run.peek_one(&unit(&refunded), later).await;
        let expected = run.peek_one(&unit(&twin), later).await;
        assert_eq!(
            got, expected,
            "{store}: {limit}: after giving back R1's charge, the key must read as its twin \
             that only R2 charged, at {later}"
        );
    }
}

per_algorithm!(refund_never_removes_another_requests_charge {
    /// A refund never removes another request's charge, for a GCRA of 10/minute: R1 charges 5
    /// just before a minute ends, R2 charges 5 just after, R1's charge is given back, and the
    /// key then reads exactly as its twin that only R2 charged.
    gcra_refund_never_removes_another_requests_charge => gcra(10, Unit::Minute);
    /// As [`gcra_refund_never_removes_another_requests_charge`], for a sliding window of
    /// 10/minute.
    sliding_window_refund_never_removes_another_requests_charge =>
        sliding_window(10, Unit::Minute);
    /// As [`gcra_refund_never_removes_another_requests_charge`], for a sliding log of 10/minute.
    sliding_log_refund_never_removes_another_requests_charge => sliding_log(10, Unit::Minute);
    /// As [`gcra_refund_never_removes_another_requests_charge`], for a calendar window of
    /// 10/day in UTC, across midnight.
    calendar_refund_never_removes_another_requests_charge => calendar(10, "UTC");
});
