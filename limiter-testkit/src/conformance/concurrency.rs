//! Concurrent requests admit exactly the limit.

use std::sync::Arc;

use limiter_core::{Store, Unit};

use super::run::{Run, batch};
use crate::fixtures::*;

const TASKS: u64 = 64;
const REQUESTS_PER_TASK: u64 = 4;

/// 64 tasks send 4 requests each at one frozen instant to one key limited to 50: exactly 50
/// are admitted, under each algorithm. Then the same with a batch of that shared key and a key
/// of the task's own: the shared limit admits exactly 50 and the tasks' keys are charged only
/// for admitted batches.
pub async fn concurrent_requests_admit_exactly_the_limit(store: &Arc<dyn Store>, namespace: &str) {
    let run = Run {
        store: &**store,
        namespace,
    };
    let now = BASE_NOW + 23 * HOUR;
    for (i, limit) in every_algorithm(50).into_iter().enumerate() {
        let check = run.check(&format!("hammered{i}"), &limit, 1);
        let admitted = hammer(store, TASKS, REQUESTS_PER_TASK, now, |_| {
            batch(std::slice::from_ref(&check))
        })
        .await;
        assert_eq!(
            admitted, 50,
            "{store}: {limit}: {TASKS}x{REQUESTS_PER_TASK} concurrent requests"
        );
        let own_limit = sliding_window(1_000, Unit::Minute);
        let shared = run.check(&format!("shared{i}"), &limit, 1);
        let own = |task: u64| run.check(&format!("own{i}-{task}"), &own_limit, 1);
        let admitted = hammer(store, TASKS, REQUESTS_PER_TASK, now, |task| {
            batch(&[own(task), shared.clone()])
        })
        .await;
        assert_eq!(admitted, 50, "{store}: {limit}: concurrent batches");
        let mut charged = 0;
        for task in 0..TASKS {
            // A peek reports what would remain after one more unit.
            charged += 999 - run.peek_one(&own(task), now).await.remaining;
        }
        assert_eq!(
            charged, 50,
            "{store}: {limit}: tasks' own keys charged by denied batches"
        );
    }
}
