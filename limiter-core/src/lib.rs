#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod algorithm;
pub mod batch;
pub mod decision;
mod error;
mod key;
mod limiter;
pub mod policy;
mod rate;
mod request;
mod store;
pub mod time;

pub use algorithm::{Algorithm, Calendar, Limit, LimitStatus, Outcome, State};
pub use batch::{Batch, BatchOutcome, Check, Mode};
pub use decision::{Decision, FailModeUsed, HeaderStyle, PolicyStatus, StoreFailure};
pub use error::{BoxError, Error, ErrorKind};
pub use key::{Key, SubjectKind};
pub use limiter::{Event, FailMode, Hook, Limiter, LimiterBuilder, Threshold};
pub use policy::{BypassReason, Config, PolicySet, Resolution};
pub use rate::{MAX_LIMIT, MAX_PERIOD_MICROS, Period, Rate, Unit};
pub use request::{ApiKey, Request};
pub use store::{EvalOptions, Store};
pub use time::{Clock, ManualClock, Micros, SystemClock};
