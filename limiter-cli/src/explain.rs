//! `limiter explain`: resolve one request as the service would, and say which limits apply
//! and why, or which bypass rule lets it through.

use std::io::Write;

use limiter_core::policy::{Config, PolicyKind};
use limiter_core::{BypassReason, Check, Request, Resolution};
use serde::Serialize;

use crate::args::{ExplainArgs, Format};
use crate::load;
use crate::table::Table;
use crate::{CliError, Outcome};

/// One limit that applies.
#[derive(Debug, Serialize)]
struct Applied {
    policy: String,
    key: String,
    rate: String,
    algorithm: &'static str,
    cost: u64,
    mode: &'static str,
}

/// What `explain --format json` prints.
#[derive(Debug, Serialize)]
struct Explanation {
    /// `limits`, `bypass`, or `bypass_kept` (bypassed, but `bypass.keep` still applies some).
    outcome: &'static str,
    anonymous: bool,
    /// Why the request bypasses, and the rule that says so.
    bypass: Option<Bypass>,
    limits: Vec<Applied>,
    /// Why other policies do not apply.
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Bypass {
    reason: String,
    rule: String,
}

pub(crate) fn run(args: &ExplainArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let loaded = load::load(&args.configs, args.sources.no_env)?;
    let request = request(args);
    let resolution = loaded
        .policies
        .resolve(&request)
        .map_err(CliError::Request)?;
    let config = &loaded.config;
    let (outcome, bypass, checks) = match &resolution {
        Resolution::Bypass(reason) => ("bypass", Some(reason), None),
        Resolution::Limits(checks) => ("limits", None, Some(checks)),
        Resolution::Kept { bypass, checks } => ("bypass_kept", Some(bypass), Some(checks)),
        // A resolution this version does not know: show what can be shown.
        _ => ("unknown", None, None),
    };
    let limits: Vec<Applied> = checks
        .map(|c| c.iter().map(applied).collect())
        .unwrap_or_default();
    let explanation = Explanation {
        outcome,
        anonymous: request.is_anonymous(),
        bypass: bypass.map(|r| Bypass {
            reason: r.to_string(),
            rule: rule(config, r),
        }),
        // Why a policy does not apply matters only when no bypass decided.
        notes: if bypass.is_some() {
            Vec::new()
        } else {
            notes(config, &request, &limits)
        },
        limits,
    };
    let write = |e: std::io::Error| CliError::Io {
        path: "standard output".into(),
        source: e,
    };
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &explanation).map_err(|e| write(e.into()))?;
            writeln!(out).map_err(write)?;
        }
        Format::Human => out
            .write_all(human(&request, &explanation).as_bytes())
            .map_err(write)?,
    }
    Ok(Outcome::Ok)
}

fn request(args: &ExplainArgs) -> Request {
    let mut r = Request::new()
        .staff(args.staff)
        .superuser(args.superuser)
        .cost(args.cost);
    if let Some(v) = &args.tenant {
        r = r.tenant(v);
    }
    if let Some(v) = &args.plan {
        r = r.plan(v);
    }
    if let Some(v) = &args.user {
        r = r.user(v);
    }
    for role in &args.roles {
        r = r.role(role);
    }
    if let Some(ip) = args.ip {
        r = r.ip(ip);
    }
    if let Some(v) = &args.scope {
        r = r.scope(v);
    }
    if let Some(id) = &args.key_id {
        r = r.api_key(id, args.bypass);
    }
    r
}

fn applied(check: &Check) -> Applied {
    let rate = check.limit.rate();
    Applied {
        policy: check.policy.to_string(),
        key: check.key.to_string(),
        rate: rate.to_string(),
        algorithm: check.limit.algorithm().name(),
        cost: check.cost,
        mode: if check.shadow { "shadow" } else { "enforced" },
    }
}

/// The setting that makes `reason` a bypass.
fn rule(config: &Config, reason: &BypassReason) -> String {
    match reason {
        BypassReason::Staff => "bypass.staff = true: staff users bypass".into(),
        BypassReason::Superuser => "bypass.superuser = true: superusers bypass".into(),
        BypassReason::ApiKey(id) => {
            format!("bypass.api_keys = true, and the API key {id} is flagged bypass")
        }
        BypassReason::Ip(ip) => {
            let nets: Vec<String> = config
                .bypass
                .ips
                .iter()
                .enumerate()
                .filter(|(_, n)| n.contains(*ip))
                .map(|(i, n)| format!("bypass.ips[{i}] = {n}"))
                .collect();
            if nets.is_empty() {
                format!("bypass.ips contains {ip}")
            } else {
                format!("{} contains {ip}", nets.join(", "))
            }
        }
        BypassReason::Tenant(t) => format!("bypass.tenants lists {t:?}"),
        BypassReason::User(u) => format!("bypass.users lists {u:?}"),
        other => other.to_string(),
    }
}

