//! `limiter check`: load a configuration as the service does, print the effective policy table
//! and warn about settings that are valid but probably not meant.

use std::cmp::Ordering;
use std::io::Write;

use limiter_core::policy::{AUTO_SLIDING_LOG_MAX, AlgorithmChoice, Config, PolicyKind};
use limiter_core::{Rate, SubjectKind};
use serde::Serialize;

use crate::args::{CheckArgs, Format};
use crate::load::{self, Loaded};
use crate::table::Table;
use crate::{CliError, Outcome};

/// One line of the effective policy table.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    /// The plan, role or scope the row belongs to (empty for `anon` and `ip_burst`).
    pub(crate) name: String,
    /// The policy its checks carry (`plan_burst`, `scope.auth`).
    pub(crate) policy: String,
    pub(crate) rate: String,
    /// The algorithm after `auto` is resolved.
    pub(crate) algorithm: &'static str,
    /// The subjects it counts per, the first present: `tenant, user, api_key, ip (/32, /64)`.
    pub(crate) keyed_by: String,
    /// `enforced`, `shadow` or `disabled`, and `no headers` when kept out of headers.
    pub(crate) mode: String,
}

/// A valid but suspicious setting.
#[derive(Debug, Serialize)]
pub(crate) struct Warning {
    /// Where it is set: `file:line:column`, `environment (VAR)`, or nothing for a default.
    pub(crate) at: Option<String>,
    /// The setting's path.
    pub(crate) path: String,
    /// What is suspicious and what is expected.
    pub(crate) message: String,
}

/// The effective policies, as `check --format json` prints them.
#[derive(Debug, Serialize)]
struct Report<'a> {
    valid: bool,
    files: Vec<String>,
    environment: Vec<&'a str>,
    namespace: &'a str,
    default_plan: &'a str,
    time_zone: &'a str,
    plans: Vec<Row>,
    roles: Vec<Row>,
    scopes: Vec<Row>,
    anonymous: Vec<Row>,
    per_ip: Vec<Row>,
    bypass: &'a limiter_core::policy::BypassConfig,
    warnings: Vec<Warning>,
}

pub(crate) fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let loaded = load::load(&args.configs, args.sources.no_env)?;
    let config = &loaded.config;
    let warnings = warnings(&loaded);
    let report = Report {
        valid: true,
        files: args
            .configs
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        environment: loaded.env.iter().map(|(k, _)| k.as_str()).collect(),
        namespace: &config.namespace,
        default_plan: &config.default_plan,
        time_zone: &config.time_zone,
        plans: plan_rows(&loaded),
        roles: named_rows(config, PolicyKind::Role, &config.roles, |_| "role".into()),
        scopes: named_rows(config, PolicyKind::Scope, &config.scopes, |n| {
            format!("scope.{n}")
        }),
        anonymous: config
            .scopes
            .get("anon")
            .map(|rate| {
                row(
                    config,
                    PolicyKind::Anon,
                    String::new(),
                    "anon".into(),
                    *rate,
                )
            })
            .into_iter()
            .collect(),
        per_ip: vec![
            row(
                config,
                PolicyKind::IpBurst,
                String::new(),
                "ip_burst".into(),
                config.ip_burst,
            ),
            row(
                config,
                PolicyKind::KeyFailures,
                String::new(),
                "key_failures".into(),
                config.key_failures,
            ),
        ],
        bypass: &config.bypass,
        warnings,
    };
    let write = |e: std::io::Error| CliError::Io {
        path: "standard output".into(),
        source: e,
    };
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report).map_err(|e| write(e.into()))?;
            writeln!(out).map_err(write)?;
        }
        Format::Human => out.write_all(human(&report).as_bytes()).map_err(write)?,
    }
    let mut stderr = std::io::stderr().lock();
    for w in &report.warnings {
        let at =
            w.at.as_deref()
                .map(|a| format!("{a}: "))
                .unwrap_or_default();
        let _ = writeln!(stderr, "warning: {at}{}: {}", w.path, w.message);
    }
    if args.deny_warnings && !report.warnings.is_empty() {
        let n = report.warnings.len();
        let _ = writeln!(
            stderr,
            "error: {n} warning{} with --deny-warnings",
            if n == 1 { "" } else { "s" }
        );
        return Ok(Outcome::Finding);
    }
    Ok(Outcome::Ok)
}

