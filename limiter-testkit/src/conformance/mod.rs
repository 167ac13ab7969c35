//! The contracts every [`Store`] must meet, one `async fn` each.
//!
//! A backend runs them all with [`conformance_suite!`](crate::conformance_suite), which expands
//! to one named test per contract. Each contract takes the store under test and a namespace
//! that no other test uses ([`namespace`]), and puts every key it touches in it, so that all
//! contracts can run in parallel against one shared server. Time is always injected through
//! [`EvalOptions::at`](limiter_core::EvalOptions::at); nothing sleeps.
//!
//! A contract panics, naming the store and what it got, when the store breaks it.

use std::any::Any;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use limiter_core::Store;

/// Defines one public contract per algorithm, each running `$scenario` on its limit.
macro_rules! per_algorithm {
    ($scenario:ident { $($(#[$doc:meta])* $name:ident => $limit:expr;)* }) => {
        $(
            $(#[$doc])*
            pub async fn $name(store: &dyn Store, namespace: &str) {
                $scenario(store, namespace, $limit).await;
            }
        )*
    };
}

mod admission;
mod batch;
mod concurrency;
mod differential;
pub mod events;
pub mod inbox;
pub mod keys;
mod lifecycle;
mod numbers;
pub mod outbox;
mod retry_after;
mod run;

pub use admission::*;
pub use batch::*;
pub use concurrency::*;
pub use differential::*;
pub use lifecycle::*;
pub use numbers::*;
pub use retry_after::*;

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
/// [`conformance`](crate::conformance), each running against a fresh store from `$new_store`
/// in a namespace of its own.
///
/// `$new_store` names an `async fn() -> impl Store + 'static` in the invoking file. With
/// `optional`, it returns `Option<impl Store + 'static>`, and `None` skips each contract with a
/// message (a server that is not available; the constructor prints why). With `guarded`, it
/// returns `(store, guard)`: the guard (a temporary directory, a server) is dropped only after
/// the contract has finished with the store. The store must take
/// its time from [`EvalOptions::now`](limiter_core::EvalOptions) (a Redis store configured for
/// injected time). The invoking crate needs `tokio` (features `macros`, `rt-multi-thread`) and
/// `limiter-testkit` among its dev-dependencies.
///
/// ```no_run
/// // limiter-<backend>/tests/conformance.rs
/// use limiter_testkit::ModelStore;
///
/// async fn new_store() -> impl limiter_core::Store + 'static {
///     ModelStore::new() // the backend's store, with injected time
/// }
///
/// limiter_testkit::conformance_suite!(new_store);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($new_store:path) => {
        $crate::conformance_suite!(@contracts $crate::conformance::present, $new_store);
    };
    (optional $new_store:path) => {
        $crate::conformance_suite!(@contracts $crate::conformance::optional, $new_store);
    };
    (guarded $new_store:path) => {
        $crate::conformance_suite!(@contracts $crate::conformance::guarded, $new_store);
    };
    (@contracts $wrap:path, $new_store:path) => {
        $crate::__conformance_tests! {
            $wrap, $new_store;
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
            gcra_refund_never_removes_another_requests_charge,
            sliding_window_refund_never_removes_another_requests_charge,
            sliding_log_refund_never_removes_another_requests_charge,
            calendar_refund_never_removes_another_requests_charge,
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
    ($wrap:path, $new_store:path; $($contract:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                let Some((store, _guard)) = $wrap($new_store().await) else {
                    ::std::eprintln!(
                        "SKIPPED {}: the constructor has no store to test (see the banner above)",
                        ::std::stringify!($contract)
                    );
                    return;
                };
                let namespace = $crate::conformance::namespace(stringify!($contract));
                $crate::conformance::$contract(&store, &namespace).await;
            }
        )*
    };
}

/// A store under test, and what must outlive it.
#[doc(hidden)]
pub type Fixture = (Arc<dyn Store>, Box<dyn Any + Send>);

/// The store a plain constructor made ([`conformance_suite!`]).
#[doc(hidden)]
pub fn present<S: Store + 'static>(store: S) -> Option<Fixture> {
    Some((Arc::new(store), Box::new(())))
}

/// The store an `optional` constructor made, if any ([`conformance_suite!`]).
#[doc(hidden)]
pub fn optional<S: Store + 'static>(store: Option<S>) -> Option<Fixture> {
    store.and_then(present)
}

/// The store and guard a `guarded` constructor made ([`conformance_suite!`]).
#[doc(hidden)]
pub fn guarded<S: Store + 'static, G: Send + 'static>((store, guard): (S, G)) -> Option<Fixture> {
    Some((Arc::new(store), Box::new(guard)))
}