/// Why the policies that are not in `limits` do not apply.
fn notes(config: &Config, request: &Request, limits: &[Applied]) -> Vec<String> {
    let mut notes = Vec::new();
    let has = |policy: &str| limits.iter().any(|l| l.policy == policy);
    let p = &config.policies;
    if request.is_anonymous() {
        notes.push(
            "anonymous (no user and no API key): the plan and role limits do not apply".into(),
        );
    } else {
        if request.plan.is_none() {
            notes.push(format!(
                "no plan given: the default plan {:?} applies",
                config.default_plan
            ));
        }
        if !request.roles.is_empty() && !has("role") {
            let configured: Vec<&String> = request
                .roles
                .iter()
                .filter(|r| config.roles.contains_key(*r))
                .collect();
            if configured.is_empty() {
                notes.push(format!(
                    "no role limit: none of the roles {} is configured",
                    request.roles.join(", ")
                ));
            }
        }
        if request.roles.len() > 1 && has("role") {
            notes.push("several roles: the most generous configured role's limit applies".into());
        }
    }
    if let Some(scope) = &request.scope
        && !config.scopes.contains_key(scope)
    {
        notes.push(format!("scope {scope:?} is not configured: no scope limit"));
    }
    for kind in PolicyKind::ALL {
        let name = kind.name();
        if !p[kind].enabled {
            notes.push(format!(
                "policy {name} is disabled (policies.{name}.enabled = false)"
            ));
        }
    }
    for kind in PolicyKind::ALL {
        let policy = &p[kind];
        let applies = match kind {
            PolicyKind::Scope => limits.iter().any(|l| l.policy.starts_with("scope.")),
            _ => has(kind.name()),
        };
        let expected = match kind {
            PolicyKind::PlanSustained | PolicyKind::PlanBurst | PolicyKind::PlanDaily => {
                !request.is_anonymous()
            }
            PolicyKind::Role => request.roles.iter().any(|r| config.roles.contains_key(r)),
            PolicyKind::Scope => request
                .scope
                .as_ref()
                .is_some_and(|s| config.scopes.contains_key(s)),
            PolicyKind::Anon => request.is_anonymous(),
            PolicyKind::IpBurst => true,
            // Policies that apply only on another path (key_failures: a presented API key that
            // failed verification), which a request's description does not show.
            _ => false,
        };
        if policy.enabled && expected && !applies {
            let keys: Vec<String> = policy.key.iter().map(ToString::to_string).collect();
            notes.push(format!(
                "policy {} does not apply: the request has none of its subjects ({})",
                kind.name(),
                keys.join(", ")
            ));
        }
    }
    notes
}

fn human(request: &Request, e: &Explanation) -> String {
    let mut s = String::new();
    let mut who = Vec::new();
    let mut field = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            who.push(format!("{name} {v}"));
        }
    };
    field("tenant", request.tenant.as_deref());
    field("plan", request.plan.as_deref());
    field("user", request.user.as_deref());
    if !request.roles.is_empty() {
        who.push(format!("roles {}", request.roles.join(", ")));
    }
    if let Some(key) = &request.api_key {
        who.push(format!(
            "API key {}{}",
            key.id,
            if key.bypass { " (flagged bypass)" } else { "" }
        ));
    }
    if request.is_staff {
        who.push("staff".into());
    }
    if request.is_superuser {
        who.push("superuser".into());
    }
    if let Some(ip) = request.client_ip {
        who.push(format!("ip {ip}"));
    }
    if let Some(scope) = &request.scope {
        who.push(format!("scope {scope}"));
    }
    if request.cost != 1 {
        who.push(format!("cost {}", request.cost));
    }
    s.push_str(&format!(
        "Request: {} ({})\n",
        if who.is_empty() {
            "nothing known".into()
        } else {
            who.join(", ")
        },
        if e.anonymous {
            "anonymous"
        } else {
            "authenticated"
        }
    ));
    if let Some(b) = &e.bypass {
        s.push_str(&format!("Bypass: {} ({})\n", b.reason, b.rule));
        if e.limits.is_empty() {
            s.push_str("Nothing is counted and no store is read.\n");
            return s;
        }
        s.push_str("Still applied to bypassed requests (bypass.keep), all or nothing:\n");
    } else if e.limits.is_empty() {
        s.push_str("No limit applies.\n");
    } else {
        s.push_str("Limits checked, all or nothing (the strictest decides):\n");
    }
    if !e.limits.is_empty() {
        let mut t = Table::new(&["POLICY", "KEY", "RATE", "ALGORITHM", "MODE"]);
        for l in &e.limits {
            t.row(vec![
                l.policy.clone(),
                l.key.clone(),
                l.rate.clone(),
                l.algorithm.to_owned(),
                l.mode.to_owned(),
            ]);
        }
        s.push_str(&t.render(2));
    }
    if !e.notes.is_empty() {
        s.push_str("Notes:\n");
        for n in &e.notes {
            s.push_str(&format!("  - {n}\n"));
        }
    }
    s
}
