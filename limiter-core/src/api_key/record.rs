//! What is stored about a key ([`KeyRecord`]), what is known of it before it is stored
//! ([`NewKey`]), what verification yields ([`VerifiedKey`]) or why it refuses
//! ([`KeyRejection`]), and the changes an administrator can make ([`KeyChange`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::format::{Malformed, random_base62};
use crate::Error;
use crate::time::{MICROS_PER_SECOND, Micros};

/// How often at most `last_used_at` is written for one key: once a minute, so that a busy key
/// costs no write per request.
pub const TOUCH_INTERVAL: Micros = 60 * MICROS_PER_SECOND;

/// A key's secret text, as generated or presented: the only type that holds it.
///
/// It prints its [`start`](Self::start) and nothing more (`Debug`), has no `Display`, and is
/// not serializable: reach the text with [`expose`](Self::expose), once, to hand it to its
/// owner.
///
/// ```
/// use limiter_core::api_key::KeyFormat;
///
/// let secret = KeyFormat::new("acme_live")?.generate()?;
/// let shown = format!("{secret:?}");
/// assert!(!shown.contains(&secret.expose()[14..]));
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(super) fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret text. Show it to the key's owner once; never log or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The lookup key: the SHA-256 of the whole text.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }

    /// The key's display start: its prefix, `_` and the first 4 random characters
    /// (`acme_live_AbC9`), enough to tell keys apart in a list, far too little to guess one.
    pub fn start(&self) -> String {
        display_start(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}…)", self.start())
    }
}

/// The start of `key`: up to its last `_` and 4 characters more, or 4 characters if it has no
/// `_` (an imported key).
fn display_start(key: &str) -> String {
    let body = key.rfind('_').map_or(0, |i| i + 1);
    key.char_indices()
        .skip_while(|(i, _)| *i < body)
        .nth(4)
        .map_or_else(|| key[..body].to_owned(), |(end, _)| key[..end].to_owned())
}

/// The SHA-256 of a whole key: what stores index keys by. Nothing else of the secret is kept.
///
/// A single fast hash is enough: keys carry about 190 random bits, so no dictionary or
/// brute force applies, and a slow password hash on every request would itself be a denial of
/// service.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash of the key text `key`.
    pub fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    /// The hash from its 32 bytes (as a store kept them).
    pub fn from_bytes(bytes: [u8; 32]) -> KeyHash {
        KeyHash(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The hash from 64 hexadecimal digits, if they are.
    pub fn from_hex(hex: &str) -> Option<KeyHash> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyHash(bytes))
    }
}

impl fmt::Debug for KeyHash {
    // The hash is no secret, but a short form is enough to tell records apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..12])
    }
}

impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<KeyHash, D::Error> {
        let hex = String::deserialize(d)?;
        KeyHash::from_hex(&hex)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hexadecimal digits"))
    }
}

/// A key's public id (`key_` and 22 base62 characters): what lists, events, logs and limit
/// keys name it by. Knowing it grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// A new random id.
    pub fn generate() -> Result<KeyId, Error> {
        let mut id = String::from("key_");
        random_base62(&mut id, 22)?;
        Ok(KeyId(id))
    }

    /// An id as stored or given by an administrator.
    pub fn new(id: impl Into<String>) -> KeyId {
        KeyId(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an administrator says about a key to create: whose it is, its name, its flags and
/// expiry. Plans and limits are not part of it: they are resolved from the tenant at request
/// time, so that a plan change never rewrites keys.
///
/// ```
/// use limiter_core::api_key::NewKey;
///
/// let key = NewKey::new("acme", "billing webhook").bypass(true);
/// assert!(key.bypass);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewKey {
    /// The tenant the key acts for.
    pub tenant: String,
    /// The user the key acts for, if any.
    pub user: Option<String>,
    /// A name for people (`billing webhook`).
    pub name: String,
    /// Whether the key bypasses rate limits (default false).
    pub bypass: bool,
    /// When the key stops working, if ever.
    pub expires_at: Option<Micros>,
}

impl NewKey {
    /// An active key of `tenant`, without bypass or expiry.
    pub fn new(tenant: impl Into<String>, name: impl Into<String>) -> NewKey {
        NewKey {
            tenant: tenant.into(),
            user: None,
            name: name.into(),
            bypass: false,
            expires_at: None,
        }
    }

    /// Sets the user.
    pub fn user(mut self, user: impl Into<String>) -> NewKey {
        self.user = Some(user.into());
        self
    }

    /// Sets the bypass flag.
    pub fn bypass(mut self, bypass: bool) -> NewKey {
        self.bypass = bypass;
        self
    }

    /// Sets the expiry.
    pub fn expires_at(mut self, at: Micros) -> NewKey {
        self.expires_at = Some(at);
        self
    }

    /// Refuses what no key may carry: an empty tenant, user or name.
    pub(super) fn check(&self) -> Result<(), Error> {
        let empty = [
            ("tenant", Some(self.tenant.as_str())),
            ("user", self.user.as_deref()),
            ("name", Some(self.name.as_str())),
        ]
        .into_iter()
        .find(|(_, v)| *v == Some(""));
        match empty {
            Some((field, _)) => Err(Error::InvalidRequest(format!(
                "the new key's {field} is empty; expected a non-empty value"
            ))),
            None => Ok(()),
        }
    }
}

/// What a store keeps about one key. Holds no secret: only its [`KeyHash`] and display start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyRecord {
    /// The public id.
    pub id: KeyId,
    /// The SHA-256 of the whole key: the lookup key.
    pub hash: KeyHash,
    /// The tenant the key acts for.
    pub tenant: String,
    /// The user the key acts for, if any.
    pub user: Option<String>,
    /// A name for people.
    pub name: String,
    /// The prefix, `_` and the first 4 random characters (`acme_live_AbC9`).
    pub start: String,
    /// Whether the key works (an administrator may switch it off and on again).
    pub active: bool,
    /// Whether the key bypasses rate limits.
    pub bypass: bool,
    /// When it was created.
    pub created_at: Micros,
    /// When it stops working, if ever.
    pub expires_at: Option<Micros>,
    /// When it was revoked: for good, nothing undoes it.
    pub revoked_at: Option<Micros>,
    /// When it was last used, to the minute ([`TOUCH_INTERVAL`]).
    pub last_used_at: Option<Micros>,
}

