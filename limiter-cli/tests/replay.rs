//! `limiter replay`, run as a built binary, against the library's own decisions.

mod support;

use std::collections::BTreeSet;

use limiter_core::request_log::RequestRecord;
use limiter_core::{Limiter, ManualClock, PolicySet, Request};
use limiter_memory::MemoryStore;
use support::{file, limiter, limiter_with_stdin};

const T0: u64 = 1_795_687_200_000_000; // 2026-11-26T10:00:00Z

fn line(ts: &str, tenant: &str, route: &str) -> String {
    format!(
        r#"{{"ts":"{ts}","tenant":"{tenant}","plan":"free","user":"u-{tenant}","ip":"192.0.2.1","method":"GET","route":"{route}","decision":"allowed"}}"#
    )
}

/// Twelve requests of one tenant within a second, then one of another tenant.
fn burst_log() -> String {
    let mut log = String::new();
    for i in 0..12 {
        log.push_str(&line(
            &format!("2026-11-26T10:00:00.{i:06}Z"),
            "acme",
            if i % 2 == 0 { "/a" } else { "/b" },
        ));
        log.push('\n');
    }
    log.push_str(&line("2026-11-26T10:00:01Z", "globex", "/a"));
    log.push('\n');
    log
}

#[test]
fn alone_it_counts_denials_by_policy_tenant_and_route() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "limits.toml", "");
    file(dir.path(), "requests.jsonl", &burst_log());
    let run = limiter(
        dir.path(),
        &["replay", "requests.jsonl", "--config", "limits.toml"],
        &[],
    );
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(
        run.stdout,
        "Replayed requests.jsonl: 13 requests from 13 lines\n\
         \n\
         CONFIGURATION  ALLOWED  DENIED  BYPASSED  ERRORS  DIFFERS FROM LOG\n\
         limits.toml    11       2       0         0       2\n\
         \n\
         Denied: 2 requests (15.38% of 13)\n\
         \x20 by policy\n\
         \x20   POLICY      REQUESTS\n\
         \x20   plan_burst  2\n\
         \x20 by tenant\n\
         \x20   TENANT  REQUESTS\n\
         \x20   acme    2\n\
         \x20 by route\n\
         \x20   ROUTE  REQUESTS\n\
         \x20   /a     1\n\
         \x20   /b     1\n\
         \x20 by policy, tenant and route\n\
         \x20   POLICY      TENANT  ROUTE  REQUESTS\n\
         \x20   plan_burst  acme    /a     1\n\
         \x20   plan_burst  acme    /b     1\n"
    );
}

#[test]
fn with_a_baseline_it_reports_newly_denied_requests_and_gates_on_them() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "old.toml", "");
    file(
        dir.path(),
        "new.toml",
        "[plans.free]\nburst = \"8/minute\"\n",
    );
    file(dir.path(), "requests.jsonl", &burst_log());
    let args = [
        "replay",
        "requests.jsonl",
        "--config",
        "new.toml",
        "--baseline",
        "old.toml",
    ];
    let run = limiter(dir.path(), &args, &[]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(
        run.stdout,
        "Replayed requests.jsonl: 13 requests from 13 lines\n\
         \n\
         CONFIGURATION  ALLOWED  DENIED  BYPASSED  ERRORS  DIFFERS FROM LOG\n\
         new.toml       9        4       0         0       4\n\
         old.toml       11       2       0         0       2\n\
         \n\
         Newly denied: 2 requests (15.38% of 13)\n\
         \x20 by policy\n\
         \x20   POLICY (NEW)  REQUESTS\n\
         \x20   plan_burst    2\n\
         \x20 by tenant\n\
         \x20   TENANT  REQUESTS\n\
         \x20   acme    2\n\
         \x20 by route\n\
         \x20   ROUTE  REQUESTS\n\
         \x20   /a     1\n\
         \x20   /b     1\n\
         \x20 examples\n\
         \x20   LINE  TS                           TENANT  USER    IP         ROUTE   BASELINE  NEW\n\
         \x20   9     2026-11-26T10:00:00.000008Z  acme    u-acme  192.0.2.1  GET /a  allowed   denied by plan_burst\n\
         \x20   10    2026-11-26T10:00:00.000009Z  acme    u-acme  192.0.2.1  GET /b  allowed   denied by plan_burst\n\
         \n\
         Newly allowed: 0 requests (0.00% of 13)\n"
    );

    let gated = [&args[..], &["--max-newly-denied", "1"]].concat();
    let run = limiter(dir.path(), &gated, &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: 2 requests (15.38% of 13) newly denied, above --max-newly-denied 1\n"
    );
    let gated = [&args[..], &["--max-newly-denied", "20%"]].concat();
    assert_eq!(limiter(dir.path(), &gated, &[]).code, 0);
    // The gate compares against a baseline: without one it is a usage error.
    let run = limiter(
        dir.path(),
        &[
            "replay",
            "requests.jsonl",
            "--config",
            "new.toml",
            "--max-newly-denied",
            "1",
        ],
        &[],
    );
    run.assert_refused(
        "error: the following required arguments were not provided:\n  --baseline <OLD>\n",
    );
}

