//! The pure rate-limiting algorithms: `(prior state, now, cost, params) -> (status, new state)`.
//!
//! Each algorithm works on small integer state in microseconds, with saturating integer
//! arithmetic whose every intermediate value stays below 2^53 (see [`MAX_TIMESTAMP`]), so that
//! the Redis Lua twin, which computes in doubles, reaches exactly the same results.
//!
//! Evaluation is split in two steps, so that a batch can be all or nothing without copying
//! state: [`Limit::check`] computes what a request would get, and [`Limit::apply`] commits it.
//! A denied request changes no state.
//!
//! [`MAX_TIMESTAMP`]: crate::time::MAX_TIMESTAMP

mod calendar;
mod gcra;
mod limit;
mod sliding_log;
mod sliding_window;
mod state;
mod status;

pub use calendar::Calendar;
pub use limit::{Algorithm, Limit, SLIDING_LOG_MAX_LIMIT};
pub use sliding_window::WEIGHT_STEPS;
pub use state::State;
pub use status::{LimitStatus, Verdict};
