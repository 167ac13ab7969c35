//! The command line, as clap derives it: one struct per subcommand, each with an example in
//! its help.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use limiter_core::event::EventKind;

/// Check, explain and replay rate-limit configurations, offline.
///
/// Exit status: 0 when all is well, 1 for a finding (an invalid configuration, a warning under
/// --deny-warnings, a replay over its --max-newly-denied gate, a report or an inbox with no
/// rows, an inbox item not marked read), 2 for a usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "limiter", version, propagate_version = true)]
#[command(after_help = "Examples:
  limiter check limits.toml
  limiter explain limits.toml --tenant acme --plan starter --user u-42 --ip 203.0.113.9
  limiter replay requests.jsonl --config new.toml --baseline limits.toml --max-newly-denied 0.1%
  limiter report --sqlite limits.db --top 10
  limiter notices status --sqlite limits.db")]
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
    /// Replay a JSON Lines request log against a configuration (and a baseline).
    Replay(ReplayArgs),
    /// Create, list, revoke, rotate and flag API keys in the service's store.
    Keys(KeysArgs),
    /// Answer questions from the recorded events: who hits limits, who nears a daily quota.
    Report(Box<ReportArgs>),
    /// Show whether notifications flow (the outbox by state) and a tenant's inbox; mark read.
    Notices(NoticesArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
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

/// `limiter replay`.
#[derive(Debug, Args)]
#[command(
    after_help = "The log is JSON Lines, one request per line, as the HTTP layer's recorder \
writes it (\"-\" reads standard input):
  {\"ts\":\"2026-11-26T10:00:00.123456Z\",\"tenant\":\"acme\",\"plan\":\"starter\",\"user\":\"u-42\",
   \"roles\":[\"admin\"],\"ip\":\"203.0.113.9\",\"scope\":\"export\",\"method\":\"GET\",
   \"route\":\"/reports/{id}\",\"cost\":1,\"decision\":\"allowed\"}
Each configuration decides every request in order on an in-process store, its clock set from \
each line's ts: the same log and configurations always give the same report.

Examples:
  limiter replay requests.jsonl --config limits.toml
  limiter replay requests.jsonl --config new.toml --baseline limits.toml
  limiter replay requests.jsonl --config new.toml --baseline limits.toml \\
      --max-newly-denied 0.1% --format json > replay.json"
)]
pub struct ReplayArgs {
    /// The JSON Lines request log ("-" for standard input).
    #[arg(value_name = "LOG")]
    pub log: PathBuf,
    /// The configuration to replay (repeat to merge several files in order).
    #[arg(long = "config", value_name = "NEW", required = true)]
    pub config: Vec<PathBuf>,
    /// The configuration to compare against (repeat to merge several files in order).
    #[arg(long = "baseline", value_name = "OLD")]
    pub baseline: Vec<PathBuf>,
    /// Fail (exit 1) when more requests than this are newly denied: a count (25) or a share
    /// of the requests replayed (0.1%).
    #[arg(long, value_name = "N|N%", requires = "baseline", value_parser = parse_gate)]
    pub max_newly_denied: Option<Gate>,
    /// Stop at the first malformed line (exit 2) instead of reporting and skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Rows per table, and examples per change (0: all).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// The most keys the in-process store holds (above it, keys are evicted and the report says
    /// how many were still live).
    #[arg(long, default_value_t = 4_000_000)]
    pub capacity: u64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the configuration comes from.
    #[command(flatten)]
    pub sources: Sources,
}

/// `limiter completions`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  limiter completions bash > /etc/bash_completion.d/limiter
  limiter completions zsh > \"${fpath[1]}/_limiter\"
  limiter completions fish > ~/.config/fish/completions/limiter.fish")]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The most newly denied requests a replay tolerates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    /// At most this many requests.
    Count(u64),
    /// At most this percentage of the requests replayed.
    Percent(f64),
}

impl Gate {
    /// The largest number of newly denied requests allowed out of `requests`.
    pub fn allows(self, newly_denied: u64, requests: u64) -> bool {
        match self {
            Gate::Count(n) => newly_denied <= n,
            // Compared as shares rather than rounded counts, so that 0.1% of 999 requests
            // allows 0 denials, not 1.
            #[allow(clippy::cast_precision_loss)]
            Gate::Percent(p) => {
                newly_denied == 0 || (newly_denied as f64) * 100.0 <= p * (requests as f64)
            }
        }
    }
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gate::Count(n) => write!(f, "{n}"),
            Gate::Percent(p) => write!(f, "{p}%"),
        }
    }
}

