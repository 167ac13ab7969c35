//! `limiter notices`, run as a built binary on a real SQLite file and a real Redis: an outbox
//! filled by a notifying limiter and worked on by a worker's claims, and inboxes filled through
//! the library's `Inbox::put`.

mod support;

use std::path::Path;
use std::time::Duration;

use limiter_core::notify::{
    ClaimRequest, Inbox, InboxItem, InboxQuery, NotifyKind, Outbox, Settlement,
};
use limiter_core::request_log::parse_ts;
use limiter_core::{Limiter, ManualClock, Micros, PolicySet, Request, Store};
use limiter_testkit::fixtures::{BASE_NOW, HOUR, MINUTE, SECOND};
use support::limiter;

/// The daily quota of plan `tiny`.
const QUOTA: u32 = 20;

/// A past morning (2026-11-26T10:00:00Z): the notices of its day are due whenever the tests run.
const MORNING: Micros = BASE_NOW + 10 * HOUR;
/// A morning in 2100: its notices are pending and not due.
const FAR_AHEAD: Micros = 4_102_480_800_000_000;

/// The items of acme's inbox (and one of globex's), newest last.
const APPROACHING: &str = "ntf_1c5e4f1d9a3b4c2e8f7a6b5c4d3e2f10";
const EXHAUSTED: &str = "ntf_2d6f5a2e0b4c5d3f9a8b7c6d5e4f3a21";
const RESTORED: &str = "ntf_3e7a6b3f1c5d6e4a0b9c8d7e6f5a4b32";
const GLOBEX: &str = "ntf_4f8b7c4a2d6e7f5b1c0d9e8f7a6b5c43";

const UPGRADE: &str = "Upgrade to Free for 500/day; you are on Tiny at 20/day";

/// The default policies in `namespace`, plus a plan `tiny` whose daily quota of [`QUOTA`] is
/// the only limit the tests reach.
fn policies(namespace: &str) -> PolicySet {
    let mut config = limiter_testkit::conformance::events::trace_config();
    config.namespace = namespace.to_owned();
    PolicySet::from_config(&config).expect("valid policies")
}

/// Sends `n` requests of `tenant`, a second apart.
async fn send(limiter: &Limiter, clock: &ManualClock, tenant: &str, n: u32) {
    let request = Request::new().tenant(tenant).plan("tiny").user("u-42");
    for _ in 0..n {
        let decision = limiter.check(&request).await.expect("decided");
        assert!(decision.is_allowed(), "{tenant} stays within its quota");
        clock.advance(Duration::from_secs(1));
    }
}

/// What the outbox holds after a notifying limiter over `store` decides acme's whole quota
/// (approaching, exhausted, resets soon at 23:00 and restored at midnight), globex's 80% and,
/// in 2100, later's 80%; then a worker claims the three earliest, delivers the first, gives up
/// on the second and keeps the third.
///
/// Pending: resets soon, restored (both due) and later's (not due); claimed 1; delivered 1;
/// failed 1.
async fn notify(store: impl Store + 'static, namespace: &str, outbox: &dyn Outbox) {
    let policies = policies(namespace);
    let clock = ManualClock::new(MORNING);
    let limiter = Limiter::builder(policies.clone(), store)
        .clock(clock.clone())
        .notify(policies.notify_rules().clone())
        .expect("the store keeps notices")
        .build();
    send(&limiter, &clock, "acme", QUOTA).await;
    clock.set(MORNING + MINUTE);
    send(&limiter, &clock, "globex", QUOTA * 4 / 5).await;
    clock.set(FAR_AHEAD);
    send(&limiter, &clock, "later", QUOTA * 4 / 5).await;

    let now = BASE_NOW + 36 * HOUR;
    let claim = ClaimRequest {
        worker: "worker-1".into(),
        now,
        lease: HOUR,
        max: 3,
    };
    let claimed = outbox.claim(&claim).await.expect("claimed");
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    let delivered = Settlement::Delivered { at: now };
    let failed = Settlement::Failed {
        at: now,
        error: "410 Gone".into(),
    };
    assert!(
        outbox
            .settle(&claimed[0], &delivered)
            .await
            .expect("settled")
    );
    assert!(outbox.settle(&claimed[1], &failed).await.expect("settled"));
}

