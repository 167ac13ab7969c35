//! [`WebhookSecret`]: the key that signs webhooks, `whsec_` and base64 as Standard Webhooks
//! writes it, never shown by `Debug` or `Display`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit};
use limiter_core::{Error, ErrorKind};
use sha2::Sha256;

/// The prefix that marks a Standard Webhooks signing secret.
const PREFIX: &str = "whsec_";
/// The key lengths Standard Webhooks allows, in bytes (192 to 512 bits).
const MIN_BYTES: usize = 24;
const MAX_BYTES: usize = 64;
/// The length of a generated key.
const GENERATED_BYTES: usize = 32;
/// Where a secret's errors point.
const PATH: &str = "webhook.secret";

/// The symmetric key of one webhook endpoint: 24 to 64 random bytes, written `whsec_` and their
/// base64, as Standard Webhooks receivers expect it.
///
/// `Debug` and `Display` print `whsec_[redacted]`: the key reaches a log only through
/// [`expose_secret`](Self::expose_secret), called on purpose where it is shown to its owner.
///
/// ```
/// use limiter_notify::WebhookSecret;
///
/// let secret = WebhookSecret::generate()?;
/// let written = secret.expose_secret();            // give this to the receiver, once
/// assert!(written.starts_with("whsec_"));
/// assert_eq!(format!("{secret:?}"), "WebhookSecret(whsec_[redacted])");
/// let parsed: WebhookSecret = written.parse()?;
/// assert_eq!(parsed.expose_secret(), written);
///
/// let err = "sk_live_abc".parse::<WebhookSecret>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid configuration at webhook.secret: a secret of 11 characters that does not start \
///      with \"whsec_\"; expected whsec_ followed by the base64 of 24 to 64 random bytes"
/// );
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
    /// The keyed MAC, built once: each signature clones it.
    mac: Hmac<Sha256>,
}

impl WebhookSecret {
    /// A new secret of 32 bytes from the operating system's random generator.
    ///
    /// Errors only if that generator fails (a temporary store error naming it).
    pub fn generate() -> Result<WebhookSecret, Error> {
        let mut key = vec![0u8; GENERATED_BYTES];
        getrandom::fill(&mut key).map_err(|e| {
            Error::store(
                "os-random",
                ErrorKind::Temporary,
                format!("the operating system's random generator failed: {e}"),
                None,
            )
        })?;
        WebhookSecret::from_bytes(key)
    }

    /// A secret of the raw `key` (24 to 64 bytes).
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<WebhookSecret, Error> {
        let key = key.into();
        if !(MIN_BYTES..=MAX_BYTES).contains(&key.len()) {
            return Err(invalid(format!(
                "a key of {} bytes; expected {MIN_BYTES} to {MAX_BYTES} bytes",
                key.len()
            )));
        }
        // HMAC takes a key of any length: this cannot fail, but says so without a panic.
        let mac = Hmac::<Sha256>::new_from_slice(&key)
            .map_err(|e| invalid(format!("HMAC-SHA256 refused the key: {e}")))?;
        Ok(WebhookSecret { key, mac })
    }

    /// The secret as written for receivers: `whsec_` and the base64 of the key. Show it to
    /// the endpoint's owner once; never log it.
    pub fn expose_secret(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The keyed HMAC-SHA256, ready to sign.
    pub(super) fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

impl FromStr for WebhookSecret {
    type Err = Error;

    /// Parses `whsec_<base64>` (surrounding whitespace ignored). The error says what is wrong
    /// (no prefix, not base64 and where, the key's length) without repeating the secret.
    fn from_str(input: &str) -> Result<WebhookSecret, Error> {
        let input = input.trim();
        let Some(encoded) = input.strip_prefix(PREFIX) else {
            return Err(invalid(format!(
                "a secret of {} characters that does not start with \"{PREFIX}\"; expected \
                 {PREFIX} followed by the base64 of {MIN_BYTES} to {MAX_BYTES} random bytes",
                input.chars().count()
            )));
        };
        let key = STANDARD.decode(encoded).map_err(|e| {
            let what = match e {
                base64::DecodeError::InvalidByte(at, _) => {
                    format!("a character that is not base64 at offset {at}")
                }
                base64::DecodeError::InvalidLength(len) => {
                    format!("{len} base64 characters, a length no key encodes to")
                }
                base64::DecodeError::InvalidLastSymbol(at, _) => {
                    format!("an impossible last character at offset {at}")
                }
                base64::DecodeError::InvalidPadding => "misplaced \"=\" padding".to_owned(),
            };
            invalid(format!(
                "{what} after \"{PREFIX}\"; expected the standard base64 (A-Z a-z 0-9 + /, \
                 padded with =) of {MIN_BYTES} to {MAX_BYTES} random bytes"
            ))
        })?;
        WebhookSecret::from_bytes(key)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({self})")
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}[redacted]")
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidConfig {
        path: PATH.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_is_wrong_without_the_secret() {
        let err = |s: &str| s.parse::<WebhookSecret>().unwrap_err().to_string();
        let not_base64 = err("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw");
        assert!(
            not_base64.contains("not base64 at offset 28"),
            "{not_base64}"
        );
        assert!(!not_base64.contains("MfKQ"), "{not_base64}");
        let short = err("whsec_c2hvcnQ=");
        assert!(
            short.contains("a key of 5 bytes; expected 24 to 64"),
            "{short}"
        );
        let long = WebhookSecret::from_bytes(vec![7; 65])
            .unwrap_err()
            .to_string();
        assert!(long.contains("65 bytes"), "{long}");
    }

    #[test]
    fn the_standard_webhooks_example_secret_parses_with_whitespace_around() {
        let secret: WebhookSecret = " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n".parse().unwrap();
        assert_eq!(
            secret.expose_secret(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        );
        assert_eq!(secret.to_string(), "whsec_[redacted]");
    }

    #[test]
    fn generated_secrets_differ() {
        let (a, b) = (
            WebhookSecret::generate().unwrap(),
            WebhookSecret::generate().unwrap(),
        );
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.key.len(), GENERATED_BYTES);
    }
}
