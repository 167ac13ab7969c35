//! `limiter report`: the questions an operator asks of the recorded events (who hits limits,
//! who leads, who nears a daily quota, what happened to one tenant) over the core's
//! [`EventLog`] in a SQLite file or a Redis; and `report prune`, by age.

use std::io::Write;
use std::time::Duration;

use limiter_core::event::{
    EventCursor, EventLog, EventQuery, LimitEvent, QuotaUsage, Retention, TenantCount, TenantHits,
};
use limiter_core::request_log::{format_ts, parse_ts};
use limiter_core::{Calendar, Clock, Micros, SystemClock};
use serde::Serialize;

use crate::args::{EventStoreArgs, Format, PruneArgs, ReportAction, ReportArgs};
use crate::table::Table;
use crate::{CliError, Outcome, stores};

pub(crate) fn run(args: &ReportArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    stores::block_on(async {
        match &args.action {
            Some(ReportAction::Prune(prune_args)) => prune(prune_args, out).await,
            None => report(args, out).await,
        }
    })
}

fn written(e: std::io::Error) -> CliError {
    CliError::Io {
        path: "standard output".into(),
        source: e,
    }
}

/// The log's days: its time zone, and now.
struct Days {
    calendar: Calendar,
    tz: jiff::tz::TimeZone,
    now: Micros,
}

impl Days {
    fn new(zone: &str) -> Result<Days, CliError> {
        let calendar = Calendar::new(zone)
            .map_err(|e| CliError::Usage(format!("invalid --time-zone: {e}")))?;
        let tz = jiff::tz::TimeZone::get(zone)
            .map_err(|e| CliError::Usage(format!("invalid --time-zone {zone:?}: {e}")))?;
        Ok(Days {
            calendar,
            tz,
            now: SystemClock.now(),
        })
    }

    /// `--flag TEXT`: an RFC 3339 instant, a date (its first instant in the zone) or a span
    /// back from now (`90m`, `24h`, `7d`).
    fn instant(&self, flag: &str, text: &str) -> Result<Micros, CliError> {
        if let Some(span) = span(text) {
            return Ok(self.now.saturating_sub(span));
        }
        let local_midnight = text
            .parse::<jiff::civil::Date>()
            .ok()
            .and_then(|date| date.to_zoned_datetime(self.tz.clone()).ok())
            .and_then(|z| Micros::try_from(z.timestamp().as_microsecond()).ok());
        if let Some(at) = local_midnight {
            return Ok(at);
        }
        parse_ts(text).map_err(|_| {
            CliError::Usage(format!(
                "invalid --{flag} {text:?}: expected an RFC 3339 instant \
                 (2026-11-26T10:00:00Z), a date (2026-11-26) or a span back from now (90m, \
                 24h, 7d)"
            ))
        })
    }

    /// The local day named by `--day` (today without it): its first instant and the next
    /// day's.
    fn day(&self, day: Option<&str>) -> Result<(Micros, Micros), CliError> {
        let at = match day {
            None => self.now,
            Some(text) => {
                let date: jiff::civil::Date = text.parse().map_err(|_| {
                    CliError::Usage(format!(
                        "invalid --day {text:?}: expected a date such as 2026-11-26"
                    ))
                })?;
                date.to_zoned_datetime(self.tz.clone())
                    .ok()
                    .and_then(|z| Micros::try_from(z.timestamp().as_microsecond()).ok())
                    .ok_or_else(|| {
                        CliError::Usage(format!("invalid --day {text:?}: out of range"))
                    })?
            }
        };
        Ok(self.calendar.day_bounds(at))
    }

    /// The local date that holds `at`.
    fn date(&self, at: Micros) -> String {
        i64::try_from(at)
            .ok()
            .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
            .map_or_else(
                || format_ts(at),
                |t| t.to_zoned_datetime(self.tz.clone()).date().to_string(),
            )
    }
}

/// `90m`, `24h`, `7d`, `45s` in microseconds.
fn span(text: &str) -> Option<Micros> {
    let unit = text.chars().last()?;
    let seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let number = &text[..text.len() - 1];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number
        .parse::<u64>()
        .ok()?
        .checked_mul(seconds)?
        .checked_mul(1_000_000)
}

/// The event log named on the command line.
async fn open(args: &EventStoreArgs, calendar: Calendar) -> Result<Box<dyn EventLog>, CliError> {
    if let Some(path) = &args.sqlite {
        stores::existing(path)?;
        let log = limiter_sqlite::SqliteEventLog::open(path, calendar, stores::BUSY)
            .await
            .map_err(stores::sqlite_failed(path))?;
        return Ok(Box::new(log));
    }
    let store = stores::redis(args.redis.as_deref().unwrap_or_default()).await?;
    let log = limiter_redis::RedisEventLog::new(&store, &args.prefix, calendar)
        .map_err(|e| CliError::Usage(format!("invalid --prefix: {e}")))?;
    Ok(Box::new(log))
}

