//! The SQLite store against raw SQLite upserts, measured in the same run, on files in WAL mode.
//!
//! - `raw_upsert/{1,4}`: the baseline: one `BEGIN IMMEDIATE; INSERT ... ON CONFLICT DO UPDATE
//!   ... RETURNING; COMMIT` per operation on a single row, with the store's pragmas (WAL,
//!   `synchronous=NORMAL`, a busy timeout); from 1 thread, and from 4 threads with a
//!   connection each (they take turns at the write lock through SQLite's busy handler).
//! - `raw_upsert_5rows/1`: five such upserts (the rows of a default decision) per
//!   transaction: what SQLite itself needs for the writes of `default_decision`.
//! - `single_limit/{1,4}`: `Store::evaluate` of one sliding-window limit, from 1 task and from
//!   4 concurrent tasks (the worker commits what queued together: group commit).
//! - `default_decision/{1,4}`: the five limits of the default policies in one batch: sliding
//!   window 100/hour, GCRA 10/minute, calendar 500/day, sliding window 1000/hour, GCRA
//!   600/minute.
//!
//! Decisions go round-robin over 10 000 subjects while injected time advances 20 ms per
//! decision, so each subject is asked every 200 s, a pace all five limits admit: every
//! decision is admitted and writes its rows. The baseline upserts rows from the same rotation.
//! Throughput is decisions (or upserts) per second; compare `single_limit` and
//! `default_decision` with `raw_upsert` at the same thread count, and `/4` with `/1`.
//!
//! Run: `cargo bench -p limiter-benches --bench sqlite -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use limiter_core::{
    Batch, Calendar, Check, EvalOptions, Key, Limit, Micros, Rate, Store, SubjectKind, Unit,
};
use limiter_sqlite::{SqliteConfig, SqliteStore};
use rusqlite::{Connection, TransactionBehavior};

/// 2026-11-26T00:00:00Z.
const START: Micros = 1_795_651_200_000_000;
/// Injected time between two decisions.
const STEP: Micros = 20_000;
const SUBJECTS: u64 = 10_000;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

fn rate(limit: u64, unit: Unit) -> Rate {
    Rate::per(limit, unit).expect("bench rates are valid")
}

/// The limits of the default decision, in the order the brief lists them.
fn default_limits() -> Vec<(&'static str, SubjectKind, Arc<Limit>)> {
    let calendar = Limit::calendar(rate(500, Unit::Day), Calendar::utc()).expect("daily");
    vec![
        (
            "plan_sustained",
            SubjectKind::Tenant,
            Arc::new(Limit::sliding_window(rate(100, Unit::Hour))),
        ),
        (
            "plan_burst",
            SubjectKind::Tenant,
            Arc::new(Limit::gcra(rate(10, Unit::Minute))),
        ),
        ("plan_daily", SubjectKind::Tenant, Arc::new(calendar)),
        (
            "role",
            SubjectKind::User,
            Arc::new(Limit::sliding_window(rate(1000, Unit::Hour))),
        ),
        (
            "ip_burst",
            SubjectKind::Ip,
            Arc::new(Limit::gcra(rate(600, Unit::Minute))),
        ),
    ]
}

/// One batch per subject, built before timing.
fn batches(limits: usize) -> Arc<Vec<Batch>> {
    let all = default_limits();
    let batches = (0..SUBJECTS)
        .map(|s| {
            let subject = format!("subject-{s}");
            let checks = all.iter().take(limits).map(|(policy, kind, limit)| {
                let key = Key::new("bench", policy, *kind, &subject);
                Check::new(*policy, key, limit.clone(), 1)
            });
            Batch::new(checks).expect("distinct keys")
        })
        .collect();
    Arc::new(batches)
}

/// The `i`-th decision of a run: its subject and its time.
fn nth(i: u64) -> (usize, Micros) {
    let subject = usize::try_from(i % SUBJECTS).expect("small");
    (subject, START + i * STEP)
}

