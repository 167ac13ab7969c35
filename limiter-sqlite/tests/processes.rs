//! Several processes sharing one file, and a process killed in the middle of writing.
//!
//! Each test re-runs this test binary as child processes (`--exact <test> --nocapture`, with
//! `LIMITER_SQLITE_CHILD` naming what the child does and `LIMITER_SQLITE_CHILD_DB` the file);
//! children talk to the parent through stdin and stdout.

mod common;

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use limiter_core::{
    Batch, Check, EvalOptions, Key, Limit, Micros, Rate, State, Store, SubjectKind, Unit,
};
use limiter_sqlite::{SqliteConfig, SqliteStore};
use limiter_testkit::fixtures::hammer;
use rusqlite::Connection;

const CHILD: &str = "LIMITER_SQLITE_CHILD";
const CHILD_DB: &str = "LIMITER_SQLITE_CHILD_DB";

/// The frozen time of every decision.
const NOW: Micros = 1_795_651_200_000_000;

fn key(name: &str) -> Key {
    Key::new("procs", "policy", SubjectKind::Tenant, name)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn config() -> SqliteConfig {
    SqliteConfig::default()
        .with_sweep_interval(None)
        .with_busy_timeout(Duration::from_secs(20))
}

/// The role this process plays, if it is a child.
fn child_role() -> Option<(String, PathBuf)> {
    let role = std::env::var(CHILD).ok()?;
    let db = std::env::var_os(CHILD_DB).expect("a child is given its database");
    Some((role, PathBuf::from(db)))
}

struct Kid {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Kid {
    fn spawn(test: &str, role: &str, db: &Path) -> Kid {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Command::new(exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD, role)
            .env(CHILD_DB, db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Kid { child, stdout }
    }

    /// Reads the child's output until a line with `marker` (what the child [`say`]s, perhaps
    /// after the harness' `test name ... `); returns what follows the marker.
    fn expect_line(&mut self, marker: &str) -> String {
        let marker = format!("{MARK}{marker}");
        for line in &mut self.stdout {
            let line = line.expect("read child output");
            if let Some((_, rest)) = line.split_once(&marker) {
                return rest.to_owned();
            }
        }
        panic!(
            "child ended without printing {marker:?}: {:?}",
            self.child.wait()
        );
    }

    fn tell(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to child");
        stdin.flush().expect("flush");
    }
}

/// Sets what a child says apart from the test harness' own output.
const MARK: &str = "@child@";

impl Drop for Kid {
    // A failing test must not leave its children running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}{line}").expect("stdout");
    out.flush().expect("flush");
}

fn wait_for_parent() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
}

// ---------------------------------------------------------------------------------------------
// Four processes, one key, frozen clock: together they admit exactly the limit.

const SHARED_LIMIT: u64 = 300;
const TASKS_PER_CHILD: u64 = 4;
const ATTEMPTS_PER_TASK: u64 = 120;

fn shared_batch() -> Batch {
    let limit = Limit::sliding_window(Rate::per(SHARED_LIMIT, Unit::Hour).expect("rate"));
    Batch::new(vec![Check::new("shared", key("shared"), limit, 1)]).expect("batch")
}

#[test]
fn four_processes_share_one_limit_exactly() {
    const TEST: &str = "four_processes_share_one_limit_exactly";
    if let Some((role, db)) = child_role() {
        assert_eq!(role, "hammer");
        runtime().block_on(run_child(&db));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("shared.db");
    let mut kids: Vec<Kid> = (0..4).map(|_| Kid::spawn(TEST, "hammer", &db)).collect();
    // Every child has opened the file before any starts, so that they all contend.
    for kid in &mut kids {
        kid.expect_line("ready");
    }
    for kid in &mut kids {
        kid.tell("go");
    }
    let mut total = 0;
    let mut each = Vec::new();
    for kid in &mut kids {
        let admitted: u64 = kid.expect_line("admitted=").parse().expect("a count");
        each.push(admitted);
        total += admitted;
        assert!(kid.child.wait().expect("wait").success());
    }
    assert_eq!(total, SHARED_LIMIT, "admitted per process: {each:?}");

    let (bytes, _) = common::stored_row(&db, &key("shared")).expect("row");
    match State::decode(&bytes).expect("decodable") {
        State::Window { current, .. } => assert_eq!(current, SHARED_LIMIT),
        other => panic!("unexpected state {other:?}"),
    }
}

async fn run_child(db: &Path) {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(db, config()).await.expect("child open"));
    say("ready");
    wait_for_parent();
    let batch = shared_batch();
    let admitted = hammer(&store, TASKS_PER_CHILD, ATTEMPTS_PER_TASK, NOW, |_| {
        batch.clone()
    })
    .await;
    say(&format!("admitted={admitted}"));
}

// ---------------------------------------------------------------------------------------------
// A process killed (SIGKILL) under sustained load of two-limit decisions: the file is intact
// and every decision was charged to both keys or to neither.

const ROUNDS: u64 = 4;
const DECISIONS_PER_ROUND: u64 = 500;

fn pair_batch() -> Batch {
    let huge = Limit::sliding_window(Rate::per(limiter_core::MAX_LIMIT, Unit::Hour).expect("rate"));
    Batch::new(vec![
        Check::new("a", key("A"), huge.clone(), 1),
        Check::new("b", key("B"), huge, 1),
    ])
    .expect("batch")
}

/// The counts of keys A and B, read in one snapshot.
fn counts(conn: &Connection) -> (u64, u64) {
    let count = |bytes: Option<Vec<u8>>| match bytes.map(|b| State::decode(&b)) {
        None => 0,
        Some(Some(State::Window { current, .. })) => current,
        Some(other) => panic!("unexpected state {other:?}"),
    };
    conn.query_row(
        "SELECT (SELECT state FROM limiter_state WHERE key = ?1), \
                (SELECT state FROM limiter_state WHERE key = ?2)",
        [key("A").as_str(), key("B").as_str()],
        |r| Ok((count(r.get(0)?), count(r.get(1)?))),
    )
    .expect("counts")
}

#[test]
fn a_killed_process_leaves_no_partial_decision() {
    const TEST: &str = "a_killed_process_leaves_no_partial_decision";
    if let Some((role, db)) = child_role() {
        assert_eq!(role, "load");
        runtime().block_on(load(&db));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let mut before = 0;
    for round in 0..ROUNDS {
        let mut kid = Kid::spawn(TEST, "load", &db);
        kid.expect_line("loading");
        // Let it commit a good number of decisions, then kill it wherever it is.
        let watcher = Connection::open(&db).expect("raw");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (a, b) = counts(&watcher);
            assert_eq!(a, b, "a reader saw a partial decision in round {round}");
            if a >= before + DECISIONS_PER_ROUND {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the child made no progress in round {round}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        kid.child.kill().expect("SIGKILL");
        let status = kid.child.wait().expect("wait");
        assert!(!status.success(), "the child was killed, not finished");
        drop(watcher);

        let conn = Connection::open(&db).expect("reopen after the crash");
        let integrity: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(integrity, vec!["ok".to_owned()], "round {round}");
        let (a, b) = counts(&conn);
        assert_eq!(
            a, b,
            "a partial decision survived the crash in round {round}"
        );
        assert!(
            a >= before + DECISIONS_PER_ROUND,
            "committed decisions were lost"
        );
        before = a;
    }

    // The store opens the crashed file and goes on counting both keys together.
    runtime().block_on(async {
        let store = SqliteStore::open(&db, config())
            .await
            .expect("open after crashes");
        let outcome = store
            .evaluate(&pair_batch(), &EvalOptions::at(NOW))
            .await
            .expect("ok");
        assert!(outcome.allowed);
    });
    let (a, b) = counts(&Connection::open(&db).expect("raw"));
    assert_eq!((a, b), (before + 1, before + 1));
}

async fn load(db: &Path) {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(db, config()).await.expect("child open"));
    say("loading");
    let batch = Arc::new(pair_batch());
    for _ in 0..8 {
        let (store, batch) = (store.clone(), batch.clone());
        tokio::spawn(async move {
            loop {
                let outcome = store.evaluate(&batch, &EvalOptions::at(NOW)).await;
                assert!(outcome.expect("evaluate").allowed);
            }
        });
    }
    // The tasks run until the parent kills this process.
    std::future::pending::<()>().await;
}
