//! `limiter report`, run as a built binary on a real SQLite file and a real Redis, populated
//! through the library's event logs.

mod support;

use std::path::Path;
use std::time::Duration;

use limiter_core::event::{EventKind, EventLog, LimitEvent};
use limiter_core::request_log::{format_ts, parse_ts};
use limiter_core::{Calendar, Clock, Micros, SystemClock};
use support::limiter;

const DAY: Micros = 86_400_000_000;
const MINUTE: Micros = 60_000_000;

fn at(ts: &str) -> Micros {
    parse_ts(ts).unwrap()
}

fn event(ts: &str, kind: EventKind, tenant: &str, policy: &str) -> LimitEvent {
    let mut e = LimitEvent::new(at(ts), kind);
    e.tenant = Some(tenant.into());
    e.policy = Some(policy.into());
    e.user = Some("u-42".into());
    e.method = Some("GET".into());
    e.route = Some("/orders/{id}".into());
    e.network = Some("203.0.113.0/24".into());
    e.limit = 10;
    e.period = MINUTE;
    e.window_start = e.at - e.at % MINUTE;
    e
}

/// A daily quota's event: `used` of `limit`.
fn quota(ts: &str, kind: EventKind, tenant: &str, used: u64, limit: u64) -> LimitEvent {
    let mut e = event(ts, kind, tenant, "plan_daily");
    e.limit = limit;
    e.remaining = limit - used;
    e.period = DAY;
    e.window_start = e.at - e.at % DAY;
    e
}

/// What the tests record: on 2026-11-26 (UTC) acme is denied 4 times (3 by burst, 1 by
/// scope.export) and reaches 85% of its daily quota, globex is denied twice and exhausts its
/// quota, initech stays at 79%; umbrella was denied the day before; and one denial of
/// `now-co` happens now.
fn recorded(now: Micros) -> Vec<LimitEvent> {
    let mut bypass = LimitEvent::new(at("2026-11-26T09:00:00Z"), EventKind::Bypassed);
    bypass.tenant = Some("initech".into());
    bypass.reason = Some("staff".into());
    let mut today = event(&format_ts(now), EventKind::Denied, "now-co", "burst");
    today.at = now;
    vec![
        event(
            "2026-11-25T12:00:00Z",
            EventKind::Denied,
            "umbrella",
            "burst",
        ),
        event(
            "2026-11-25T12:00:01Z",
            EventKind::Denied,
            "umbrella",
            "burst",
        ),
        event("2026-11-26T08:00:00Z", EventKind::Denied, "acme", "burst"),
        event("2026-11-26T08:00:01Z", EventKind::Denied, "acme", "burst"),
        event("2026-11-26T08:00:02Z", EventKind::Denied, "globex", "burst"),
        event(
            "2026-11-26T08:30:00Z",
            EventKind::Denied,
            "acme",
            "scope.export",
        ),
        event("2026-11-26T09:00:00Z", EventKind::Denied, "acme", "burst"),
        event("2026-11-26T09:30:00Z", EventKind::Denied, "globex", "burst"),
        bypass,
        quota(
            "2026-11-26T10:00:00Z",
            EventKind::Approaching,
            "acme",
            850,
            1000,
        ),
        quota(
            "2026-11-26T10:00:00Z",
            EventKind::Approaching,
            "initech",
            790,
            1000,
        ),
        quota(
            "2026-11-26T11:00:00Z",
            EventKind::Exhausted,
            "globex",
            100,
            100,
        ),
        today,
    ]
}

/// Appends [`recorded`] to `log` and returns when "now" was.
fn populate(log: &dyn EventLog) -> Micros {
    let now = SystemClock.now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(log.append(&recorded(now)))
        .expect("appended");
    now
}