fn item(id: &str, tenant: &str, kind: NotifyKind, at: Micros, message: &str) -> InboxItem {
    InboxItem {
        id: id.into(),
        tenant: tenant.into(),
        kind,
        policy: "plan_daily".into(),
        message: message.into(),
        upgrade: None,
        at,
        read_at: None,
    }
}

/// acme's inbox: its 80% notice, read an hour later; its exhaustion; its restore at midnight.
/// And globex's 80% notice.
async fn fill(inbox: &dyn Inbox) {
    let mut approaching = item(
        APPROACHING,
        "acme",
        NotifyKind::Approaching,
        MORNING + 15 * SECOND,
        "You're at 80% of your daily limit",
    );
    approaching.upgrade = Some(UPGRADE.into());
    approaching.read_at = Some(MORNING + HOUR);
    let mut exhausted = item(
        EXHAUSTED,
        "acme",
        NotifyKind::Exhausted,
        MORNING + 19 * SECOND,
        "You've used all of your daily limit of 20/day",
    );
    exhausted.upgrade = Some(UPGRADE.into());
    let restored = item(
        RESTORED,
        "acme",
        NotifyKind::Restored,
        BASE_NOW + 24 * HOUR,
        "Your API access has been restored",
    );
    let globex = item(
        GLOBEX,
        "globex",
        NotifyKind::Approaching,
        MORNING + MINUTE + 15 * SECOND,
        "You're at 80% of your daily limit",
    );
    for item in [approaching, exhausted, restored, globex] {
        assert!(inbox.put(&item).await.expect("put"), "{}", item.id);
    }
    assert_eq!(
        inbox.list(&InboxQuery::tenant("acme")).await.unwrap().len(),
        3
    );
}

/// Runs `limiter notices ACTION ARGS STORE…`.
fn notices(dir: &Path, action: &str, args: &[&str], store: &[&str]) -> support::Run {
    let all: Vec<&str> = ["notices", action]
        .into_iter()
        .chain(args.iter().copied())
        .chain(store.iter().copied())
        .collect();
    limiter(dir, &all, &[])
}

