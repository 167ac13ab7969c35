//! Real threads on one store: exactness under contention, with the clock frozen.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use limiter_core::StoreExt;
use limiter_core::{Batch, Check, EvalOptions, Key, Limit, Micros, Store, Unit};
use limiter_memory::MemoryStore;
use limiter_testkit::fixtures::{every_algorithm, rate};

const NOW: Micros = 1_795_651_200_000_000;
const THREADS: usize = 8;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .build()
        .expect("a tokio runtime")
}

/// 8 OS threads, 400 tasks, 10 requests each, on one key of limit L: exactly L admitted.
#[test]
fn one_hot_key_admits_exactly_the_limit() {
    const LIMIT: u64 = 250;
    const TASKS: usize = 400;
    const PER_TASK: usize = 10;
    let rt = runtime();
    for limit in every_algorithm(LIMIT) {
        let store = Arc::new(MemoryStore::default());
        let key = Key::from_raw(format!("hot:{}", limit.algorithm().name()));
        let batch =
            Arc::new(Batch::new(vec![Check::new("hot", key, limit.clone(), 1)]).expect("batch"));
        let admitted = Arc::new(AtomicU64::new(0));
        rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (store, batch, admitted) = (
                        Arc::clone(&store),
                        Arc::clone(&batch),
                        Arc::clone(&admitted),
                    );
                    tokio::spawn(async move {
                        for _ in 0..PER_TASK {
                            let outcome = store
                                .evaluate(&batch, &EvalOptions::at(NOW))
                                .await
                                .expect("memory store answers");
                            if outcome.allowed {
                                admitted.fetch_add(1, Ordering::Relaxed);
                            }
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task finished");
            }
        });
        assert_eq!(
            admitted.load(Ordering::Relaxed),
            LIMIT,
            "{limit}: {} requests, frozen clock",
            TASKS * PER_TASK
        );
        let peek = rt
            .block_on(store.peek(&batch, &EvalOptions::at(NOW)))
            .expect("peek");
        assert!(!peek.allowed, "{limit}: still denied after the burst");
        assert_eq!(peek.statuses[0].remaining, 0, "{limit}");
    }
}

/// Every request checks three keys with different limits: one global, one per group of tasks,
/// one per task. No limit is charged for a denied request: afterwards, what each key has used
/// (its limit minus what a peek says remains) equals the number of admitted requests that
/// carried it.
#[test]
fn denied_requests_charge_none_of_their_limits() {
    const GLOBAL: u64 = 300;
    const GROUP: u64 = 60;
    const TASK: u64 = 3;
    const GROUPS: usize = 8;
    const TASKS: usize = 240;
    const PER_TASK: usize = 5;
    let rt = runtime();
    let store = Arc::new(MemoryStore::default());
    let global = Key::from_raw("multi:global");
    let group_key = |g: usize| Key::from_raw(format!("multi:group:{g}"));
    let task_key = |t: usize| Key::from_raw(format!("multi:task:{t}"));
    // Different algorithms per level; all with periods far longer than a frozen instant.
    let global_limit = Arc::new(Limit::gcra(rate(GLOBAL, Unit::Hour)));
    let group_limit = Arc::new(Limit::sliding_window(rate(GROUP, Unit::Hour)));
    let task_limit = Arc::new(Limit::sliding_log(rate(TASK, Unit::Hour)).expect("small log"));
    let batch_of = |t: usize| {
        Batch::new(vec![
            Check::new("global", global.clone(), Arc::clone(&global_limit), 1),
            Check::new("group", group_key(t % GROUPS), Arc::clone(&group_limit), 1),
            Check::new("task", task_key(t), Arc::clone(&task_limit), 1),
        ])
        .expect("distinct keys")
    };

    let per_task: Vec<u64> = rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let store = Arc::clone(&store);
                let batch = batch_of(t);
                tokio::spawn(async move {
                    let mut admitted = 0;
                    for _ in 0..PER_TASK {
                        let outcome = store
                            .evaluate(&batch, &EvalOptions::at(NOW))
                            .await
                            .expect("memory store answers");
                        admitted += u64::from(outcome.allowed);
                        tokio::task::yield_now().await;
                    }
                    admitted
                })
            })
            .collect();
        let mut out = Vec::with_capacity(TASKS);
        for t in tasks {
            out.push(t.await.expect("task finished"));
        }
        out
    });

    let used = |key: &Key, limit: &Arc<Limit>| -> u64 {
        let batch =
            Batch::new(vec![Check::new("peek", key.clone(), Arc::clone(limit), 1)]).expect("batch");
        let outcome = rt
            .block_on(store.peek(&batch, &EvalOptions::at(NOW)))
            .expect("peek");
        // `remaining` counts after the peeked request when it would be allowed.
        let status = outcome.statuses[0];
        limit.rate().limit() - status.remaining - u64::from(status.is_allowed())
    };

    let total: u64 = per_task.iter().sum();
    assert!(total > 0 && total <= GLOBAL, "admitted {total}");
    assert_eq!(used(&global, &global_limit), total, "global key");
    let mut by_group: HashMap<usize, u64> = HashMap::new();
    for (t, admitted) in per_task.iter().enumerate() {
        assert!(*admitted <= TASK, "task {t} admitted {admitted}");
        assert_eq!(used(&task_key(t), &task_limit), *admitted, "task {t}");
        *by_group.entry(t % GROUPS).or_default() += admitted;
    }
    for g in 0..GROUPS {
        let admitted = by_group.get(&g).copied().unwrap_or(0);
        assert!(admitted <= GROUP, "group {g} admitted {admitted}");
        assert_eq!(used(&group_key(g), &group_limit), admitted, "group {g}");
    }
}
