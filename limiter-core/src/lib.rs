#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod algorithm;
pub mod api_key;
pub mod batch;
pub mod client_ip;
pub mod decision;
mod engine;
mod error;
pub mod event;
mod inline;
mod key;
pub mod notify;
pub mod policy;
mod rate;
mod request;
pub mod request_log;
mod store;
pub mod time;

pub use algorithm::{Algorithm, Calendar, Limit, LimitStatus, State, Verdict};
pub use batch::{Batch, BatchOutcome, Check, Mode};
pub use client_ip::{ForwardedHeader, TrustedProxies};
pub use decision::{Decision, FailModeUsed, HeaderStyle, PolicyStatus, StoreFailure};
pub use engine::{
    Event, FailMode, Hook, HookPanics, Limiter, LimiterBuilder, Threshold, Verification,
};
pub use error::{BoxError, Error, ErrorKind};
pub use key::{INLINE_KEY_LEN, Key, MAX_SUBJECT_LEN, SubjectKind};
pub use policy::{BypassReason, Config, PolicySet, Resolution};
pub use rate::{MAX_LIMIT, MAX_PERIOD_MICROS, Period, Rate, Unit};
pub use request::{ApiKey, Request};
pub use store::{EvalOptions, Store, StoreExt};
pub use time::{Clock, ManualClock, Micros, SystemClock};
