//! The contracts every [`Store`] must meet, one `async fn` each.
//!
//! A backend runs them all with [`conformance_suite!`](crate::conformance_suite), which expands
//! to one named test per contract. Each contract takes the store under test and a namespace
//! that no other test uses ([`namespace`]), and puts every key it touches in it, so that all
//! contracts can run in parallel against one shared server. Time is always injected through
//! [`EvalOptions::at`]; nothing sleeps.
//!
//! A contract panics, naming the store and what it got, when the store breaks it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use super::ModelStore;
use super::strategies::{self, Op, Trace};
use crate::batch::{Batch, BatchOutcome, Check};
use crate::time::Micros;
use crate::{
    Calendar, EvalOptions, Key, Limit, LimitStatus, Outcome, Rate, Store, SubjectKind, Unit,
};

/// 2026-11-26T00:00:00Z, the instant contracts start from (plus offsets).
pub const BASE_NOW: Micros = 1_795_651_200_000_000;

const SECOND: Micros = 1_000_000;
const MINUTE: Micros = 60 * SECOND;
const HOUR: Micros = 60 * MINUTE;

/// The default number of traces [`differential_against_the_model`] replays; the environment
/// variable `LIMITER_PROPTEST_CASES` overrides it.
pub const DEFAULT_DIFFERENTIAL_CASES: u32 = 48;

/// A namespace no other call returns, in this process or any other: `contract`, a random part
/// and a counter. Keys left on a long-lived server by an earlier run are never met again.
pub fn namespace(contract: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one((std::process::id(), SystemTime::now(), n));
    format!("conformance-{contract}-{random:016x}-{n}")
}

/// Generates one named `#[tokio::test]` (multi-threaded runtime, 4 workers) per contract of
/// [`testkit::conformance`](crate::testkit::conformance), each running against a fresh store
/// from `$new_store` in a namespace of its own.
///
/// `$new_store` names an `async fn() -> impl Store + 'static` in the invoking file, or one
/// returning `Option<impl Store + 'static>` whose `None` skips each contract with a message
/// (a server that is not available). The store
/// must take its time from [`EvalOptions::now`](crate::EvalOptions) (a Redis store configured
/// for injected time). The invoking crate needs `tokio` (features `macros`, `rt-multi-thread`)
/// and `limiter-core` with feature `testkit` among its dev-dependencies.
///
/// ```no_run
/// // limiter-<backend>/tests/conformance.rs
/// use limiter_core::testkit::ModelStore;
///
/// async fn new_store() -> impl limiter_core::Store + 'static {
///     ModelStore::new() // the backend's store, with injected time
/// }
///
/// limiter_core::conformance_suite!(new_store);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($new_store:path) => {
        $crate::__conformance_tests! {
            $new_store;
            gcra_allows_exactly_the_limit,
            sliding_window_allows_exactly_the_limit,
            sliding_log_allows_exactly_the_limit,
            calendar_allows_exactly_the_limit,
            denied_requests_charge_nothing,
            batch_is_all_or_nothing,
            shadow_checks_are_reported_not_enforced,
            peek_charges_nothing,
            reset_forgets_a_key,
            refund_gives_units_back,
            keys_are_isolated,
            cost_above_the_limit_is_impossible,
            gcra_retry_after_is_exact,
            sliding_window_retry_after_is_exact,
            sliding_log_retry_after_is_exact,
            calendar_retry_after_is_exact,
            gcra_burst_and_refill,
            sliding_window_rolls_over,
            sliding_log_entries_expire,
            calendar_resets_at_local_midnight_on_dst_days,
            empty_batch_is_allowed,
            concurrent_requests_admit_exactly_the_limit,
            differential_against_the_model,
        }
    };
}