#[test]
fn malformed_lines_are_reported_with_their_numbers_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "limits.toml", "");
    let good = line("2026-11-26T10:00:00Z", "acme", "/a");
    let log = format!(
        "{good}\n{{\"ts\":\"2026-11-26T10:00:01Z\",\"tenant\":\"acme\"\n\n{good}\nnot json\n{}\n",
        good.replace("2026-11-26T10:00:00Z", "yesterday")
    );
    file(dir.path(), "requests.jsonl", &log);
    let run = limiter(
        dir.path(),
        &[
            "replay",
            "requests.jsonl",
            "--config",
            "limits.toml",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stderr,
        "warning: requests.jsonl:2:44: EOF while parsing an object; line skipped\n\
         warning: requests.jsonl:5:2: expected ident; line skipped\n\
         warning: requests.jsonl:6:17: invalid ts \"yesterday\": failed to parse four digit \
         integer as year: invalid digit, expected 0-9 but got y; expected an RFC 3339 instant \
         such as 2026-11-26T10:00:00.123456Z; line skipped\n"
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["lines"], 6);
    assert_eq!(report["requests"], 2);
    assert_eq!(report["blank_lines"], 1);
    assert_eq!(report["malformed_lines"], 3);
    assert_eq!(report["malformed"][0]["line"], 2);

    let run = limiter(
        dir.path(),
        &[
            "replay",
            "requests.jsonl",
            "--config",
            "limits.toml",
            "--strict",
        ],
        &[],
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: requests.jsonl:2:44: EOF while parsing an object (--strict stops at the first \
         malformed line)\n"
    );
}

#[test]
fn a_log_on_standard_input_and_a_missing_log() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "limits.toml", "");
    let run = limiter_with_stdin(
        dir.path(),
        &["replay", "-", "--config", "limits.toml", "--format", "json"],
        &[],
        Some(burst_log().as_bytes()),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["log"], "standard input");
    assert_eq!(report["config"]["denied"], 2);

    let run = limiter(
        dir.path(),
        &["replay", "nope.jsonl", "--config", "limits.toml"],
        &[],
    );
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: cannot read nope.jsonl: No such file or directory (os error 2)\n"
    );
}

/// A deterministic pseudo-random sequence (a 64-bit LCG), so that the trace is the same on
/// every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// A varied trace: tenants on several plans, users with roles, API keys, anonymous clients,
/// scopes, staff, an unknown plan, time moving by up to two seconds.
fn trace(len: usize) -> Vec<(u64, Request, &'static str)> {
    let mut rng = Lcg(7);
    let mut ts = T0;
    let plans = ["free", "starter", "professional", "gold"];
    let scopes = [None, None, Some("auth"), Some("export"), Some("unknown")];
    let routes = ["/login", "/export", "/items", "/items/{id}"];
    (0..len)
        .map(|_| {
            ts += rng.next(2_000_000);
            let ip = std::net::IpAddr::from([198, 51, 100, u8::try_from(rng.next(6)).unwrap()]);
            let mut r = Request::new().ip(ip);
            match rng.next(10) {
                0 | 1 => {} // anonymous
                2 => {
                    r = r
                        .tenant("acme")
                        .api_key(format!("k{}", rng.next(3)), rng.next(4) == 0)
                }
                _ => {
                    let t = rng.next(4);
                    r = r.tenant(format!("t{t}")).user(format!("u{}", rng.next(8)));
                    // One plan in forty is unknown: the library errs, and so must the replay.
                    if rng.next(40) != 0 {
                        r = r.plan(plans[usize::try_from(t % 3).unwrap()]);
                    } else {
                        r = r.plan(plans[3]);
                    }
                    if rng.next(3) == 0 {
                        r = r.role(
                            ["admin", "member", "intern"][usize::try_from(rng.next(3)).unwrap()],
                        );
                    }
                    if rng.next(50) == 0 {
                        r = r.staff(true);
                    }
                }
            }
            if let Some(scope) = scopes[usize::try_from(rng.next(5)).unwrap()] {
                r = r.scope(scope);
            }
            if rng.next(10) == 0 {
                r = r.cost(3);
            }
            (ts, r, routes[usize::try_from(rng.next(4)).unwrap()])
        })
        .collect()
}

