//! The engine: policies + store + clock + fail mode + timeout + hooks.

mod builder;
mod fail_mode;
mod hook;
mod limiter;
mod telemetry;
mod verify;

pub use builder::LimiterBuilder;
pub use fail_mode::FailMode;
pub use hook::{Event, Hook, HookPanics, Threshold};
pub use limiter::Limiter;
pub use verify::Verification;
