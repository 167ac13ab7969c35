//! Key pools, checks and batches.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use limiter_core::batch::{Batch, Check};
use limiter_core::{Key, Limit, SubjectKind};

use super::*;

/// A key of a trace's or batch's pool, with the limit it is always checked against (a key's
/// limit does not change within a trace, as it does not between configuration changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolKey {
    /// The policy name.
    pub policy: Arc<str>,
    /// The store key.
    pub key: Key,
    /// The limit.
    pub limit: Arc<Limit>,
}

/// A pool of 1 to 4 distinct keys in `namespace`, each with a [`small_limit`]. Subjects
/// sometimes hold the characters keys escape (`:`, `{`, `}`, `%`).
pub fn key_pool(namespace: &str) -> BoxedStrategy<Vec<PoolKey>> {
    let namespace: Arc<str> = namespace.into();
    let kinds = vec![
        SubjectKind::User,
        SubjectKind::Tenant,
        SubjectKind::Ip,
        SubjectKind::ApiKey,
    ];
    let subjects = vec!["u-1", "acme", "a:b", "{x}", "100%", "203.0.113.9"];
    let entry = (select(kinds), select(subjects), small_limit());
    prop::collection::vec(entry, 1..=4)
        .prop_map(move |entries| {
            entries
                .into_iter()
                .enumerate()
                .map(|(i, (kind, subject, limit))| {
                    // The index makes keys distinct whatever the subjects drawn.
                    let policy: Arc<str> = format!("p{i}").into();
                    PoolKey {
                        key: Key::new(&namespace, &policy, kind, subject),
                        policy,
                        limit: Arc::new(limit),
                    }
                })
                .collect()
        })
        .boxed()
}

/// The check of one pool key: a [`cost`], shadow one time in six.
fn check(entry: &PoolKey) -> BoxedStrategy<Check> {
    let entry = entry.clone();
    (
        cost(entry.limit.rate().limit()),
        prop::bool::weighted(1.0 / 6.0),
    )
        .prop_map(move |(cost, shadow)| {
            let check = Check::new(
                entry.policy.clone(),
                entry.key.clone(),
                entry.limit.clone(),
                cost,
            );
            if shadow { check.shadow() } else { check }
        })
        .boxed()
}

/// A batch over some of `pool`'s keys (possibly none), in any order.
pub fn batch_from(pool: Vec<PoolKey>) -> BoxedStrategy<Batch> {
    let n = pool.len();
    let pool = Arc::new(pool);
    subsequence((0..n).collect::<Vec<_>>(), 0..=n)
        .prop_shuffle()
        .prop_flat_map(move |picked| {
            picked
                .into_iter()
                .map(|i| check(&pool[i]))
                .collect::<Vec<_>>()
        })
        .prop_filter_map("distinct keys", |checks| Batch::new(checks).ok())
        .boxed()
}

/// The checks of a batch in `namespace`: distinct keys from a small pool, costs mostly 1,
/// sometimes larger, sometimes above the limit, some in shadow mode.
pub fn checks(namespace: &str) -> BoxedStrategy<Vec<Check>> {
    batch(namespace).prop_map(|b| b.checks().to_vec()).boxed()
}

/// A batch in `namespace`, as [`checks`].
pub fn batch(namespace: &str) -> BoxedStrategy<Batch> {
    key_pool(namespace).prop_flat_map(batch_from).boxed()
}
