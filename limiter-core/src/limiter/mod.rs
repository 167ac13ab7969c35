//! The engine: policies + store + clock + fail mode + timeout + hooks.

mod builder;
mod engine;
mod fail_mode;
mod hook;

pub use builder::LimiterBuilder;
pub use engine::Limiter;
pub use fail_mode::FailMode;
pub use hook::{Event, Hook, Threshold};
