//! [`Sink`]: where a notice goes (a webhook, an inbox, a log, your own), the [`Delivery`] it is
//! handed, and the [`SinkError`] that tells the worker whether to try again.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::Micros;
use limiter_core::notify::{Notice, NotifyKind};

use crate::render::Rendered;

/// One notice on its way to the sinks: the notice, its stable id, its texts and which attempt
/// this is.
///
/// ```
/// use limiter_core::notify::{NotificationId, Notice, NotifyKind};
/// use limiter_notify::{Delivery, Rendered};
///
/// let id = NotificationId::new("t=acme", "plan_daily", NotifyKind::Restored, None, 0, 5000);
/// let rendered = Rendered::new("Your API access has been restored", None);
/// let delivery = Delivery::new(Notice::new(id, 0), rendered);
/// assert!(delivery.id.starts_with("ntf_"));
/// assert_eq!(delivery.attempt, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The notice, as the outbox keeps it.
    pub notice: Notice,
    /// Its stable id ([`Notice::id`]): the same on every attempt and in every process, so a
    /// receiver can drop a repeat (`webhook-id`, the inbox item's id).
    pub id: String,
    /// The text of its kind ([`Rendered::message`]).
    pub message: String,
    /// The upgrade hint, for approaching and exhausted notices of a plan limit with a next plan.
    pub upgrade: Option<String>,
    /// Which attempt this is: 1 for the first.
    pub attempt: u32,
}

impl Delivery {
    /// The first attempt at `notice` with its texts.
    pub fn new(notice: Notice, rendered: Rendered) -> Delivery {
        Delivery {
            id: notice.id(),
            notice,
            message: rendered.message,
            upgrade: rendered.upgrade,
            attempt: 1,
        }
    }

    /// The same delivery as attempt `attempt`.
    #[must_use]
    pub fn with_attempt(mut self, attempt: u32) -> Delivery {
        self.attempt = attempt;
        self
    }

    /// What the notice says.
    pub fn kind(&self) -> NotifyKind {
        self.notice.kind()
    }

    /// When what it tells of happened: the crossing for "approaching" and "exhausted"; the
    /// due time for "resets soon" and "restored", which tell of a time after the crossing.
    pub fn happened_at(&self) -> Micros {
        match self.notice.kind() {
            NotifyKind::ResetsSoon | NotifyKind::Restored => self.notice.due,
            _ => self.notice.at,
        }
    }
}

/// A destination for notices.
///
/// Delivery is at least once: the worker hands a notice to every sink, and hands it again
/// (with the same [`Delivery::id`]) when any sink asked for a retry, when the worker stopped
/// before settling it, or when its lease ran out. An implementation must therefore treat a
/// second delivery of an id as done (the inbox keeps one item per id; a webhook receiver
/// drops a `webhook-id` it has seen).
///
/// `deliver` returns `Ok` once the notice is safely taken, a [`SinkError::retryable`] when a
/// later attempt may succeed (a timeout, a 503), and a [`SinkError::permanent`] when no retry
/// can change the answer (a 404, a malformed address). It should bound its own time (the
/// webhook sink has a request timeout); the worker also gives up on a delivery after its
/// [`delivery_timeout`](crate::WorkerConfig::with_delivery_timeout). A panic is caught and
/// counted as a retryable failure, never taken down with the worker.
///
/// `Display` names the sink in logs and in the outbox's settlement errors, without secrets:
/// `WebhookSink(https://hooks.example.com)`.
///
/// ```
/// use async_trait::async_trait;
/// use limiter_notify::{Delivery, Sink, SinkError};
///
/// /// Posts each notice's text to a chat channel (here: prints it).
/// #[derive(Debug)]
/// struct Chat;
///
/// impl std::fmt::Display for Chat {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("Chat")
///     }
/// }
///
/// #[async_trait]
/// impl Sink for Chat {
///     async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
///         println!("[{}] {}", delivery.id, delivery.message);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Sink: fmt::Debug + fmt::Display + Send + Sync {
    /// Hands `delivery` to the destination; see the trait's docs for the contract.
    async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError>;
}

/// Why a sink did not take a notice, and whether trying again may help.
///
/// Its message is the sink's own words, never a secret (no signing key, no URL query or
/// credentials): it is stored in the outbox and logged.
///
/// ```
/// use std::time::Duration;
/// use limiter_notify::SinkError;
///
/// let busy = SinkError::retryable("receiver answered 503").with_retry_after(Duration::from_secs(30));
/// assert!(busy.is_retryable());
/// assert_eq!(busy.retry_after(), Some(Duration::from_secs(30)));
/// assert_eq!(busy.to_string(), "receiver answered 503 (retryable)");
///
/// let gone = SinkError::permanent("receiver answered 410");
/// assert!(!gone.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({})", if *.retryable { "retryable" } else { "permanent" })]
pub struct SinkError {
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl SinkError {
    /// A failure that a later attempt may not meet: a timeout, a refused connection, a 5xx.
    pub fn retryable(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure that every attempt would meet: retrying cannot change the answer.
    pub fn permanent(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// The same error with the destination's own wait (a `Retry-After`): the worker waits at
    /// least this long, up to its backoff cap, before the next attempt.
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> SinkError {
        self.retry_after = Some(wait);
        self
    }

    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// How long the destination asked to be left alone, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// What went wrong, in the sink's words.
    pub fn message(&self) -> &str {
        &self.message
    }
}
