#![doc = include_str!("../README.md")]

mod inbox;
mod log;
mod render;
mod sink;
mod webhook;
mod worker;

pub use inbox::InboxSink;
pub use log::LogSink;
pub use render::{Rendered, Renderer};
pub use sink::{Delivery, Sink, SinkError};
pub use webhook::{
    DEFAULT_TIMEOUT, DEFAULT_TOLERANCE, ID_HEADER, SIGNATURE_HEADER, SignedHeaders,
    TIMESTAMP_HEADER, VerifyError, WebhookData, WebhookEvent, WebhookSecret, WebhookSink, sign,
    verify, verify_parts,
};
pub use worker::{Counts, Worker, WorkerBuilder, WorkerConfig};
