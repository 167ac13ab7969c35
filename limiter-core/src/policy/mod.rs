//! Policies: configuration, bypass rules, and resolution of a request into the limits to check.

mod resolve;

pub use resolve::{BypassReason, PolicySet, Resolution};
