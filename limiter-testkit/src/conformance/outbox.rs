//! The contracts every [`Outbox`] must meet, run by [`outbox_suite!`](crate::outbox_suite), and
//! the one every store that keeps notices must meet with its outbox
//! ([`fleet_notifies_once_per_window`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use limiter_core::notify::{
    ClaimRequest, Claimed, Notice, NotificationId, NotifyKind, NotifyRules, Outbox, Settlement,
};
use limiter_core::{Limiter, ManualClock, Micros, Store};

use super::events::{DAY, TRACE_QUOTA, fleet_day, trace_policies};
use crate::fixtures::{BASE_NOW, HOUR, MINUTE, SECOND};

/// A notice of tenant `tenant`'s daily quota, of `kind`, due at `due`.
pub fn notice(tenant: &str, kind: NotifyKind, due: Micros) -> Notice {
    let threshold = (kind == NotifyKind::Approaching).then_some(80);
    let identity = NotificationId::new(
        format!("t={tenant}"),
        "plan_daily",
        kind,
        threshold,
        BASE_NOW,
        5000,
    );
    let mut notice = Notice::new(identity, BASE_NOW);
    notice.tenant = Some(tenant.to_owned());
    notice.plan = Some("starter".to_owned());
    notice.due = due;
    notice.used = 4000;
    notice.period = DAY;
    notice.reset_at = BASE_NOW + DAY;
    notice
}

fn claim(worker: &str, now: Micros, max: usize) -> ClaimRequest {
    ClaimRequest {
        worker: worker.to_owned(),
        now,
        lease: MINUTE,
        max,
    }
}

fn ids(claimed: &[Claimed]) -> Vec<String> {
    claimed.iter().map(|c| c.notice.id()).collect()
}

/// Enqueuing a notice whose id the outbox holds adds nothing, whatever state it is in.
pub async fn enqueue_keeps_each_id_once(outbox: &dyn Outbox) {
    let a = notice("acme", NotifyKind::Approaching, BASE_NOW);
    let b = notice("acme", NotifyKind::Exhausted, BASE_NOW);
    let c = notice("bolt", NotifyKind::Exhausted, BASE_NOW);
    assert_eq!(
        outbox.enqueue(&[a.clone(), b.clone()]).await.unwrap(),
        2,
        "{outbox:?}"
    );
    assert_eq!(
        outbox
            .enqueue(&[a.clone(), c.clone(), c.clone()])
            .await
            .unwrap(),
        1,
        "{outbox:?}: only c is new, once"
    );
    let claimed = outbox.claim(&claim("w", BASE_NOW, 10)).await.unwrap();
    assert_eq!(claimed.len(), 3, "{outbox:?}");
    for c in &claimed {
        assert!(
            outbox
                .settle(c, &Settlement::Delivered { at: BASE_NOW })
                .await
                .unwrap()
        );
    }
    assert_eq!(
        outbox.enqueue(&[a, b]).await.unwrap(),
        0,
        "{outbox:?}: delivered ids stay known"
    );
    let stats = outbox.stats(BASE_NOW).await.unwrap();
    assert_eq!((stats.pending, stats.delivered), (0, 3), "{outbox:?}");
}

/// A notice comes back from a claim exactly as it was enqueued.
pub async fn notices_round_trip(outbox: &dyn Outbox) {
    let mut n = notice("ünïcode \"tenant\" {x}", NotifyKind::Approaching, BASE_NOW);
    n.user = Some("u-1".to_owned());
    n.plan = None;
    n.used = u64::from(u32::MAX) + 7;
    outbox.enqueue(std::slice::from_ref(&n)).await.unwrap();
    let claimed = outbox.claim(&claim("w", BASE_NOW, 10)).await.unwrap();
    assert_eq!(claimed.len(), 1, "{outbox:?}");
    assert_eq!(claimed[0].notice, n, "{outbox:?}");
    assert_eq!(claimed[0].attempt, 1, "{outbox:?}");
    assert_eq!(claimed[0].lease_until, BASE_NOW + MINUTE, "{outbox:?}");
}

