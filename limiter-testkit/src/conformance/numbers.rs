//! The algorithms' documented numbers, through a store.

use limiter_core::batch::Check;
use limiter_core::{Store, Unit, Verdict};

use super::run::Run;
use crate::fixtures::*;

/// GCRA 10/minute: 10 at once, the 11th denied with retry after 6 s, one more 6 s later, and
/// a full burst again a minute after the last admission.
pub async fn gcra_burst_and_refill(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let check = run.check("burst", &gcra(10, Unit::Minute), 1);
    let t0 = BASE_NOW + 21 * HOUR;
    run.admits_exactly(&check, t0, 10, "burst").await;
    let denied = run.peek_one(&check, t0).await;
    assert_eq!(denied.retry_after, 6 * SECOND, "{store}: {denied:?}");
    assert_eq!(
        run.peek_one(&check, t0 + 6 * SECOND - 1).await.verdict,
        Verdict::Denied
    );
    run.admits_exactly(&check, t0 + 6 * SECOND, 1, "6 s after the burst")
        .await;
    let denied = run.peek_one(&check, t0 + 6 * SECOND).await;
    assert_eq!(denied.retry_after, 6 * SECOND, "{store}: {denied:?}");
    run.admits_exactly(&check, t0 + 9 * SECOND, 0, "9 s after the burst")
        .await;
    // At 30 s the backlog is 66 - 30 = 36 s of a 60 s bucket: room for 4 intervals of 6 s.
    run.admits_exactly(&check, t0 + 30 * SECOND, 4, "30 s after the burst")
        .await;
    run.admits_exactly(
        &check,
        t0 + 90 * SECOND,
        10,
        "a minute after the last admission",
    )
    .await;
}

/// Sliding window 100/hour: 90 admitted in 10:00-11:00; at 11:15 the previous window weighs
/// `ceil(90 * 0.75) = 68`, so 32 more fit; at 11:30 it weighs 45, so 55 fit in all; two
/// windows later everything is forgotten.
pub async fn sliding_window_rolls_over(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let check = run.check("window", &sliding_window(100, Unit::Hour), 1);
    let ten = BASE_NOW + 10 * HOUR;
    for i in 0..90 {
        assert!(
            run.one(&check, ten + 20 * MINUTE + i * SECOND)
                .await
                .is_allowed()
        );
    }
    run.admits_exactly(&check, ten + 59 * MINUTE, 10, "the window's last 10")
        .await;
    // Back to 90 in the window 10:00-11:00, to match the worked example: refund the last 10.
    run.refund(
        &[Check {
            cost: 10,
            ..check.clone()
        }],
        ten + 59 * MINUTE,
        ten + 59 * MINUTE,
    )
    .await;
    run.admits_exactly(&check, ten + 75 * MINUTE, 32, "at 11:15")
        .await;
    run.admits_exactly(&check, ten + 90 * MINUTE, 23, "at 11:30")
        .await;
    run.admits_exactly(&check, ten + 180 * MINUTE, 100, "at 13:00")
        .await;
}

/// Sliding log 5/minute: admissions at 0, 10, ..., 40 s; the 6th at 50 s is denied with retry
/// after 10 s; at 60 s the first has left and one fits; the next waits for the second.
pub async fn sliding_log_entries_expire(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let check = run.check("log", &sliding_log(5, Unit::Minute), 1);
    let t0 = BASE_NOW + 22 * HOUR;
    for i in 0..5 {
        let status = run.one(&check, t0 + i * 10 * SECOND).await;
        assert!(
            status.is_allowed(),
            "{store}: admission {}: {status:?}",
            i + 1
        );
    }
    let denied = run.one(&check, t0 + 50 * SECOND).await;
    assert_eq!(denied.verdict, Verdict::Denied, "{store}: {denied:?}");
    assert_eq!(denied.retry_after, 10 * SECOND, "{store}: {denied:?}");
    run.admits_exactly(
        &check,
        t0 + 60 * SECOND - 1,
        0,
        "1µs before the first expires",
    )
    .await;
    run.admits_exactly(&check, t0 + 60 * SECOND, 1, "when the first expires")
        .await;
    let denied = run.one(&check, t0 + 60 * SECOND).await;
    assert_eq!(denied.retry_after, 10 * SECOND, "{store}: {denied:?}");
    run.admits_exactly(&check, t0 + 100 * SECOND, 4, "after four more expired")
        .await;
    run.admits_exactly(&check, t0 + 10 * MINUTE, 5, "long after")
        .await;
}

/// A calendar window of 3/day in `Europe/Paris` resets exactly at local midnight on the DST
/// days 2026-03-29 (23 hours) and 2026-10-25 (25 hours).
pub async fn calendar_resets_at_local_midnight_on_dst_days(store: &dyn Store, namespace: &str) {
    let run = Run { store, namespace };
    let limit = calendar(3, "Europe/Paris");
    // 2026-03-29T07:00Z is 09:00 CEST; the day ends at 2026-03-30T00:00 CEST = 22:00Z.
    let spring_nine = 1_774_767_600_000_000;
    let spring_midnight = 1_774_821_600_000_000;
    let spring = run.check("spring", &limit, 1);
    run.admits_exactly(&spring, spring_nine, 3, "2026-03-29 09:00 Paris")
        .await;
    let denied = run.peek_one(&spring, spring_nine).await;
    assert_eq!(
        denied.retry_after,
        15 * HOUR,
        "{store}: a 23-hour day: {denied:?}"
    );
    run.admits_exactly(&spring, spring_midnight - 1, 0, "1µs before Paris midnight")
        .await;
    run.admits_exactly(&spring, spring_midnight, 3, "at Paris midnight")
        .await;

    // 2026-10-25 starts at 2026-10-24T22:00Z (00:00 CEST) and ends at 2026-10-25T23:00Z.
    let autumn_start = 1_792_879_200_000_000;
    let autumn_end = 1_792_969_200_000_000;
    let autumn = run.check("autumn", &limit, 1);
    run.admits_exactly(
        &autumn,
        autumn_start - 1,
        3,
        "23:59:59.999999 on 2026-10-24",
    )
    .await;
    run.admits_exactly(&autumn, autumn_start, 3, "00:00 on 2026-10-25")
        .await;
    let denied = run.peek_one(&autumn, autumn_start).await;
    assert_eq!(
        denied.retry_after,
        25 * HOUR,
        "{store}: a 25-hour day: {denied:?}"
    );
    // 23:30 CET on the 25th, 24.5 hours into the day: still the same day.
    run.admits_exactly(&autumn, autumn_end - 30 * MINUTE, 0, "23:30 on 2026-10-25")
        .await;
    run.admits_exactly(&autumn, autumn_end, 3, "00:00 on 2026-10-26")
        .await;
}
