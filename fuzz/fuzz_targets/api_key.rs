//! API key parsing on two kinds of input:
//!
//! - arbitrary text: parsing never panics, agrees with the scanners' checksum test, and accepts
//!   only text that is a key of the format (a parsed key regenerates from its random part to
//!   the very same text);
//! - a valid key built from the input's bytes, with one byte changed where the input says:
//!   the key parses, and the changed one never does (the checksum, or the format, catches any
//!   single change before a lookup could happen).
#![no_main]

use libfuzzer_sys::fuzz_target;
use limiter_core::api_key::{CHECKSUM_LEN, KeyFormat, RANDOM_LEN, has_valid_checksum};

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let prefix = if selector & 1 == 0 { "acme_live" } else { "t" };
    let Ok(format) = KeyFormat::new(prefix) else {
        panic!("{prefix} is a valid prefix");
    };
    if selector & 2 == 0 {
        arbitrary_text(&format, &String::from_utf8_lossy(rest));
    } else {
        one_change(&format, rest);
    }
});

fn arbitrary_text(format: &KeyFormat, input: &str) {
    let prefix = format.prefix();
    let parsed = format.parse(input);
    let scanned = has_valid_checksum(input);
    if parsed.is_ok() {
        assert!(scanned, "{input:?} parses but fails the scanners' checksum");
        let start = prefix.len() + 1;
        let random = &input[start..start + RANDOM_LEN];
        let again = format
            .with_random(random)
            .unwrap_or_else(|| panic!("{input:?} parses but its random part is refused"));
        assert_eq!(again.expose(), input);
        assert_eq!(input.len(), start + RANDOM_LEN + CHECKSUM_LEN);
    } else if scanned && input.starts_with(&format!("{prefix}_")) {
        // A key of another prefix that merely starts with this one (`t_x_…`) is fine; one of
        // exactly this prefix must parse.
        let body = &input[prefix.len() + 1..];
        assert!(body.contains('_'), "{input:?} passes the checksum but does not parse");
    }
}

fn one_change(format: &KeyFormat, bytes: &[u8]) {
    if bytes.len() < RANDOM_LEN + 2 {
        return;
    }
    let random: String = bytes[..RANDOM_LEN]
        .iter()
        .map(|b| char::from(BASE62[usize::from(*b) % BASE62.len()]))
        .collect();
    let Some(key) = format.with_random(&random) else {
        panic!("{random:?} is 32 base62 characters");
    };
    let key = key.expose();
    assert_eq!(format.parse(key), Ok(()), "{key:?}");
    let at = usize::from(bytes[RANDOM_LEN]) % key.len();
    let mut changed = key.as_bytes().to_vec();
    changed[at] = bytes[RANDOM_LEN + 1];
    let changed = String::from_utf8_lossy(&changed);
    if changed != key {
        assert!(format.parse(&changed).is_err(), "{key:?} changed to {changed:?} parses");
    }
}