/// Only due notices are claimed, earliest due first, at most `max` per claim, and a claimed
/// notice is not claimed again while its lease lasts.
pub async fn claims_due_notices_earliest_first(outbox: &dyn Outbox) {
    let tenants = ["d", "b", "a", "c", "later"];
    let dues = [
        BASE_NOW + 3 * SECOND,
        BASE_NOW + SECOND,
        BASE_NOW,
        BASE_NOW + 2 * SECOND,
        BASE_NOW + HOUR,
    ];
    let notices: Vec<Notice> = tenants
        .iter()
        .zip(dues)
        .map(|(t, due)| notice(t, NotifyKind::Restored, due))
        .collect();
    outbox.enqueue(&notices).await.unwrap();
    let now = BASE_NOW + 10 * SECOND;
    let first = outbox.claim(&claim("w", now, 2)).await.unwrap();
    let second = outbox.claim(&claim("w", now, 10)).await.unwrap();
    let tenant = |c: &Claimed| c.notice.tenant.clone().unwrap();
    assert_eq!(
        first.iter().map(tenant).collect::<Vec<_>>(),
        ["a", "b"],
        "{outbox:?}"
    );
    assert_eq!(
        second.iter().map(tenant).collect::<Vec<_>>(),
        ["c", "d"],
        "{outbox:?}"
    );
    assert!(
        outbox.claim(&claim("w", now, 10)).await.unwrap().is_empty(),
        "{outbox:?}: all due notices are leased"
    );
    let stats = outbox.stats(now).await.unwrap();
    assert_eq!(
        (stats.pending, stats.due, stats.claimed),
        (1, 0, 4),
        "{outbox:?}"
    );
    // An hour on, "later" is due and the four leases have long ended: all five come back,
    // in due order, the four on their second attempt.
    let later = outbox
        .claim(&claim("w", BASE_NOW + HOUR, 10))
        .await
        .unwrap();
    assert_eq!(
        later.iter().map(tenant).collect::<Vec<_>>(),
        ["a", "b", "c", "d", "later"],
        "{outbox:?}"
    );
    let attempts: Vec<u32> = later.iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, [2, 2, 2, 2, 1], "{outbox:?}");
}

/// A lease that ended is claimed again with the next attempt, and the earlier attempt can no
/// longer settle: a crashed worker loses nothing and settles nothing twice.
pub async fn an_ended_lease_is_claimed_again_and_fences_the_old_attempt(outbox: &dyn Outbox) {
    outbox
        .enqueue(&[notice("acme", NotifyKind::Exhausted, BASE_NOW)])
        .await
        .unwrap();
    let first = outbox.claim(&claim("crashed", BASE_NOW, 1)).await.unwrap();
    assert_eq!(first.len(), 1, "{outbox:?}");
    assert!(
        outbox
            .claim(&claim("other", BASE_NOW + MINUTE - 1, 1))
            .await
            .unwrap()
            .is_empty(),
        "{outbox:?}: the lease still holds"
    );
    let second = outbox
        .claim(&claim("other", BASE_NOW + MINUTE, 1))
        .await
        .unwrap();
    assert_eq!(ids(&second), ids(&first), "{outbox:?}");
    assert_eq!(second[0].attempt, 2, "{outbox:?}");
    let done = Settlement::Delivered {
        at: BASE_NOW + MINUTE,
    };
    assert!(
        !outbox.settle(&first[0], &done).await.unwrap(),
        "{outbox:?}: the old attempt is fenced off"
    );
    assert!(
        outbox.settle(&second[0], &done).await.unwrap(),
        "{outbox:?}"
    );
    assert!(
        !outbox.settle(&second[0], &done).await.unwrap(),
        "{outbox:?}: settled once"
    );
    assert!(
        outbox
            .claim(&claim("w", BASE_NOW + DAY, 10))
            .await
            .unwrap()
            .is_empty()
    );
    let stats = outbox.stats(BASE_NOW + DAY).await.unwrap();
    assert_eq!((stats.claimed, stats.delivered), (0, 1), "{outbox:?}");
}

