//! Signed webhooks after the Standard Webhooks scheme: the [`WebhookSink`] that sends them, the
//! [`WebhookSecret`] that signs them, the [`WebhookEvent`] body, and [`verify`] for receivers.

mod payload;
mod secret;
mod signature;
mod sink;

pub use payload::{WebhookData, WebhookEvent};
pub use secret::WebhookSecret;
pub use signature::{
    DEFAULT_TOLERANCE, ID_HEADER, SIGNATURE_HEADER, SignedHeaders, TIMESTAMP_HEADER, VerifyError,
    sign, verify, verify_parts,
};
pub use sink::{DEFAULT_TIMEOUT, WebhookSink};
