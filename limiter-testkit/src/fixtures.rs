//! Values and helpers that tests of every crate share: instants, one limit per algorithm,
//! the number of proptest cases, and a hammer for concurrency tests.

use std::sync::Arc;

use limiter_core::batch::Batch;
use limiter_core::time::Micros;
use limiter_core::{Calendar, EvalOptions, Limit, Rate, Store, Unit};

/// 2026-11-26T00:00:00Z, the instant contracts start from (plus offsets).
pub const BASE_NOW: Micros = 1_795_651_200_000_000;

/// One second.
pub const SECOND: Micros = 1_000_000;
/// One minute.
pub const MINUTE: Micros = 60 * SECOND;
/// One hour.
pub const HOUR: Micros = 60 * MINUTE;

/// `limit` per `unit`.
pub fn rate(limit: u64, unit: Unit) -> Rate {
    Rate::per(limit, unit).expect("contract rates are valid")
}

/// A GCRA limit of `limit` per `unit`.
pub fn gcra(limit: u64, unit: Unit) -> Limit {
    Limit::gcra(rate(limit, unit))
}

/// A sliding-window limit of `limit` per `unit`.
pub fn sliding_window(limit: u64, unit: Unit) -> Limit {
    Limit::sliding_window(rate(limit, unit))
}

/// A sliding-log limit of `limit` per `unit`.
pub fn sliding_log(limit: u64, unit: Unit) -> Limit {
    Limit::sliding_log(rate(limit, unit)).expect("contract sliding logs are small")
}

/// A calendar-day limit of `limit` per day in `zone`.
pub fn calendar(limit: u64, zone: &str) -> Limit {
    let calendar = Calendar::new(zone).expect("contract time zones exist");
    Limit::calendar(rate(limit, Unit::Day), calendar).expect("contract calendars are daily")
}

/// One limit of `limit` per minute (per day for the calendar) under each algorithm.
pub fn every_algorithm(limit: u64) -> [Limit; 4] {
    [
        gcra(limit, Unit::Minute),
        sliding_window(limit, Unit::Minute),
        sliding_log(limit, Unit::Minute),
        calendar(limit, "UTC"),
    ]
}

/// The period after which a limit of [`every_algorithm`] is whole again, at the latest.
pub fn span(limit: &Limit) -> Micros {
    limit.rate().period().micros()
}

/// The number of proptest cases: `LIMITER_PROPTEST_CASES`, or `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("LIMITER_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Runs `tasks` tasks at once, each evaluating its batch (`batch_of(task)`) `requests` times at
/// `now`, and returns how many evaluations were admitted: what a concurrency test counts.
pub async fn hammer(
    store: &Arc<dyn Store>,
    tasks: u64,
    requests: u64,
    now: Micros,
    batch_of: impl Fn(u64) -> Batch,
) -> u64 {
    let mut running = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let store = Arc::clone(store);
        let batch = batch_of(task);
        running.spawn(async move {
            let mut admitted = 0;
            for _ in 0..requests {
                let outcome = store
                    .evaluate(&batch, &EvalOptions::at(now))
                    .await
                    .unwrap_or_else(|e| panic!("{store}: evaluate failed under concurrency: {e}"));
                admitted += u64::from(outcome.allowed);
            }
            admitted
        });
    }
    let mut admitted = 0;
    while let Some(result) = running.join_next().await {
        admitted += result.unwrap_or_else(|e| panic!("a hammering task failed: {e}"));
    }
    admitted
}
