//! `limiter keys`, run as a built binary on a real SQLite file and a real Redis.

mod support;

use std::path::Path;

use support::limiter;

const PREFIX: &str = "acme_test";

/// Runs `limiter keys ACTION ARGS STORE…` and returns the run.
fn keys(dir: &Path, action: &str, args: &[&str], store: &[&str]) -> support::Run {
    let all: Vec<&str> = ["keys", action]
        .into_iter()
        .chain(args.iter().copied())
        .chain(store.iter().copied())
        .collect();
    limiter(dir, &all, &[])
}

/// The whole life of a key on `store`: created (its secret printed once), listed without its
/// secret, flagged to bypass, rotated, revoked.
fn lifecycle(dir: &Path, store: &[&str]) {
    let run = keys(
        dir,
        "create",
        &[
            "--prefix",
            PREFIX,
            "--tenant",
            "acme",
            "--name",
            "billing webhook",
        ],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let secret = run.stdout.trim_end().to_owned();
    assert_eq!(run.stdout, format!("{secret}\n"), "the secret alone");
    assert!(
        secret.starts_with("acme_test_") && secret.len() == 48,
        "{secret}"
    );
    assert!(run.stderr.contains("shown once"), "{}", run.stderr);

    let run = keys(
        dir,
        "list",
        &["--tenant", "acme", "--format", "json"],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stdout.contains(&secret[10..]),
        "list never shows a secret"
    );
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let key = &listed[0];
    let id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(key["name"], "billing webhook");
    assert_eq!(key["bypass"], false);
    assert!(secret.starts_with(key["start"].as_str().unwrap()));

    let run = keys(dir, "set-bypass", &["--tenant", "acme", &id, "on"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, format!("{id} (billing webhook) bypass: on\n"));

    let run = keys(
        dir,
        "rotate",
        &[
            "--prefix",
            PREFIX,
            "--tenant",
            "acme",
            &id,
            "--overlap",
            "1h",
        ],
        store,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rotated = run.stdout.trim_end().to_owned();
    assert!(rotated.starts_with("acme_test_") && rotated != secret);

    let run = keys(dir, "revoke", &["--tenant", "acme", &id], store);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, format!("revoked {id} (billing webhook)\n").as_str())
    );

    let run = keys(dir, "list", &["--tenant", "acme"], store);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(&secret[10..]) && !run.stdout.contains(&rotated[10..]));
    // The old key revoked (its rotation's overlap cut short), the new one active.
    let lines: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&id) && l.contains("  revoked  ")),
        "{}",
        run.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| !l.starts_with(&id) && l.contains("  active  ")),
        "{}",
        run.stdout
    );

    // An unknown key is a finding, with the library's message.
    let run = keys(dir, "revoke", &["--tenant", "acme", "key_nope"], store);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: invalid request: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("key_nope"), "{}", run.stderr);
}

#[test]
fn keys_live_and_die_in_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(dir.path(), &["--sqlite", "limits.db"]);
    assert!(dir.path().join("limits.db").exists());
}

#[test]
fn keys_live_and_die_in_redis() {
    let Some(url) = limiter_testkit::redis::standalone_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let namespace = limiter_testkit::redis::namespace("cli_keys");
    lifecycle(dir.path(), &["--redis", &url, "--namespace", &namespace]);
}

#[test]
fn a_store_must_be_named_once_and_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let run = keys(dir.path(), "list", &["--tenant", "acme"], &[]);
    run.assert_refused("error: the following required arguments were not provided:\n  <--sqlite <FILE>|--redis <URL>>\n");
    let run = keys(
        dir.path(),
        "list",
        &["--tenant", "acme"],
        &["--sqlite", "a.db", "--redis", "redis://127.0.0.1:1"],
    );
    run.assert_refused("error: the argument '--sqlite <FILE>' cannot be used with '--redis <URL>'");
    let run = keys(
        dir.path(),
        "list",
        &["--tenant", "acme"],
        &["--redis", "ftp://example.invalid"],
    );
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: ftp://example.invalid: invalid configuration at redis: invalid Redis URL \
         \"ftp://example.invalid\": unknown scheme \"ftp\"; expected redis://host:port[/db] or \
         redis-cluster://host:port?node=host:port (or rediss, valkey, -sentinel)\n"
    );
    // A URL's password never reaches the error.
    let run = keys(
        dir.path(),
        "list",
        &["--tenant", "acme"],
        &["--redis", "redis://ops:hunter2@cache:port"],
    );
    run.assert_refused_without_password();
}
