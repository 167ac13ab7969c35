//! Hook points: where events leave the engine (telemetry, hit records, notifications).

use std::fmt;

use crate::decision::{Decision, FailModeUsed, PolicyStatus};
use crate::{Error, Request};

/// A threshold a limit's usage crossed with this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Threshold {
    /// Usage reached the approaching threshold (80% by default) of the limit.
    Approaching {
        /// The threshold, in percent of the limit.
        percent: u8,
    },
    /// The request used the last unit: the next one will be denied.
    Exhausted,
}

/// Something the engine observed about one request.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A decision was made (every request, bypassed ones included).
    Decided {
        /// The request.
        request: &'a Request,
        /// The decision.
        decision: &'a Decision,
    },
    /// An enforced limit denied the request (one event per denying limit).
    Denied {
        /// The request.
        request: &'a Request,
        /// The denying limit.
        status: &'a PolicyStatus,
    },
    /// An admitted request made a limit's usage cross a threshold.
    ThresholdCrossed {
        /// The request.
        request: &'a Request,
        /// The limit.
        status: &'a PolicyStatus,
        /// The threshold crossed.
        threshold: Threshold,
    },
    /// The store failed and a fail mode decided.
    StoreFailed {
        /// The request.
        request: &'a Request,
        /// The store's error.
        error: &'a Error,
        /// The fail mode that decided.
        mode: FailModeUsed,
    },
}

/// Receives the engine's [`Event`]s.
///
/// Called synchronously on the request path, after the decision is made and before `check`
/// returns: an implementation must be quick and must not block; hand slow work (a database
/// insert, a notification) to a queue or a spawned task.
pub trait Hook: fmt::Debug + Send + Sync {
    /// Observes one event.
    fn on_event(&self, event: &Event<'_>);
}
