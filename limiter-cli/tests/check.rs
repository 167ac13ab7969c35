//! `limiter check`, run as a built binary.

mod support;

use support::{file, limiter};

#[test]
fn a_valid_configuration_prints_the_effective_policy_table() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "limits.toml",
        "[plans.professional]\nsustained = \"3000/hour\"\n\n[policies.scope]\nshadow = true\n",
    );
    let run = limiter(dir.path(), &["check", "limits.toml"], &[]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "limits.toml: valid");
    assert_eq!(
        lines[1],
        "namespace \"limiter\", default plan \"free\", daily quotas reset at midnight UTC"
    );
    for row in [
        "  free          plan_burst      10/minute   gcra            tenant, user, api_key, ip (/32, /64)  enforced",
        "  professional  plan_sustained  3000/hour   sliding_window  tenant, user, api_key, ip (/32, /64)  enforced",
        "  professional  plan_daily      20000/day   calendar        tenant, user, api_key, ip (/32, /64)  enforced",
        "  auth          scope.auth          5/minute   sliding_log     user, api_key, ip (/32, /64)  shadow",
        "  user          scope.user          1000/hour  sliding_window  user, api_key, ip (/32, /64)  shadow",
        "  ip_burst      600/minute  gcra         ip (/32, /64)  enforced",
        "  key_failures  20/minute   sliding_log  ip (/32, /64)  enforced",
        "  bypass.staff                           yes",
        "  bypass.ips                             none",
    ] {
        assert!(lines.contains(&row), "no row {row:?} in\n{}", run.stdout);
    }
}

#[test]
fn files_merge_in_order_and_the_environment_applies_last() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "a.toml",
        "[plans.free]\nburst = \"20/minute\"\n",
    );
    file(
        dir.path(),
        "b.json",
        r#"{"plans": {"free": {"daily": "900/day"}}}"#,
    );
    let run = limiter(
        dir.path(),
        &["check", "a.toml", "b.json", "--format", "json"],
        &[("LIMITER_PLANS__FREE__SUSTAINED", "200/hour")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["environment"][0], "LIMITER_PLANS__FREE__SUSTAINED");
    let free: Vec<&str> = report["plans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "free")
        .map(|r| r["rate"].as_str().unwrap())
        .collect();
    assert_eq!(free, ["200/hour", "20/minute", "900/day"]);
    // --no-env ignores the variable.
    let run = limiter(
        dir.path(),
        &["check", "a.toml", "--no-env", "--format", "json"],
        &[("LIMITER_PLANS__FREE__SUSTAINED", "200/hour")],
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["plans"][0]["rate"], "100/hour");
}

#[test]
fn a_syntax_error_gives_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "limits.toml",
        "namespace = \"shop\"\n\n[plans.free]\nburst = 10/minute\n",
    );
    let run = limiter(dir.path(), &["check", "limits.toml"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: limits.toml:4:11: invalid syntax: invalid float, expected nothing\n"
    );
}

#[test]
fn an_invalid_value_gives_file_line_column_path_value_and_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "base.toml",
        "[plans.free]\nburst = \"10/minute\"\n",
    );
    file(
        dir.path(),
        "override.toml",
        "# production\n[plans.free]\nsustained = \"100/hour\"\nburst = \"10/fortnight\"\n",
    );
    let run = limiter(dir.path(), &["check", "base.toml", "override.toml"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: override.toml:4:9: invalid configuration at plans.free.burst: invalid rate \
         \"10/fortnight\": unknown period unit \"fortnight\" (expected N/period such as 100/hour, 10/5m or \
         1000/1d, with units s, m, h or d, optionally with a multiplier such as 5m)\n"
    );
}

#[test]
fn an_error_found_when_compiling_points_at_the_file_that_set_it() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "limits.toml",
        "namespace = \"shop\"\ndefault_plan = \"gold\"\n",
    );
    let run = limiter(dir.path(), &["check", "limits.toml"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: limits.toml:2:16: invalid configuration at default_plan: \"gold\" is not a \
         configured plan; expected one of: enterprise, free, professional, starter\n"
    );
}

#[test]
fn an_environment_error_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "limits.toml", "");
    let run = limiter(
        dir.path(),
        &["check", "limits.toml"],
        &[("LIMITER_PLANS__FREE__BRUST", "20/minute")],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: environment: invalid configuration at LIMITER_PLANS__FREE__BRUST: unknown \
         field `brust`, expected one of `sustained`, `burst`, `daily`\n"
    );
}

#[test]
fn warnings_are_printed_and_fail_the_check_with_deny_warnings() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "limits.toml",
        "[plans.free]\nsustained = \"100/hour\"\nburst = \"200/minute\"\ndaily = \"50/day\"\n",
    );
    let expected = "warning: limits.toml:3:9: plans.free.burst: burst 200/minute is above the \
        sustained 100/hour: the sustained limit denies first, so the burst is never reached; \
        expected a burst of at most 100 requests\n\
        warning: limits.toml:4:9: plans.free.daily: daily quota 50/day is below one hour of the \
        sustained 100/hour (100 requests): the quota runs out within the first hour at the \
        sustained rate; expected at least 100/day\n";
    let run = limiter(dir.path(), &["check", "limits.toml"], &[]);
    assert_eq!((run.code, run.stderr.as_str()), (0, expected));
    let run = limiter(
        dir.path(),
        &["check", "limits.toml", "--deny-warnings"],
        &[],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!("{expected}error: 2 warnings with --deny-warnings\n")
    );
}

#[test]
fn the_defaults_raise_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    file(dir.path(), "limits.toml", "");
    let run = limiter(
        dir.path(),
        &["check", "limits.toml", "--deny-warnings"],
        &[],
    );
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
}

#[test]
fn a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = limiter(dir.path(), &["check", "nope.toml"], &[]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: cannot read nope.toml: No such file or directory (os error 2)\n"
    );
}

#[test]
fn an_unknown_option_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = limiter(dir.path(), &["check", "limits.toml", "--strict"], &[]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: unexpected argument '--strict' found\n\n\
         \x20 tip: to pass '--strict' as a value, use '-- --strict'\n\n\
         Usage: limiter check <CONFIG>...\n\n\
         For more information, try '--help'.\n"
    );
    let run = limiter(dir.path(), &["check"], &[]);
    assert_eq!(run.code, 2);
}

#[test]
fn json_files_and_incomplete_tables_are_placed_too() {
    let dir = tempfile::tempdir().unwrap();
    file(
        dir.path(),
        "a.json",
        r#"{"plans": {"free": {"burst": "10/minute",}}}"#,
    );
    let run = limiter(dir.path(), &["check", "a.json"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: a.json:1:42: invalid syntax: trailing comma\n"
    );
    // serde_json keeps no spans of values: a JSON file's invalid setting is named by path.
    file(
        dir.path(),
        "b.json",
        "{\n  \"plans\": {\"free\": {\"daily\": \"ten/day\"}}\n}\n",
    );
    let run = limiter(dir.path(), &["check", "b.json"], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.starts_with(
            "error: b.json: invalid configuration at plans.free.daily: invalid rate \"ten/day\""
        ),
        "{}",
        run.stderr
    );
    // A new plan without all its limits: the table that defines it.
    file(
        dir.path(),
        "gold.toml",
        "namespace = \"shop\"\n\n[plans.gold]\nsustained = \"1/hour\"\n",
    );
    let run = limiter(dir.path(), &["check", "gold.toml"], &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: gold.toml:3:1: invalid configuration at plans.gold: new plan \"gold\" is missing \
         burst and daily; a plan that is not already configured must set sustained, burst and \
         daily\n"
    );
}
