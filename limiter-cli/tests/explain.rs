//! `limiter explain`, run as a built binary.

mod support;

use support::{file, limiter};

#[test]
fn an_authenticated_request_shows_every_limit_with_its_key_rate_and_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "limits.toml", "namespace = \"shop\"\n");
    let run = limiter(
        dir.path(),
        &[
            "explain",
            "limits.toml",
            "--tenant",
            "acme",
            "--plan",
            "starter",
            "--user",
            "u-42",
            "--role",
            "admin",
            "--role",
            "intern",
            "--ip",
            "203.0.113.9",
            "--scope",
            "export",
        ],
        &[],
    );
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(
        run.stdout,
        "Request: tenant acme, plan starter, user u-42, roles admin, intern, ip 203.0.113.9, \
         scope export (authenticated)\n\
         Limits checked, all or nothing (the strictest decides):\n\
         \x20 POLICY          KEY                             RATE        ALGORITHM       MODE\n\
         \x20 plan_sustained  shop:plan_sustained:{t=acme}    500/hour    sliding_window  enforced\n\
         \x20 plan_burst      shop:plan_burst:{t=acme}        30/minute   gcra            enforced\n\
         \x20 plan_daily      shop:plan_daily:{t=acme}        5000/day    calendar        enforced\n\
         \x20 role            shop:role:{t=acme}u=u-42        3000/hour   sliding_window  enforced\n\
         \x20 scope.export    shop:scope.export:{u=u-42}      10/hour     sliding_log     enforced\n\
         \x20 ip_burst        shop:ip_burst:{ip=203.0.113.9}  600/minute  gcra            enforced\n\
         Notes:\n\
         \x20 - several roles: the most generous configured role's limit applies\n"
    );
}

#[test]
fn a_bypass_names_the_rule_that_wins() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "limits.toml",
        "[bypass]\nips = [\"10.0.0.0/8\"]\nkeep = [\"ip_burst\"]\n",
    );
    let run = limiter(
        dir.path(),
        &["explain", "limits.toml", "--user", "ops", "--staff"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "Request: user ops, staff (authenticated)\n\
         Bypass: staff (bypass.staff = true: staff users bypass)\n\
         Nothing is counted and no store is read.\n"
    );
    let run = limiter(
        dir.path(),
        &[
            "explain",
            "limits.toml",
            "--tenant",
            "acme",
            "--ip",
            "10.1.2.3",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "Request: tenant acme, ip 10.1.2.3 (anonymous)\n\
         Bypass: allow-listed ip 10.1.2.3 (bypass.ips[0] = 10.0.0.0/8 contains 10.1.2.3)\n\
         Still applied to bypassed requests (bypass.keep), all or nothing:\n\
         \x20 POLICY    KEY                             RATE        ALGORITHM  MODE\n\
         \x20 ip_burst  limiter:ip_burst:{ip=10.1.2.3}  600/minute  gcra       enforced\n"
    );
}

#[test]
fn a_request_that_cannot_be_decided_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "limits.toml", "");
    let run = limiter(
        dir.path(),
        &["explain", "limits.toml", "--user", "u", "--plan", "gold"],
        &[],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: unknown plan \"gold\" (configured plans: free, starter, professional, enterprise)\n"
    );
    let run = limiter(dir.path(), &["explain", "limits.toml", "--bypass"], &[]);
    run.assert_refused(
        "error: the following required arguments were not provided:\n  --key-id <KEY_ID>\n",
    );
    let run = limiter(
        dir.path(),
        &["explain", "limits.toml", "--ip", "not-an-ip"],
        &[],
    );
    run.assert_refused("error: invalid value 'not-an-ip' for '--ip <IP>': ");
}