/// Implementation detail of [`conformance_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($new_store:path; $($contract:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                let Some(store) =
                    $crate::testkit::conformance::MaybeStore::into_store($new_store().await)
                else {
                    ::std::eprintln!(
                        "SKIPPED {}: the constructor has no store to test (see the banner above)",
                        ::std::stringify!($contract)
                    );
                    return;
                };
                let namespace = $crate::testkit::conformance::namespace(stringify!($contract));
                $crate::testkit::conformance::$contract(&store, &namespace).await;
            }
        )*
    };
}

/// What a conformance constructor may return: a store, or `None` to skip the suite (a backend
/// whose server is not available; the backend prints why).
pub trait MaybeStore {
    /// The store to test, if any.
    fn into_store(self) -> Option<Arc<dyn Store>>;
}

impl<S: Store + 'static> MaybeStore for S {
    fn into_store(self) -> Option<Arc<dyn Store>> {
        Some(Arc::new(self))
    }
}

impl<S: Store + 'static> MaybeStore for Option<S> {
    fn into_store(self) -> Option<Arc<dyn Store>> {
        self.map(|s| Arc::new(s) as Arc<dyn Store>)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn rate(limit: u64, unit: Unit) -> Rate {
    Rate::per(limit, unit).expect("contract rates are valid")
}

fn gcra(limit: u64, unit: Unit) -> Limit {
    Limit::gcra(rate(limit, unit))
}

fn sliding_window(limit: u64, unit: Unit) -> Limit {
    Limit::sliding_window(rate(limit, unit))
}

fn sliding_log(limit: u64, unit: Unit) -> Limit {
    Limit::sliding_log(rate(limit, unit)).expect("contract sliding logs are small")
}

fn calendar(limit: u64, zone: &str) -> Limit {
    let calendar = Calendar::new(zone).expect("contract time zones exist");
    Limit::calendar(rate(limit, Unit::Day), calendar).expect("contract calendars are daily")
}

/// One limit of `limit` per minute (per day for the calendar) under each algorithm.
fn every_algorithm(limit: u64) -> [Limit; 4] {
    [
        gcra(limit, Unit::Minute),
        sliding_window(limit, Unit::Minute),
        sliding_log(limit, Unit::Minute),
        calendar(limit, "UTC"),
    ]
}

/// The period after which a limit of [`every_algorithm`] is whole again, at the latest.
fn span(limit: &Limit) -> Micros {
    limit.rate().period().micros()
}

/// Drives one store for one contract: every key it makes is in the contract's namespace.
struct Run<'a> {
    store: &'a dyn Store,
    namespace: &'a str,
}

