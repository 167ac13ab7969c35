//! The answer to one request: allowed or not, why, and what to tell the client.

mod headers;
mod verdict;

pub use headers::HeaderStyle;
pub use verdict::{Decision, FailModeUsed, PolicyStatus, StoreFailure};