fn parse_gate(text: &str) -> Result<Gate, String> {
    let expected = "expected a count such as 25 or a percentage such as 0.1%";
    match text.strip_suffix('%') {
        Some(p) => match p.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Gate::Percent(p)),
            _ => Err(format!("invalid share {text:?}; {expected} (0% to 100%)")),
        },
        None => text
            .trim()
            .parse::<u64>()
            .map(Gate::Count)
            .map_err(|_| format!("invalid count {text:?}; {expected}")),
    }
}

/// `limiter keys`.
#[derive(Debug, Args)]
#[command(
    after_help = "The secret of a key is printed once, by create (or rotate), on standard \
output and alone on its line; list shows the first characters only. Stores hold only hashes.

Examples:
  limiter keys create --sqlite limits.db --prefix acme_live --tenant acme --name \"billing webhook\"
  limiter keys list --sqlite limits.db --tenant acme
  limiter keys rotate --redis redis://cache:6379 --prefix acme_live --tenant acme key_0Xb3 --overlap 1h
  limiter keys set-bypass --sqlite limits.db --tenant acme key_0Xb3 on
  limiter keys revoke --sqlite limits.db --tenant acme key_0Xb3"
)]
pub struct KeysArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: KeysAction,
}

/// The key operations.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key and print its secret, once.
    Create(CreateKeyArgs),
    /// List a tenant's keys (never their secrets).
    List(TenantArgs),
    /// Revoke a key, for good.
    Revoke(KeyArgs),
    /// Issue a new key in place of one, which keeps working for --overlap; print the new secret.
    Rotate(RotateKeyArgs),
    /// Let a key bypass rate limits (on), or not (off).
    SetBypass(SetBypassArgs),
}

/// Where the keys are.
#[derive(Debug, Clone, Args)]
#[group(skip)]
pub struct KeyStoreArgs {
    /// The SQLite file the service keeps its limits and keys in.
    #[arg(long, value_name = "FILE", group = "key_store")]
    pub sqlite: Option<PathBuf>,
    /// The Redis (or Redis Cluster node) URL the service keeps its keys in.
    #[arg(long, value_name = "URL", group = "key_store")]
    pub redis: Option<String>,
    /// The namespace of the keys in Redis (the service's `namespace`).
    #[arg(long, default_value = "limiter")]
    pub namespace: String,
}

/// `keys list`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key_store").required(true).multiple(false)))]
pub struct TenantArgs {
    /// The tenant.
    #[arg(long)]
    pub tenant: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the keys are.
    #[command(flatten)]
    pub store: KeyStoreArgs,
}

/// `keys revoke`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key_store").required(true).multiple(false)))]
pub struct KeyArgs {
    /// The tenant.
    #[arg(long)]
    pub tenant: String,
    /// The key's id.
    pub id: String,
    /// Where the keys are.
    #[command(flatten)]
    pub store: KeyStoreArgs,
}

/// `keys create`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key_store").required(true).multiple(false)))]
pub struct CreateKeyArgs {
    /// The tenant the key belongs to.
    #[arg(long)]
    pub tenant: String,
    /// What the key is for ("billing webhook").
    #[arg(long)]
    pub name: String,
    /// The user the key acts as, if any.
    #[arg(long)]
    pub user: Option<String>,
    /// Let the key bypass rate limits.
    #[arg(long)]
    pub bypass: bool,
    /// Expire the key after this long (90d, 12h, 30m, 45s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expires_in: Option<Duration>,
    /// The deployment's key prefix (acme_live): keys start with it and `_`.
    #[arg(long, env = "LIMITER_KEY_PREFIX")]
    pub prefix: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the keys are.
    #[command(flatten)]
    pub store: KeyStoreArgs,
}

/// `keys rotate`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key_store").required(true).multiple(false)))]
pub struct RotateKeyArgs {
    /// The tenant.
    #[arg(long)]
    pub tenant: String,
    /// The id of the key to replace.
    pub id: String,
    /// How long the old key keeps working (0s: it stops now).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub overlap: Duration,
    /// The deployment's key prefix (acme_live).
    #[arg(long, env = "LIMITER_KEY_PREFIX")]
    pub prefix: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the keys are.
    #[command(flatten)]
    pub store: KeyStoreArgs,
}

/// `keys set-bypass`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key_store").required(true).multiple(false)))]
pub struct SetBypassArgs {
    /// The tenant.
    #[arg(long)]
    pub tenant: String,
    /// The key's id.
    pub id: String,
    /// on or off.
    #[arg(value_parser = parse_switch, value_name = "on|off", action = clap::ArgAction::Set)]
    pub bypass: bool,
    /// Where the keys are.
    #[command(flatten)]
    pub store: KeyStoreArgs,
}