/// Runs `iters` decisions from `tasks` concurrent tasks; returns the time they took.
async fn run_store(
    store: &Arc<SqliteStore>,
    batches: &Arc<Vec<Batch>>,
    counter: &Arc<AtomicU64>,
    tasks: u64,
    iters: u64,
) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (store, batches, counter) = (store.clone(), batches.clone(), counter.clone());
            // The first `iters % tasks` tasks take one more.
            let mine = iters / tasks + u64::from(t < iters % tasks);
            tokio::spawn(async move {
                for _ in 0..mine {
                    let (subject, now) = nth(counter.fetch_add(1, Ordering::Relaxed));
                    let outcome = store
                        .evaluate(&batches[subject], &EvalOptions::at(now))
                        .await
                        .expect("evaluate");
                    assert!(outcome.allowed, "the bench pace must admit every decision");
                    black_box(outcome);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    started.elapsed()
}

fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open raw");
    conn.busy_timeout(BUSY_TIMEOUT).expect("busy timeout");
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .expect("wal");
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
    conn
}

const UPSERT: &str = "INSERT INTO counters (key, n) VALUES (?1, 1) \
                      ON CONFLICT (key) DO UPDATE SET n = n + 1 RETURNING n";

/// Runs `iters` single-row upserts, one transaction each, from `threads` threads.
fn run_raw(
    path: &Path,
    keys: &Arc<Vec<Vec<String>>>,
    counter: &Arc<AtomicU64>,
    threads: u64,
    iters: u64,
) -> Duration {
    let mut conns: Vec<Connection> = (0..threads).map(|_| raw_connection(path)).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (t, conn) in conns.iter_mut().enumerate() {
            let (keys, counter) = (keys.clone(), counter.clone());
            let t = u64::try_from(t).expect("small");
            let mine = iters / threads + u64::from(t < iters % threads);
            scope.spawn(move || {
                for _ in 0..mine {
                    let (subject, _) = nth(counter.fetch_add(1, Ordering::Relaxed));
                    let tx = conn
                        .transaction_with_behavior(TransactionBehavior::Immediate)
                        .expect("begin");
                    for key in &keys[subject] {
                        let n: i64 = tx
                            .prepare_cached(UPSERT)
                            .expect("prepare")
                            .query_row([key.as_str()], |r| r.get(0))
                            .expect("upsert");
                        black_box(n);
                    }
                    tx.commit().expect("commit");
                }
            });
        }
    });
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("sqlite");
    group.throughput(Throughput::Elements(1));

    // The baselines: one row per transaction (the brief's), and the five rows of a default
    // decision per transaction (SQLite's own floor for the same writes).
    for (name, rows, thread_counts) in [
        ("raw_upsert", 1, &[1, 4][..]),
        ("raw_upsert_5rows", 5, &[1][..]),
    ] {
        let path = dir.path().join(format!("{name}.db"));
        raw_connection(&path)
            .execute_batch(
                "CREATE TABLE counters (key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;",
            )
            .expect("table");
        let keys: Arc<Vec<Vec<String>>> = Arc::new(
            (0..SUBJECTS)
                .map(|s| {
                    let subject = format!("subject-{s}");
                    default_limits()
                        .iter()
                        .take(rows)
                        .map(|(policy, kind, _)| {
                            Key::new("bench", policy, *kind, &subject).to_string()
                        })
                        .collect()
                })
                .collect(),
        );
        for &threads in thread_counts {
            let counter = Arc::new(AtomicU64::new(0));
            group.bench_function(BenchmarkId::new(name, threads), |b| {
                b.iter_custom(|iters| run_raw(&path, &keys, &counter, threads, iters));
            });
        }
    }

    for (name, limits) in [("single_limit", 1), ("default_decision", 5)] {
        let batches = batches(limits);
        let path = dir.path().join(format!("{name}.db"));
        let config = SqliteConfig::default()
            .with_busy_timeout(BUSY_TIMEOUT)
            .with_sweep_interval(None);
        let store = Arc::new(
            runtime
                .block_on(SqliteStore::open(&path, config))
                .expect("open"),
        );
        // One shared sequence per store, so that injected time only moves forward.
        let counter = Arc::new(AtomicU64::new(0));
        for tasks in [1, 4] {
            group.bench_function(BenchmarkId::new(name, tasks), |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let (store, batches, counter) =
                        (store.clone(), batches.clone(), counter.clone());
                    async move { run_store(&store, &batches, &counter, tasks, iters).await }
                });
            });
        }
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
