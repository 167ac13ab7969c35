//! The limiter in front of axum, tonic and hyper services: a [`tower_layer::Layer`] that
//! decides every request with a shared [`limiter_core::Limiter`] over any store, answers
//! refusals with honest headers and RFC 9457 bodies, and a [`RecorderLayer`] that writes the
//! JSON Lines request log.
//!
//! - [`LimiterLayer`]: the layer, `Clone`, holding only an `Arc`; no lock is held across an
//!   await, and a request that cannot be read (no peer address, a header that is not text)
//!   is decided with what is known, never answered 500.
//! - [`Identify`]: how an HTTP request becomes a [`limiter_core::Request`].
//! - [`KeySource`]: where API keys are read, verified with the limiter's key store.
//! - Client IP through [`limiter_core::TrustedProxies`].

mod identify;
mod layer;
mod problem;
mod recorder;
mod service;

pub use identify::{FromExtensions, Identify, KeySource, peer_addr, route};
pub use layer::LimiterLayer;
pub use limiter_core::{ForwardedHeader, TrustedProxies};
pub use recorder::{Recorder, RecorderLayer, RecorderService, record_of};
pub use service::{Decided, LimiterService, ResponseBody};
