//! The command line, as clap derives it: one struct per subcommand, each with an example in
//! its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Check rate-limit configurations, offline.
///
/// Exit status: 0 when all is well, 1 for a finding (an invalid configuration, a warning under
/// --deny-warnings), 2 for a usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "limiter", version, propagate_version = true)]
#[command(after_help = "Examples:
  limiter check limits.toml")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate configuration files and the environment; print the effective policy table.
    Check(CheckArgs),
}

/// How results are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables for people.
    #[default]
    Human,
    /// One JSON document on stdout, for machines.
    Json,
}

/// Where the configuration comes from: files merged in order, then the environment.
#[derive(Debug, Clone, Args)]
pub struct Sources {
    /// Ignore LIMITER_* environment variables (the service applies them over the files).
    #[arg(long)]
    pub no_env: bool,
}

/// `limiter check`.
#[derive(Debug, Args)]
#[command(
    after_help = "Files are merged in order over the defaults (.json files as JSON, others \
as TOML), then LIMITER_* environment variables apply, as the service loads them.

Examples:
  limiter check limits.toml
  limiter check base.toml production.toml --deny-warnings
  LIMITER_PLANS__FREE__BURST=20/minute limiter check limits.toml --format json"
)]
pub struct CheckArgs {
    /// Configuration files, merged in order.
    #[arg(value_name = "CONFIG", required = true)]
    pub configs: Vec<PathBuf>,
    /// Fail (exit 1) on warnings about suspicious settings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the configuration comes from.
    #[command(flatten)]
    pub sources: Sources,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
