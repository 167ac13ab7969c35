//! Proptest strategies: rates, limits, batches, traffic traces and requests.
//!
//! Two families: the whole accepted domain ([`rate`], [`limit`], [`instant`]) for properties
//! that must hold everywhere, and small interacting values ([`batch`], [`trace`]) for
//! differential tests, where limits must actually be reached and windows must actually roll
//! over for a trace to say anything.
//!
//! ```
//! use limiter_testkit::strategies;
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::deterministic();
//! let rate = strategies::rate().new_tree(&mut runner).unwrap().current();
//! assert_eq!(rate.to_string().parse::<limiter_core::Rate>().unwrap(), rate);
//! ```

mod batch;
mod config;
mod rate;
mod request;
mod trace;

pub use batch::*;
pub use config::*;
pub use rate::*;
pub use request::*;
pub use trace::*;

/// Time zones that calendar windows are generated in: UTC, zones with DST on either hemisphere,
/// Lord Howe (a 30-minute DST shift), Santiago (skips midnight) and Kolkata (a half-hour
/// offset).
pub const TIME_ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
];

/// The plans of the default policies.
pub const PLANS: &[&str] = &["free", "starter", "professional", "enterprise"];

/// The roles of the default policies.
pub const ROLES: &[&str] = &[
    "owner",
    "admin",
    "supervisor",
    "hr",
    "marketer",
    "employee",
    "member",
];

/// The scopes of the default policies.
pub const SCOPES: &[&str] = &[
    "anon",
    "user",
    "auth",
    "token",
    "password",
    "registration",
    "file_upload",
    "export",
];