impl KeyRecord {
    /// The record of `secret`, created at `now` from `new`.
    pub fn new(id: KeyId, secret: &Secret, new: &NewKey, now: Micros) -> KeyRecord {
        KeyRecord {
            id,
            hash: secret.hash(),
            tenant: new.tenant.clone(),
            user: new.user.clone(),
            name: new.name.clone(),
            start: secret.start(),
            active: true,
            bypass: new.bypass,
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            last_used_at: None,
        }
    }

    /// A record as a store kept it: the given fields, then a name of `""`, active, no bypass,
    /// user, expiry, revocation or last use. The store then sets the public fields it read
    /// (the type is `#[non_exhaustive]`, so this is how another crate builds one).
    pub fn restore(
        id: KeyId,
        hash: KeyHash,
        tenant: String,
        start: String,
        created_at: Micros,
    ) -> KeyRecord {
        KeyRecord {
            id,
            hash,
            tenant,
            user: None,
            name: String::new(),
            start,
            active: true,
            bypass: false,
            created_at,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        }
    }

    /// Whether the key works at `now`, and if not, why: revoked first (for good), then expired,
    /// then inactive.
    pub fn check_at(&self, now: Micros) -> Result<(), KeyRejection> {
        if self.revoked_at.is_some() {
            Err(KeyRejection::Revoked)
        } else if self.expires_at.is_some_and(|at| now >= at) {
            Err(KeyRejection::Expired)
        } else if !self.active {
            Err(KeyRejection::Inactive)
        } else {
            Ok(())
        }
    }

    /// Whether a use at `now` should be written to `last_used_at`: never written, or written
    /// at least [`TOUCH_INTERVAL`] before.
    pub fn needs_touch(&self, now: Micros) -> bool {
        self.last_used_at
            .is_none_or(|at| now >= at.saturating_add(TOUCH_INTERVAL))
    }

    /// Applies `change` at `now`, as every store does inside its atomic update. A revoked key
    /// takes a new name and nothing else: revocation is irreversible, and so is everything it
    /// froze.
    pub fn apply(&mut self, change: &KeyChange, now: Micros) -> KeyUpdate {
        let revoked = self.revoked_at.is_some();
        match change {
            KeyChange::Name(name) if name.is_empty() => {
                return KeyUpdate::Refused(Refusal::EmptyName);
            }
            KeyChange::Name(name) => self.name.clone_from(name),
            KeyChange::Touch => {
                if !self.needs_touch(now) {
                    return KeyUpdate::Unchanged;
                }
                self.last_used_at = Some(now);
            }
            _ if revoked => return KeyUpdate::Refused(Refusal::Revoked),
            KeyChange::Active(active) => self.active = *active,
            KeyChange::Bypass(bypass) => self.bypass = *bypass,
            KeyChange::Revoke => self.revoked_at = Some(now),
            KeyChange::ExpireBy(at) => {
                let at = (*at).max(now);
                self.expires_at = Some(self.expires_at.map_or(at, |e| e.min(at)));
            }
        }
        KeyUpdate::Updated
    }
}

/// A change an administrator (or verification, for `Touch`) makes to a stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyChange {
    /// Renames the key.
    Name(String),
    /// Switches the key on or off.
    Active(bool),
    /// Sets the bypass flag.
    Bypass(bool),
    /// Revokes the key, for good.
    Revoke,
    /// Makes the key expire at this time at the latest (now if earlier): the old key's side of
    /// a rotation.
    ExpireBy(Micros),
    /// Records a use now, unless one was recorded less than [`TOUCH_INTERVAL`] ago.
    Touch,
}