fn json(run: &support::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// `status` on the outbox [`notify`] left.
fn status_shows_the_counts(dir: &Path, store: &[&str]) {
    let run = notices(dir, "status", &[], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (title, table) = run.stdout.split_once('\n').unwrap();
    assert!(title.starts_with("notices in the outbox at "), "{title}");
    assert!(parse_ts(&title["notices in the outbox at ".len()..]).is_ok());
    assert_eq!(
        table,
        "PENDING  DUE NOW  CLAIMED  DELIVERED  FAILED\n\
         3        2        1        1          1\n"
    );

    let run = notices(dir, "status", &["--format", "json"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut status = json(&run);
    let at = status["at"].take();
    assert!(parse_ts(at.as_str().unwrap()).is_ok(), "{at}");
    assert_eq!(
        status,
        serde_json::json!({
            "at": null, "pending": 3, "due": 2, "claimed": 1, "delivered": 1, "failed": 1
        })
    );
}

/// `inbox` and `read` on the inboxes [`fill`] left.
fn inbox_lists_and_read_marks(dir: &Path, store: &[&str]) {
    // Newest first, read or not, each hint under its message.
    let run = notices(dir, "inbox", &["--tenant", "acme"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let hint = format!("{:107}{UPGRADE}", "");
    assert_eq!(
        run.stdout,
        format!(
            "inbox of tenant acme, newest first (2 unread)\n\
             TIME                  ID                                    KIND         POLICY      READ                  MESSAGE\n\
             2026-11-27T00:00:00Z  {RESTORED}  restored     plan_daily  -                     Your API access has been restored\n\
             2026-11-26T10:00:19Z  {EXHAUSTED}  exhausted    plan_daily  -                     You've used all of your daily limit of 20/day\n\
             {hint}\n\
             2026-11-26T10:00:15Z  {APPROACHING}  approaching  plan_daily  2026-11-26T11:00:00Z  You're at 80% of your daily limit\n\
             {hint}\n"
        )
    );

    // For machines, only the unread ones.
    let run = notices(
        dir,
        "inbox",
        &["--tenant", "acme", "--unread", "--format", "json"],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        json(&run),
        serde_json::json!({
            "tenant": "acme",
            "unread": 2,
            "items": [
                {
                    "id": RESTORED, "at": "2026-11-27T00:00:00Z", "kind": "restored",
                    "policy": "plan_daily", "message": "Your API access has been restored",
                    "upgrade": null, "read": false, "read_at": null
                },
                {
                    "id": EXHAUSTED, "at": "2026-11-26T10:00:19Z", "kind": "exhausted",
                    "policy": "plan_daily",
                    "message": "You've used all of your daily limit of 20/day",
                    "upgrade": UPGRADE, "read": false, "read_at": null
                },
            ]
        })
    );
    // --limit keeps the newest.
    let run = notices(
        dir,
        "inbox",
        &["--tenant", "acme", "--limit", "1", "--format", "json"],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = json(&run);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], RESTORED);
    assert_eq!(listed["unread"], 2, "the count covers the whole inbox");
    // An empty inbox is a finding.
    let run = notices(dir, "inbox", &["--tenant", "hooli"], store);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (1, "no notices in the inbox of tenant hooli\n")
    );

    // One id marked, one read already, one unknown, one of another tenant: the mark is made
    // and the others are reported.
    let run = notices(
        dir,
        "read",
        &[
            "--tenant",
            "acme",
            EXHAUSTED,
            APPROACHING,
            "ntf_nope",
            GLOBEX,
            EXHAUSTED,
        ],
        store,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let not_marked = |id: &str| {
        format!(
            "not marked: {id} is not an unread item of tenant acme (unknown id, or read \
             already)\n"
        )
    };
    assert_eq!(
        run.stdout,
        format!(
            "marked 1 of 4 read in the inbox of tenant acme\n{}{}{}",
            not_marked(APPROACHING),
            not_marked("ntf_nope"),
            not_marked(GLOBEX)
        )
    );
    let run = notices(
        dir,
        "inbox",
        &["--tenant", "acme", "--unread", "--format", "json"],
        store,
    );
    let listed = json(&run);
    assert_eq!(listed["unread"], 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], RESTORED, "{listed}");
    let run = notices(dir, "inbox", &["--tenant", "globex", "--unread"], store);
    assert_eq!(run.code, 0, "globex's item is untouched: {}", run.stdout);

    // The last one, in JSON; then nothing is unread.
    let run = notices(
        dir,
        "read",
        &["--tenant", "acme", RESTORED, "--format", "json"],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        json(&run),
        serde_json::json!({"tenant": "acme", "marked": [RESTORED], "unchanged": []})
    );
    let run = notices(dir, "inbox", &["--tenant", "acme"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("inbox of tenant acme, newest first (0 unread)\n"),
        "{}",
        run.stdout
    );
    let run = notices(dir, "inbox", &["--tenant", "acme", "--unread"], store);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (1, "no unread notices in the inbox of tenant acme\n")
    );
    let run = notices(
        dir,
        "inbox",
        &["--tenant", "acme", "--unread", "--format", "json"],
        store,
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        json(&run),
        serde_json::json!({"tenant": "acme", "unread": 0, "items": []})
    );
}

#[test]
fn notices_show_from_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = limiter_sqlite::SqliteStore::open(&path, limiter_sqlite::SqliteConfig::new())
            .await
            .expect("opened");
        let outbox = limiter_sqlite::SqliteOutbox::open(&path, Duration::from_secs(5))
            .await
            .expect("opened");
        notify(store, "limiter", &outbox).await;
        let inbox = limiter_sqlite::SqliteInbox::open(&path, Duration::from_secs(5))
            .await
            .expect("opened");
        fill(&inbox).await;
    });
    let store = ["--sqlite", "limits.db"];
    status_shows_the_counts(dir.path(), &store);
    inbox_lists_and_read_marks(dir.path(), &store);
}

#[test]
fn notices_show_from_redis() {
    let Some(url) = limiter_testkit::redis::standalone_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let namespace = limiter_testkit::redis::namespace("cli_notices");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Times come from the tests' clock, as they do from a service's.
        let config = limiter_redis::RedisConfig::new(&url)
            .with_time_source(limiter_redis::TimeSource::Injected);
        let store = limiter_redis::RedisStore::connect(config)
            .await
            .expect("connected");
        let outbox = limiter_redis::RedisOutbox::new(&store, &namespace).expect("namespace");
        notify(store.clone(), &namespace, &outbox).await;
        let inbox = limiter_redis::RedisInbox::new(&store, &namespace).expect("namespace");
        fill(&inbox).await;
    });
    let store = ["--redis", &url, "--namespace", &namespace];
    status_shows_the_counts(dir.path(), &store);
    inbox_lists_and_read_marks(dir.path(), &store);
    // Another namespace holds nothing.
    let other = limiter_testkit::redis::namespace("cli_notices_other");
    let run = notices(
        dir.path(),
        "status",
        &["--format", "json"],
        &["--redis", &url, "--namespace", &other],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(json(&run)["pending"], 0);
}