/// A retried notice waits until its retry time, then comes back with the next attempt; a
/// failed one never comes back.
pub async fn retries_wait_and_failures_are_final(outbox: &dyn Outbox) {
    let (a, b) = (
        notice("acme", NotifyKind::Exhausted, BASE_NOW),
        notice("bolt", NotifyKind::Exhausted, BASE_NOW),
    );
    outbox.enqueue(&[a.clone(), b.clone()]).await.unwrap();
    let claimed = outbox.claim(&claim("w", BASE_NOW, 10)).await.unwrap();
    assert_eq!(claimed.len(), 2, "{outbox:?}");
    let retry_at = BASE_NOW + 30 * SECOND;
    let by_tenant = |t: &str| {
        claimed
            .iter()
            .find(|c| c.notice.tenant.as_deref() == Some(t))
            .unwrap()
            .clone()
    };
    let retry = Settlement::Retry {
        retry_at,
        error: "receiver answered 503".to_owned(),
    };
    assert!(outbox.settle(&by_tenant("acme"), &retry).await.unwrap());
    let failed = Settlement::Failed {
        at: BASE_NOW,
        error: "receiver answered 410".to_owned(),
    };
    assert!(outbox.settle(&by_tenant("bolt"), &failed).await.unwrap());
    assert!(
        outbox
            .claim(&claim("w", retry_at - 1, 10))
            .await
            .unwrap()
            .is_empty(),
        "{outbox:?}: not before the retry time"
    );
    let stats = outbox.stats(retry_at - 1).await.unwrap();
    assert_eq!(
        (stats.pending, stats.due, stats.failed),
        (1, 0, 1),
        "{outbox:?}"
    );
    let again = outbox.claim(&claim("w", retry_at, 10)).await.unwrap();
    assert_eq!(ids(&again), [a.id()], "{outbox:?}");
    assert_eq!(again[0].attempt, 2, "{outbox:?}");
    assert_eq!(outbox.enqueue(&[b]).await.unwrap(), 0, "{outbox:?}");
}

/// Pruning removes delivered and failed notices settled before the cut, never pending or
/// claimed ones.
pub async fn prune_removes_only_settled_notices(outbox: &dyn Outbox) {
    let notices: Vec<Notice> = ["a", "b", "c", "d"]
        .iter()
        .map(|t| notice(t, NotifyKind::Exhausted, BASE_NOW))
        .collect();
    outbox.enqueue(&notices).await.unwrap();
    let claimed = outbox.claim(&claim("w", BASE_NOW, 3)).await.unwrap();
    assert_eq!(claimed.len(), 3, "{outbox:?}");
    let done = |at| Settlement::Delivered { at };
    assert!(outbox.settle(&claimed[0], &done(BASE_NOW)).await.unwrap());
    let failed = Settlement::Failed {
        at: BASE_NOW + HOUR,
        error: "gone".to_owned(),
    };
    assert!(outbox.settle(&claimed[1], &failed).await.unwrap());
    // claimed[2] stays claimed; "d" stays pending.
    assert_eq!(
        outbox.prune(BASE_NOW + 1).await.unwrap(),
        1,
        "{outbox:?}: only the delivery before the cut"
    );
    assert_eq!(outbox.prune(BASE_NOW + DAY).await.unwrap(), 1, "{outbox:?}");
    let stats = outbox.stats(BASE_NOW).await.unwrap();
    assert_eq!(
        (stats.pending, stats.claimed, stats.delivered, stats.failed),
        (1, 1, 0, 0),
        "{outbox:?}"
    );
    // A pruned id is forgotten: it can be enqueued again.
    assert_eq!(
        outbox.enqueue(&notices[..1]).await.unwrap(),
        1,
        "{outbox:?}"
    );
}

/// Eight workers claiming at once take every notice exactly once.
pub async fn concurrent_claims_take_each_notice_once(outbox: Arc<dyn Outbox>) {
    let notices: Vec<Notice> = (0..200)
        .map(|i| notice(&format!("t{i}"), NotifyKind::Exhausted, BASE_NOW + i))
        .collect();
    outbox.enqueue(&notices).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let outbox = Arc::clone(&outbox);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let claimed = outbox
                    .claim(&claim(&format!("w{w}"), BASE_NOW + 1000, 7))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return got;
                }
                for c in claimed {
                    let done = Settlement::Delivered {
                        at: BASE_NOW + 1000,
                    };
                    assert!(outbox.settle(&c, &done).await.unwrap());
                    got.push(c.notice.id());
                }
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 200, "{outbox:?}: every notice once");
    assert_eq!(distinct.len(), 200, "{outbox:?}: none twice");
}

/// Generates one `#[tokio::test]` per [`Outbox`] contract. `$new_outbox` names an
/// `async fn() -> Option<(impl Outbox + 'static, guard)>` giving an empty outbox (`None` skips
/// with a message).
#[macro_export]
macro_rules! outbox_suite {
    ($new_outbox:path) => {
        $crate::__outbox_tests! {
            $new_outbox;
            enqueue_keeps_each_id_once,
            notices_round_trip,
            claims_due_notices_earliest_first,
            an_ended_lease_is_claimed_again_and_fences_the_old_attempt,
            retries_wait_and_failures_are_final,
            prune_removes_only_settled_notices,
        }
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_claims_take_each_notice_once() {
            let Some((outbox, _guard)) = $new_outbox().await else {
                ::std::eprintln!("SKIPPED concurrent_claims_take_each_notice_once: no outbox");
                return;
            };
            $crate::conformance::outbox::concurrent_claims_take_each_notice_once(
                ::std::sync::Arc::new(outbox),
            )
            .await;
        }
    };
}