fn failed(error: limiter_core::Error) -> CliError {
    CliError::Store {
        at: "the event log".into(),
        source: error,
    }
}

/// Whether rows were shown: exit 0 if so, 1 if none matched.
fn found(rows: usize) -> Outcome {
    if rows == 0 {
        Outcome::Finding
    } else {
        Outcome::Ok
    }
}

fn json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| written(e.into()))?;
    writeln!(out).map_err(written)
}

async fn report(args: &ReportArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let days = Days::new(&args.store.time_zone)?;
    let log = open(&args.store, days.calendar.clone()).await?;
    if let Some(n) = args.top {
        let (from, _) = days.day(args.day.as_deref())?;
        let top = log.top_hit_tenants(from, n).await.map_err(failed)?;
        show_top(out, &days, from, n, &top, args.format)?;
        return Ok(found(top.len()));
    }
    if let Some(percent) = args.near {
        let (from, _) = days.day(args.day.as_deref())?;
        let near = log.near_quota(from, percent).await.map_err(failed)?;
        show_near(out, &days, from, percent, &near, args.format)?;
        return Ok(found(near.len()));
    }
    let (from, to) = range(args, &days)?;
    if let Some(tenant) = &args.tenant {
        let mut query = EventQuery::tenant(tenant)
            .between(from, to)
            .limit(usize::try_from(args.limit).unwrap_or(usize::MAX));
        for kind in &args.kinds {
            query = query.kind(*kind);
        }
        if let Some(policy) = &args.policy {
            query = query.policy(policy);
        }
        if let Some(cursor) = &args.after {
            query = query.after(EventCursor(cursor.clone()));
        }
        let page = log.events(&query).await.map_err(failed)?;
        let next = page.next.map(|c| c.0);
        show_events(out, tenant, &page.events, next.as_deref(), args.format)?;
        return Ok(found(page.events.len()));
    }
    let hits = log.hits(from, to).await.map_err(failed)?;
    show_hits(out, &days, from, to, &hits, args.format)?;
    Ok(found(hits.len()))
}

/// `--day`, or `--since`/`--until` (today so far without them).
fn range(args: &ReportArgs, days: &Days) -> Result<(Micros, Micros), CliError> {
    if args.day.is_some() {
        return days.day(args.day.as_deref());
    }
    let from = match &args.since {
        Some(text) => days.instant("since", text)?,
        None if args.tenant.is_some() => 0,
        None => days.day(None)?.0,
    };
    let to = match &args.until {
        Some(text) => days.instant("until", text)?,
        None if args.tenant.is_some() => Micros::MAX,
        None => days.now.saturating_add(1),
    };
    if from >= to {
        return Err(CliError::Usage(format!(
            "empty range: --since {} is not before --until {}",
            format_ts(from),
            format_ts(to)
        )));
    }
    Ok((from, to))
}

#[derive(Serialize)]
struct HitsJson<'a> {
    from: String,
    to: String,
    time_zone: &'a str,
    tenants: Vec<HitsRow<'a>>,
}

#[derive(Serialize)]
struct HitsRow<'a> {
    tenant: &'a str,
    denials: u64,
    by_policy: Vec<PolicyCount<'a>>,
}

#[derive(Serialize)]
struct PolicyCount<'a> {
    policy: &'a str,
    denials: u64,
}

fn show_hits(
    out: &mut dyn Write,
    days: &Days,
    from: Micros,
    to: Micros,
    hits: &[TenantHits],
    format: Format,
) -> Result<(), CliError> {
    let to_shown = if to == Micros::MAX {
        "now".to_owned()
    } else {
        format_ts(to)
    };
    if format == Format::Json {
        let rows = hits
            .iter()
            .map(|h| HitsRow {
                tenant: &h.tenant,
                denials: h.total,
                by_policy: h
                    .by_policy
                    .iter()
                    .map(|(policy, denials)| PolicyCount {
                        policy,
                        denials: *denials,
                    })
                    .collect(),
            })
            .collect();
        return json(
            out,
            &HitsJson {
                from: format_ts(from),
                to: to_shown,
                time_zone: days.calendar.name(),
                tenants: rows,
            },
        );
    }
    let span = format!("from {} to {}", format_ts(from), to_shown);
    if hits.is_empty() {
        return writeln!(out, "no tenant hit a limit {span}").map_err(written);
    }
    writeln!(out, "tenants that hit limits {span}").map_err(written)?;
    let mut t = Table::new(&["TENANT", "DENIALS", "BY POLICY"]);
    for h in hits {
        let by: Vec<String> = h
            .by_policy
            .iter()
            .map(|(p, n)| format!("{p}={n}"))
            .collect();
        t.row(vec![h.tenant.clone(), h.total.to_string(), by.join(" ")]);
    }
    out.write_all(t.render(0).as_bytes()).map_err(written)
}

