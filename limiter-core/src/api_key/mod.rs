//! API keys: their format, what is stored about them, the [`KeyStore`] trait, and their
//! administration.
//!
//! A key reads `{prefix}_{32 base62 random characters}{6 base62 characters of CRC32}`
//! (`acme_live_…`). Stores keep its SHA-256 ([`KeyHash`]), never the key. Verification
//! ([`Limiter::verify_key`](crate::Limiter::verify_key),
//! [`Limiter::check_key`](crate::Limiter::check_key)) checks the format first, with no cache
//! or store access, then looks the hash up and yields a [`VerifiedKey`] or a
//! [`KeyRejection`].

mod admin;
mod format;
mod record;
mod store;

pub use admin::{IssuedKey, KeyAdmin};
pub use format::{
    CHECKSUM_LEN, KeyFormat, MAX_PREFIX_LEN, Malformed, RANDOM_LEN, SCANNER_PATTERN,
    has_valid_checksum,
};
pub use record::{
    KeyChange, KeyHash, KeyId, KeyRecord, KeyRejection, KeyUpdate, NewKey, Refusal, Secret,
    TOUCH_INTERVAL, VerifiedKey,
};
pub use store::{KeyStore, Updated, check_rotation};
