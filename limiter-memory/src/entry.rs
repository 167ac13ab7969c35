//! One slot of the table: a key's fingerprint, when its state may be dropped, and the state
//! itself packed into 16 bytes (40 bytes in all).
//!
//! The fixed-size states fit: GCRA is one timestamp; a sliding window is a window start and two
//! counts, a calendar window an end and one count, and counts are at most the limit, which
//! [`limiter_core::MAX_LIMIT`] (10^9) keeps below `u32::MAX`. A state that does not fit
//! (a sliding log, or a count past `u32::MAX`, which no valid limit reaches) is held by the
//! shard's side map, and the slot says so.

use limiter_core::{Micros, State};

use crate::fingerprint::{Fingerprint, TAG_BITS};

// Counts are packed as `u32`s: every count a valid limit reaches fits.
const _: () = assert!(limiter_core::MAX_LIMIT <= 0xFFFF_FFFF);

/// Where the top [`TAG_BITS`] of [`Entry::hi`] start.
const TAG_SHIFT: u32 = 64 - TAG_BITS;

/// How a slot holds its state: the tag in the top bits of the fingerprint's high half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// No key: the slot is free.
    Empty = 0,
    /// [`State::Fresh`].
    Fresh = 1,
    /// [`State::Gcra`]: `a` is the TAT.
    Gcra = 2,
    /// [`State::Window`]: `a` is the start, `b` the previous count (high 32 bits) and the current
    /// one (low 32 bits).
    Window = 3,
    /// [`State::Calendar`]: `a` is the end, `b` the count used.
    Calendar = 4,
    /// Any state, held in the shard's side map under the same fingerprint.
    Side = 5,
}

impl Held {
    fn from_tag(tag: u64) -> Held {
        match tag {
            1 => Held::Fresh,
            2 => Held::Gcra,
            3 => Held::Window,
            4 => Held::Calendar,
            5 => Held::Side,
            _ => Held::Empty,
        }
    }
}

/// A slot: 40 bytes, all of them `u64`s so that nothing is padding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The fingerprint's high half, with the [`Held`] tag in its top bits (0: empty slot).
    hi: u64,
    /// The fingerprint's low half.
    lo: u64,
    /// When the state may be dropped; see [`crate::store`].
    pub(crate) droppable_at: Micros,
    a: u64,
    b: u64,
}

impl Entry {
    /// A free slot.
    pub(crate) const EMPTY: Entry = Entry {
        hi: 0,
        lo: 0,
        droppable_at: 0,
        a: 0,
        b: 0,
    };

    #[inline]
    fn with(fp: Fingerprint, held: Held, droppable_at: Micros, a: u64, b: u64) -> Entry {
        Entry {
            hi: fp.hi | ((held as u64) << TAG_SHIFT),
            lo: fp.lo,
            droppable_at,
            a,
            b,
        }
    }

    /// The slot for `state`, packed when it fits, otherwise marked [`Held::Side`] (the caller
    /// then keeps `state` in the side map).
    #[inline]
    pub(crate) fn new(fp: Fingerprint, state: &State, droppable_at: Micros) -> Entry {
        let packed = match *state {
            State::Fresh => Some((Held::Fresh, 0, 0)),
            State::Gcra { tat } => Some((Held::Gcra, tat, 0)),
            State::Window {
                start,
                previous,
                current,
            } => match (u32::try_from(previous), u32::try_from(current)) {
                (Ok(p), Ok(c)) => Some((Held::Window, start, (u64::from(p) << 32) | u64::from(c))),
                _ => None,
            },
            State::Calendar { end, used } => u32::try_from(used)
                .ok()
                .map(|_| (Held::Calendar, end, used)),
            State::Log { .. } => None,
        };
        match packed {
            Some((held, a, b)) => Entry::with(fp, held, droppable_at, a, b),
            None => Entry::with(fp, Held::Side, droppable_at, 0, 0),
        }
    }

    /// How the slot holds its state.
    #[inline]
    pub(crate) fn held(&self) -> Held {
        Held::from_tag(self.hi >> TAG_SHIFT)
    }

    /// Whether the slot is free.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.hi >> TAG_SHIFT == 0
    }

    /// The key's fingerprint (meaningless for a free slot).
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        Fingerprint::new(self.hi, self.lo)
    }

    /// Whether the slot holds the key of `fp`.
    #[inline]
    pub(crate) fn holds(&self, fp: Fingerprint) -> bool {
        self.lo == fp.lo && self.hi & (u64::MAX >> TAG_BITS) == fp.hi && !self.is_empty()
    }

    /// The packed state; `None` for a free slot or one whose state is in the side map.
    #[inline]
    pub(crate) fn state(&self) -> Option<State> {
        match self.held() {
            Held::Empty | Held::Side => None,
            Held::Fresh => Some(State::Fresh),
            Held::Gcra => Some(State::Gcra { tat: self.a }),
            Held::Window => Some(State::Window {
                start: self.a,
                previous: self.b >> 32,
                current: self.b & u64::from(u32::MAX),
            }),
            Held::Calendar => Some(State::Calendar {
                end: self.a,
                used: self.b,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    #[test]
    fn fixed_size_states_pack_and_the_rest_go_aside() {
        let fp = Fingerprint::new(u64::MAX, 7);
        let big = u64::from(u32::MAX);
        for state in [
            State::Fresh,
            State::Gcra { tat: u64::MAX },
            State::Window {
                start: 5,
                previous: big,
                current: 0,
            },
            State::Window {
                start: u64::MAX,
                previous: 0,
                current: big,
            },
            State::Calendar { end: 9, used: big },
        ] {
            let entry = Entry::new(fp, &state, 11);
            assert!(entry.holds(fp) && !entry.is_empty());
            assert_eq!(entry.fingerprint(), fp);
            assert_eq!(entry.droppable_at, 11);
            assert_eq!(entry.state(), Some(state));
        }
        for state in [
            State::Log {
                entries: vec![1, 2],
            },
            State::Window {
                start: 5,
                previous: big + 1,
                current: 0,
            },
            State::Calendar {
                end: 9,
                used: big + 1,
            },
        ] {
            let entry = Entry::new(fp, &state, 11);
            assert_eq!(entry.held(), Held::Side, "{state:?}");
            assert_eq!(entry.state(), None);
            assert!(entry.holds(fp));
        }
        assert!(Entry::EMPTY.is_empty());
        assert!(!Entry::EMPTY.holds(Fingerprint::new(0, 0)));
    }
}