fn human(r: &Report<'_>) -> String {
    let mut s = String::new();
    let env = match r.environment.len() {
        0 => String::new(),
        1 => ", environment (1 variable)".into(),
        n => format!(", environment ({n} variables)"),
    };
    s.push_str(&format!(
        "{}{env}: valid\nnamespace {:?}, default plan {:?}, daily quotas reset at midnight {}\n",
        r.files.join(", "),
        r.namespace,
        r.default_plan,
        r.time_zone
    ));
    let section = |s: &mut String, title: &str, first: &str, rows: &[Row]| {
        s.push('\n');
        s.push_str(title);
        s.push('\n');
        let mut t = if first.is_empty() {
            Table::new(&["POLICY", "RATE", "ALGORITHM", "KEYED BY", "MODE"])
        } else {
            Table::new(&[first, "POLICY", "RATE", "ALGORITHM", "KEYED BY", "MODE"])
        };
        for row in rows {
            let mut cells = Vec::with_capacity(6);
            if !first.is_empty() {
                cells.push(row.name.clone());
            }
            cells.extend([
                row.policy.clone(),
                row.rate.clone(),
                row.algorithm.to_owned(),
                row.keyed_by.clone(),
                row.mode.clone(),
            ]);
            t.row(cells);
        }
        if t.is_empty() {
            s.push_str("  (none)\n");
        } else {
            s.push_str(&t.render(2));
        }
    };
    section(
        &mut s,
        "Plans (authenticated requests; every limit is checked, the strictest decides)",
        "PLAN",
        &r.plans,
    );
    section(
        &mut s,
        "Roles (per user in its tenant: the most generous of the user's configured roles)",
        "ROLE",
        &r.roles,
    );
    section(
        &mut s,
        "Scopes (the request's endpoint group)",
        "SCOPE",
        &r.scopes,
    );
    section(
        &mut s,
        "Anonymous requests (no user and no API key)",
        "",
        &r.anonymous,
    );
    section(
        &mut s,
        "Every request (key_failures: API keys that fail verification)",
        "",
        &r.per_ip,
    );
    let b = r.bypass;
    let yes = |v: bool| if v { "yes" } else { "no" }.to_owned();
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let ips: Vec<String> = b.ips.iter().map(ToString::to_string).collect();
    let mut t = Table::new(&["RULE", "BYPASSES"]);
    t.row(vec!["bypass.staff".into(), yes(b.staff)]);
    t.row(vec!["bypass.superuser".into(), yes(b.superuser)]);
    t.row(vec![
        "bypass.api_keys (keys flagged bypass)".into(),
        yes(b.api_keys),
    ]);
    t.row(vec!["bypass.ips".into(), list(&ips)]);
    t.row(vec!["bypass.tenants".into(), list(&b.tenants)]);
    t.row(vec!["bypass.users".into(), list(&b.users)]);
    t.row(vec!["bypass.keep (still applied)".into(), list(&b.keep)]);
    s.push_str("\nBypass (checked first, in this order; a bypassed request counts nothing)\n");
    s.push_str(&t.render(2));
    s
}

/// The algorithm `choice` enforces `rate` with.
pub(crate) fn algorithm(choice: AlgorithmChoice, rate: Rate) -> &'static str {
    match choice {
        AlgorithmChoice::Auto if rate.limit() <= AUTO_SLIDING_LOG_MAX => "sliding_log",
        AlgorithmChoice::Auto => "sliding_window",
        other => other.name(),
    }
}

