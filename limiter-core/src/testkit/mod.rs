//! Test kit (feature `testkit`): proptest strategies, the reference model store and the
//! conformance suite that every backend runs.
//!
//! - [`ModelStore`] is the reference: a plain map of states behind one mutex, deciding through
//!   [`batch::evaluate`](crate::batch::evaluate). Every backend must decide exactly as it does.
//! - [`CountingStore`] wraps any store and counts the calls made to it.
//! - [`conformance`] holds the contracts of the [`Store`](crate::Store) trait, one `async fn`
//!   each; [`conformance_suite!`](crate::conformance_suite) turns them into one named test per
//!   contract in a backend's test file.
//! - [`strategies`] generates rates, limits, batches, traffic traces and requests for proptest.
//!
//! ```
//! use limiter_core::batch::Batch;
//! use limiter_core::testkit::ModelStore;
//! use limiter_core::{Check, EvalOptions, Key, Limit, Store, SubjectKind};
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let store = ModelStore::new();
//! let key = Key::new("docs", "burst", SubjectKind::User, "u-1");
//! let batch = Batch::new(vec![Check::new("burst", key, Limit::gcra("2/minute".parse()?), 1)])?;
//! let at = EvalOptions::at(1_795_651_200_000_000);
//! assert!(store.evaluate(&batch, &at).await?.allowed);
//! assert!(store.evaluate(&batch, &at).await?.allowed);
//! assert!(!store.evaluate(&batch, &at).await?.allowed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod conformance;
mod counting;
mod model;
pub mod strategies;

pub use counting::CountingStore;
pub use model::ModelStore;
