//! Signing and verifying: `v1,` and the base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;
use http::HeaderMap;
use limiter_core::Micros;
use limiter_core::time::MICROS_PER_SECOND;

use super::WebhookSecret;

/// The header that carries the notice's id, the same on every attempt.
pub const ID_HEADER: &str = "webhook-id";
/// The header that carries the attempt's time, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header that carries the signatures, space separated.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// How far a webhook's timestamp may be from the receiver's clock: 5 minutes, either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The longest header value an error repeats: they come from whoever sent the request.
const SHOWN: usize = 40;

/// The `webhook-signature` of `body` sent as `id` at `timestamp` (Unix seconds): `v1,` and the
/// base64 of HMAC-SHA256, keyed with the secret, over `{id}.{timestamp}.{body}`.
///
/// ```
/// use limiter_notify::{WebhookSecret, sign};
///
/// // The Standard Webhooks test vector.
/// let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
/// assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
/// # Ok::<(), limiter_core::Error>(())
/// ```
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: u64, body: &[u8]) -> String {
    let tag = keyed(secret, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The MAC fed with the signed content, ready to finish or to compare.
fn keyed(
    secret: &WebhookSecret,
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = secret.mac();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The three Standard Webhooks headers of a request, as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedHeaders<'a> {
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp`.
    pub timestamp: &'a str,
    /// `webhook-signature`: one or more `version,base64` entries, space separated.
    pub signature: &'a str,
}

impl<'a> SignedHeaders<'a> {
    /// The three headers of `headers`; an error names the one missing or not text.
    pub fn from_headers(headers: &'a HeaderMap) -> Result<SignedHeaders<'a>, VerifyError> {
        let get = |name: &'static str| {
            headers
                .get(name)
                .ok_or(VerifyError::MissingHeader(name))?
                .to_str()
                .map_err(|_| VerifyError::HeaderNotText(name))
        };
        Ok(SignedHeaders {
            id: get(ID_HEADER)?,
            timestamp: get(TIMESTAMP_HEADER)?,
            signature: get(SIGNATURE_HEADER)?,
        })
    }
}

/// Why a received webhook is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A Standard Webhooks header is missing.
    #[error(
        "the request has no {0} header; expected webhook-id, webhook-timestamp and webhook-signature"
    )]
    MissingHeader(&'static str),
    /// A header holds bytes that are not visible ASCII.
    #[error("the {0} header is not text")]
    HeaderNotText(&'static str),
    /// `webhook-timestamp` is not a number of seconds.
    #[error("webhook-timestamp {0:?} is not a time; expected Unix seconds such as 1674087231")]
    InvalidTimestamp(String),
    /// `webhook-timestamp` is too far from the receiver's clock: an old request replayed, or
    /// a clock far off.
    #[error(
        "webhook-timestamp {timestamp} is {}s from now ({now}); expected within {}s",
        timestamp.abs_diff(*now),
        tolerance.as_secs()
    )]
    OutsideTolerance {
        /// The request's time, in Unix seconds.
        timestamp: u64,
        /// The receiver's time, in Unix seconds.
        now: u64,
        /// The tolerance it was held to.
        tolerance: Duration,
    },
    /// No `v1` signature of `webhook-signature` is the one of this body under this secret.
    #[error(
        "no v1 signature in webhook-signature matches the body signed with this secret \
         ({count} signature(s) given)"
    )]
    NoMatchingSignature {
        /// How many entries the header held.
        count: usize,
    },
}

/// Checks a received webhook: its headers (from [`http::HeaderMap`], as axum and hyper give
/// them), its raw body as received (never a re-serialized one), the receiver's time `now`
/// (microseconds since the epoch, a [`limiter_core::Clock`]'s reading) and how far the
/// timestamp may be from it ([`DEFAULT_TOLERANCE`]: 5 minutes).
///
/// Accepts the request when its timestamp is within the tolerance and one of the `v1`
/// signatures of `webhook-signature` (space separated, so that a sender can sign with an old
/// and a new secret while it rotates) is the one of the body under `secret`, compared in
/// constant time. Drop repeats by `webhook-id` after this: a notice can arrive twice.
///
/// ```
/// use http::HeaderMap;
/// use limiter_notify::{DEFAULT_TOLERANCE, VerifyError, WebhookSecret, sign, verify};
///
/// let secret = WebhookSecret::generate()?;
/// let (id, sent, body) = ("ntf_0123", 1_800_000_000, br#"{"type":"limit.exhausted"}"#);
/// let mut headers = HeaderMap::new();
/// headers.insert("webhook-id", id.parse()?);
/// headers.insert("webhook-timestamp", sent.to_string().parse()?);
/// headers.insert("webhook-signature", sign(&secret, id, sent, body).parse()?);
///
/// let now = (sent + 30) * 1_000_000;
/// assert_eq!(verify(&secret, &headers, body, now, DEFAULT_TOLERANCE), Ok(()));
/// assert!(matches!(
///     verify(&secret, &headers, br#"{"type":"limit.restored"}"#, now, DEFAULT_TOLERANCE),
///     Err(VerifyError::NoMatchingSignature { .. })
/// ));
/// let an_hour_later = now + 3600 * 1_000_000;
/// assert!(matches!(
///     verify(&secret, &headers, body, an_hour_later, DEFAULT_TOLERANCE),
///     Err(VerifyError::OutsideTolerance { .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(
    secret: &WebhookSecret,
    headers: &HeaderMap,
    body: &[u8],
    now: Micros,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    verify_parts(
        secret,
        &SignedHeaders::from_headers(headers)?,
        body,
        now,
        tolerance,
    )
}

/// [`verify`] for headers read by other means than [`http::HeaderMap`].
pub fn verify_parts(
    secret: &WebhookSecret,
    headers: &SignedHeaders<'_>,
    body: &[u8],
    now: Micros,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let timestamp: u64 = headers
        .timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp(shown(headers.timestamp)))?;
    let now_secs = now / MICROS_PER_SECOND;
    if timestamp.abs_diff(now_secs) > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance {
            timestamp,
            now: now_secs,
            tolerance,
        });
    }
    let expected = keyed(secret, headers.id, timestamp, body);
    let mut count = 0;
    let mut matched = false;
    for entry in headers.signature.split_ascii_whitespace() {
        count += 1;
        let Some(encoded) = entry.strip_prefix("v1,") else {
            // Another scheme (`v1a,` asymmetric) or a future version: not ours to judge.
            continue;
        };
        let Ok(tag) = STANDARD.decode(encoded) else {
            continue;
        };
        // `verify_slice` compares in constant time; every entry is checked, so the time taken
        // does not tell which one matched.
        matched |= expected.clone().verify_slice(&tag).is_ok();
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature { count })
    }
}

/// At most the first [`SHOWN`] characters of a header value, for an error.
fn shown(value: &str) -> String {
    value.chars().take(SHOWN).collect()
}
