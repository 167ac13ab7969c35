//! [`WebhookSink`]: POSTs each notice, signed, to one endpoint.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::time::MICROS_PER_SECOND;
use limiter_core::{Clock, Error, SystemClock};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::signature::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{WebhookEvent, WebhookSecret, sign};
use crate::{Delivery, Sink, SinkError};

/// How long a webhook request may take, from connecting to the answer's status: 15 seconds,
/// the low end of what Standard Webhooks recommends receivers be given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Where a URL's errors point.
const PATH: &str = "webhook.url";

/// Sends every notice to one endpoint as a Standard Webhooks request: a `POST` of the JSON
/// [`WebhookEvent`] with `webhook-id` (the notice's id, the same on every attempt),
/// `webhook-timestamp` (the attempt's time, in Unix seconds) and `webhook-signature`
/// ([`sign`]).
///
/// The answer decides the outcome: 2xx is done; 408, 429, 5xx, a timeout or a failed
/// connection are retried (after the endpoint's `Retry-After` in seconds, if longer than the
/// worker's backoff); any other status (a redirect, 400, 404, 410) is a permanent failure
/// that no retry changes. Redirects are not followed: a webhook's address is updated where it
/// is configured, and a redirect would carry the signed body somewhere else.
///
/// `https://` and `http://` addresses both work (TLS by rustls with the Mozilla roots).
/// `Display` and `Debug` show only the scheme, host and port: paths and queries often hold
/// tokens (`/services/T0/B0/XXXX`).
///
/// ```
/// use std::time::Duration;
/// use limiter_notify::{WebhookSecret, WebhookSink};
///
/// let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// let sink = WebhookSink::new("https://hooks.example.com/limits?token=abc", secret)?
///     .with_timeout(Duration::from_secs(20));
/// assert_eq!(sink.to_string(), "WebhookSink(https://hooks.example.com)");
///
/// let err = WebhookSink::new("ftp://files.example.com/x", WebhookSecret::generate()?).unwrap_err();
/// assert!(err.to_string().contains("scheme \"ftp\" is not supported; expected http or https"));
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Clone)]
pub struct WebhookSink {
    url: Url,
    /// The scheme, host and port: what is shown of the address.
    origin: String,
    secret: WebhookSecret,
    client: reqwest::Client,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl WebhookSink {
    /// A sink POSTing to `url` (http or https), signing with `secret`, with a request timeout
    /// of [`DEFAULT_TIMEOUT`]. An error (naming `webhook.url`) if the address is not an
    /// absolute http or https URL, or if the HTTP client cannot start.
    pub fn new(url: &str, secret: WebhookSecret) -> Result<WebhookSink, Error> {
        let invalid = |message: String| Error::InvalidConfig {
            path: PATH.to_owned(),
            message,
        };
        // The parser's error never repeats the input, which may hold a token.
        let url = Url::parse(url.trim()).map_err(|e| {
            invalid(format!(
                "not an absolute URL ({e}); expected http:// or https:// followed by a host"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "scheme {:?} is not supported; expected http or https",
                url.scheme()
            )));
        }
        if url.host().is_none() {
            return Err(invalid(
                "the URL has no host; expected http:// or https:// followed by a host".to_owned(),
            ));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("limiter-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("the HTTP client could not start: {}", chain(&e))))?;
        Ok(WebhookSink {
            origin: url.origin().ascii_serialization(),
            url,
            secret,
            client,
            timeout: DEFAULT_TIMEOUT,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same sink with requests given up after `timeout` (connecting, sending and reading
    /// the status), a retryable failure.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> WebhookSink {
        self.timeout = timeout;
        self
    }

    /// The same sink reading the time of `webhook-timestamp` from `clock` (the system clock by
    /// default).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> WebhookSink {
        self.clock = Arc::new(clock);
        self
    }

    /// The outcome of an answer with `status`.
    fn outcome(
        &self,
        status: StatusCode,
        retry_after: Option<&HeaderValue>,
    ) -> Result<(), SinkError> {
        if status.is_success() {
            return Ok(());
        }
        // The worker names the sink (and so the origin) before the message.
        let message = format!("answered {status}");
        let retryable = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        if !retryable {
            return Err(SinkError::permanent(message));
        }
        let error = SinkError::retryable(message);
        // Only the delay-seconds form: an HTTP date would need the receiver's clock to agree.
        match retry_after
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(secs) => Err(error.with_retry_after(Duration::from_secs(secs))),
            None => Err(error),
        }
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
        let body = WebhookEvent::of(delivery).to_body();
        let timestamp = self.clock.now() / MICROS_PER_SECOND;
        let signature = sign(&self.secret, &delivery.id, timestamp, &body);
        let sent = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(ID_HEADER, &delivery.id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => self.outcome(response.status(), response.headers().get(RETRY_AFTER)),
            Err(e) if e.is_timeout() => Err(SinkError::retryable(format!(
                "no answer within {:?}",
                self.timeout
            ))),
            Err(e) if e.is_builder() => Err(SinkError::permanent(format!(
                "the request could not be built: {}",
                chain(&e)
            ))),
            Err(e) => Err(SinkError::retryable(chain(&e))),
        }
    }
}

/// What failed, then the error's sources, `: ` separated. Not the error's own `Display`,
/// which adds the URL (and the tokens it may hold).
fn chain(error: &reqwest::Error) -> String {
    let what = if error.is_connect() {
        "could not connect"
    } else if error.is_body() {
        "the request body failed"
    } else if error.is_request() {
        "the request failed"
    } else {
        "the HTTP client failed"
    };
    let mut out = what.to_owned();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("origin", &self.origin)
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSink({})", self.origin)
    }
}