/// `limiter report`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    group(clap::ArgGroup::new("event_store").required(true).multiple(false)),
    after_help = "Without --top, --near or --tenant: the tenants that hit limits (denials), \
with their counts by policy, today or in --day, or from --since to --until. Days are local days \
in --time-zone, the log's time zone. A time is an RFC 3339 instant (2026-11-26T10:00:00Z), a \
date (2026-11-26, its start in --time-zone) or a span back from now (90m, 24h, 7d).

Exit status: 0 with rows to show, 1 when none match, 2 for a usage or I/O error.

Examples:
  limiter report --sqlite limits.db
  limiter report --sqlite limits.db --since 7d --format json
  limiter report --redis redis://cache:6379 --prefix limiter-events --top 10 --day 2026-11-26
  limiter report --sqlite limits.db --near 80 --time-zone Europe/Paris
  limiter report --sqlite limits.db --tenant acme --kind denied --policy plan_daily --limit 50
  limiter report prune --sqlite limits.db --older-than 30d"
)]
pub struct ReportArgs {
    /// Maintenance of the log.
    #[command(subcommand)]
    pub action: Option<ReportAction>,
    /// The top N tenants by denials in a day (today, or --day).
    #[arg(long, value_name = "N", conflicts_with_all = ["near", "tenant", "since", "until"])]
    pub top: Option<usize>,
    /// The tenants at or above this percentage of a daily quota today (or --day).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100),
          conflicts_with_all = ["tenant", "since", "until"])]
    pub near: Option<u8>,
    /// One tenant's events, newest first.
    #[arg(long)]
    pub tenant: Option<String>,
    /// With --tenant: only events of this kind (repeat for several): denied, shadow_denied,
    /// bypassed, approaching, exhausted, restored, store_failed.
    #[arg(long = "kind", value_name = "KIND", requires = "tenant", value_parser = parse_kind)]
    pub kinds: Vec<EventKind>,
    /// With --tenant: only events of this policy.
    #[arg(long, requires = "tenant")]
    pub policy: Option<String>,
    /// With --tenant: events per page.
    #[arg(long, requires = "tenant", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// With --tenant: the page that starts here (the cursor a previous page printed).
    #[arg(long, value_name = "CURSOR", requires = "tenant")]
    pub after: Option<String>,
    /// The local day to report on (default: today).
    #[arg(long, value_name = "DATE", conflicts_with_all = ["since", "until"])]
    pub day: Option<String>,
    /// The start of the range (default: the start of today).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// The end of the range, excluded (default: now).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the events are.
    #[command(flatten)]
    pub store: EventStoreArgs,
}

/// `limiter report` maintenance.
#[derive(Debug, Subcommand)]
pub enum ReportAction {
    /// Remove raw events older than --older-than, and daily aggregates older than
    /// --aggregates-older-than.
    #[command(
        after_help = "Raw events answer --tenant and the ranges; daily aggregates answer \
--top and --near and age separately.

Examples:
  limiter report prune --sqlite limits.db --older-than 30d
  limiter report prune --redis redis://cache:6379 --older-than 7d --aggregates-older-than 90d"
    )]
    Prune(PruneArgs),
}

/// `limiter report prune`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("event_store").required(true).multiple(false)))]
pub struct PruneArgs {
    /// Remove raw events older than this (30d, 12h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,
    /// Remove the daily aggregates of days that started longer ago than this.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "400d")]
    pub aggregates_older_than: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the events are.
    #[command(flatten)]
    pub store: EventStoreArgs,
}

/// Where the events are.
#[derive(Debug, Clone, Args)]
#[group(skip)]
pub struct EventStoreArgs {
    /// The SQLite file the service records its events in.
    #[arg(long, value_name = "FILE", group = "event_store")]
    pub sqlite: Option<PathBuf>,
    /// The Redis (or Redis Cluster node) URL the service records its events in.
    #[arg(long, value_name = "URL", group = "event_store")]
    pub redis: Option<String>,
    /// The key prefix of the events in Redis (the service's event log prefix).
    #[arg(long, default_value = "limiter-events")]
    pub prefix: String,
    /// The time zone the log counts days in (the service's time_zone).
    #[arg(
        long,
        value_name = "IANA",
        env = "LIMITER_TIME_ZONE",
        default_value = "UTC"
    )]
    pub time_zone: String,
}

/// `limiter notices`.
#[derive(Debug, Args)]
#[command(
    after_help = "A limiter that notifies has its store write each notice to the outbox; the \
service's workers deliver them to webhooks and to each tenant's in-app inbox.

