//! Runs the built `limiter` binary in a clean environment.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts that the run was refused (exit status 2) with an error that starts with
    /// `prefix`.
    pub fn assert_refused(&self, prefix: &str) {
        assert_eq!(self.code, 2, "{}", self.stderr);
        assert!(self.stderr.starts_with(prefix), "{}", self.stderr);
    }

    /// Asserts that a run given `redis://ops:hunter2@cache:port` was refused naming the URL
    /// with its password masked, and never the password.
    pub fn assert_refused_without_password(&self) {
        self.assert_refused("error: redis://***@cache:port: ");
        assert!(!self.stderr.contains("hunter2"), "{}", self.stderr);
    }
}

/// Runs `limiter ARGS` in `dir`, with no environment but `env`.
pub fn limiter(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    limiter_with_stdin(dir, args, env, None)
}

/// [`limiter`] with `stdin` piped in.
pub fn limiter_with_stdin(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_limiter"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input)
            .expect("stdin is written");
    }
    let out = child.wait_with_output().expect("the binary ends");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the file is written");
    path
}
