//! Exact admission, denials that charge nothing, impossible costs and key isolation.

use limiter_core::batch::Check;
use limiter_core::{Key, Limit, Store, SubjectKind, Unit, Verdict};

use super::run::Run;
use crate::fixtures::*;

async fn allows_exactly_the_limit(store: &dyn Store, namespace: &str, limit: Limit) {
    let run = Run { store, namespace };
    let l = limit.rate().limit();
    let now = BASE_NOW + 17 * SECOND;
    let check = run.check("unit", &limit, 1);
    for i in 0..l {
        let status = run.one(&check, now).await;
        assert!(
            status.is_allowed(),
            "{store}: {limit}: request {} denied: {status:?}",
            i + 1
        );
        assert_eq!(status.limit, l, "{store}: {limit}: {status:?}");
        assert_eq!(
            status.remaining,
            l - 1 - i,
            "{store}: {limit}: after {} admitted: {status:?}",
            i + 1
        );
        assert_eq!(status.retry_after, 0, "{store}: {limit}: {status:?}");
    }
    for _ in 0..3 {
        let status = run.one(&check, now).await;
        assert_eq!(
            status.verdict,
            Verdict::Denied,
            "{store}: {limit}: past the limit: {status:?}"
        );
        assert_eq!(status.remaining, 0, "{store}: {limit}: {status:?}");
        assert!(
            status.retry_after >= 1,
            "{store}: {limit}: a denial says when: {status:?}"
        );
    }
    // Costs add up: 7 units in requests of 2 are 3 requests, then one unit still fits.
    let pairs = run.check("pairs", &limit, 2);
    run.admits_exactly(&pairs, now, l / 2, "cost 2").await;
    let single = Check { cost: 1, ..pairs };
    run.admits_exactly(&single, now, l % 2, "the unit left after cost 2")
        .await;
}

per_algorithm!(allows_exactly_the_limit {
    /// A GCRA of 7/minute admits exactly 7 requests at one instant, and denies the 8th;
    /// requests of cost 2 take two units each.
    gcra_allows_exactly_the_limit => gcra(7, Unit::Minute);
    /// As [`gcra_allows_exactly_the_limit`], for a sliding window of 7/minute.
    sliding_window_allows_exactly_the_limit => sliding_window(7, Unit::Minute);
    /// As [`gcra_allows_exactly_the_limit`], for a sliding log of 7/minute.
    sliding_log_allows_exactly_the_limit => sliding_log(7, Unit::Minute);
    /// As [`gcra_allows_exactly_the_limit`], for a calendar window of 7/day in UTC.
    calendar_allows_exactly_the_limit => calendar(7, "UTC");
});

/// After denials, every later instant gives exactly the allowance it would have given had the
/// denials never happened: a key that was denied behaves as its twin that was not.
pub async fn denied_requests_charge_nothing(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    for (i, limit) in every_algorithm(5).into_iter().enumerate() {
        let denied = run.check(&format!("denied{i}"), &limit, 1);
        let twin = run.check(&format!("twin{i}"), &limit, 1);
        let t0 = BASE_NOW + 5 * SECOND;
        run.admits_exactly(&twin, t0, 5, "twin").await;
        run.admits_exactly(&denied, t0, 5, "denied").await;
        // Denials of every kind: cost 1, a cost that fits the limit, an impossible cost.
        for (dt, cost) in [(0, 1), (1, 3), (2, 5), (3, 6), (SECOND, 1), (2 * SECOND, 2)] {
            let status = run
                .one(
                    &Check {
                        cost,
                        ..denied.clone()
                    },
                    t0 + dt,
                )
                .await;
            assert!(
                !status.is_allowed(),
                "{store}: {limit}: cost {cost} at +{dt}µs: {status:?}"
            );
        }
        let period = span(&limit);
        let mut now = t0 + 2 * SECOND;
        for step in [
            1,
            period / 7,
            period / 5,
            period / 3,
            period / 2,
            period,
            2 * period,
        ] {
            now += step;
            let a = run.peek_one(&denied, now).await;
            let b = run.peek_one(&twin, now).await;
            assert_eq!(
                a,
                b,
                "{store}: {limit}: peek at +{}µs after denials vs twin",
                now - t0
            );
            let a = run.one(&denied, now).await;
            let b = run.one(&twin, now).await;
            assert_eq!(
                a,
                b,
                "{store}: {limit}: evaluate at +{}µs after denials vs twin",
                now - t0
            );
        }
    }
}

/// Keys are independent: exhausting one leaves every other whole, including keys whose
/// subjects differ only in characters that keys escape, or in their kind.
pub async fn keys_are_isolated(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let now = BASE_NOW + 17 * HOUR;
    for (i, limit) in every_algorithm(2).into_iter().enumerate() {
        let policy = format!("isolated{i}");
        let key = |kind, subject: &str| Key::new(namespace, &policy, kind, subject);
        let exhausted = Check::new(
            policy.as_str(),
            key(SubjectKind::User, "a:b"),
            limit.clone(),
            1,
        );
        run.admits_exactly(&exhausted, now, 2, "first key").await;
        let others = [
            key(SubjectKind::User, "a%3Ab"),
            key(SubjectKind::User, "a:b "),
            key(SubjectKind::Tenant, "a:b"),
            key(SubjectKind::Ip, "a:b"),
            Key::new(namespace, &format!("{policy}x"), SubjectKind::User, "a:b"),
        ];
        for other in others {
            let check = Check::new(policy.as_str(), other, limit.clone(), 1);
            run.admits_exactly(&check, now, 2, "a neighbouring key")
                .await;
        }
    }
}

/// A cost above the limit can never fit: `Verdict::Impossible`, no retry time, nothing charged.
pub async fn cost_above_the_limit_is_impossible(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let now = BASE_NOW + 19 * HOUR;
    for (i, limit) in every_algorithm(4).into_iter().enumerate() {
        let check = run.check(&format!("impossible{i}"), &limit, 5);
        for cost in [5, 8, 1_000_000] {
            let status = run
                .one(
                    &Check {
                        cost,
                        ..check.clone()
                    },
                    now,
                )
                .await;
            assert_eq!(
                status.verdict,
                Verdict::Impossible,
                "{store}: {limit}: cost {cost}: {status:?}"
            );
            assert_eq!(status.retry_after, 0, "{store}: {limit}: {status:?}");
            assert_eq!(status.remaining, 4, "{store}: {limit}: {status:?}");
        }
        run.admits_exactly(
            &Check {
                cost: 1,
                ..check.clone()
            },
            now,
            4,
            "after impossible costs",
        )
        .await;
        // A cost equal to the limit is possible: the whole budget at once.
        let whole = run.check(&format!("whole{i}"), &limit, 4);
        run.admits_exactly(&whole, now, 1, "cost equal to the limit")
            .await;
    }
}
