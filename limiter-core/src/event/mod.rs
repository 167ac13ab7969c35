//! Events: a typed record of every hit (denials, shadow denials, bypasses, threshold
//! crossings, restores, store failures), the [`EventLog`] that persists and queries them, and
//! the [`EventRecorder`] that hands them from the request path to a log without blocking.
//!
//! The engine derives the events of a decision ([`LimitEvent`]); a limiter built with
//! [`LimiterBuilder::events`](crate::LimiterBuilder::events) pushes them into a bounded
//! buffer; an [`EventDrain`] (a future the service spawns on its runtime) appends them to the
//! log in batches. A limiter without a recorder derives nothing and allocates nothing.

mod derive;
mod log;
mod record;
mod recorder;

pub(crate) use derive::{bypass_label, crossing, derive_events, window};
pub use log::{
    EventCursor, EventLog, EventPage, EventQuery, Pruned, QuotaUsage, Retention, TenantCount,
    TenantHits,
};
pub use record::{EventKind, LimitEvent, client_network};
pub use recorder::{EventDrain, EventRecorder, Overflow, RecorderConfig, RecorderStats};
