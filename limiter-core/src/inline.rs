//! [`InlineVec`]: the few items of one decision (its checks, their statuses) without the heap.

use std::fmt;
use std::ops::{Deref, DerefMut};

use smallvec::SmallVec;

use crate::algorithm::LimitStatus;

/// How many items an [`InlineVec`] holds without the heap: as many as a decision can have
/// under the policy kinds there are (plan sustained, burst and daily, role, scope, IP burst;
/// anonymous requests have fewer). A larger buffer would be copied with every move of a
/// decision for nothing.
pub const INLINE_CHECKS: usize = 6;

/// A vector that keeps up to [`INLINE_CHECKS`] items inline and moves to the heap past that.
///
/// A decision resolves, evaluates and reports a handful of limits on every request; keeping
/// them inline is what lets a warm decision on an in-process store allocate nothing. It
/// dereferences to a slice and converts from and to a `Vec`.
///
/// ```
/// use limiter_core::batch::InlineVec;
///
/// let mut few: InlineVec<u32> = (1..=3).collect();
/// few.push(4);
/// assert_eq!(&*few, &[1, 2, 3, 4]);
/// assert_eq!(Vec::from(few), vec![1, 2, 3, 4]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct InlineVec<T>(SmallVec<[T; INLINE_CHECKS]>);

impl<T> InlineVec<T> {
    /// An empty vector.
    pub fn new() -> InlineVec<T> {
        InlineVec(SmallVec::new())
    }

    /// Appends `item`.
    pub fn push(&mut self, item: T) {
        self.0.push(item);
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl<T> Default for InlineVec<T> {
    fn default() -> Self {
        InlineVec::new()
    }
}

impl<T> Deref for InlineVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> DerefMut for InlineVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for InlineVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> FromIterator<T> for InlineVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        InlineVec(iter.into_iter().collect())
    }
}

impl<T> Extend<T> for InlineVec<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<T> IntoIterator for InlineVec<T> {
    type Item = T;
    type IntoIter = smallvec::IntoIter<[T; INLINE_CHECKS]>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a InlineVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> From<Vec<T>> for InlineVec<T> {
    fn from(items: Vec<T>) -> Self {
        InlineVec(SmallVec::from_vec(items))
    }
}

impl<T> From<InlineVec<T>> for Vec<T> {
    fn from(items: InlineVec<T>) -> Self {
        items.0.into_vec()
    }
}

/// Where [`batch::evaluate`](crate::batch::evaluate) writes the statuses of a batch: a `Vec`,
/// or an [`InlineVec`] that needs no heap for a decision's few limits.
pub trait StatusSink: AsMut<[LimitStatus]> {
    /// Removes every status.
    fn clear(&mut self);
    /// Appends `status`.
    fn push(&mut self, status: LimitStatus);
}

impl StatusSink for Vec<LimitStatus> {
    fn clear(&mut self) {
        Vec::clear(self);
    }
    fn push(&mut self, status: LimitStatus) {
        Vec::push(self, status);
    }
}

impl<T> AsMut<[T]> for InlineVec<T> {
    fn as_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl StatusSink for InlineVec<LimitStatus> {
    fn clear(&mut self) {
        InlineVec::clear(self);
    }
    fn push(&mut self, status: LimitStatus) {
        InlineVec::push(self, status);
    }
}
