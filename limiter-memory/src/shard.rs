//! One shard: a [`Table`] of packed states and the side map of the states that do not pack.
//!
//! A shard is only ever used under its mutex; the store takes care of locking.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use limiter_core::{Micros, State};

use crate::entry::{Entry, Held};
use crate::fingerprint::Fingerprint;
use crate::table::Table;

/// At most this many held slots are compared when looking for the entry nearest fresh to evict:
/// a sample bounds the work a flood of new keys can cause, as Redis' approximate LRU does.
const EVICTION_SAMPLE: usize = 64;

/// The keys of one shard and their states.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub(crate) table: Table,
    /// The states of [`Held::Side`] slots (sliding logs), under the slot's fingerprint.
    side: HashMap<Fingerprint, State, BuildHasherDefault<FingerprintHasher>>,
    /// No entry may be dropped before this (a lower bound of every `droppable_at`): a scan for
    /// droppable entries is skipped until the threshold reaches it.
    pub(crate) earliest_drop: Micros,
    /// Where the next eviction sample starts.
    evict_cursor: usize,
}

impl Shard {
    /// The slot holding `fp`, if any, with its state copied to `state`; the flag says whether
    /// that state was moved out of the side map (then hand it back with
    /// [`restore`](Self::restore) or [`write`](Self::write)).
    #[inline]
    pub(crate) fn load(&mut self, fp: Fingerprint, state: &mut State) -> Option<(usize, bool)> {
        let pos = self.table.find(fp)?;
        match self.table.at(pos).state() {
            Some(packed) => {
                *state = packed;
                Some((pos, false))
            }
            None => {
                *state = self
                    .side
                    .get_mut(&fp)
                    .map(std::mem::take)
                    .unwrap_or_default();
                Some((pos, true))
            }
        }
    }

    /// Puts back a state taken by [`load`](Self::load) and not changed.
    pub(crate) fn restore(&mut self, fp: Fingerprint, state: State) {
        if let Some(held) = self.side.get_mut(&fp) {
            *held = state;
        }
    }

    /// Writes `state` to the slot `pos`, which holds `fp`.
    #[inline]
    pub(crate) fn write(
        &mut self,
        pos: usize,
        fp: Fingerprint,
        state: State,
        droppable_at: Micros,
    ) {
        let entry = Entry::new(fp, &state, droppable_at);
        let was_side = self.table.at(pos).held() == Held::Side;
        if entry.held() == Held::Side {
            self.side.insert(fp, state);
        } else if was_side {
            self.side.remove(&fp);
        }
        *self.table.at_mut(pos) = entry;
        self.earliest_drop = self.earliest_drop.min(droppable_at);
    }

    /// Adds the key `fp` with `state`, or writes it if the shard already holds `fp`. Returns
    /// whether it was added.
    pub(crate) fn upsert(&mut self, fp: Fingerprint, state: State, droppable_at: Micros) -> bool {
        if let Some(pos) = self.table.find(fp) {
            self.write(pos, fp, state, droppable_at);
            return false;
        }
        let entry = Entry::new(fp, &state, droppable_at);
        if entry.held() == Held::Side {
            self.side.insert(fp, state);
        }
        if self.table.len() == 0 {
            self.earliest_drop = droppable_at;
        }
        self.table.insert(entry);
        self.earliest_drop = self.earliest_drop.min(droppable_at);
        true
    }

    /// Removes the key `fp`; whether it was held.
    pub(crate) fn remove(&mut self, fp: Fingerprint) -> bool {
        match self.table.find(fp) {
            Some(pos) => {
                self.remove_at(pos);
                true
            }
            None => false,
        }
    }

    /// Removes the entry at `pos` (moving others of its probe run) and returns it.
    pub(crate) fn remove_at(&mut self, pos: usize) -> Entry {
        let entry = self.table.remove_at(pos);
        if entry.held() == Held::Side {
            self.side.remove(&entry.fingerprint());
        }
        entry
    }

    /// Removes the entries of slots `start..end` droppable at `at`, except those of `keep`;
    /// returns how many, and the slot after the last one visited. A scan of the whole table
    /// also refreshes [`earliest_drop`](Self::earliest_drop).
    pub(crate) fn drop_droppable(
        &mut self,
        start: usize,
        end: usize,
        at: Micros,
        keep: &[Fingerprint],
    ) -> (u64, usize) {
        let whole = start == 0 && end >= self.table.slots();
        let mut removed = 0;
        let mut earliest = Micros::MAX;
        let side = &mut self.side;
        let next = self.table.remove_where(
            start,
            end,
            |e| {
                let drop = e.droppable_at <= at && !keep.iter().any(|&fp| e.holds(fp));
                if !drop {
                    earliest = earliest.min(e.droppable_at);
                }
                drop
            },
            |e| {
                removed += 1;
                if e.held() == Held::Side {
                    side.remove(&e.fingerprint());
                }
            },
        );
        if whole {
            self.earliest_drop = earliest;
            self.settle();
        }
        (removed, next)
    }

