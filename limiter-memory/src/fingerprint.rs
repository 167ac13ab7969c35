//! What the table stores in place of a key's text: a seeded 128-bit SipHash of it.
//!
//! Storing 16 bytes instead of the key (about 35 bytes of text plus a `String` header and its own
//! allocation) is most of why a tracked key costs under 64 bytes. Two keys that hashed alike
//! would share one state, so the bound matters; the crate docs ("Keys are hashed") give it.

use std::hash::{BuildHasher, RandomState};

use siphasher::sip128::SipHasher13;

/// Bits of [`Fingerprint::hi`] the table keeps for itself (how the state is held); the hash
/// proper is the other 125 bits.
pub(crate) const TAG_BITS: u32 = 3;

/// The seeded 128-bit hash of a key, with its top [`TAG_BITS`] cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Fingerprint {
    /// High half: picks the shard (low bits); its top [`TAG_BITS`] are always 0.
    pub(crate) hi: u64,
    /// Low half: picks the home bucket in the shard.
    pub(crate) lo: u64,
}

impl Fingerprint {
    /// The fingerprint made of two raw halves, the tag bits cleared.
    pub(crate) fn new(hi: u64, lo: u64) -> Fingerprint {
        Fingerprint {
            hi: hi & (u64::MAX >> TAG_BITS),
            lo,
        }
    }
}

/// Hashes keys with SipHash-1-3 (128-bit output) under a secret key drawn once per store.
///
/// The seed comes from [`RandomState`], which std seeds from the operating system's random
/// generator; it is never shown (not in `Debug`, errors or logs), so a client who picks key
/// text cannot predict fingerprints, let alone pick two keys that share one.
#[derive(Clone)]
pub(crate) struct Fingerprinter {
    sip: SipHasher13,
}

impl Fingerprinter {
    /// A fingerprinter with a fresh secret seed.
    pub(crate) fn random() -> Fingerprinter {
        // Each `RandomState` is a SipHash keyed from the OS generator (later ones in a thread
        // differ by one in a key word); hashing two constants under it gives 128 bits that are
        // unpredictable without that key.
        let state = RandomState::new();
        let k0 = state.hash_one(0x6c69_6d69_7465_7230_u64);
        let k1 = state.hash_one(0x6d65_6d6f_7279_5f31_u64);
        Fingerprinter::with_keys(k0, k1)
    }

    /// A fingerprinter with a chosen seed (tests only: production seeds are secret).
    pub(crate) fn with_keys(k0: u64, k1: u64) -> Fingerprinter {
        Fingerprinter {
            sip: SipHasher13::new_with_keys(k0, k1),
        }
    }

    /// The fingerprint of `key`.
    #[inline]
    pub(crate) fn of(&self, key: &str) -> Fingerprint {
        let hash = self.sip.hash(key.as_bytes());
        Fingerprint::new(hash.h1, hash.h2)
    }
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed is the secret that keeps collisions out of a client's reach.
        f.write_str("Fingerprinter { seed: <secret> }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_per_store_and_tag_bits_stay_clear() {
        let (a, b) = (Fingerprinter::random(), Fingerprinter::random());
        assert_ne!(a.of("api:plan:{u=alice}"), b.of("api:plan:{u=alice}"));
        assert_eq!(a.of("api:plan:{u=alice}"), a.of("api:plan:{u=alice}"));
        for i in 0..1000 {
            assert_eq!(a.of(&i.to_string()).hi >> (64 - TAG_BITS), 0);
        }
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.sip.keys().0)));
    }
}