#[test]
fn an_empty_file_has_no_notices() {
    let dir = tempfile::tempdir().unwrap();
    support::file(dir.path(), "limits.db", "");
    let store = ["--sqlite", "limits.db"];
    let run = notices(dir.path(), "status", &[], &store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.ends_with(
            "PENDING  DUE NOW  CLAIMED  DELIVERED  FAILED\n\
             0        0        0        0          0\n"
        ),
        "{}",
        run.stdout
    );
    let run = notices(dir.path(), "inbox", &["--tenant", "acme"], &store);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (1, "no notices in the inbox of tenant acme\n")
    );
}

#[test]
fn bad_inputs_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A missing file is named, and not created.
    for (action, args) in [
        ("status", &[][..]),
        ("inbox", &["--tenant", "acme"][..]),
        ("read", &["--tenant", "acme", RESTORED][..]),
    ] {
        let run = notices(d, action, args, &["--sqlite", "missing.db"]);
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (
                2,
                "error: cannot read missing.db: No such file or directory (os error 2)\n"
            ),
            "{action}"
        );
    }
    assert!(!d.join("missing.db").exists());
    // A file that is not a database is named.
    support::file(d, "notes.txt", "not a database, only notes\n");
    let run = notices(d, "status", &[], &["--sqlite", "notes.txt"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: notes.txt: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("not a database"), "{}", run.stderr);

    // An unknown store URL, a namespace no key can have, a URL's password.
    let run = notices(d, "status", &[], &["--redis", "ftp://example.invalid"]);
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: ftp://example.invalid: invalid configuration at redis: invalid Redis URL \
             \"ftp://example.invalid\": unknown scheme \"ftp\"; expected redis://host:port[/db] \
             or redis-cluster://host:port?node=host:port (or rediss, valkey, -sentinel)\n"
        )
    );
    let run = notices(
        d,
        "status",
        &[],
        &["--redis", "redis://cache:6379", "--namespace", "api:v2"],
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            2,
            "error: invalid configuration at --namespace: invalid namespace \"api:v2\": \
             expected a non-empty name without ':', '{' or '}' (it starts every store key)\n"
        )
    );
    let run = notices(
        d,
        "inbox",
        &["--tenant", "acme"],
        &["--redis", "redis://ops:hunter2@cache:port"],
    );
    run.assert_refused_without_password();

    // No store, or two; no id; a limit of 0.
    let run = notices(d, "status", &[], &[]);
    run.assert_refused("error: the following required arguments were not provided:\n  <--sqlite <FILE>|--redis <URL>>\n");
    let run = notices(
        d,
        "status",
        &[],
        &["--sqlite", "a.db", "--redis", "redis://cache:6379"],
    );
    run.assert_refused("error: the argument '--sqlite <FILE>' cannot be used with '--redis <URL>'");
    let run = notices(d, "read", &["--tenant", "acme"], &["--sqlite", "a.db"]);
    run.assert_refused("error: the following required arguments were not provided:\n  <ID>...\n");
    let run = notices(
        d,
        "inbox",
        &["--tenant", "acme", "--limit", "0"],
        &["--sqlite", "a.db"],
    );
    run.assert_refused("error: invalid value '0' for '--limit <LIMIT>': 0 is not in 1..");
}
