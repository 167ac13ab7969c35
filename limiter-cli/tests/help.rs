//! `--help` with an example on every subcommand, and shell completions.

mod support;

use support::limiter;

#[test]
fn every_subcommand_has_help_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for (sub, example) in [
        ("check", "  limiter check limits.toml\n"),
        (
            "explain",
            "  limiter explain limits.toml --ip 198.51.100.7 --scope auth\n",
        ),
        (
            "replay",
            "  limiter replay requests.jsonl --config new.toml --baseline limits.toml\n",
        ),
        (
            "completions",
            "  limiter completions bash > /etc/bash_completion.d/limiter\n",
        ),
        ("report", "  limiter report --sqlite limits.db --near 80"),
        ("notices", "  limiter notices status --sqlite limits.db\n"),
    ] {
        let run = limiter(dir.path(), &[sub, "--help"], &[]);
        assert_eq!(run.code, 0, "{sub}");
        assert!(run.stdout.contains("Examples:\n"), "{sub}: {}", run.stdout);
        assert!(run.stdout.contains(example), "{sub}: {}", run.stdout);
    }
    let run = limiter(dir.path(), &["report", "prune", "--help"], &[]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .contains("Examples:\n  limiter report prune --sqlite limits.db --older-than 30d\n"),
        "{}",
        run.stdout
    );
    for (action, example) in [
        ("status", "  limiter notices status --sqlite limits.db\n"),
        (
            "inbox",
            "  limiter notices inbox --sqlite limits.db --tenant acme\n",
        ),
        (
            "read",
            "  limiter notices read --sqlite limits.db --tenant acme \
             ntf_4a1f0c2e9b7d4e3a8c6b5d2f1e0a9b8c\n",
        ),
    ] {
        let run = limiter(dir.path(), &["notices", action, "--help"], &[]);
        assert_eq!(run.code, 0, "{action}");
        assert!(
            run.stdout.contains(&format!("Examples:\n{example}")),
            "{action}: {}",
            run.stdout
        );
    }
    let run = limiter(dir.path(), &["--help"], &[]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("Exit status: 0 when all is well"),
        "{}",
        run.stdout
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "_limiter()"),
        ("zsh", "#compdef limiter"),
        ("fish", "complete -c limiter"),
    ] {
        let run = limiter(dir.path(), &["completions", shell], &[]);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{shell}");
        assert!(run.stdout.contains(marker), "{shell}");
        assert!(run.stdout.contains("replay"), "{shell}");
        assert!(run.stdout.contains("notices"), "{shell}");
    }
    let run = limiter(dir.path(), &["completions", "tcsh"], &[]);
    run.assert_refused("error: invalid value 'tcsh' for '<SHELL>'");
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = limiter(dir.path(), &[], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("Usage: limiter <COMMAND>"),
        "{}",
        run.stderr
    );
}