impl Run<'_> {
    fn key(&self, name: &str) -> Key {
        Key::new(self.namespace, name, SubjectKind::User, "subject")
    }

    fn check(&self, name: &str, limit: &Limit, cost: u64) -> Check {
        Check::new(name, self.key(name), limit.clone(), cost)
    }

    async fn evaluate(&self, checks: &[Check], now: Micros) -> BatchOutcome {
        let batch = batch(checks);
        self.store
            .evaluate(&batch, &EvalOptions::at(now))
            .await
            .unwrap_or_else(|e| panic!("{}: evaluate failed: {e}\nbatch: {batch:?}", self.store))
    }

    async fn peek(&self, checks: &[Check], now: Micros) -> BatchOutcome {
        let batch = batch(checks);
        self.store
            .peek(&batch, &EvalOptions::at(now))
            .await
            .unwrap_or_else(|e| panic!("{}: peek failed: {e}\nbatch: {batch:?}", self.store))
    }

    async fn refund(&self, checks: &[Check], now: Micros) {
        let batch = batch(checks);
        self.store
            .refund(&batch, &EvalOptions::at(now))
            .await
            .unwrap_or_else(|e| panic!("{}: refund failed: {e}\nbatch: {batch:?}", self.store));
    }

    async fn reset(&self, key: &Key) {
        self.store
            .reset(key)
            .await
            .unwrap_or_else(|e| panic!("{}: reset of {key} failed: {e}", self.store));
    }

    /// Evaluates `check` alone at `now`.
    async fn one(&self, check: &Check, now: Micros) -> LimitStatus {
        let outcome = self.evaluate(std::slice::from_ref(check), now).await;
        assert_eq!(
            outcome.statuses.len(),
            1,
            "{}: one status per check expected, got {outcome:?}",
            self.store
        );
        assert_eq!(
            outcome.allowed,
            outcome.statuses[0].is_allowed() || check.shadow,
            "{}: the batch's verdict must follow its only enforced check: {outcome:?}",
            self.store
        );
        outcome.statuses[0]
    }

    /// Peeks at `check` alone at `now`.
    async fn peek_one(&self, check: &Check, now: Micros) -> LimitStatus {
        let outcome = self.peek(std::slice::from_ref(check), now).await;
        assert_eq!(outcome.statuses.len(), 1, "{}: {outcome:?}", self.store);
        outcome.statuses[0]
    }

    /// Evaluates `check` at `now` until it is denied (at most `max` times); returns how many
    /// were admitted and the first denial.
    async fn admit_all(&self, check: &Check, now: Micros, max: u64) -> (u64, LimitStatus) {
        for admitted in 0..=max {
            let status = self.one(check, now).await;
            if !status.is_allowed() {
                return (admitted, status);
            }
        }
        panic!(
            "{}: {} admitted more than {max} requests of cost {} at one instant",
            self.store, check.limit, check.cost
        );
    }

    /// Asserts that `check` admits exactly `expected` requests at `now`, then denies.
    async fn admits_exactly(&self, check: &Check, now: Micros, expected: u64, context: &str) {
        let (admitted, denied) = self.admit_all(check, now, expected + 1).await;
        assert_eq!(
            admitted, expected,
            "{}: {} ({context}) admitted {admitted} requests of cost {}, expected exactly \
             {expected}; then {denied:?}",
            self.store, check.limit, check.cost
        );
        assert_eq!(
            denied.outcome,
            Outcome::Denied,
            "{}: {context}: {denied:?}",
            self.store
        );
    }
}

fn batch(checks: &[Check]) -> Batch {
    Batch::new(checks.to_vec()).expect("contract batches have distinct keys")
}

// ---------------------------------------------------------------------------------------------
// Exact admission with frozen time

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
            status.outcome,
            Outcome::Denied,
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

/// A GCRA of 7/minute admits exactly 7 requests at one instant, and denies the 8th; requests of
/// cost 2 take two units each.
pub async fn gcra_allows_exactly_the_limit(store: &dyn Store, namespace: &str) {
    allows_exactly_the_limit(store, namespace, gcra(7, Unit::Minute)).await;
}

/// As [`gcra_allows_exactly_the_limit`], for a sliding window of 7/minute.
pub async fn sliding_window_allows_exactly_the_limit(store: &dyn Store, namespace: &str) {
    allows_exactly_the_limit(store, namespace, sliding_window(7, Unit::Minute)).await;
}

/// As [`gcra_allows_exactly_the_limit`], for a sliding log of 7/minute.
pub async fn sliding_log_allows_exactly_the_limit(store: &dyn Store, namespace: &str) {
    allows_exactly_the_limit(store, namespace, sliding_log(7, Unit::Minute)).await;
}

/// As [`gcra_allows_exactly_the_limit`], for a calendar window of 7/day in UTC.
pub async fn calendar_allows_exactly_the_limit(store: &dyn Store, namespace: &str) {
    allows_exactly_the_limit(store, namespace, calendar(7, "UTC")).await;
}

