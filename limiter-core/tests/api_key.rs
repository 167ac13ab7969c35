//! API keys: the format's properties.

use proptest::prelude::*;

use limiter_core::api_key::{
    KeyFormat, KeyId, KeyRecord, Malformed, NewKey, SCANNER_PATTERN, has_valid_checksum,
};
use limiter_core::time::Micros;

const NOW: Micros = 1_790_000_000_000_000;

fn prefixes() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_]{0,38}[A-Za-z0-9]|[A-Za-z]"
}

fn base62() -> impl Strategy<Value = String> {
    "[0-9A-Za-z]{32}"
}

proptest! {
    #[test]
    fn generated_keys_always_parse(prefix in prefixes()) {
        let format = KeyFormat::new(prefix).unwrap();
        let key = format.generate().unwrap();
        prop_assert_eq!(format.parse(key.expose()), Ok(()));
        prop_assert!(has_valid_checksum(key.expose()));
        prop_assert_eq!(key.expose().len(), format.key_len());
        prop_assert!(key.start().len() == format.prefix().len() + 5);
    }

    #[test]
    fn any_single_character_change_is_refused(
        prefix in prefixes(),
        random in base62(),
        position in any::<prop::sample::Index>(),
        replacement in any::<char>(),
    ) {
        let format = KeyFormat::new(prefix).unwrap();
        let key = format.with_random(&random).unwrap();
        let key = key.expose();
        let i = position.index(key.len());
        prop_assume!(key.as_bytes()[i] as char != replacement);
        let mut changed = key[..i].to_owned();
        changed.push(replacement);
        changed.push_str(&key[i + 1..]);
        let err = format.parse(&changed).unwrap_err();
        // A change after the prefix to another base62 character is caught by the checksum.
        if i > format.prefix().len() && replacement.is_ascii_alphanumeric() {
            prop_assert_eq!(err, Malformed::BadChecksum);
        }
        prop_assert!(!has_valid_checksum(&changed) || !changed.starts_with(format.prefix()));
    }

    #[test]
    fn deleting_or_inserting_a_character_is_refused(
        random in base62(),
        position in any::<prop::sample::Index>(),
        extra in "[0-9A-Za-z_]",
    ) {
        let format = KeyFormat::new("acme_live").unwrap();
        let key = format.with_random(&random).unwrap();
        let key = key.expose();
        let i = position.index(key.len());
        let deleted = format!("{}{}", &key[..i], &key[i + 1..]);
        let inserted = format!("{}{extra}{}", &key[..i], &key[i..]);
        prop_assert!(format.parse(&deleted).is_err());
        prop_assert!(format.parse(&inserted).is_err());
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let format = KeyFormat::new("acme_live").unwrap();
        let _ = format.parse(&text);
        let _ = has_valid_checksum(&text);
    }
}

#[test]
fn the_scanner_patterns_describe_the_keys() {
    let format = KeyFormat::new("acme_live").unwrap();
    assert_eq!(format.scanner_pattern(), r"\bacme_live_[0-9A-Za-z]{38}\b");
    assert!(SCANNER_PATTERN.contains("{38}"));
}

#[test]
fn no_type_that_holds_a_secret_prints_it() {
    let format = KeyFormat::new("acme_live").unwrap();
    let secret = format.generate().unwrap();
    let record = KeyRecord::new(
        KeyId::new("key_1"),
        &secret,
        &NewKey::new("acme", "ci"),
        NOW,
    );
    let hidden = &secret.expose()[format.prefix().len() + 5..];
    for shown in [format!("{secret:?}"), format!("{record:?}")] {
        assert!(!shown.contains(hidden), "{shown}");
    }
    let json = serde_json::to_string(&record).unwrap();
    assert!(!json.contains(hidden), "{json}");
}
