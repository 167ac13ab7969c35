//! Hook points: where events leave the engine (telemetry, hit records, notifications).

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

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
///
/// A hook that panics never breaks a decision: the panic is caught, the other hooks still run,
/// `check` returns its decision, and the panic is counted in [`Limiter::hook_panics`](crate::Limiter::hook_panics)
/// (the first one's message kept).
pub trait Hook: fmt::Debug + Send + Sync {
    /// Observes one event.
    fn on_event(&self, event: &Event<'_>);
}

/// A shared hook: the caller keeps a handle to read what it gathered.
impl<H: Hook + ?Sized> Hook for std::sync::Arc<H> {
    fn on_event(&self, event: &Event<'_>) {
        (**self).on_event(event);
    }
}

/// The panics of hooks a limiter caught: how many, and the first one's message.
#[derive(Debug, Default)]
pub struct HookPanics {
    count: AtomicU64,
    first: OnceLock<String>,
}

impl HookPanics {
    /// How many hook calls panicked.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The message of the first panic, kept once so that a hook that panics on every request
    /// costs one string, not one per request.
    pub fn first(&self) -> Option<&str> {
        self.first.get().map(String::as_str)
    }

    /// Runs `hook` on `event`, catching a panic so that it cannot unwind into the decision.
    pub(super) fn call(&self, hook: &dyn Hook, event: &Event<'_>) {
        // The hook sees the event by reference only and the engine reads nothing the hook may
        // have left half-written, so observing the state after a panic is sound.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| hook.on_event(event))) {
            self.count.fetch_add(1, Ordering::Relaxed);
            self.first.get_or_init(|| {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                format!("hook {hook:?} panicked: {message}")
            });
        }
    }
}