/// What [`KeyRecord::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyUpdate {
    /// The record changed: store it.
    Updated,
    /// Nothing to write (a touch within the interval).
    Unchanged,
    /// The change is not allowed.
    Refused(Refusal),
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The key is revoked: it takes a new name and nothing else.
    Revoked,
    /// A name must not be empty.
    EmptyName,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Revoked => "the key is revoked; a revoked key can only be renamed",
            Refusal::EmptyName => "the name is empty; expected a non-empty name",
        })
    }
}

/// What verification yields for a working key: who the request acts for. Set it on a request
/// with [`Request::verified_key`](crate::Request::verified_key).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedKey {
    /// The key's public id.
    pub id: KeyId,
    /// The tenant the key acts for.
    pub tenant: String,
    /// The user the key acts for, if any.
    pub user: Option<String>,
    /// Whether the key bypasses rate limits.
    pub bypass: bool,
}

impl VerifiedKey {
    /// What `record` vouches for. Only verification should call it: it checks nothing.
    pub(crate) fn from_record(record: &KeyRecord) -> VerifiedKey {
        VerifiedKey {
            id: record.id.clone(),
            tenant: record.tenant.clone(),
            user: record.user.clone(),
            bypass: record.bypass,
        }
    }
}

/// Why a presented key was refused. Says which check failed and nothing about other keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyRejection {
    /// Not a key of this deployment's format (found without any lookup).
    Malformed(Malformed),
    /// Well formed, but no such key.
    Unknown,
    /// The key was revoked.
    Revoked,
    /// The key has expired.
    Expired,
    /// The key is switched off.
    Inactive,
}

impl KeyRejection {
    /// A short stable name for logs, metrics and error bodies: `malformed`, `unknown`,
    /// `revoked`, `expired`, `inactive`.
    pub fn name(self) -> &'static str {
        match self {
            KeyRejection::Malformed(_) => "malformed",
            KeyRejection::Unknown => "unknown",
            KeyRejection::Revoked => "revoked",
            KeyRejection::Expired => "expired",
            KeyRejection::Inactive => "inactive",
        }
    }
}

impl fmt::Display for KeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRejection::Malformed(m) => write!(f, "malformed API key: {m}"),
            KeyRejection::Unknown => f.write_str("unknown API key"),
            KeyRejection::Revoked => f.write_str("revoked API key"),
            KeyRejection::Expired => f.write_str("expired API key"),
            KeyRejection::Inactive => f.write_str("inactive API key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> KeyRecord {
        let secret = Secret::new("acme_live_AbCdEfGh".into());
        KeyRecord::new(
            KeyId::new("key_1"),
            &secret,
            &NewKey::new("acme", "ci"),
            1_000,
        )
    }

    #[test]
    fn start_is_the_prefix_and_four_characters() {
        assert_eq!(display_start("acme_live_AbCdEfGh"), "acme_live_AbCd");
        assert_eq!(display_start("abcdefgh"), "abcd");
        assert_eq!(display_start("a_bc"), "a_");
    }

    #[test]
    fn hash_hex_round_trips() {
        let h = KeyHash::of("x");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(KeyHash::from_hex("zz"), None);
        assert_eq!(KeyHash::from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn revocation_is_irreversible() {
        let mut r = record();
        assert_eq!(r.apply(&KeyChange::Revoke, 5), KeyUpdate::Updated);
        for change in [
            KeyChange::Active(true),
            KeyChange::Bypass(true),
            KeyChange::Revoke,
            KeyChange::ExpireBy(10),
        ] {
            assert_eq!(r.apply(&change, 6), KeyUpdate::Refused(Refusal::Revoked));
        }
        assert_eq!(r.revoked_at, Some(5));
        assert_eq!(r.check_at(6), Err(KeyRejection::Revoked));
        assert_eq!(
            r.apply(&KeyChange::Name("old".into()), 7),
            KeyUpdate::Updated
        );
    }

    #[test]
    fn expiry_only_moves_earlier_and_never_into_the_past() {
        let mut r = record();
        r.apply(&KeyChange::ExpireBy(100), 10);
        r.apply(&KeyChange::ExpireBy(200), 10);
        assert_eq!(r.expires_at, Some(100));
        r.apply(&KeyChange::ExpireBy(1), 50);
        assert_eq!(r.expires_at, Some(50));
        assert_eq!(r.check_at(49), Ok(()));
        assert_eq!(r.check_at(50), Err(KeyRejection::Expired));
    }

    #[test]
    fn touch_writes_at_most_once_an_interval() {
        let mut r = record();
        assert_eq!(r.apply(&KeyChange::Touch, 10), KeyUpdate::Updated);
        assert_eq!(
            r.apply(&KeyChange::Touch, 10 + TOUCH_INTERVAL - 1),
            KeyUpdate::Unchanged
        );
        assert_eq!(r.last_used_at, Some(10));
        assert_eq!(
            r.apply(&KeyChange::Touch, 10 + TOUCH_INTERVAL),
            KeyUpdate::Updated
        );
    }
}