// ---------------------------------------------------------------------------------------------
// Denials, batches, shadow, peek

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
                Outcome::Denied
            } else {
                Outcome::Allowed
            };
            assert_eq!(
                status.outcome, expected,
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
        outcome.statuses[1].outcome,
        Outcome::Impossible,
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
            outcome.statuses[0].outcome,
            Outcome::Denied,
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
        outcome.statuses[1].outcome,
        Outcome::Impossible,
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
            peeked.outcome,
            Outcome::Denied,
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

// ---------------------------------------------------------------------------------------------
// Reset, refund, isolation, impossible costs

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

/// A cost above the limit can never fit: `Outcome::Impossible`, no retry time, nothing charged.
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
                status.outcome,
                Outcome::Impossible,
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

// ---------------------------------------------------------------------------------------------
// Retry-after

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
            denied.outcome,
            Outcome::Denied,
            "{store}: {limit}: {denied:?}"
        );
        let r = denied.retry_after;
        assert!(r >= 1, "{store}: {limit}: {denied:?}");
        let before = run.peek_one(&check, now + r - 1).await;
        assert_eq!(
            before.outcome,
            Outcome::Denied,
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

/// Retry-after is exact for a GCRA of 5/minute.
pub async fn gcra_retry_after_is_exact(store: &dyn Store, namespace: &str) {
    retry_after_is_exact(store, namespace, gcra(5, Unit::Minute)).await;
}

/// Retry-after is exact for a sliding window of 5/minute.
pub async fn sliding_window_retry_after_is_exact(store: &dyn Store, namespace: &str) {
    retry_after_is_exact(store, namespace, sliding_window(5, Unit::Minute)).await;
}

/// Retry-after is exact for a sliding log of 5/minute.
pub async fn sliding_log_retry_after_is_exact(store: &dyn Store, namespace: &str) {
    retry_after_is_exact(store, namespace, sliding_log(5, Unit::Minute)).await;
}

/// Retry-after is exact for a calendar window of 5/day in `Europe/Paris`.
pub async fn calendar_retry_after_is_exact(store: &dyn Store, namespace: &str) {
    retry_after_is_exact(store, namespace, calendar(5, "Europe/Paris")).await;
}

// ---------------------------------------------------------------------------------------------
// The algorithms' documented numbers

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
        run.peek_one(&check, t0 + 6 * SECOND - 1).await.outcome,
        Outcome::Denied
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
    assert_eq!(denied.outcome, Outcome::Denied, "{store}: {denied:?}");
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
    run.refund(&[], BASE_NOW).await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency

const TASKS: u64 = 64;
const REQUESTS_PER_TASK: u64 = 4;

/// 64 tasks send 4 requests each at one frozen instant to one key limited to 50: exactly 50
/// are admitted, under each algorithm. Then the same with a batch of that shared key and a key
/// of the task's own: the shared limit admits exactly 50 and the tasks' keys are charged only
/// for admitted batches.
pub async fn concurrent_requests_admit_exactly_the_limit(store: &Arc<dyn Store>, namespace: &str) {
    let run = Run {
        store: &**store,
        namespace,
    };
    let now = BASE_NOW + 23 * HOUR;
    for (i, limit) in every_algorithm(50).into_iter().enumerate() {
        let check = run.check(&format!("hammered{i}"), &limit, 1);
        let admitted = hammer(store, now, |_| vec![check.clone()]).await;
        assert_eq!(
            admitted, 50,
            "{store}: {limit}: {TASKS}x{REQUESTS_PER_TASK} concurrent requests"
        );
        let own_limit = sliding_window(1_000, Unit::Minute);
        let shared = run.check(&format!("shared{i}"), &limit, 1);
        let own = |task: u64| run.check(&format!("own{i}-{task}"), &own_limit, 1);
        let admitted = hammer(store, now, |task| vec![own(task), shared.clone()]).await;
        assert_eq!(admitted, 50, "{store}: {limit}: concurrent batches");
        let mut charged = 0;
        for task in 0..TASKS {
            // A peek reports what would remain after one more unit.
            charged += 999 - run.peek_one(&own(task), now).await.remaining;
        }
        assert_eq!(
            charged, 50,
            "{store}: {limit}: tasks' own keys charged by denied batches"
        );
    }
}

/// Runs `TASKS` tasks, each evaluating its batch `REQUESTS_PER_TASK` times at `now`; returns
/// how many evaluations were admitted.
async fn hammer(store: &Arc<dyn Store>, now: Micros, batch_of: impl Fn(u64) -> Vec<Check>) -> u64 {
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(store);
        let batch = batch(&batch_of(task));
        tasks.spawn(async move {
            let mut admitted = 0;
            for _ in 0..REQUESTS_PER_TASK {
                let outcome = store
                    .evaluate(&batch, &EvalOptions::at(now))
                    .await
                    .unwrap_or_else(|e| panic!("{store}: evaluate failed under concurrency: {e}"));
                admitted += u64::from(outcome.allowed);
            }
            admitted
        });
    }
    let mut admitted = 0;
    while let Some(result) = tasks.join_next().await {
        admitted += result.unwrap_or_else(|e| panic!("a hammering task failed: {e}"));
    }
    admitted
}

