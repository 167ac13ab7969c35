//! The command line, as clap derives it: one struct per subcommand, each with an example in
//! its help.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Check and explain rate-limit configurations, offline.
///
/// Exit status: 0 when all is well, 1 for a finding (an invalid configuration, a warning under
/// --deny-warnings, a request that cannot be decided), 2 for a usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "limiter", version, propagate_version = true)]
#[command(after_help = "Examples:
  limiter check limits.toml
  limiter explain limits.toml --tenant acme --plan starter --user u-42 --ip 203.0.113.9")]
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
    /// Show which limits apply to a request, or which bypass rule lets it through.
    Explain(ExplainArgs),
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

/// `limiter explain`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  limiter explain limits.toml --tenant acme --plan starter --user u-42 --role admin \\
      --ip 203.0.113.9 --scope export
  limiter explain limits.toml --ip 198.51.100.7 --scope auth
  limiter explain limits.toml --user ops --staff
  limiter explain limits.toml --tenant acme --key-id key_9f2 --bypass --ip 203.0.113.9")]
pub struct ExplainArgs {
    /// Configuration files, merged in order.
    #[arg(value_name = "CONFIG", required = true)]
    pub configs: Vec<PathBuf>,
    /// The request's tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The tenant's plan (default: the configuration's default_plan).
    #[arg(long)]
    pub plan: Option<String>,
    /// The authenticated user.
    #[arg(long)]
    pub user: Option<String>,
    /// A role of the user (repeat for several).
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    /// The client IP.
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// The endpoint group (auth, export, ...).
    #[arg(long)]
    pub scope: Option<String>,
    /// The id of the verified API key the request carries.
    #[arg(long)]
    pub key_id: Option<String>,
    /// The API key is flagged to bypass rate limits.
    #[arg(long, requires = "key_id")]
    pub bypass: bool,
    /// The user is staff.
    #[arg(long)]
    pub staff: bool,
    /// The user is a superuser.
    #[arg(long)]
    pub superuser: bool,
    /// Units the request costs.
    #[arg(long, default_value_t = 1)]
    pub cost: u32,
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