Examples:
  limiter notices status --sqlite limits.db
  limiter notices status --redis redis://cache:6379 --namespace api --format json
  limiter notices inbox --sqlite limits.db --tenant acme --unread
  limiter notices read --sqlite limits.db --tenant acme ntf_4a1f0c2e9b7d4e3a8c6b5d2f1e0a9b8c"
)]
pub struct NoticesArgs {
    /// What to show or do.
    #[command(subcommand)]
    pub action: NoticesAction,
}

/// The notices' views and actions.
#[derive(Debug, Subcommand)]
pub enum NoticesAction {
    /// Count the outbox's notices by state: pending (and due now), claimed, delivered, failed.
    #[command(
        after_help = "Pending notices wait for a worker; those due now are late if the \
count stays up. Claimed ones are leased to a worker (a lease that ended is claimed again). \
Failed ones were given up after their last attempt.

Examples:
  limiter notices status --sqlite limits.db
  limiter notices status --redis redis://cache:6379 --namespace api --format json"
    )]
    Status(NoticesStatusArgs),
    /// List a tenant's inbox, newest first.
    #[command(
        after_help = "Exit status: 0 with items to show, 1 when there are none, 2 for a \
usage or I/O error.

Examples:
  limiter notices inbox --sqlite limits.db --tenant acme
  limiter notices inbox --redis redis://cache:6379 --tenant acme --unread --limit 5 --format json"
    )]
    Inbox(InboxArgs),
    /// Mark items of a tenant's inbox read, by id.
    #[command(
        after_help = "Each id is marked on its own: an id that is not an unread item of \
the tenant is reported, and the others are still marked.

Exit status: 0 when every id was marked read, 1 when some changed nothing (not in the \
tenant's inbox, or read already), 2 for a usage or I/O error.

Examples:
  limiter notices read --sqlite limits.db --tenant acme ntf_4a1f0c2e9b7d4e3a8c6b5d2f1e0a9b8c
  limiter notices read --redis redis://cache:6379 --tenant acme \\
      ntf_4a1f0c2e9b7d4e3a8c6b5d2f1e0a9b8c ntf_77c05e1b2a3f4d6e8c9b0a1d2e3f4a5b"
    )]
    Read(ReadArgs),
}

/// Where the notices are.
#[derive(Debug, Clone, Args)]
#[group(skip)]
pub struct NoticeStoreArgs {
    /// The SQLite file the service keeps its limits and notices in.
    #[arg(long, value_name = "FILE", group = "notice_store")]
    pub sqlite: Option<PathBuf>,
    /// The Redis (or Redis Cluster node) URL the service keeps its limits and notices in.
    #[arg(long, value_name = "URL", group = "notice_store")]
    pub redis: Option<String>,
    /// The namespace of the notices in Redis (the service's `namespace`).
    #[arg(long, env = "LIMITER_NAMESPACE", default_value = "limiter")]
    pub namespace: String,
}

/// `notices status`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("notice_store").required(true).multiple(false)))]
pub struct NoticesStatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the notices are.
    #[command(flatten)]
    pub store: NoticeStoreArgs,
}

/// `notices inbox`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("notice_store").required(true).multiple(false)))]
pub struct InboxArgs {
    /// The tenant.
    #[arg(long)]
    pub tenant: String,
    /// Only the items not read yet.
    #[arg(long)]
    pub unread: bool,
    /// The most items to show (the newest).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the notices are.
    #[command(flatten)]
    pub store: NoticeStoreArgs,
}

/// `notices read`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("notice_store").required(true).multiple(false)))]
pub struct ReadArgs {
    /// The tenant whose inbox holds the items.
    #[arg(long)]
    pub tenant: String,
    /// The items' ids (`ntf_...`, as `notices inbox` lists them).
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the notices are.
    #[command(flatten)]
    pub store: NoticeStoreArgs,
}

fn parse_kind(text: &str) -> Result<EventKind, String> {
    EventKind::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "invalid kind {text:?}; expected one of {}",
            names.join(", ")
        )
    })
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("invalid switch {text:?}; expected on or off")),
    }
}

/// `90d`, `12h`, `30m`, `45s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "expected a number and a unit, such as 90d, 12h, 30m or 45s";
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}; {expected}"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("invalid duration {text:?}; {expected}")),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid duration {text:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_gate_is_a_count_or_a_share() {
        assert_eq!(parse_gate("25"), Ok(Gate::Count(25)));
        assert_eq!(parse_gate("0.1%"), Ok(Gate::Percent(0.1)));
        assert!(parse_gate("ten").is_err());
        assert!(parse_gate("120%").is_err());
        assert!(Gate::Percent(0.1).allows(1, 1000));
        assert!(!Gate::Percent(0.1).allows(1, 999));
        assert!(Gate::Percent(0.0).allows(0, 10));
        assert!(!Gate::Count(0).allows(1, 10));
    }
}
