//! Store keys: `{namespace}:{policy}:{kind=subject}`, escaped so that no two subjects collide.

use std::fmt;

use sha2::{Digest, Sha256};

/// The longest subject, in bytes, that keys carry as it is; longer ones are hashed (see
/// [`Key`]).
pub const MAX_SUBJECT_LEN: usize = 64;

use serde::{Deserialize, Serialize};

/// What a limit is counted per: the kind of subject whose value goes into the key.
///
/// A policy's `key` list names kinds by their configuration [`name`](Self::name) (`tenant`,
/// `user`, `api_key`, `ip`, also their serde form); a store key carries the short
/// [`tag`](Self::tag) (`t`, `u`, `k`, `ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    rename_all = "snake_case",
    expecting = "a subject: tenant, user, api_key or ip"
)]
#[non_exhaustive]
pub enum SubjectKind {
    /// `tenant`: the request's tenant (the customer that buys the plan).
    Tenant,
    /// `user`: the request's user.
    User,
    /// `api_key`: the id of the request's API key.
    ApiKey,
    /// `ip`: the client IP address.
    Ip,
}

impl SubjectKind {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            SubjectKind::Tenant => "tenant",
            SubjectKind::User => "user",
            SubjectKind::ApiKey => "api_key",
            SubjectKind::Ip => "ip",
        }
    }

    /// The short tag used in keys.
    pub fn tag(self) -> &'static str {
        match self {
            SubjectKind::Tenant => "t",
            SubjectKind::User => "u",
            SubjectKind::ApiKey => "k",
            SubjectKind::Ip => "ip",
        }
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The fully qualified key of one limit for one subject, as stores see it.
///
/// Rendered `namespace:policy:{kind=subject}`. The braces are a Redis Cluster hash tag, so that
/// all limits of one subject share a slot. Every part that comes from outside (`%`, `:`, `{`,
/// `}` and control characters in it) is percent-escaped, so no input can close the hash tag or
/// make two different subjects render the same key.
///
/// Ids of any length are accepted, but keys stay bounded: a subject longer than
/// [`MAX_SUBJECT_LEN`] bytes is rendered `{kind#h}`, where `h` is the first 128 bits of the
/// subject's SHA-256 in hex. `#` never follows the kind in a literal subject (`=` does), so a
/// hashed subject never meets a literal one; two long subjects share a key only if their
/// SHA-256 agree on 128 bits, which takes about 2^64 subjects to expect once. The hash tag is
/// then the hash, so a long subject cannot carry text of its choosing into the slot either.
///
/// ```
/// use limiter_core::{Key, SubjectKind};
///
/// let k = Key::new("api", "plan_burst", SubjectKind::User, "evil}:{x");
/// assert_eq!(k.as_str(), "api:plan_burst:{u=evil%7D%3A%7Bx}");
/// assert_eq!(k.hash_tag(), "u=evil%7D%3A%7Bx");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// The key of `policy` for the subject `kind=value` in `namespace`.
    pub fn new(namespace: &str, policy: &str, kind: SubjectKind, value: &str) -> Key {
        let subject_len = value.len().min(MAX_SUBJECT_LEN);
        let mut s = String::with_capacity(namespace.len() + policy.len() + subject_len + 8);
        escape_into(&mut s, namespace);
        s.push(':');
        escape_into(&mut s, policy);
        s.push_str(":{");
        s.push_str(kind.tag());
        if value.len() > MAX_SUBJECT_LEN {
            s.push('#');
            let digest = Sha256::digest(value.as_bytes());
            for b in &digest[..16] {
                s.push(char::from(HEX[usize::from(b >> 4)]));
                s.push(char::from(HEX[usize::from(b & 0xF)]));
            }
        } else {
            s.push('=');
            escape_into(&mut s, value);
        }
        s.push('}');
        Key(s)
    }

    /// A key taken verbatim, for stores' own tests and tools. Prefer [`Key::new`].
    pub fn from_raw(raw: impl Into<String>) -> Key {
        Key(raw.into())
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Redis Cluster hash tag: the text between the first `{` and the next `}`, or the
    /// whole key when there is none (Redis' own rule).
    pub fn hash_tag(&self) -> &str {
        let s = self.0.as_str();
        if let Some(open) = s.find('{')
            && let Some(len) = s[open + 1..].find('}')
            && len > 0
        {
            return &s[open + 1..open + 1 + len];
        }
        s
    }
}

fn escape_into(out: &mut String, part: &str) {
    for c in part.chars() {
        match c {
            '%' | ':' | '{' | '}' => push_escaped(out, c),
            c if c.is_control() => push_escaped(out, c),
            c => out.push(c),
        }
    }
}

fn push_escaped(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_subjects_never_collide() {
        let pairs = [
            ("a:b", "a%3Ab"),
            ("a}", "a%7D"),
            ("%7D", "}"),
            ("x", "x\u{0}"),
        ];
        for (a, b) in pairs {
            assert_ne!(
                Key::new("n", "p", SubjectKind::User, a),
                Key::new("n", "p", SubjectKind::User, b)
            );
        }
        assert_ne!(
            Key::new("n", "p", SubjectKind::User, "1"),
            Key::new("n", "p", SubjectKind::Tenant, "1")
        );
    }

    #[test]
    fn long_subjects_are_hashed_and_stay_distinct() {
        let long = "u".repeat(65);
        let key = Key::new("n", "p", SubjectKind::User, &long);
        assert_eq!(key.as_str().len(), "n:p:{u#}".len() + 32, "{key}");
        assert!(key.hash_tag().starts_with("u#"), "{key}");
        let other = Key::new("n", "p", SubjectKind::User, &format!("{long}x"));
        assert_ne!(key, other);
        // The longest literal subject stays literal.
        let literal = "u".repeat(MAX_SUBJECT_LEN);
        let key = Key::new("n", "p", SubjectKind::User, &literal);
        assert!(key.as_str().contains(&literal), "{key}");
    }

    #[test]
    fn hash_tag_cannot_be_chosen_by_input() {
        let k = Key::new("n", "p", SubjectKind::Ip, "{slot}");
        assert_eq!(k.hash_tag(), "ip=%7Bslot%7D");
        let a = Key::new("n", "plan_burst", SubjectKind::Tenant, "acme");
        let b = Key::new("n", "plan_daily", SubjectKind::Tenant, "acme");
        assert_eq!(a.hash_tag(), b.hash_tag());
    }
}
