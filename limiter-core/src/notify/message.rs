//! The texts of notifications: templates with named placeholders, checked once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::NotifyKind;
use crate::policy::{PlanLimits, PolicyKind, PolicySet};
use crate::{Error, Rate, Unit};

/// Every placeholder a template may use:
///
/// - `{percent}`: the threshold share crossed, such as `80`;
/// - `{limit}`: the limit as a rate, such as `5000/day`;
/// - `{period}`: the limit's period as an adjective, such as `daily`, `hourly`, `5-minute`;
/// - `{plan}`: the subject's plan, capitalised, such as `Starter`;
/// - `{next_plan}`: the next plan up in the configured order, capitalised;
/// - `{next_limit}`: the same policy's limit on the next plan, such as `20000/day`;
/// - `{resets_in}`: the time until the limit resets, such as `1 hour` or `45 minutes`.
///
/// `{{` and `}}` write a literal brace.
pub const PLACEHOLDERS: [&str; 7] = [
    "percent",
    "limit",
    "period",
    "plan",
    "next_plan",
    "next_limit",
    "resets_in",
];

/// The templates as written in a file (`[notify.messages]`), before
/// [`Messages::from_config`] checks them. Every field defaults to the text shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// "approaching": `You're at {percent}% of your {period} limit`.
    pub approaching: String,
    /// "exhausted": `You've used all of your {period} limit of {limit}`.
    pub exhausted: String,
    /// "resets soon": `Your rate limit resets in {resets_in}`.
    pub resets_soon: String,
    /// "restored": `Your API access has been restored`.
    pub restored: String,
    /// The upgrade hint added to approaching and exhausted notices on plan limits:
    /// `Upgrade to {next_plan} for {next_limit}; you are on {plan} at {limit}`.
    pub upgrade: String,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig {
            approaching: "You're at {percent}% of your {period} limit".into(),
            exhausted: "You've used all of your {period} limit of {limit}".into(),
            resets_soon: "Your rate limit resets in {resets_in}".into(),
            restored: "Your API access has been restored".into(),
            upgrade: "Upgrade to {next_plan} for {next_limit}; you are on {plan} at {limit}".into(),
        }
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    /// An index into [`PLACEHOLDERS`].
    Var(usize),
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Segment>);

impl Template {
    /// Parses `text`, the template `name`; errors name `notify.messages.<name>`.
    fn parse(name: &str, text: &str) -> Result<Template, Error> {
        let err = |message: String| Error::config(format!("notify.messages.{name}"), message);
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(err(format!(
                        "unmatched \"}}\" in {text:?}; expected {{placeholder}}, or \"}}}}\" \
                         for a literal brace"
                    )));
                }
                '{' => {
                    let mut var = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        var.push(c);
                    }
                    if !closed {
                        return Err(err(format!(
                            "unclosed \"{{\" in {text:?}; expected {{placeholder}}, or \"{{{{\" \
                             for a literal brace"
                        )));
                    }
                    let Some(index) = PLACEHOLDERS.iter().position(|p| *p == var) else {
                        return Err(err(format!(
                            "unknown placeholder {{{var}}}; expected one of: {}",
                            PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                        )));
                    };
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Var(index));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Template(segments))
    }

    /// The text, or `None` if a placeholder it uses has no value in `vars`.
    fn render(&self, vars: &MessageVars) -> Option<String> {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Var(index) => out.push_str(&vars.value(*index)?),
            }
        }
        Some(out)
    }
}

/// The values a template's placeholders take for one notice.
///
/// ```
/// use std::time::Duration;
/// use limiter_core::notify::{MessageVars, Messages, NotifyKind};
///
/// let vars = MessageVars::new("100/hour".parse()?).resets_in(Duration::from_secs(45 * 60));
/// let text = Messages::default().render(NotifyKind::ResetsSoon, &vars);
/// assert_eq!(text.as_deref(), Some("Your rate limit resets in 45 minutes"));
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageVars {
    percent: Option<u8>,
    limit: Option<Rate>,
    plan: Option<String>,
    next_plan: Option<String>,
    next_limit: Option<Rate>,
    resets_in: Option<Duration>,
}

impl MessageVars {
    /// The values for a notice about a limit of `rate` (`{limit}` and `{period}`).
    pub fn new(rate: Rate) -> MessageVars {
        MessageVars {
            limit: Some(rate),
            ..MessageVars::default()
        }
    }

    /// The values for a notice about the limit of `policy` on `plan`, with the next plan up
    /// from `policies` and its limit of the same policy (`None` if `policy` is not a plan
    /// policy).
    pub fn for_plan(
        policies: &PolicySet,
        plan: &PlanLimits,
        policy: PolicyKind,
    ) -> Option<MessageVars> {
        let limit_of = |plan: &PlanLimits| match policy {
            PolicyKind::PlanDaily => Some(plan.daily().rate()),
            PolicyKind::PlanSustained => Some(plan.sustained().rate()),
            PolicyKind::PlanBurst => Some(plan.burst().rate()),
            _ => None,
        };
        let mut vars = MessageVars::new(limit_of(plan)?).plan(plan.name());
        if let Some(next) = policies.next_plan(plan.name()) {
            vars = vars.next_plan(next.name(), limit_of(next)?);
        }
        Some(vars)
    }

    /// Sets `{percent}`.
    pub fn percent(mut self, percent: u8) -> MessageVars {
        self.percent = Some(percent);
        self
    }