#[derive(Serialize)]
struct TopJson<'a> {
    day: String,
    time_zone: &'a str,
    tenants: Vec<TopRow<'a>>,
}

#[derive(Serialize)]
struct TopRow<'a> {
    tenant: &'a str,
    denials: u64,
}

fn show_top(
    out: &mut dyn Write,
    days: &Days,
    day: Micros,
    n: usize,
    top: &[TenantCount],
    format: Format,
) -> Result<(), CliError> {
    let date = days.date(day);
    if format == Format::Json {
        let tenants = top
            .iter()
            .map(|c| TopRow {
                tenant: &c.tenant,
                denials: c.count,
            })
            .collect();
        return json(
            out,
            &TopJson {
                day: date,
                time_zone: days.calendar.name(),
                tenants,
            },
        );
    }
    let zone = days.calendar.name();
    if top.is_empty() {
        return writeln!(out, "no tenant hit a limit on {date} ({zone})").map_err(written);
    }
    writeln!(out, "top {n} tenants by denials on {date} ({zone})").map_err(written)?;
    let mut t = Table::new(&["RANK", "TENANT", "DENIALS"]);
    for (rank, c) in top.iter().enumerate() {
        t.row(vec![
            (rank + 1).to_string(),
            c.tenant.clone(),
            c.count.to_string(),
        ]);
    }
    out.write_all(t.render(0).as_bytes()).map_err(written)
}

#[derive(Serialize)]
struct NearJson<'a> {
    day: String,
    time_zone: &'a str,
    percent: u8,
    quotas: Vec<NearRow<'a>>,
}

#[derive(Serialize)]
struct NearRow<'a> {
    tenant: &'a str,
    policy: &'a str,
    used: u64,
    limit: u64,
    percent: u64,
}

/// `used` as a whole percentage of `limit`, rounded down.
fn share(used: u64, limit: u64) -> u64 {
    if limit == 0 {
        return 0;
    }
    u64::try_from(u128::from(used) * 100 / u128::from(limit)).unwrap_or(u64::MAX)
}

fn show_near(
    out: &mut dyn Write,
    days: &Days,
    day: Micros,
    percent: u8,
    near: &[QuotaUsage],
    format: Format,
) -> Result<(), CliError> {
    let date = days.date(day);
    if format == Format::Json {
        let quotas = near
            .iter()
            .map(|q| NearRow {
                tenant: &q.tenant,
                policy: &q.policy,
                used: q.used,
                limit: q.limit,
                percent: share(q.used, q.limit),
            })
            .collect();
        return json(
            out,
            &NearJson {
                day: date,
                time_zone: days.calendar.name(),
                percent,
                quotas,
            },
        );
    }
    let zone = days.calendar.name();
    if near.is_empty() {
        return writeln!(
            out,
            "no tenant reached {percent}% of a daily quota on {date} ({zone})"
        )
        .map_err(written);
    }
    writeln!(
        out,
        "tenants at {percent}% or more of a daily quota on {date} ({zone})"
    )
    .map_err(written)?;
    let mut t = Table::new(&["TENANT", "POLICY", "USED", "LIMIT", "SHARE"]);
    for q in near {
        t.row(vec![
            q.tenant.clone(),
            q.policy.clone(),
            q.used.to_string(),
            q.limit.to_string(),
            format!("{}%", share(q.used, q.limit)),
        ]);
    }
    out.write_all(t.render(0).as_bytes()).map_err(written)
}

/// An event as `--tenant` shows it.
#[derive(Serialize)]
struct EventRow<'a> {
    at: String,
    kind: &'static str,
    policy: Option<&'a str>,
    limit: u64,
    remaining: u64,
    retry_after_ms: u64,
    user: Option<&'a str>,
    key_id: Option<&'a str>,
    method: Option<&'a str>,
    route: Option<&'a str>,
    network: Option<&'a str>,
    reason: Option<&'a str>,
}

