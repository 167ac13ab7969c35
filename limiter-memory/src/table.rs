//! An open-addressing hash table of [`Entry`]s: linear probing, backward-shift deletion.
//!
//! Linear probing keeps a key's probe sequence in consecutive 40-byte slots (a lookup of a held
//! key touches one or two cache lines), and backward-shift deletion leaves no tombstones, so
//! lookups never slow down as keys come and go. The slot count is not a power of two: the home
//! slot is `lo * slots / 2^64` (a multiply, no division), so the table can grow by 1.25x and
//! stay between 64% and 80% full, which is what keeps a tracked key under 64 bytes.

use crate::entry::Entry;
use crate::fingerprint::Fingerprint;

/// The fewest slots of a table that holds anything.
const MIN_SLOTS: usize = 8;

/// A table grows before more than `LOAD_NUM / LOAD_DEN` (80%) of its slots are taken...
const LOAD_NUM: usize = 4;
const LOAD_DEN: usize = 5;

/// The slots of a shard's keys; each key (fingerprint) at most once.
#[derive(Debug, Default)]
pub(crate) struct Table {
    slots: Vec<Entry>,
    len: usize,
}

impl Table {
    /// How many keys the table holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many slots it has (held or free).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The slot at `i` (possibly free); `i < slots()`.
    pub(crate) fn at(&self, i: usize) -> &Entry {
        &self.slots[i]
    }