    /// Sets `{plan}` from the plan's configured name (shown capitalised).
    pub fn plan(mut self, name: &str) -> MessageVars {
        self.plan = Some(capitalise(name));
        self
    }

    /// Sets `{next_plan}` (shown capitalised) and `{next_limit}`.
    pub fn next_plan(mut self, name: &str, limit: Rate) -> MessageVars {
        self.next_plan = Some(capitalise(name));
        self.next_limit = Some(limit);
        self
    }

    /// Sets `{resets_in}`.
    pub fn resets_in(mut self, resets_in: Duration) -> MessageVars {
        self.resets_in = Some(resets_in);
        self
    }

    /// The value of the placeholder at `index` in [`PLACEHOLDERS`].
    fn value(&self, index: usize) -> Option<String> {
        match PLACEHOLDERS.get(index).copied()? {
            "percent" => self.percent.map(|p| p.to_string()),
            "limit" => self.limit.map(|r| r.to_string()),
            "period" => self.limit.map(period_adjective),
            "plan" => self.plan.clone(),
            "next_plan" => self.next_plan.clone(),
            "next_limit" => self.next_limit.map(|r| r.to_string()),
            "resets_in" => self.resets_in.map(human_duration),
            _ => None,
        }
    }
}

/// The checked texts of the four notices and of the upgrade hint.
///
/// ```
/// use limiter_core::notify::{Messages, MessagesConfig};
///
/// let config = MessagesConfig { restored: "Welcome back: {limt} again".into(), ..Default::default() };
/// let err = Messages::from_config(&config).unwrap_err();
/// assert!(err.to_string().starts_with(
///     "invalid configuration at notify.messages.restored: unknown placeholder {limt}"
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Messages {
    approaching: Template,
    exhausted: Template,
    resets_soon: Template,
    restored: Template,
    upgrade: Template,
}

impl Default for Messages {
    fn default() -> Self {
        // The default templates are valid (a test asserts it); should that ever break, a
        // clear panic at startup beats notices without text.
        #[allow(clippy::expect_used)]
        Messages::from_config(&MessagesConfig::default()).expect("the default templates are valid")
    }
}

impl Messages {
    /// Checks every template of `config`: an unknown placeholder or an unmatched brace is an
    /// [`Error::InvalidConfig`] naming the template (`notify.messages.upgrade`) and the
    /// placeholder.
    pub fn from_config(config: &MessagesConfig) -> Result<Messages, Error> {
        Ok(Messages {
            approaching: Template::parse("approaching", &config.approaching)?,
            exhausted: Template::parse("exhausted", &config.exhausted)?,
            resets_soon: Template::parse("resets_soon", &config.resets_soon)?,
            restored: Template::parse("restored", &config.restored)?,
            upgrade: Template::parse("upgrade", &config.upgrade)?,
        })
    }

    /// The text of a notice of `kind`, or `None` if its template uses a placeholder that
    /// `vars` has no value for.
    pub fn render(&self, kind: NotifyKind, vars: &MessageVars) -> Option<String> {
        let template = match kind {
            NotifyKind::Approaching => &self.approaching,
            NotifyKind::Exhausted => &self.exhausted,
            NotifyKind::ResetsSoon => &self.resets_soon,
            NotifyKind::Restored => &self.restored,
        };
        template.render(vars)
    }

    /// The upgrade hint, or `None` if a placeholder it uses has no value (by default: on the
    /// top plan, which has no next plan, or on a limit that is not a plan's).
    pub fn upgrade_hint(&self, vars: &MessageVars) -> Option<String> {
        self.upgrade.render(vars)
    }
}

/// A configured name as shown to people: its first letter in upper case (`starter` gives
/// `Starter`).
pub fn capitalise(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The period of `rate` as an adjective: `daily`, `hourly`, `per-minute`, `5-minute`.
fn period_adjective(rate: Rate) -> String {
    let period = rate.period();
    let unit = match period.unit() {
        Unit::Second => "second",
        Unit::Minute => "minute",
        Unit::Hour => "hour",
        Unit::Day => "day",
    };
    match (period.count(), period.unit()) {
        (1, Unit::Day) => "daily".into(),
        (1, Unit::Hour) => "hourly".into(),
        (1, _) => format!("per-{unit}"),
        (n, _) => format!("{n}-{unit}"),
    }
}

/// A duration for people: `30 seconds`, `45 minutes`, `1 hour`, `2 hours 30 minutes`, rounded
/// up to the minute from one minute on.
fn human_duration(d: Duration) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    if secs < 60 {
        return plural(secs, "second");
    }
    let minutes = secs.div_ceil(60);
    match (minutes / 60, minutes % 60) {
        (0, m) => plural(m, "minute"),
        (h, 0) => plural(h, "hour"),
        (h, m) => format!("{} {}", plural(h, "hour"), plural(m, "minute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(s(0)), "0 seconds");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(60)), "1 minute");
        assert_eq!(human_duration(s(3600)), "1 hour");
        assert_eq!(human_duration(s(3599)), "1 hour");
        assert_eq!(human_duration(s(9000)), "2 hours 30 minutes");
    }

    #[test]
    fn braces_escape_and_unmatched_ones_are_errors() {
        let t = Template::parse("restored", "{{ok}} {percent}%").unwrap();
        let vars = MessageVars::default().percent(5);
        assert_eq!(t.render(&vars).as_deref(), Some("{ok} 5%"));
        assert!(Template::parse("restored", "oops {percent").is_err());
        assert!(Template::parse("restored", "oops }").is_err());
    }
}
