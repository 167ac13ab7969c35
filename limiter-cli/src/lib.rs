//! The `limiter` command: check a rate-limit configuration, explain what applies to a request,
//! and replay a recorded request log against new limits before deploying them.
//!
//! ```text
//! limiter check limits.toml
//! limiter explain limits.toml --tenant acme --plan starter --user u-42 --ip 203.0.113.9
//! limiter replay requests.jsonl --config new.toml --baseline limits.toml --max-newly-denied 0.1%
//! limiter report --sqlite limits.db --near 80
//! limiter notices status --sqlite limits.db
//! limiter completions bash
//! ```
//!
//! Exit status: 0 when all is well, 1 for a finding (an invalid configuration, warnings under
//! `--deny-warnings`, a replay over its gate, a report or an inbox with no rows, an inbox item
//! not marked read), 2 for a usage or I/O error. The library part holds the [`replay`] engine,
//! for benchmarks and tests.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub mod args;
mod check;
mod error;
mod explain;
mod keys;
mod load;
mod notices;
pub mod replay;
mod report;
mod stores;
mod table;

pub use error::CliError;

use args::{Cli, Command};

/// What a command concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All is well: exit 0.
    Ok,
    /// A finding that fails the run (exit 1), already reported.
    Finding,
}

/// Runs `cli`, writing results to `out` and diagnostics to standard error.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<Outcome, CliError> {
    match &cli.command {
        Command::Check(args) => check::run(args, out),
        Command::Explain(args) => explain::run(args, out),
        Command::Replay(args) => replay::run(args, out),
        Command::Keys(args) => keys::run(args, out),
        Command::Report(args) => report::run(args, out),
        Command::Notices(args) => notices::run(args, out),
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut Cli::command(), "limiter", out);
            Ok(Outcome::Ok)
        }
    }
}

/// The whole program: parses the arguments, runs, prints any error, and returns the exit
/// status.
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 2; --help and --version print to stdout and exit 0.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = run(&cli, &mut out);
    let flushed = out.flush();
    match result {
        Ok(Outcome::Ok) if flushed.is_err() => ExitCode::from(2),
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Finding) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