fn row(config: &Config, kind: PolicyKind, name: String, policy: String, rate: Rate) -> Row {
    let p = &config.policies[kind];
    let keyed_by = p
        .key
        .iter()
        .map(|k| match k {
            SubjectKind::Ip => format!(
                "ip (/{}, /{})",
                p.ipv4_prefix.unwrap_or(config.client.ipv4_prefix),
                p.ipv6_prefix.unwrap_or(config.client.ipv6_prefix)
            ),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut mode = if !p.enabled {
        "disabled"
    } else if p.shadow {
        "shadow"
    } else {
        "enforced"
    }
    .to_owned();
    if !p.headers {
        mode.push_str(", no headers");
    }
    Row {
        name,
        policy,
        rate: rate.to_string(),
        algorithm: algorithm(p.algorithm, rate),
        keyed_by,
        mode,
    }
}

fn plan_rows(loaded: &Loaded) -> Vec<Row> {
    let config = &loaded.config;
    let mut plans: Vec<_> = config.plans.iter().collect();
    // From the least to the most generous, as upgrades go.
    plans.sort_by(|a, b| per_time(a.1.sustained, b.1.sustained).then_with(|| a.0.cmp(b.0)));
    let mut rows = Vec::with_capacity(plans.len() * 3);
    for (name, plan) in plans {
        let compiled = loaded.policies.plan(name);
        for (kind, rate, limit) in [
            (
                PolicyKind::PlanSustained,
                plan.sustained,
                compiled.map(|p| p.sustained()),
            ),
            (
                PolicyKind::PlanBurst,
                plan.burst,
                compiled.map(|p| p.burst()),
            ),
            (
                PolicyKind::PlanDaily,
                plan.daily,
                compiled.map(|p| p.daily()),
            ),
        ] {
            let mut row = row(config, kind, name.clone(), kind.name().into(), rate);
            // The compiled limit is what the service enforces.
            if let Some(limit) = limit {
                row.algorithm = limit.algorithm().name();
            }
            rows.push(row);
        }
    }
    rows
}

fn named_rows(
    config: &Config,
    kind: PolicyKind,
    rates: &std::collections::BTreeMap<String, Rate>,
    policy: impl Fn(&str) -> String,
) -> Vec<Row> {
    rates
        .iter()
        .map(|(name, rate)| row(config, kind, name.clone(), policy(name), *rate))
        .collect()
}

/// Orders rates by requests per unit of time.
fn per_time(a: Rate, b: Rate) -> Ordering {
    let lhs = u128::from(a.limit()) * u128::from(b.period().micros());
    let rhs = u128::from(b.limit()) * u128::from(a.period().micros());
    lhs.cmp(&rhs)
}

const HOUR_MICROS: u128 = 3_600_000_000;

/// Settings that load but are probably not meant.
pub(crate) fn warnings(loaded: &Loaded) -> Vec<Warning> {
    let config = &loaded.config;
    let mut out = Vec::new();
    let mut warn = |path: String, message: String| {
        out.push(Warning {
            at: loaded.locate(&path),
            path,
            message,
        });
    };
    let enabled = |kind: PolicyKind| config.policies[kind].enabled;
    for (name, plan) in &config.plans {
        let (s, b, d) = (plan.sustained, plan.burst, plan.daily);
        if enabled(PolicyKind::PlanBurst)
            && enabled(PolicyKind::PlanSustained)
            && b.period().micros() <= s.period().micros()
            && b.limit() > s.limit()
        {
            warn(
                format!("plans.{name}.burst"),
                format!(
                    "burst {b} is above the sustained {s}: the sustained limit denies first, so \
                     the burst is never reached; expected a burst of at most {} requests",
                    s.limit()
                ),
            );
        }
        let hour_of_sustained =
            u128::from(s.limit()) * HOUR_MICROS / u128::from(s.period().micros().max(1));
        if enabled(PolicyKind::PlanDaily)
            && enabled(PolicyKind::PlanSustained)
            && u128::from(d.limit()) < hour_of_sustained
        {
            warn(
                format!("plans.{name}.daily"),
                format!(
                    "daily quota {d} is below one hour of the sustained {s} \
                     ({hour_of_sustained} requests): the quota runs out within the first hour \
                     at the sustained rate; expected at least {hour_of_sustained}/day"
                ),
            );
        }
        if enabled(PolicyKind::IpBurst)
            && enabled(PolicyKind::PlanBurst)
            && per_time(config.ip_burst, b) == Ordering::Less
        {
            warn(
                "ip_burst".into(),
                format!(
                    "ip_burst {} is below plans.{name}.burst {b}: a {name} tenant sending from \
                     one server is throttled below its plan; expected at least {b}",
                    config.ip_burst
                ),
            );
        }
    }
    for (i, net) in config.bypass.ips.iter().enumerate() {
        let broad = match net.addr() {
            std::net::IpAddr::V4(_) => net.prefix() < 8,
            std::net::IpAddr::V6(_) => net.prefix() < 32,
        };
        if broad {
            warn(
                format!("bypass.ips[{i}]"),
                format!(
                    "{net} lets a very large part of the Internet bypass every limit; expected \
                     the addresses of trusted hosts or private networks"
                ),
            );
        }
    }
    out
}