/// Runs `limiter report ARGS STORE…`.
fn report(dir: &Path, args: &[&str], store: &[&str]) -> support::Run {
    let all: Vec<&str> = ["report"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(store.iter().copied())
        .collect();
    limiter(dir, &all, &[])
}

/// Every question, asked of `store` after [`populate`].
fn questions(dir: &Path, store: &[&str], now: Micros) {
    // Tenants hitting limits on a day, with counts by policy.
    let run = report(dir, &["--day", "2026-11-26"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "tenants that hit limits from 2026-11-26T00:00:00Z to 2026-11-27T00:00:00Z\n\
         TENANT  DENIALS  BY POLICY\n\
         acme    4        burst=3 scope.export=1\n\
         globex  2        burst=2\n"
    );
    // The same as a range, in JSON.
    let run = report(
        dir,
        &[
            "--since",
            "2026-11-25T12:00:01Z",
            "--until",
            "2026-11-26T08:00:02Z",
            "--format",
            "json",
        ],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "from": "2026-11-25T12:00:01Z",
            "to": "2026-11-26T08:00:02Z",
            "time_zone": "UTC",
            "tenants": [
                {"tenant": "acme", "denials": 2, "by_policy": [{"policy": "burst", "denials": 2}]},
                {"tenant": "umbrella", "denials": 1, "by_policy": [{"policy": "burst", "denials": 1}]},
            ]
        })
    );
    // Today by default: only what happened today.
    let run = report(dir, &["--format", "json"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let today = Calendar::utc().day_bounds(now).0;
    assert_eq!(json["from"], format_ts(today));
    assert_eq!(
        json["tenants"],
        serde_json::json!([
            {"tenant": "now-co", "denials": 1, "by_policy": [{"policy": "burst", "denials": 1}]}
        ])
    );

    // Top hit tenants of a day.
    let run = report(dir, &["--top", "5", "--day", "2026-11-26"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "top 5 tenants by denials on 2026-11-26 (UTC)\n\
         RANK  TENANT  DENIALS\n\
         1     acme    4\n\
         2     globex  2\n"
    );
    let run = report(
        dir,
        &["--top", "1", "--day", "2026-11-25", "--format", "json"],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"day": "2026-11-25", "time_zone": "UTC",
            "tenants": [{"tenant": "umbrella", "denials": 2}]})
    );

    // Tenants at 80% or more of a daily quota.
    let run = report(dir, &["--near", "80", "--day", "2026-11-26"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "tenants at 80% or more of a daily quota on 2026-11-26 (UTC)\n\
         TENANT  POLICY      USED  LIMIT  SHARE\n\
         acme    plan_daily  850   1000   85%\n\
         globex  plan_daily  100   100    100%\n"
    );
    // None: exit 1.
    let run = report(dir, &["--near", "80", "--day", "2026-11-20"], store);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "no tenant reached 80% of a daily quota on 2026-11-20 (UTC)\n"
        )
    );

    // One tenant's events, filtered and paged, newest first.
    let args = [
        "--tenant", "acme", "--kind", "denied", "--policy", "burst", "--limit", "2", "--format",
        "json",
    ];
    let run = report(dir, &args, store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let page: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let times = |page: &serde_json::Value| -> Vec<String> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["at"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        times(&page),
        ["2026-11-26T09:00:00Z", "2026-11-26T08:00:01Z"]
    );
    let first = &page["events"][0];
    assert_eq!(first["kind"], "denied");
    assert_eq!(first["policy"], "burst");
    assert_eq!(first["route"], "/orders/{id}");
    assert_eq!(first["network"], "203.0.113.0/24");
    let cursor = page["next"].as_str().expect("a next page").to_owned();
    let run = report(dir, &[&args[..], &["--after", &cursor]].concat(), store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let page: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(times(&page), ["2026-11-26T08:00:00Z"]);
    assert_eq!(page["next"], serde_json::Value::Null);
    // For people, with the next page's flag.
    let run = report(dir, &["--tenant", "globex", "--limit", "1"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].starts_with("TIME  "), "{}", run.stdout);
    assert!(
        lines[1].starts_with("2026-11-26T11:00:00Z  exhausted  plan_daily  100    0     u-42"),
        "{}",
        run.stdout
    );
    assert!(lines[2].starts_with("more: --after "), "{}", run.stdout);
    let run = report(dir, &["--tenant", "hooli"], store);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (1, "no events of tenant hooli\n")
    );

    // Prune: raw events older than a day go; aggregates stay for --top.
    let run = report(
        dir,
        &["prune", "--older-than", "1d", "--format", "json"],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let pruned: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(pruned["events"], 12, "{pruned}");
    assert_eq!(pruned["aggregate_days"], 0, "{pruned}");
    let run = report(dir, &["--tenant", "acme"], store);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let run = report(dir, &["--top", "1", "--day", "2026-11-26"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.ends_with("1     acme    4\n"), "{}", run.stdout);
    let run = report(
        dir,
        &[
            "prune",
            "--older-than",
            "1d",
            "--aggregates-older-than",
            "1d",
        ],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("removed 0 events before "),
        "{}",
        run.stdout
    );
    let run = report(dir, &["--top", "1", "--day", "2026-11-26"], store);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (1, "no tenant hit a limit on 2026-11-26 (UTC)\n")
    );
}

#[test]
fn reports_answer_from_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let log = runtime
        .block_on(limiter_sqlite::SqliteEventLog::open(
            &path,
            Calendar::utc(),
            Duration::from_secs(5),
        ))
        .expect("opened");
    let now = populate(&log);
    drop(log);
    questions(dir.path(), &["--sqlite", "limits.db"], now);
}

#[test]
fn reports_answer_from_redis() {
    let Some(url) = limiter_testkit::redis::standalone_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = limiter_testkit::redis::namespace("cli_report");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime
        .block_on(limiter_redis::RedisStore::connect(
            limiter_redis::RedisConfig::new(&url),
        ))
        .expect("connected");
    let log = limiter_redis::RedisEventLog::new(&store, &prefix, Calendar::utc()).unwrap();
    let now = populate(&log);
    questions(dir.path(), &["--redis", &url, "--prefix", &prefix], now);
}

#[test]
fn days_are_local_days_in_the_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let log = runtime
        .block_on(limiter_sqlite::SqliteEventLog::open(
            &path,
            Calendar::new("Europe/Paris").unwrap(),
            Duration::from_secs(5),
        ))
        .expect("opened");
    // 23:30 UTC on the 25th is 00:30 on the 26th in Paris.
    let late = event("2026-11-25T23:30:00Z", EventKind::Denied, "acme", "burst");
    runtime.block_on(log.append(&[late])).unwrap();
    drop(log);
    let store = ["--sqlite", "limits.db", "--time-zone", "Europe/Paris"];
    let run = report(dir.path(), &["--day", "2026-11-26"], &store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(
            "tenants that hit limits from 2026-11-25T23:00:00Z to 2026-11-26T23:00:00Z\n"
        ),
        "{}",
        run.stdout
    );
    let run = report(dir.path(), &["--top", "3", "--day", "2026-11-26"], &store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("top 3 tenants by denials on 2026-11-26 (Europe/Paris)\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn bad_inputs_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A missing file is not created.
    let run = report(d, &[], &["--sqlite", "missing.db"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: cannot read missing.db: No such file or directory (os error 2)\n"
        )
    );
    assert!(!d.join("missing.db").exists());
    let run = report(
        d,
        &["prune", "--older-than", "30d"],
        &["--sqlite", "missing.db"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    // An unknown store URL.
    let run = report(d, &["--top", "3"], &["--redis", "ftp://example.invalid"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: ftp://example.invalid: invalid configuration at redis: invalid Redis URL \
             \"ftp://example.invalid\": unknown scheme \"ftp\"; expected redis://host:port[/db] \
             or redis-cluster://host:port?node=host:port (or rediss, valkey, -sentinel)\n"
        )
    );
    // A URL's password never reaches the error.
    let run = report(d, &[], &["--redis", "redis://ops:hunter2@cache:port"]);
    run.assert_refused_without_password();
    // No store, or two.
    let run = report(d, &[], &[]);
    run.assert_refused("error: the following required arguments were not provided:\n  <--sqlite <FILE>|--redis <URL>>\n");

    support::file(d, "limits.db", "");
    let store = ["--sqlite", "limits.db"];
    let run = report(d, &["--since", "last tuesday"], &store);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: invalid --since \"last tuesday\": expected an RFC 3339 instant \
             (2026-11-26T10:00:00Z), a date (2026-11-26) or a span back from now (90m, 24h, 7d)\n"
        )
    );
    let run = report(
        d,
        &["--since", "2026-11-27", "--until", "2026-11-26"],
        &store,
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: empty range: --since 2026-11-27T00:00:00Z is not before --until \
             2026-11-26T00:00:00Z\n"
        )
    );
    let run = report(d, &["--top", "3", "--day", "26/11/2026"], &store);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: invalid --day \"26/11/2026\": expected a date such as 2026-11-26\n"
        )
    );
    let run = report(d, &["--time-zone", "Mars/Olympus"], &store);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(
            "error: invalid --time-zone: invalid configuration at time_zone: unknown time zone \
             \"Mars/Olympus\""
        ),
        "{}",
        run.stderr
    );
    let run = report(d, &["--tenant", "acme", "--kind", "blocked"], &store);
    run.assert_refused(
        "error: invalid value 'blocked' for '--kind <KIND>': invalid kind \"blocked\"; \
             expected one of denied, shadow_denied, bypassed, approaching, exhausted, restored, \
             store_failed\n",
    );
    let run = report(d, &["--near", "120"], &store);
    run.assert_refused(
        "error: invalid value '120' for '--near <PERCENT>': 120 is not in 1..=100\n",
    );
    let run = report(d, &["--kind", "denied"], &store);
    run.assert_refused(
        "error: the following required arguments were not provided:\n  --tenant <TENANT>\n",
    );
}
