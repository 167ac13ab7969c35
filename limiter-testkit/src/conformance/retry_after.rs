//! Retry-after is exact.

use limiter_core::{Limit, Store, Unit, Verdict};

use super::run::Run;
use crate::fixtures::*;

/// Denied at `t` with `retry_after = r`: still denied at `t + r - 1`, allowed at `t + r`.
/// Repeated through varied states (costs 1 and 2, irregular pauses).
async fn retry_after_is_exact(store: &dyn Store, namespace: &str, limit: Limit) {
    let run = Run { store, namespace };
    let l = limit.rate().limit();
    let period = span(&limit);
    let mut now = BASE_NOW + 7 * HOUR + 13 * MINUTE + 7 * SECOND;
    let pauses = [
        0,
        period / 3,
        1,
        period / 10,
        2 * period / 3,
        7,
        period / 2 + 1,
        0,
    ];
    for (round, pause) in pauses.into_iter().enumerate() {
        let cost = if round % 3 == 1 { 2 } else { 1 };
        let check = run.check("retry", &limit, cost);
        let (_, denied) = run.admit_all(&check, now, l + 1).await;
        assert_eq!(
            denied.verdict,
            Verdict::Denied,
            "{store}: {limit}: {denied:?}"
        );
        let r = denied.retry_after;
        assert!(r >= 1, "{store}: {limit}: {denied:?}");
        let before = run.peek_one(&check, now + r - 1).await;
        assert_eq!(
            before.verdict,
            Verdict::Denied,
            "{store}: {limit}: round {round}: denied at {now} with retry after {r}, but allowed \
             1µs earlier: {before:?}"
        );
        now += r;
        let after = run.one(&check, now).await;
        assert!(
            after.is_allowed(),
            "{store}: {limit}: round {round}: denied with retry after {r}µs, still denied then: \
             {after:?}"
        );
        now += pause;
    }
}

per_algorithm!(retry_after_is_exact {
    /// Retry-after is exact for a GCRA of 5/minute.
    gcra_retry_after_is_exact => gcra(5, Unit::Minute);
    /// Retry-after is exact for a sliding window of 5/minute.
    sliding_window_retry_after_is_exact => sliding_window(5, Unit::Minute);
    /// Retry-after is exact for a sliding log of 5/minute.
    sliding_log_retry_after_is_exact => sliding_log(5, Unit::Minute);
    /// Retry-after is exact for a calendar window of 5/day in `Europe/Paris`.
    calendar_retry_after_is_exact => calendar(5, "Europe/Paris");
});
