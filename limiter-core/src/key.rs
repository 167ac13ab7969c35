//! Store keys: `{namespace}:{policy}:{kind=subject}`, or
//! `{namespace}:{policy}:{t=tenant}kind=subject` for a member of a tenant, escaped so that no
//! two subjects collide.

use std::fmt;
use std::hash::{Hash, Hasher};

use arrayvec::ArrayString;
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
/// Rendered `namespace:policy:{kind=subject}`, or `namespace:policy:{t=tenant}kind=subject`
/// for a subject counted as a member of its tenant ([`Key::in_tenant`]). The braces are a Redis
/// Cluster hash tag, so that all limits of one subject, and of a tenant's members, share a
/// slot. Every part that comes from outside (`%`, `:`, `{`,
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
///
/// A key of up to [`INLINE_KEY_LEN`] bytes (any subject of an ordinary length under a short
/// namespace and policy name) is held inline, so building, cloning and dropping one never
/// touches the heap; a longer one is held on the heap. Equality, ordering and hashing are those
/// of the rendered text whichever way it is held.
#[derive(Clone)]
pub struct Key(Repr);

/// The longest key, in bytes, held inline (see [`Key`]).
pub const INLINE_KEY_LEN: usize = 76;

#[derive(Clone)]
enum Repr {
    Inline(ArrayString<INLINE_KEY_LEN>),
    Heap(Box<str>),
}

impl Key {
    /// The key of `policy` for the subject `kind=value` in `namespace`.
    pub fn new(namespace: &str, policy: &str, kind: SubjectKind, value: &str) -> Key {
        let mut s = Writer::default();
        push_prefix(&mut s, namespace, policy);
        push_subject(&mut s, kind, value);
        s.push_str("}");
        s.finish()
    }

    /// The key of `policy` for the subject `kind=value` as a member of the tenant `tenant`:
    /// `namespace:policy:{t=tenant}kind=value`, each part escaped as in [`Key::new`].
    ///
    /// The hash tag is the tenant's, so the key sits in the Redis Cluster slot of the tenant's
    /// own keys, and a decision over both touches one slot. Role limits are counted so: a role
    /// is a user's membership of a tenant.
    ///
    /// ```
    /// use limiter_core::{Key, SubjectKind};
    ///
    /// let k = Key::in_tenant("api", "role", "acme", SubjectKind::User, "bob");
    /// assert_eq!(k.as_str(), "api:role:{t=acme}u=bob");
    /// assert_eq!(k.hash_tag(), Key::new("api", "plan_burst", SubjectKind::Tenant, "acme").hash_tag());
    /// ```
    pub fn in_tenant(
        namespace: &str,
        policy: &str,
        tenant: &str,
        kind: SubjectKind,
        value: &str,
    ) -> Key {
        let mut s = Writer::default();
        push_prefix(&mut s, namespace, policy);
        push_member(&mut s, tenant, kind, value);
        s.finish()
    }

    /// The key of the policy whose keys start with `prefix`, for the subject `kind=value`:
    /// [`Key::new`] without escaping the namespace and policy name again on every request.
    pub(crate) fn with_prefix(prefix: &KeyPrefix, kind: SubjectKind, value: &str) -> Key {
        let mut s = Writer::default();
        s.push_str(&prefix.0);
        push_subject(&mut s, kind, value);
        s.push_str("}");
        s.finish()
    }

    /// [`Key::in_tenant`] for the policy whose keys start with `prefix`.
    pub(crate) fn in_tenant_with_prefix(
        prefix: &KeyPrefix,
        tenant: &str,
        kind: SubjectKind,
        value: &str,
    ) -> Key {
        let mut s = Writer::default();
        s.push_str(&prefix.0);
        push_member(&mut s, tenant, kind, value);
        s.finish()
    }

    /// A key taken verbatim, for stores' own tests and tools. Prefer [`Key::new`].
    pub fn from_raw(raw: impl Into<String>) -> Key {
        let raw = raw.into();
        match ArrayString::from(&raw) {
            Ok(inline) => Key(Repr::Inline(inline)),
            Err(_) => Key(Repr::Heap(raw.into_boxed_str())),
        }
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(s) => s.as_str(),
            Repr::Heap(s) => s,
        }
    }

    /// The key as bytes (UTF-8), for stores that hash or compare keys.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// The Redis Cluster hash tag: the text between the first `{` and the next `}`, or the
    /// whole key when there is none (Redis' own rule).
    pub fn hash_tag(&self) -> &str {
        let s = self.as_str();
        if let Some(open) = s.find('{')
            && let Some(len) = s[open + 1..].find('}')
            && len > 0
        {
            return &s[open + 1..open + 1 + len];
        }
        s
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// The escaped `namespace:policy:{` that every key of one policy starts with, built once when
/// the policy set is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPrefix(Box<str>);

impl KeyPrefix {
    pub(crate) fn new(namespace: &str, policy: &str) -> KeyPrefix {
        let mut s = Writer::default();
        push_prefix(&mut s, namespace, policy);
        KeyPrefix(s.finish().as_str().into())
    }
}

/// Appends `namespace:policy:{`, each part escaped.
fn push_prefix(s: &mut Writer, namespace: &str, policy: &str) {
    escape_into(s, namespace);
    s.push_str(":");
    escape_into(s, policy);
    s.push_str(":{");
}

/// Appends `t=tenant}kind=value`: the tenant's subject closes the hash tag, and the member's
/// follows it. Neither can hold `}` (escaped), so the pair reads one way only.
fn push_member(s: &mut Writer, tenant: &str, kind: SubjectKind, value: &str) {
    push_subject(s, SubjectKind::Tenant, tenant);
    s.push_str("}");
    push_subject(s, kind, value);
}

/// Appends `kind=value`, or `kind#hash` for a subject too long to carry as it is.
fn push_subject(s: &mut Writer, kind: SubjectKind, value: &str) {
    s.push_str(kind.tag());
    if value.len() > MAX_SUBJECT_LEN {
        s.push_str("#");
        let digest = Sha256::digest(value.as_bytes());
        let mut hex = [0u8; 32];
        for (pair, b) in hex.chunks_exact_mut(2).zip(&digest[..16]) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xF)];
        }
        // Hex digits are ASCII.
        s.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    } else {
        s.push_str("=");
        escape_into(s, value);
    }
}

