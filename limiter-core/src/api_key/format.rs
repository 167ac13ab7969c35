//! The key format: `{prefix}_{32 base62 random characters}{6 base62 characters of CRC32}`.
//!
//! The checksum lets a verifier refuse a mistyped, truncated or made-up key with one CRC,
//! before any cache or store is asked, and lets secret scanners recognise a leaked key without
//! asking anyone. It is no secret and no signature: anyone can compute it. What makes a key
//! unguessable is its random part, 32 characters drawn uniformly from 62 (about 190 bits).

use std::error::Error as StdError;
use std::fmt;

use crate::Error;

/// The characters of the random part and the checksum, in digit order.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Random characters in a key, after the prefix and its `_`.
pub const RANDOM_LEN: usize = 32;
/// Checksum characters that end a key.
pub const CHECKSUM_LEN: usize = 6;
/// The longest prefix a [`KeyFormat`] accepts.
pub const MAX_PREFIX_LEN: usize = 40;

/// A regular expression that matches a key of any valid prefix, for secret scanners:
/// a prefix, `_`, and 38 base62 characters. Confirm a match with [`has_valid_checksum`] to
/// discard look-alikes. [`KeyFormat::scanner_pattern`] gives the pattern of one prefix.
pub const SCANNER_PATTERN: &str = r"\b[A-Za-z][A-Za-z0-9_]{0,39}_[0-9A-Za-z]{38}\b";

/// Why a presented key is not a key of this deployment. Found from the text alone, before any
/// cache or store is asked; the kind never says anything about which keys exist.
///
/// The message names what was expected, never the presented text: a key that failed a check
/// may still be a real secret with a typo in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Malformed {
    /// The key does not start with this deployment's prefix and `_`.
    WrongPrefix,
    /// The key has the wrong length.
    WrongLength {
        /// The presented key's length, in bytes.
        len: usize,
        /// The length of every key of this format.
        expected: usize,
    },
    /// A character after the prefix is not one of `0-9A-Za-z`.
    BadCharacter {
        /// Its byte offset in the key.
        position: usize,
    },
    /// The last six characters are not the checksum of the rest.
    BadChecksum,
}

impl Malformed {
    /// A short stable name for logs and metrics: `wrong_prefix`, `wrong_length`,
    /// `bad_character`, `bad_checksum`.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::WrongPrefix => "wrong_prefix",
            Malformed::WrongLength { .. } => "wrong_length",
            Malformed::BadCharacter { .. } => "bad_character",
            Malformed::BadChecksum => "bad_checksum",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::WrongPrefix => {
                f.write_str("the key does not start with the expected prefix")
            }
            Malformed::WrongLength { len, expected } => {
                write!(f, "the key is {len} bytes long; expected {expected}")
            }
            Malformed::BadCharacter { position } => write!(
                f,
                "the key has a character other than 0-9, A-Z or a-z at byte {position}"
            ),
            Malformed::BadChecksum => {
                f.write_str("the key's last 6 characters are not the checksum of the rest")
            }
        }
    }
}

impl StdError for Malformed {}

/// The format of one deployment's keys: its prefix (`acme_live`, `acme_test`).
///
/// Give each deployment and environment its own prefix: a test key pasted into production is
/// then refused as [`Malformed::WrongPrefix`] before any lookup, and a scanner tells a leaked
/// live key from a test one.
///
/// ```
/// use limiter_core::api_key::{KeyFormat, Malformed};
///
/// let format = KeyFormat::new("acme_live")?;
/// let key = format.generate()?;
/// assert!(key.expose().starts_with("acme_live_"));
/// assert_eq!(key.expose().len(), format.key_len());
/// assert!(format.parse(key.expose()).is_ok());
/// assert_eq!(format.parse("acme_live_nope"), Err(Malformed::WrongLength { len: 14, expected: 48 }));
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyFormat {
    prefix: String,
}

