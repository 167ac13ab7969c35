//! Where a limit's state lives in Redis: one key per subject, one field per limit.
//!
//! A [`Key`] is `namespace:policy:{kind=subject}` ([`Key::new`]), or
//! `namespace:policy:{t=tenant}kind=subject` for a tenant's member ([`Key::in_tenant`]). The
//! store keeps all the limits of one subject in one value, under `namespace:{kind=subject}`
//! (`namespace:{t=tenant}kind=subject`), each in a field named by its (escaped) policy: a
//! decision over a tenant's sustained, burst and daily limits reads and writes one Redis key,
//! not three. The hash tag is the key's own, so the subject's key sits in the slot its limit
//! keys would: a member's, in its tenant's.

use limiter_core::Key;

/// The field of a key that is not of [`Key::new`]'s form ([`Key::from_raw`]): stored under the
/// whole key. No escaped policy holds a NUL (control characters are escaped), so it never
/// meets a policy's field in the same value.
const RAW_FIELD: &str = "\0";

/// The Redis key of `key`'s subject, and the field of `key`'s limit in its value.
pub(crate) fn place(key: &Key) -> (String, &str) {
    let (subject, field) = locate(key);
    (subject.to_string(), field)
}

/// [`place`], the subject's key borrowed from `key`: a call that checks several limits of one
/// subject allocates its key once.
pub(crate) fn locate(key: &Key) -> (Subject<'_>, &str) {
    let s = key.as_str();
    split(s).map_or(
        (Subject::Whole(s), RAW_FIELD),
        |(namespace, policy, tag)| (Subject::Parts(namespace, tag), policy),
    )
}

/// A subject's Redis key, in the pieces of a limit's key it is made of.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'k> {
    /// `namespace:{tag}rest`: the namespace, and the braced tag with what follows it (a
    /// member's subject).
    Parts(&'k str, &'k str),
    /// A key of another form, stored under its own name.
    Whole(&'k str),
}

impl Subject<'_> {
    /// Whether `key` is this subject's Redis key.
    pub(crate) fn is(&self, key: &str) -> bool {
        match *self {
            Subject::Parts(namespace, tag) => key
                .strip_prefix(namespace)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|rest| rest == tag),
            Subject::Whole(whole) => key == whole,
        }
    }
}

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Subject::Parts(namespace, tag) => write!(f, "{namespace}:{tag}"),
            Subject::Whole(whole) => f.write_str(whole),
        }
    }
}

/// `namespace`, `policy` and `{tag}rest` of a key of [`Key::new`]'s or [`Key::in_tenant`]'s
/// form: escaped parts without `:`, `{` or `}`, then a braced tag without them either, then
/// (a member's subject) a part without them.
fn split(s: &str) -> Option<(&str, &str, &str)> {
    let (namespace, rest) = s.split_once(':')?;
    let (policy, tag) = rest.split_once(':')?;
    let (inner, member) = tag.strip_prefix('{')?.split_once('}')?;
    let plain = |part: &str| !part.contains(['{', '}', ':']);
    (plain(namespace) && plain(policy) && plain(inner) && !inner.is_empty() && plain(member))
        .then_some((namespace, policy, tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiter_core::SubjectKind;

    #[test]
    fn the_limits_of_one_subject_share_a_key_and_keep_its_hash_tag() {
        let burst = Key::new("api", "plan_burst", SubjectKind::Tenant, "acme");
        let daily = Key::new("api", "plan_daily", SubjectKind::Tenant, "acme");
        assert_eq!(place(&burst), ("api:{t=acme}".to_owned(), "plan_burst"));
        assert_eq!(place(&daily), ("api:{t=acme}".to_owned(), "plan_daily"));
        let user = Key::new("api", "plan_burst", SubjectKind::User, "acme");
        assert_eq!(place(&user).0, "api:{u=acme}");
        // Escaped parts stay escaped; a hashed subject keeps its tag.
        let hostile = Key::new("a:b", "p{1}", SubjectKind::User, "evil}:{x");
        assert_eq!(
            place(&hostile),
            ("a%3Ab:{u=evil%7D%3A%7Bx}".to_owned(), "p%7B1%7D")
        );
        let long = Key::new("api", "p", SubjectKind::User, &"x".repeat(100));
        assert_eq!(place(&long).0, format!("api:{{{}}}", long.hash_tag()));
    }

    #[test]
    fn a_members_limits_share_a_key_in_its_tenants_slot() {
        let role = Key::in_tenant("api", "role", "acme", SubjectKind::User, "bob");
        let scope = Key::in_tenant("api", "scope.export", "acme", SubjectKind::User, "bob");
        assert_eq!(place(&role), ("api:{t=acme}u=bob".to_owned(), "role"));
        assert_eq!(
            place(&scope),
            ("api:{t=acme}u=bob".to_owned(), "scope.export")
        );
        let tenant = Key::new("api", "plan_burst", SubjectKind::Tenant, "acme");
        assert_ne!(place(&role).0, place(&tenant).0);
        let (subject, _) = locate(&role);
        assert!(subject.is("api:{t=acme}u=bob"));
        assert!(!subject.is("api:{t=acme}"));
        assert_eq!(
            fred::util::redis_keyslot(place(&role).0.as_bytes()),
            fred::util::redis_keyslot(place(&tenant).0.as_bytes())
        );
    }

    #[test]
    fn a_borrowed_subject_is_the_key_it_names_and_no_other() {
        let burst = Key::new("api", "plan_burst", SubjectKind::Tenant, "acme");
        let (subject, _) = locate(&burst);
        assert!(subject.is("api:{t=acme}"));
        for other in [
            "api:{t=acm}",
            "api:{t=acme}x",
            "ap:{t=acme}",
            "api{t=acme}",
            "api:",
        ] {
            assert!(!subject.is(other), "{other}");
        }
        let raw = Key::from_raw("a:{t}");
        let (subject, _) = locate(&raw);
        assert!(subject.is("a:{t}"));
        assert!(!subject.is("a::{t}"));
    }

    #[test]
    fn a_key_of_another_form_is_stored_whole_in_a_field_no_policy_has() {
        for raw in [
            "plain",
            "a:{t}",
            "a:b:c:{t}",
            "a:b:{}",
            "a:b:{t}x:y",
            "a:b:{t}x{",
            "a:b:{t}}",
            "a:b{:{t}",
        ] {
            assert_eq!(
                place(&Key::from_raw(raw)),
                (raw.to_owned(), RAW_FIELD),
                "{raw}"
            );
        }
        // `a:{t}` of the raw form and `a::{t}` of the policy "" share a value, not a field.
        let empty_policy = Key::new("a", "", SubjectKind::Tenant, "x");
        let raw = Key::from_raw("a:{t=x}");
        assert_eq!(place(&empty_policy).0, place(&raw).0);
        assert_ne!(place(&empty_policy).1, place(&raw).1);
    }
}