/// The library's own decisions on `trace` under `config`: allowed (or bypassed), denied, or
/// an error, by request.
fn library(config: &str, trace: &[(u64, Request, &str)]) -> Vec<Option<limiter_core::Decision>> {
    let policies =
        PolicySet::from_config(&limiter_core::policy::Config::from_toml_str(config).unwrap())
            .unwrap();
    let clock = ManualClock::new(T0);
    let limiter = Limiter::builder(policies, MemoryStore::default())
        .clock(clock.clone())
        .build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    trace
        .iter()
        .map(|(ts, request, _)| {
            clock.set(*ts);
            rt.block_on(limiter.check(request)).ok()
        })
        .collect()
}

#[test]
fn replay_decides_every_request_as_the_library_does() {
    const OLD: &str = "[bypass]\nkeep = [\"scope.auth\"]\n";
    const NEW: &str = "[plans.free]\nburst = \"4/minute\"\n\n[plans.starter]\nsustained = \"40/hour\"\n\n[scopes]\nexport = \"2/hour\"\n\n[bypass]\nkeep = [\"scope.auth\"]\n";
    let trace = trace(9000);
    let old = library(OLD, &trace);
    let new = library(NEW, &trace);
    // The log records the baseline's decisions, as the recorder would have.
    let mut log = String::new();
    for ((ts, request, route), decision) in trace.iter().zip(&old) {
        let mut record = match decision {
            Some(d) => RequestRecord::new(request, *ts, d, Some(route)),
            None => {
                let d = limiter_core::Decision::bypassed(limiter_core::BypassReason::Staff);
                let mut r = RequestRecord::new(request, *ts, &d, Some(route));
                r.decision = None;
                r
            }
        };
        record.method = Some("GET".into());
        log.push_str(&serde_json::to_string(&record).unwrap());
        log.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "old.toml", OLD);
    file(dir.path(), "new.toml", NEW);
    file(dir.path(), "requests.jsonl", &log);
    let run = limiter(
        dir.path(),
        &[
            "replay",
            "requests.jsonl",
            "--config",
            "new.toml",
            "--baseline",
            "old.toml",
            "--format",
            "json",
            "--top",
            "0",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();

    // Request by request: every recorded baseline decision is reproduced.
    assert_eq!(report["baseline"]["differs_from_recorded"], 0);
    let count = |d: &[Option<limiter_core::Decision>], f: fn(&limiter_core::Decision) -> bool| {
        d.iter().flatten().filter(|d| f(d)).count()
    };
    for (side, decisions) in [("baseline", &old), ("config", &new)] {
        let r = &report[side];
        assert_eq!(r["denied"], count(decisions, |d| !d.is_allowed()), "{side}");
        assert_eq!(
            r["bypassed"],
            count(decisions, |d| d.bypass().is_some()),
            "{side}"
        );
        assert_eq!(
            r["allowed"],
            count(decisions, |d| d.is_allowed() && d.bypass().is_none()),
            "{side}"
        );
        assert_eq!(
            r["errors"],
            decisions.iter().filter(|d| d.is_none()).count(),
            "{side}"
        );
    }
    // And the very requests whose outcome changed, by line.
    let lines = |key: &str| -> BTreeSet<u64> {
        report[key]["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect()
    };
    let expected = |was: bool, now: bool| -> BTreeSet<u64> {
        old.iter()
            .zip(&new)
            .enumerate()
            .filter(|(_, (o, n))| match (o, n) {
                (Some(o), Some(n)) => o.is_allowed() == was && n.is_allowed() == now,
                _ => false,
            })
            .map(|(i, _)| u64::try_from(i).unwrap() + 1)
            .collect()
    };
    let newly_denied = expected(true, false);
    assert!(newly_denied.len() > 20, "the trace exercises the change");
    assert_eq!(lines("newly_denied"), newly_denied);
    assert_eq!(lines("newly_allowed"), expected(false, true));
    assert_eq!(report["newly_denied"]["requests"], newly_denied.len());
}