impl KeyFormat {
    /// The format of keys that start with `prefix` and `_`.
    ///
    /// A prefix is 1 to 40 ASCII letters, digits and underscores; it starts with a letter and
    /// does not end with `_` (the separator follows it). Otherwise
    /// [`Error::InvalidConfig`] at `api_keys.prefix`.
    pub fn new(prefix: impl Into<String>) -> Result<KeyFormat, Error> {
        let prefix = prefix.into();
        let valid = (1..=MAX_PREFIX_LEN).contains(&prefix.len())
            && prefix.as_bytes()[0].is_ascii_alphabetic()
            && !prefix.ends_with('_')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(Error::config(
                "api_keys.prefix",
                format!(
                    "invalid key prefix {prefix:?}: expected 1 to {MAX_PREFIX_LEN} ASCII letters, \
                     digits and underscores, starting with a letter and not ending with '_' \
                     (such as \"acme_live\")"
                ),
            ));
        }
        Ok(KeyFormat { prefix })
    }

    /// The prefix, without its `_`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The length of every key of this format, in bytes.
    pub fn key_len(&self) -> usize {
        self.prefix.len() + 1 + RANDOM_LEN + CHECKSUM_LEN
    }

    /// A regular expression that matches this format's keys, for secret scanners
    /// (`\bacme_live_[0-9A-Za-z]{38}\b`).
    pub fn scanner_pattern(&self) -> String {
        format!(
            r"\b{}_[0-9A-Za-z]{{{}}}\b",
            self.prefix,
            RANDOM_LEN + CHECKSUM_LEN
        )
    }

    /// A new key: 32 characters from the operating system's generator, then the checksum.
    ///
    /// Fails ([`Error::Store`] naming `os-random`, temporary) only if the operating system's
    /// generator cannot be read.
    pub fn generate(&self) -> Result<super::Secret, Error> {
        let mut random = String::with_capacity(RANDOM_LEN);
        random_base62(&mut random, RANDOM_LEN)?;
        Ok(super::Secret::new(self.assemble(&random)))
    }

    /// The key of this format whose random part is `random` (32 base62 characters): for tests
    /// and fixtures. `None` when `random` is not 32 base62 characters.
    pub fn with_random(&self, random: &str) -> Option<super::Secret> {
        let valid = random.len() == RANDOM_LEN && random.bytes().all(is_base62);
        valid.then(|| super::Secret::new(self.assemble(random)))
    }

    fn assemble(&self, random: &str) -> String {
        let mut key = String::with_capacity(self.key_len());
        key.push_str(&self.prefix);
        key.push('_');
        key.push_str(random);
        let checksum = encode_checksum(crc32(key.as_bytes()));
        key.push_str(&checksum);
        key
    }

    /// Checks `presented` against this format: prefix, length, characters, checksum, in that
    /// order. Reads nothing but the text; the key is then looked up by its
    /// [`KeyHash`](super::KeyHash).
    pub fn parse(&self, presented: &str) -> Result<(), Malformed> {
        let bytes = presented.as_bytes();
        let prefix = self.prefix.as_bytes();
        let has_prefix = bytes.len() > prefix.len()
            && &bytes[..prefix.len()] == prefix
            && bytes[prefix.len()] == b'_';
        if !has_prefix {
            return Err(Malformed::WrongPrefix);
        }
        if bytes.len() != self.key_len() {
            return Err(Malformed::WrongLength {
                len: bytes.len(),
                expected: self.key_len(),
            });
        }
        let body = prefix.len() + 1;
        if let Some(offset) = bytes[body..].iter().position(|&b| !is_base62(b)) {
            return Err(Malformed::BadCharacter {
                position: body + offset,
            });
        }
        check_checksum(bytes)
    }
}

/// Whether `candidate` is a key of any prefix with a valid checksum: for secret scanners that
/// matched [`SCANNER_PATTERN`] and want to discard look-alikes. Reads nothing but the text.
///
/// ```
/// use limiter_core::api_key::{KeyFormat, has_valid_checksum};
///
/// let key = KeyFormat::new("acme_test")?.generate()?;
/// assert!(has_valid_checksum(key.expose()));
/// assert!(!has_valid_checksum("acme_test_00000000000000000000000000000000000000"));
/// # Ok::<(), limiter_core::Error>(())
/// ```
pub fn has_valid_checksum(candidate: &str) -> bool {
    let bytes = candidate.as_bytes();
    let Some(sep) = bytes.iter().rposition(|&b| b == b'_') else {
        return false;
    };
    let body = &bytes[sep + 1..];
    body.len() == RANDOM_LEN + CHECKSUM_LEN
        && body.iter().all(|&b| is_base62(b))
        && KeyFormat::new(&candidate[..sep]).is_ok()
        && check_checksum(bytes).is_ok()
}

