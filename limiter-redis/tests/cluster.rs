//! The Redis store on a three-node cluster: hash tags keep a subject's limits in one slot (one
//! script call), hostile subjects cannot pick a slot or meet another subject, and a decision
//! across slots that one slot denies charges no other slot.

mod common;

use common::*;
use fred::util::redis_keyslot;
use limiter_core::StoreExt;
use limiter_core::{Key, Limit, Store, SubjectKind, Verdict};
use limiter_testkit::fixtures::every_algorithm;
use limiter_testkit::redis::{self, RedisCluster};

fn slot(key: &Key) -> u16 {
    redis_keyslot(key.as_str().as_bytes())
}

/// Subjects that try to close the hash tag, open another, or look like an escape.
const HOSTILE: &[&str] = &[
    "evil}:{x", "{x}", "}{x", "x}", "a:b", "%7Bx%7D", "{", "}", "", "a}{b}{c",
];

#[test]
fn no_subject_can_choose_its_slot() {
    for subject in HOSTILE {
        let a = Key::new("api", "plan_burst", SubjectKind::User, subject);
        let b = Key::new("api", "plan_daily", SubjectKind::User, subject);
        assert_eq!(
            slot(&a),
            slot(&b),
            "{a} and {b}: the limits of one subject share a slot"
        );
        // The tag is the whole escaped subject, whatever braces the input holds.
        let tag = a.hash_tag();
        assert!(
            tag.starts_with("u=") && !tag.contains(['{', '}']),
            "{a}: tag {tag:?}"
        );
        assert_eq!(slot(&a), redis_keyslot(tag.as_bytes()), "{a}");
    }
    // Input aiming at the slot of the tag `x` gets the slot of its own escaped text.
    let aimed = Key::new("api", "p", SubjectKind::User, "}{x");
    assert_ne!(aimed.hash_tag(), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_subjects_have_budgets_of_their_own() {
    let Some(url) = redis::cluster_url() else {
        return;
    };
    let store = store(&url, 2).await;
    assert!(store.is_clustered());
    let ns = redis::namespace("hostile");
    let limit = || Limit::gcra(rate("3/minute"));
    for subject in HOSTILE {
        // Two limits of the subject: one script call, on the node owning the subject's slot.
        let b = batch(vec![
            check(&ns, "burst", subject, limit(), 1),
            check(
                &ns,
                "sustained",
                subject,
                Limit::sliding_window(rate("100/hour")),
                1,
            ),
        ]);
        for n in 0..3 {
            let outcome = store.evaluate(&b, &at(NOW)).await.expect("evaluate");
            assert!(outcome.allowed, "{subject:?}: request {n}: {outcome:?}");
        }
        let outcome = store.evaluate(&b, &at(NOW)).await.expect("evaluate");
        assert!(
            !outcome.allowed,
            "{subject:?}: a fourth request in a minute"
        );
    }
    // Every subject spent its own budget and no one else's: a fresh subject still has 3.
    let fresh = batch(vec![check(&ns, "burst", "bystander", limit(), 1)]);
    let status = store.peek(&fresh, &at(NOW)).await.expect("peek").statuses[0];
    assert_eq!(status.remaining, 2, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_denying_leaves_the_other_slots_uncharged() {
    let Some(url) = redis::cluster_url() else {
        return;
    };
    let store = store(&url, 2).await;
    let ns = redis::namespace("refund_slots");
    let roomy = check(&ns, "plan", "tenant-a", Limit::gcra(rate("10/minute")), 1);
    // Find a subject in another slot (most are).
    let tight = (0..)
        .map(|i| {
            check(
                &ns,
                "ip",
                &format!("client-{i}"),
                Limit::gcra(rate("1/minute")),
                1,
            )
        })
        .find(|c| slot(&c.key) != slot(&roomy.key))
        .expect("a key in another slot");
    assert!(
        store
            .evaluate(&batch(vec![tight.clone()]), &at(NOW))
            .await
            .expect("spend")
            .allowed
    );

    // tight's slot denies: roomy's slot is not charged (or is given its unit back).
    let b = batch(vec![roomy.clone(), tight.clone()]);
    for n in 0..5 {
        let outcome = store.evaluate(&b, &at(NOW)).await.expect("evaluate");
        assert!(!outcome.allowed, "attempt {n}: {outcome:?}");
        assert_eq!(outcome.statuses[0].verdict, Verdict::Allowed);
        // Nothing was charged, so roomy reports what stands: all 10.
        assert_eq!(
            outcome.statuses[0].remaining, 10,
            "attempt {n}: the status of roomy"
        );
        assert_eq!(outcome.statuses[1].verdict, Verdict::Denied);
    }
    let left = store
        .peek(&batch(vec![roomy.clone()]), &at(NOW))
        .await
        .expect("peek");
    assert_eq!(
        left.statuses[0].remaining, 9,
        "roomy was charged by denied decisions: {left:?}"
    );

    // The other order.
    let b = batch(vec![tight, roomy.clone()]);
    let outcome = store.evaluate(&b, &at(NOW)).await.expect("evaluate");
    assert!(!outcome.allowed);
    assert_eq!(outcome.statuses[1].remaining, 10);
    let left = store
        .peek(&batch(vec![roomy]), &at(NOW))
        .await
        .expect("peek");
    assert_eq!(left.statuses[0].remaining, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_scripts_reloads_them() {
    let Some(url) = redis::cluster_url() else {
        return;
    };
    let store = store(&url, 1).await;
    let ns = redis::namespace("noscript_node");
    let checks: Vec<_> = (0..12)
        .map(|i| check(&ns, "p", &format!("s{i}"), Limit::gcra(rate("2/minute")), 1))
        .collect();
    for c in &checks {
        assert!(
            store
                .evaluate(&batch(vec![c.clone()]), &at(NOW))
                .await
                .expect("first")
                .allowed
        );
    }
    // One node forgets every script (as a restarted or new node would).
    let node = redis::addresses(&url).into_iter().next().expect("a node");
    redis::command(&node, &["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH");
    for c in &checks {
        let second = store
            .evaluate(&batch(vec![c.clone()]), &at(NOW))
            .await
            .expect("second");
        assert!(second.allowed, "{}: {second:?}", c.key);
        let third = store
            .evaluate(&batch(vec![c.clone()]), &at(NOW))
            .await
            .expect("third");
        assert!(
            !third.allowed,
            "{}: charged twice or not at all: {third:?}",
            c.key
        );
    }
}

/// The limits `config` resolves for `request`.
fn resolve(
    config: &limiter_core::policy::Config,
    request: &limiter_core::Request,
) -> limiter_core::Resolution {
    limiter_core::PolicySet::from_config(config)
        .expect("valid")
        .resolve(request)
        .expect("resolves")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_calls_per_decision() {
    if std::env::var(redis::CLUSTER_URL_VAR).is_ok() {
        eprintln!("skipped: counts the commands of a private cluster");
        return;
    }
    let cluster = match RedisCluster::start() {
        Ok(cluster) => cluster,
        Err(e) => return redis::unavailable("a Redis Cluster", &e.to_string()).unwrap_or(()),
    };
    let store = store(&cluster.url(), 2).await;
    assert_eq!(
        store.to_string(),
        format!(
            "RedisStore(redis-cluster://{})",
            redis::addresses(&cluster.url()).join(",")
        )
    );
    let evalsha_calls = || {
        cluster
            .nodes()
            .iter()
            .map(|n| {
                command_calls(
                    &n.command(&["INFO", "commandstats"]).expect("INFO"),
                    "evalsha",
                )
            })
            .sum::<u64>()
    };
    let ns = redis::namespace("per_slot");
    // Four limits of one subject: one slot, one call per decision.
    let same: Vec<_> = every_algorithm(1_000)
        .into_iter()
        .enumerate()
        .map(|(i, l)| check(&ns, &format!("p{i}"), "tenant", l, 1))
        .collect();
    let before = evalsha_calls();
    for n in 0..10 {
        assert!(
            store
                .evaluate(&batch(same.clone()), &at(NOW + n))
                .await
                .expect("same")
                .allowed
        );
    }
    assert_eq!(evalsha_calls() - before, 10);
    // Two subjects in two slots: one charge per slot, at once (no peek first).
    let other = (0..)
        .map(|i| {
            check(
                &ns,
                "ip",
                &format!("ip-{i}"),
                Limit::gcra(rate("1000/minute")),
                1,
            )
        })
        .find(|c| slot(&c.key) != slot(&same[0].key))
        .expect("another slot");
    let mut two = same.clone();
    two.push(other);
    let before = evalsha_calls();
    for n in 0..10 {
        assert!(
            store
                .evaluate(&batch(two.clone()), &at(NOW + n))
                .await
                .expect("two")
                .allowed
        );
    }
    assert_eq!(evalsha_calls() - before, 20);

    // The default decision (plan sustained, burst and daily on the tenant, the role on the
    // user within the tenant, the IP burst on the network): one call per slot it touches, when
    // admitted. The role shares the tenant's slot, so there are two: the tenant's, and the
    // network's (unless it happens to hash to the same).
    let mut config = limiter_core::policy::Config::default();
    config.namespace = ns.clone();
    let policies = limiter_core::PolicySet::from_config(&config).expect("valid");
    let limiter = limiter_core::Limiter::builder(policies, store.clone())
        .clock(limiter_core::ManualClock::new(NOW))
        .build();
    let request = limiter_core::Request::new()
        .tenant("acme")
        .plan("enterprise")
        .user("owner-1")
        .role("owner")
        .ip([192, 0, 2, 7].into());
    let limiter_core::Resolution::Limits(checks) = resolve(&config, &request) else {
        panic!("the default decision counts its limits")
    };
    let mut slots: Vec<u16> = checks.iter().map(|c| slot(&c.key)).collect();
    slots.sort_unstable();
    slots.dedup();
    assert!(slots.len() <= 2, "{checks:?}");
    let slots = slots.len() as u64;
    let before = evalsha_calls();
    for _ in 0..10 {
        let decision = limiter.check(&request).await.expect("check");
        assert!(decision.is_allowed(), "{decision:?}");
        assert_eq!(decision.statuses().len(), 5, "{decision:?}");
    }
    // One call per slot (it was a peek and a charge per subject, six calls in two steps).
    let calls = evalsha_calls() - before;
    assert_eq!(
        calls,
        10 * slots,
        "{calls} EVALSHA for 10 admitted default decisions over {slots} slots"
    );
}
