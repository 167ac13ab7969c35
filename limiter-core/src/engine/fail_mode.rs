//! What the limiter does when its store fails.

use std::fmt;
use std::sync::Arc;

use crate::Store;

/// What to decide when the store cannot answer (it is down or slow).
///
/// A fail mode decides temporary failures; a permanent one is returned by `check` unless the
/// limiter was built with a [`permanent_fail_mode`](crate::LimiterBuilder::permanent_fail_mode).
///
/// Whichever mode decides, the [`Decision`](crate::Decision) records it in
/// [`failure`](crate::Decision::failure), and hooks see an [`Event::StoreFailed`](crate::Event).
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum FailMode {
    /// Allow the request without counting it. The API stays up while the store is down; limits
    /// are not enforced meanwhile. The default: a limiter should not take an API down with it.
    #[default]
    Open,
    /// Deny the request (with `Retry-After: 1`). Nothing gets through unmetered.
    Closed,
    /// Decide with another store, usually an in-process one: limits stay enforced per process
    /// while the shared store is down. If the fallback fails too, `check` returns the original
    /// error.
    Fallback(Arc<dyn Store>),
}

impl fmt::Debug for FailMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailMode::Open => f.write_str("Open"),
            FailMode::Closed => f.write_str("Closed"),
            FailMode::Fallback(store) => write!(f, "Fallback({store})"),
        }
    }
}