/// Implementation detail of [`outbox_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __outbox_tests {
    ($new_outbox:path; $($contract:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                let Some((outbox, _guard)) = $new_outbox().await else {
                    ::std::eprintln!("SKIPPED {}: no outbox to test", stringify!($contract));
                    return;
                };
                $crate::conformance::outbox::$contract(&outbox).await;
            }
        )*
    };
}

/// Requests each limiter of [`fleet_notifies_once_per_window`] sends per tenant per day.
pub const FLEET_REQUESTS: u32 = 10;

/// Tenants of [`fleet_notifies_once_per_window`].
pub const FLEET_TENANTS: [&str; 4] = ["ant", "bee", "cat", "dog"];

/// Four limiters, one per store (the stores sharing one state: one SQLite file, one Redis),
/// notify under the default rules while they send concurrent requests for two days, twice the
/// daily quota of [`trace_policies`] per tenant in all. `outbox` (what the stores write to)
/// must then hold, per tenant and day, exactly one approaching (80%) and one exhausted notice
/// of `plan_daily`, with its "resets soon" due an hour before the next midnight and its
/// "restored" due at it. Returns the outbox's notices by id, for a caller to check further.
pub async fn fleet_notifies_once_per_window(
    stores: Vec<Arc<dyn Store>>,
    outbox: &dyn Outbox,
) -> BTreeMap<String, Notice> {
    let clock = ManualClock::new(BASE_NOW);
    let rules =
        NotifyRules::new([limiter_core::policy::PolicyKind::PlanDaily], [80]).expect("valid rules");
    let limiters: Vec<Limiter> = stores
        .into_iter()
        .map(|store| {
            Limiter::builder(trace_policies(), store)
                .clock(clock.clone())
                .notify(rules.clone())
                .expect("the store keeps notices")
                .build()
        })
        .collect();
    for day in 0..2 {
        clock.set(BASE_NOW + day * DAY + HOUR);
        let admitted = fleet_day(&limiters, &FLEET_TENANTS, FLEET_REQUESTS).await;
        let tenants = u64::try_from(FLEET_TENANTS.len()).expect("small");
        assert_eq!(
            admitted,
            tenants * TRACE_QUOTA,
            "the fleet admits the quota"
        );
    }
    // Everything is due by the end of the second day.
    let mut found = BTreeMap::new();
    loop {
        let claimed = outbox
            .claim(&claim("check", BASE_NOW + 3 * DAY, 100))
            .await
            .expect("claims");
        if claimed.is_empty() {
            break;
        }
        for c in claimed {
            let previous = found.insert(c.notice.id(), c.notice.clone());
            assert!(
                previous.is_none(),
                "{outbox:?}: {} claimed twice",
                c.notice.identity
            );
        }
    }
    for tenant in FLEET_TENANTS {
        for day in 0..2 {
            let window = BASE_NOW + day * DAY;
            let of = |kind: NotifyKind| -> Vec<&Notice> {
                found
                    .values()
                    .filter(|n| {
                        n.tenant.as_deref() == Some(tenant)
                            && n.kind() == kind
                            && n.identity.window_start == window
                    })
                    .collect()
            };
            for kind in NotifyKind::ALL {
                assert_eq!(
                    of(kind).len(),
                    1,
                    "{outbox:?}: {kind} notices of {tenant} on day {day}"
                );
            }
            assert_eq!(of(NotifyKind::Approaching)[0].identity.threshold, Some(80));
            assert_eq!(of(NotifyKind::Approaching)[0].used, TRACE_QUOTA * 8 / 10);
            assert_eq!(of(NotifyKind::Exhausted)[0].used, TRACE_QUOTA);
            assert_eq!(of(NotifyKind::ResetsSoon)[0].due, window + DAY - HOUR);
            assert_eq!(of(NotifyKind::Restored)[0].due, window + DAY);
        }
    }
    assert_eq!(
        found.len(),
        FLEET_TENANTS.len() * 2 * NotifyKind::ALL.len(),
        "{outbox:?}: no other notices"
    );
    found
}