/// Builds a key's text inline, moving to the heap only if it outgrows [`INLINE_KEY_LEN`].
enum Writer {
    Inline(ArrayString<INLINE_KEY_LEN>),
    Heap(String),
}

impl Default for Writer {
    fn default() -> Writer {
        Writer::Inline(ArrayString::new())
    }
}

impl Writer {
    fn push_str(&mut self, part: &str) {
        match self {
            Writer::Inline(inline) => {
                if inline.try_push_str(part).is_err() {
                    let mut heap = String::with_capacity(2 * INLINE_KEY_LEN + part.len());
                    heap.push_str(inline);
                    heap.push_str(part);
                    *self = Writer::Heap(heap);
                }
            }
            Writer::Heap(heap) => heap.push_str(part),
        }
    }

    fn finish(self) -> Key {
        match self {
            Writer::Inline(inline) => Key(Repr::Inline(inline)),
            Writer::Heap(heap) => Key(Repr::Heap(heap.into_boxed_str())),
        }
    }
}

/// Appends `part`, percent-escaping what could close the hash tag or merge two parts: runs of
/// plain text are copied whole.
fn escape_into(out: &mut Writer, part: &str) {
    // Most ids are printable ASCII with nothing to escape: one copy.
    if part
        .bytes()
        .all(|b| matches!(b, b' '..=b'~') && !matches!(b, b'%' | b':' | b'{' | b'}'))
    {
        out.push_str(part);
        return;
    }
    let mut plain = 0;
    for (i, c) in part.char_indices() {
        if matches!(c, '%' | ':' | '{' | '}') || c.is_control() {
            out.push_str(&part[plain..i]);
            push_escaped(out, c);
            plain = i + c.len_utf8();
        }
    }
    out.push_str(&part[plain..]);
}

fn push_escaped(out: &mut Writer, c: char) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        let escaped = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]];
        // '%' and hex digits are ASCII.
        out.push_str(std::str::from_utf8(&escaped).unwrap_or_default());
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.as_str())
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
    fn long_keys_leave_the_inline_buffer_and_compare_by_text() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |k: &Key| {
            let mut h = DefaultHasher::new();
            k.hash(&mut h);
            h.finish()
        };
        let short = Key::new("n", "p", SubjectKind::User, "alice");
        assert!(matches!(short.0, Repr::Inline(_)));
        // An escaped subject at the length limit, under a long namespace: on the heap.
        let namespace = "n".repeat(INLINE_KEY_LEN);
        let long = Key::new(
            &namespace,
            "p",
            SubjectKind::User,
            &":".repeat(MAX_SUBJECT_LEN),
        );
        assert!(matches!(long.0, Repr::Heap(_)));
        assert_eq!(
            long.as_str(),
            format!("{namespace}:p:{{u={}}}", "%3A".repeat(64))
        );
        // The same text built either way is the same key.
        for key in [short, long] {
            let raw = Key::from_raw(key.as_str());
            assert_eq!(raw, key);
            assert_eq!(hash(&raw), hash(&key));
            assert_eq!(raw.cmp(&key), std::cmp::Ordering::Equal);
        }
        let heap_but_short = Key(Repr::Heap("n:p:{u=alice}".into()));
        let inline = Key::new("n", "p", SubjectKind::User, "alice");
        assert_eq!(heap_but_short, inline);
        assert_eq!(hash(&heap_but_short), hash(&inline));
    }

    #[test]
    fn a_members_key_shares_its_tenants_tag_and_meets_no_other_key() {
        let member = Key::in_tenant("n", "role", "acme", SubjectKind::User, "bob");
        assert_eq!(member.as_str(), "n:role:{t=acme}u=bob");
        assert_eq!(
            member.hash_tag(),
            Key::new("n", "p", SubjectKind::Tenant, "acme").hash_tag()
        );
        // Escaped parts keep the tenant and the member apart.
        let hostile = Key::in_tenant("n", "role", "a}u=b", SubjectKind::User, "c");
        assert_eq!(hostile.as_str(), "n:role:{t=a%7Du=b}u=c");
        assert_ne!(
            hostile,
            Key::in_tenant("n", "role", "a", SubjectKind::User, "b}u=c")
        );
        assert_ne!(member, Key::new("n", "role", SubjectKind::User, "bob"));
        // Long parts are hashed each on its own.
        let long = "x".repeat(MAX_SUBJECT_LEN + 1);
        let hashed = Key::in_tenant("n", "role", &long, SubjectKind::User, &long);
        assert!(hashed.hash_tag().starts_with("t#"), "{hashed}");
        assert!(hashed.as_str().contains("}u#"), "{hashed}");
        let prefix = KeyPrefix::new("n", "role");
        assert_eq!(
            Key::in_tenant_with_prefix(&prefix, "acme", SubjectKind::User, "bob"),
            member
        );
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