    /// The slot at `i`, to update in place; the caller keeps its fingerprint.
    pub(crate) fn at_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.slots[i]
    }

    /// Where `fp` would start probing: `lo` scaled to the slot count.
    #[inline]
    fn home(&self, lo: u64) -> usize {
        let slots = u64::try_from(self.slots.len()).unwrap_or(u64::MAX);
        let scaled = (u128::from(lo) * u128::from(slots)) >> 64;
        usize::try_from(scaled).unwrap_or(0)
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// The slot holding `fp`, if any.
    #[inline]
    pub(crate) fn find(&self, fp: Fingerprint) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(fp.lo);
        // The table is never full (load <= 80%), so a free slot ends every probe.
        loop {
            let entry = &self.slots[i];
            if entry.holds(fp) {
                return Some(i);
            }
            if entry.is_empty() {
                return None;
            }
            i = self.next(i);
        }
    }

    /// Adds `entry`, whose fingerprint the table must not hold yet; returns its slot. May grow
    /// the table, which moves other entries.
    pub(crate) fn insert(&mut self, entry: Entry) -> usize {
        debug_assert!(self.find(entry.fingerprint()).is_none());
        if (self.len + 1) * LOAD_DEN > self.slots.len() * LOAD_NUM {
            let grown = (self.slots.len() + self.slots.len() / 4)
                .max(((self.len + 1) * LOAD_DEN).div_ceil(LOAD_NUM))
                .max(MIN_SLOTS);
            self.rebuild(grown);
        }
        self.len += 1;
        self.place(entry)
    }

    /// Puts `entry` in the first free slot of its probe sequence.
    fn place(&mut self, entry: Entry) -> usize {
        let mut i = self.home(entry.fingerprint().lo);
        while !self.slots[i].is_empty() {
            i = self.next(i);
        }
        self.slots[i] = entry;
        i
    }

    /// Rehashes every entry into `slots` slots (exactly that many are allocated).
    fn rebuild(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Entry::EMPTY; slots]);
        for entry in old.into_iter().filter(|e| !e.is_empty()) {
            self.place(entry);
        }
    }

    /// Gives back memory after many removals: below 40% full, the table is rebuilt about 64%
    /// full (never below [`MIN_SLOTS`]; an empty table frees everything).
    pub(crate) fn shrink_if_sparse(&mut self) {
        if self.len == 0 {
            self.slots = Vec::new();
        } else if self.len * 5 < self.slots.len() * 2 && self.slots.len() > MIN_SLOTS {
            let target = (self.len * 25).div_ceil(16).max(MIN_SLOTS);
            self.rebuild(target);
        }
    }

    /// Removes the entry at `hole` and returns it. Later entries of the same probe run move back
    /// into the gap when that keeps them at or after their home slot, so that no lookup ever
    /// stops early at the freed slot.
    pub(crate) fn remove_at(&mut self, mut hole: usize) -> Entry {
        let removed = std::mem::take(&mut self.slots[hole]);
        debug_assert!(!removed.is_empty());
        let n = self.slots.len();
        let mut j = hole;
        loop {
            j = self.next(j);
            let entry = self.slots[j];
            if entry.is_empty() {
                break;
            }
            let home = self.home(entry.fingerprint().lo);
            // How far the entry sits past its home, and how far past the hole.
            let displaced = (j + n - home) % n;
            let from_hole = (j + n - hole) % n;
            if displaced >= from_hole {
                self.slots[hole] = entry;
                self.slots[j] = Entry::EMPTY;
                hole = j;
            }
        }
        self.len -= 1;
        removed
    }

    /// Removes every held entry in slots `start..end` (clamped to the table) that `drop` picks,
    /// handing each to `removed`. Returns the slot after the last one visited.
    ///
    /// A removal may move a later entry into the visited slot, which is then visited again, so
    /// a scan of `0..slots()` sees every entry at least once (an entry only ever moves one slot
    /// back, or from slot 0 to the last slot).
    pub(crate) fn remove_where(
        &mut self,
        start: usize,
        end: usize,
        mut drop: impl FnMut(&Entry) -> bool,
        mut removed: impl FnMut(Entry),
    ) -> usize {
        let end = end.min(self.slots.len());
        let mut i = start;
        while i < end {
            let entry = &self.slots[i];
            if !entry.is_empty() && drop(entry) {
                removed(self.remove_at(i));
            } else {
                i += 1;
            }
        }
        end
    }

    /// Heap bytes the table holds.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use limiter_core::State;
    use proptest::prelude::*;

    use super::*;

    fn fp(key: u16) -> Fingerprint {
        // Few distinct homes on purpose: long probe runs, wrap-around, many shifts.
        let lo = u64::from(key % 37).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Fingerprint::new(u64::from(key), lo)
    }

    fn entry(key: u16, value: u64) -> Entry {
        Entry::new(fp(key), &State::Gcra { tat: value }, value)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u16, u64),
        Remove(u16),
        Sweep(u64),
        SweepSlice(usize, usize, u64),
        Shrink,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..300u16, 0..100u64).prop_map(|(k, v)| Op::Upsert(k, v)),
            3 => (0..300u16).prop_map(Op::Remove),
            1 => (0..100u64).prop_map(Op::Sweep),
            1 => (0..64usize, 0..64usize, 0..100u64).prop_map(|(s, l, v)| Op::SweepSlice(s, l, v)),
            1 => Just(Op::Shrink),
        ]
    }

    /// Every key's probe run from its home reaches it with no free slot between.
    fn check_invariants(table: &Table) {
        let held = table.slots.iter().filter(|e| !e.is_empty()).count();
        assert_eq!(held, table.len);
        assert!(table.len * LOAD_DEN <= table.slots.len() * LOAD_NUM || table.len == 0);
        for (i, e) in table.slots.iter().enumerate() {
            if !e.is_empty() {
                assert_eq!(table.find(e.fingerprint()), Some(i));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The table against a `HashMap`: the same keys, the same values, after any sequence of
        /// inserts, updates, removals, growth, full and partial sweeps and shrinks.
        #[test]
        fn the_table_behaves_as_a_map(ops in proptest::collection::vec(op(), 1..400)) {
            let mut table = Table::default();
            let mut model: HashMap<u16, u64> = HashMap::new();
            for op in ops {
                match op {
                    Op::Upsert(k, v) => {
                        match table.find(fp(k)) {
                            Some(i) => *table.at_mut(i) = entry(k, v),
                            None => { table.insert(entry(k, v)); }
                        }
                        model.insert(k, v);
                    }
                    Op::Remove(k) => {
                        let removed = table.find(fp(k)).map(|i| table.remove_at(i));
                        prop_assert_eq!(removed.map(|e| e.droppable_at), model.remove(&k));
                    }
                    Op::Sweep(at) => {
                        let mut gone = Vec::new();
                        let slots = table.slots();
                        table.remove_where(0, slots, |e| e.droppable_at <= at, |e| gone.push(e));
                        let mut expected: Vec<u64> = model.values().copied().filter(|v| *v <= at).collect();
                        model.retain(|_, v| *v > at);
                        let mut got: Vec<u64> = gone.iter().map(|e| e.droppable_at).collect();
                        expected.sort_unstable();
                        got.sort_unstable();
                        prop_assert_eq!(got, expected);
                    }
                    Op::SweepSlice(start, len, at) => {
                        let mut gone = Vec::new();
                        table.remove_where(start, start + len, |e| e.droppable_at <= at, |e| gone.push(e));
                        for e in gone {
                            prop_assert!(e.droppable_at <= at);
                            let key = u16::try_from(e.fingerprint().hi).expect("test keys");
                            prop_assert_eq!(model.remove(&key), Some(e.droppable_at));
                        }
                    }
                    Op::Shrink => table.shrink_if_sparse(),
                }
                check_invariants(&table);
                prop_assert_eq!(table.len(), model.len());
            }
            for (k, v) in &model {
                let i = table.find(fp(*k));
                prop_assert!(i.is_some(), "key {} lost", k);
                prop_assert_eq!(table.at(i.unwrap_or(0)).state(), Some(State::Gcra { tat: *v }));
            }
        }
    }

    #[test]
    fn growth_keeps_the_table_between_64_and_80_percent_full() {
        let mut table = Table::default();
        let mut worst: f64 = 1.0;
        for k in 0..20_000u32 {
            let lo = u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            table.insert(Entry::new(
                Fingerprint::new(u64::from(k), lo),
                &State::Fresh,
                0,
            ));
            if table.len() > 1000 {
                worst = worst.min(table.len() as f64 / table.slots() as f64);
            }
        }
        assert!(worst >= 0.63, "load fell to {worst}");
        assert!(
            table.heap_bytes() <= 64 * table.len(),
            "{} bytes",
            table.heap_bytes()
        );
    }
}