impl EventRow<'_> {
    fn of(e: &LimitEvent) -> EventRow<'_> {
        EventRow {
            at: format_ts(e.at),
            kind: e.kind.name(),
            policy: e.policy.as_deref(),
            limit: e.limit,
            remaining: e.remaining,
            retry_after_ms: e.retry_after / 1_000,
            user: e.user.as_deref(),
            key_id: e.key_id.as_deref(),
            method: e.method.as_deref(),
            route: e.route.as_deref(),
            network: e.network.as_deref(),
            reason: e.reason.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct EventsJson<'a> {
    tenant: &'a str,
    events: Vec<EventRow<'a>>,
    next: Option<&'a str>,
}

fn show_events(
    out: &mut dyn Write,
    tenant: &str,
    events: &[LimitEvent],
    next: Option<&str>,
    format: Format,
) -> Result<(), CliError> {
    if format == Format::Json {
        return json(
            out,
            &EventsJson {
                tenant,
                events: events.iter().map(EventRow::of).collect(),
                next,
            },
        );
    }
    if events.is_empty() {
        return writeln!(out, "no events of tenant {tenant}").map_err(written);
    }
    let mut t = Table::new(&[
        "TIME", "KIND", "POLICY", "LIMIT", "LEFT", "USER", "KEY", "ROUTE", "NETWORK", "REASON",
    ]);
    let or_dash = |v: Option<&String>| v.map_or_else(|| "-".to_owned(), Clone::clone);
    for e in events {
        let limited = e.policy.is_some();
        let route = match (&e.method, &e.route) {
            (Some(m), Some(r)) => Some(format!("{m} {r}")),
            (None, Some(r)) => Some(r.clone()),
            _ => None,
        };
        t.row(vec![
            format_ts(e.at),
            e.kind.name().into(),
            or_dash(e.policy.as_ref()),
            if limited {
                e.limit.to_string()
            } else {
                "-".into()
            },
            if limited {
                e.remaining.to_string()
            } else {
                "-".into()
            },
            or_dash(e.user.as_ref()),
            or_dash(e.key_id.as_ref()),
            or_dash(route.as_ref()),
            or_dash(e.network.as_ref()),
            or_dash(e.reason.as_ref()),
        ]);
    }
    out.write_all(t.render(0).as_bytes()).map_err(written)?;
    if let Some(cursor) = next {
        writeln!(out, "more: --after {cursor}").map_err(written)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct PrunedJson {
    events_before: String,
    aggregates_before: String,
    events: u64,
    aggregate_days: u64,
}

async fn prune(args: &PruneArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let days = Days::new(&args.store.time_zone)?;
    let log = open(&args.store, days.calendar.clone()).await?;
    let micros = |d: Duration| limiter_core::time::micros(d);
    let retention = Retention {
        events_before: days.now.saturating_sub(micros(args.older_than)),
        aggregates_before: days.now.saturating_sub(micros(args.aggregates_older_than)),
    };
    let pruned = log.prune(&retention).await.map_err(failed)?;
    if args.format == Format::Json {
        json(
            out,
            &PrunedJson {
                events_before: format_ts(retention.events_before),
                aggregates_before: format_ts(retention.aggregates_before),
                events: pruned.events,
                aggregate_days: pruned.aggregates,
            },
        )?;
    } else {
        writeln!(
            out,
            "removed {} events before {} and {} days of aggregates before {}",
            pruned.events,
            format_ts(retention.events_before),
            pruned.aggregates,
            format_ts(retention.aggregates_before)
        )
        .map_err(written)?;
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_back_from_now() {
        assert_eq!(span("90m"), Some(5_400_000_000));
        assert_eq!(span("7d"), Some(604_800_000_000));
        assert_eq!(span("d"), None);
        assert_eq!(span("2026-11-26"), None);
        assert_eq!(span("99999999999999999999d"), None);
    }

    #[test]
    fn dates_start_in_the_zone() {
        let days = Days::new("Europe/Paris").unwrap();
        // 2026-11-26T00:00:00+01:00.
        assert_eq!(
            days.instant("since", "2026-11-26").unwrap(),
            parse_ts("2026-11-25T23:00:00Z").unwrap()
        );
        assert_eq!(
            days.day(Some("2026-11-26")).unwrap(),
            (
                parse_ts("2026-11-25T23:00:00Z").unwrap(),
                parse_ts("2026-11-26T23:00:00Z").unwrap()
            )
        );
        assert_eq!(
            days.date(parse_ts("2026-11-25T23:30:00Z").unwrap()),
            "2026-11-26"
        );
        assert!(days.instant("since", "yesterday").is_err());
    }

    #[test]
    fn shares_round_down() {
        assert_eq!(share(799, 1000), 79);
        assert_eq!(share(1000, 1000), 100);
        assert_eq!(share(5, 0), 0);
    }
}