    /// Gives back the memory of removed keys, once a scan has visited the whole shard.
    pub(crate) fn settle(&mut self) {
        self.table.shrink_if_sparse();
        if self.side.capacity() > 2 * self.side.len() + 16 {
            self.side.shrink_to_fit();
        }
    }

    /// Among a sample of held entries not in `keep`, the slot of the one with the earliest
    /// `droppable_at` (the nearest to fresh), and that time.
    pub(crate) fn nearest_fresh(&mut self, keep: &[Fingerprint]) -> Option<(usize, Micros)> {
        let slots = self.table.slots();
        if self.table.len() == 0 {
            return None;
        }
        let start = self.evict_cursor % slots;
        let mut best: Option<(usize, Micros)> = None;
        let mut sampled = 0;
        for step in 0..slots {
            let i = (start + step) % slots;
            let entry = self.table.at(i);
            if entry.is_empty() || keep.iter().any(|&fp| entry.holds(fp)) {
                continue;
            }
            if best.is_none_or(|(_, at)| entry.droppable_at < at) {
                best = Some((i, entry.droppable_at));
            }
            sampled += 1;
            if sampled == EVICTION_SAMPLE {
                self.evict_cursor = i + 1;
                break;
            }
        }
        best
    }
}

/// A fingerprint is already a uniform secret hash: the side map uses its low half as it is.
#[derive(Debug, Default)]
pub(crate) struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached (`Fingerprint` hashes two `u64`s); kept correct for any input anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(i: u64) -> Fingerprint {
        Fingerprint::new(i, i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    #[test]
    fn a_log_lives_in_the_side_map_and_moves_out_when_the_state_packs_again() {
        let mut shard = Shard::default();
        let log = State::Log {
            entries: vec![1, 2, 3],
        };
        assert!(shard.upsert(fp(1), log.clone(), 10));
        let mut state = State::Fresh;
        let (pos, side) = shard.load(fp(1), &mut state).expect("held");
        assert_eq!((&state, side), (&log, true));
        // Moved out while a batch holds it; handed back untouched.
        shard.restore(fp(1), state);
        let mut again = State::Fresh;
        assert!(shard.load(fp(1), &mut again).is_some());
        assert_eq!(again, log);
        // A packed state (after a configuration change) frees the side entry.
        shard.write(pos, fp(1), State::Gcra { tat: 5 }, 10);
        assert!(shard.side.is_empty());
        let mut packed = State::Fresh;
        assert_eq!(shard.load(fp(1), &mut packed), Some((pos, false)));
        assert_eq!(packed, State::Gcra { tat: 5 });
        assert!(shard.remove(fp(1)));
        assert!(!shard.remove(fp(1)));
        assert_eq!(shard.table.len(), 0);
    }

    #[test]
    fn the_nearest_fresh_is_the_earliest_droppable_outside_the_batch() {
        let mut shard = Shard::default();
        for i in 1..=40 {
            shard.upsert(fp(i), State::Gcra { tat: i }, 1000 - i);
        }
        // Key 40 is the nearest fresh, but it belongs to the batch.
        let (pos, at) = shard.nearest_fresh(&[fp(40)]).expect("a candidate");
        assert_eq!(at, 961);
        assert!(shard.table.at(pos).holds(fp(39)));
        assert_eq!(shard.nearest_fresh(&[]).map(|(_, at)| at), Some(960));
    }

    #[test]
    fn dropping_skips_the_batch_and_refreshes_the_earliest_drop() {
        let mut shard = Shard::default();
        for i in 1..=10 {
            shard.upsert(fp(i), State::Fresh, i * 10);
        }
        assert_eq!(shard.earliest_drop, 10);
        let (removed, _) = shard.drop_droppable(0, usize::MAX, 50, &[fp(2)]);
        assert_eq!(removed, 4, "10, 30, 40 and 50; 20 is the batch's");
        assert_eq!(shard.earliest_drop, 20);
        assert_eq!(shard.table.len(), 6);
    }
}