// ---------------------------------------------------------------------------------------------
// Differential

/// The number of proptest cases: `LIMITER_PROPTEST_CASES`, or `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("LIMITER_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// On random traffic traces (see [`strategies::trace`]), the store answers every call exactly
/// as a fresh [`ModelStore`] does: the same verdict and the same status for every limit.
///
/// Each replay moves the trace to a namespace of its own, so that shrinking a failing trace
/// replays it on a clean slate. [`DEFAULT_DIFFERENTIAL_CASES`] traces, or
/// `LIMITER_PROPTEST_CASES`. Must run on a multi-threaded tokio runtime.
pub async fn differential_against_the_model(store: &dyn Store, namespace: &str) {
    let config = Config {
        cases: proptest_cases(DEFAULT_DIFFERENTIAL_CASES),
        failure_persistence: None,
        // Enough to reach a short trace; each iteration replays a trace on the store.
        max_shrink_iters: 1_024,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let replays = AtomicU64::new(0);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategies::trace(namespace), |trace| {
            let n = replays.fetch_add(1, Ordering::Relaxed);
            let trace = trace.in_namespace(&format!("{namespace}-{n}"));
            handle.block_on(replay(store, &trace))
        })
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, trace)) => {
            panic!("{store} differs from the model: {reason}\nminimal trace: {trace:#?}")
        }
        Err(e) => panic!("{store}: differential test aborted: {e}"),
    }
}

async fn replay(store: &dyn Store, trace: &Trace) -> Result<(), TestCaseError> {
    let model = ModelStore::new();
    for (step, (now, op)) in trace.timed_steps().enumerate() {
        let at = EvalOptions::at(now);
        let fail = |what: &str, got: &dyn std::fmt::Debug, expected: &dyn std::fmt::Debug| {
            TestCaseError::fail(format!(
                "step {step} ({what} at {now}): store answered {got:?}, model {expected:?}"
            ))
        };
        let error = |e: crate::Error| TestCaseError::fail(format!("step {step} at {now}: {e}"));
        match op {
            Op::Evaluate(batch) | Op::Peek(batch) => {
                let evaluate = matches!(op, Op::Evaluate(_));
                let (got, expected) = if evaluate {
                    (
                        store.evaluate(batch, &at).await,
                        model.evaluate(batch, &at).await,
                    )
                } else {
                    (store.peek(batch, &at).await, model.peek(batch, &at).await)
                };
                let got = got.map_err(error)?;
                let expected = expected.map_err(error)?;
                if got != expected {
                    let what = if evaluate { "evaluate" } else { "peek" };
                    return Err(fail(what, &got, &expected));
                }
            }
            Op::Refund(batch) => {
                store.refund(batch, &at).await.map_err(error)?;
                model.refund(batch, &at).await.map_err(error)?;
            }
            Op::Reset(key) => {
                store.reset(key).await.map_err(error)?;
                model.reset(key).await.map_err(error)?;
            }
        }
    }
    Ok(())
}