/// Checks that the last [`CHECKSUM_LEN`] bytes of `key` (all base62) encode the CRC32 of the
/// rest.
fn check_checksum(key: &[u8]) -> Result<(), Malformed> {
    let (text, checksum) = key.split_at(key.len() - CHECKSUM_LEN);
    let expected = encode_checksum(crc32(text));
    if checksum == expected.as_bytes() {
        Ok(())
    } else {
        Err(Malformed::BadChecksum)
    }
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `n` characters drawn uniformly from [`BASE62`], from the operating system's generator.
pub(super) fn random_base62(out: &mut String, n: usize) -> Result<(), Error> {
    // Rejection sampling: a byte below 248 (4 × 62) maps to a character without bias.
    const ACCEPT: u8 = 248;
    let mut buf = [0u8; 64];
    let mut filled = 0;
    while filled < n {
        getrandom::fill(&mut buf).map_err(|e| {
            Error::store(
                "os-random",
                crate::ErrorKind::Temporary,
                format!("the operating system's random generator failed: {e}"),
                None,
            )
        })?;
        for &b in buf.iter().filter(|&&b| b < ACCEPT) {
            if filled == n {
                break;
            }
            out.push(char::from(BASE62[usize::from(b % 62)]));
            filled += 1;
        }
    }
    Ok(())
}

/// The CRC32 as six base62 digits, most significant first, zero-padded (62^6 > 2^32).
fn encode_checksum(mut crc: u32) -> String {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for d in digits.iter_mut().rev() {
        // The remainder is below 62, so the index is in range and the cast exact.
        *d = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

/// CRC-32 (IEEE 802.3, reflected, the one of zlib and GitHub's tokens).
pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        let index = (crc ^ u32::from(b)) & 0xFF;
        crc = CRC_TABLE[index as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    let mut n = 0u32;
    while i < 256 {
        let mut c = n;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
        n += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn checksum_encodes_the_extremes() {
        assert_eq!(encode_checksum(0), "000000");
        assert_eq!(encode_checksum(u32::MAX), "4gfFC3");
    }

    #[test]
    fn prefixes_are_validated() {
        for good in ["a", "acme_live", "A1_b2", &"x".repeat(MAX_PREFIX_LEN)] {
            assert!(KeyFormat::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1acme",
            "_acme",
            "acme_",
            "ac-me",
            "acmé",
            &"x".repeat(41),
        ] {
            let err = KeyFormat::new(bad).unwrap_err().to_string();
            assert!(err.contains("api_keys.prefix"), "{err}");
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn each_reason_has_its_kind() {
        let format = KeyFormat::new("acme_live").unwrap();
        let key = format.with_random(&"a".repeat(RANDOM_LEN)).unwrap();
        let key = key.expose();
        assert_eq!(format.parse(key), Ok(()));
        assert_eq!(
            format.parse(&key.replace("acme_live", "acme_test")),
            Err(Malformed::WrongPrefix)
        );
        assert_eq!(format.parse("acme_live"), Err(Malformed::WrongPrefix));
        assert_eq!(
            format.parse(&key[..key.len() - 1]),
            Err(Malformed::WrongLength {
                len: 47,
                expected: 48
            })
        );
        let mut bad = key.to_owned();
        bad.replace_range(12..13, "-");
        assert_eq!(
            format.parse(&bad),
            Err(Malformed::BadCharacter { position: 12 })
        );
        let mut bad = key.to_owned();
        bad.replace_range(12..13, "b");
        assert_eq!(format.parse(&bad), Err(Malformed::BadChecksum));
        // A multi-byte character is refused by length or character, never by a panic.
        assert!(
            format
                .parse(&format!("acme_live_{}", "é".repeat(19)))
                .is_err()
        );
    }

    #[test]
    fn messages_never_carry_the_key() {
        let format = KeyFormat::new("acme_live").unwrap();
        let key = format.with_random(&"Z".repeat(RANDOM_LEN)).unwrap();
        let mut typo = key.expose().to_owned();
        typo.replace_range(20..21, "Y");
        let err = format.parse(&typo).unwrap_err();
        assert!(!err.to_string().contains(&typo[10..]), "{err}");
        assert!(!format!("{err:?}").contains(&typo[10..]), "{err:?}");
    }
}
