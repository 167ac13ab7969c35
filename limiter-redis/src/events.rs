//! [`RedisEventLog`]: events in Redis, shared by every instance on the server.
//!
//! Raw events go to a stream capped at about [`RedisEventLog::max_len`] entries (`XADD MAXLEN
//! ~`): the newest are kept, the oldest trimmed. Per-day aggregates (denials per tenant in a
//! sorted set, peak daily-quota usage per tenant and policy in a hash) are separate keys that
//! the trimming never touches, pruned by [`prune`](EventLog::prune). One script appends a whole
//! batch atomically, so the restore rule sees every exhaustion appended before, whichever
//! instance appended it. Every key shares one hash tag, so a Redis Cluster keeps them on one
//! node.
//!
//! The queries over raw events ([`hits`](EventLog::hits), [`events`](EventLog::events)) scan
//! the stream, which its cap bounds; the aggregates answer the dashboard's daily questions
//! without a scan.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use fred::clients::Pool;
use fred::interfaces::LuaInterface;
use fred::types::{Key as FredKey, Value};

use crate::RedisStore;
use limiter_core::event::{
    EventCursor, EventKind, EventLog, EventPage, EventQuery, LimitEvent, Pruned, QuotaUsage,
    Retention, TenantCount, TenantHits,
};
use limiter_core::{Calendar, Error, ErrorKind, Micros};

const APPEND_LUA: &str = include_str!("scripts/append_events.lua");
const PRUNE_DAYS_LUA: &str = include_str!("scripts/prune_days.lua");
/// Runs one read or delete command on the key `KEYS[1]`, so that a cluster routes it by key.
const CALL_LUA: &str = "return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2))";

/// Microseconds in a day: the period of a daily quota.
const DAY: Micros = 86_400_000_000;
/// Stream entries read per round trip while scanning.
const SCAN: usize = 1_000;

/// An [`EventLog`] on a Redis server (or cluster).
pub struct RedisEventLog {
    /// The store whose connections the log uses: held, so that they stay open as long as the
    /// log (a store closes its connections when its last clone goes).
    store: RedisStore,
    prefix: String,
    calendar: Calendar,
    max_len: u64,
}

impl fmt::Debug for RedisEventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RedisEventLog({}, max_len={})",
            self.prefix, self.max_len
        )
    }
}

fn failed(doing: &str, error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::store(
        "RedisEventLog",
        ErrorKind::Temporary,
        format!("{doing}: {error}"),
        Some(Box::new(error)),
    )
}

fn unexpected(what: &str, value: &Value) -> Error {
    Error::store(
        "RedisEventLog",
        ErrorKind::Permanent,
        format!("unexpected reply {value:?}; expected {what}"),
        None,
    )
}

/// Packs an optional text for the append script: '' when absent, '=' and the text if present.
fn opt(value: &Option<String>) -> Value {
    match value {
        Some(v) => Value::String(format!("={v}").into()),
        None => Value::String("".into()),
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_string()
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        // A sorted set's score: a whole number, shown without a fraction.
        Value::Double(d) => format!("{d}").parse().ok(),
        other => other.as_string()?.parse().ok(),
    }
}

fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(values) => values,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A stream entry (`[id, [field, value, ...]]`) as an event and its id.
fn entry(value: Value) -> Result<(String, LimitEvent), Error> {
    let shown = format!("{value:?}");
    let bad = || {
        Error::store(
            "RedisEventLog",
            ErrorKind::Permanent,
            format!("unreadable stream entry {shown}; expected an id and an event's fields"),
            None,
        )
    };
    let mut parts = array(value).into_iter();
    let id = parts.next().as_ref().and_then(text).ok_or_else(bad)?;
    let fields = parts.next().map(array).ok_or_else(bad)?;
    let mut event = LimitEvent::new(0, EventKind::Denied);
    let mut kind = None;
    for pair in fields.chunks(2) {
        let [name, value] = pair else {
            return Err(bad());
        };
        let name = text(name).ok_or_else(bad)?;
        let s = text(value);
        let n = || number(value).ok_or_else(bad);
        match name.as_str() {
            "k" => kind = s.as_deref().and_then(EventKind::from_name),
            "at" => event.at = n()?,
            "t" => event.tenant = s,
            "u" => event.user = s,
            "key" => event.key_id = s,
            "p" => event.policy = s,
            "l" => event.limit = n()?,
            "r" => event.remaining = n()?,
            "ra" => event.retry_after = n()?,
            "w" => event.window_start = n()?,
            "pe" => event.period = n()?,
            "m" => event.method = s,
            "ro" => event.route = s,
            "n" => event.network = s,
            "re" => event.reason = s,
            _ => {}
        }
    }
    event.kind = kind.ok_or_else(bad)?;
    Ok((id, event))
}

impl RedisEventLog {
    /// The default cap of the raw event stream.
    pub const DEFAULT_MAX_LEN: u64 = 1_000_000;

    /// A log on `store`'s connections (its server or cluster, its command timeout) under the
    /// keys `{prefix}:...`, counting days in `calendar`'s time zone, with a stream capped at
    /// about [`DEFAULT_MAX_LEN`](Self::DEFAULT_MAX_LEN) events. `prefix` must not hold `{` or
    /// `}`: it becomes the hash tag. The log keeps a clone of `store`, so the connections stay
    /// open while either is in use.
    pub fn new(
        store: &RedisStore,
        prefix: &str,
        calendar: Calendar,
    ) -> Result<RedisEventLog, Error> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(Error::InvalidConfig {
                path: "RedisEventLog::prefix".into(),
                message: format!(
                    "invalid prefix {prefix:?}: expected a non-empty name without '{{' or '}}' \
                     (it becomes the keys' hash tag)"
                ),
            });
        }
        Ok(RedisEventLog {
            store: store.clone(),
            prefix: format!("{{{prefix}}}"),
            calendar,
            max_len: Self::DEFAULT_MAX_LEN,
        })
    }

    /// Caps the raw event stream at about `max_len` events (at least 1).
    #[must_use]
    pub fn with_max_len(mut self, max_len: u64) -> Self {
        self.max_len = max_len.max(1);
        self
    }

    /// The stream's approximate cap.
    pub fn max_len(&self) -> u64 {
        self.max_len
    }

    fn pool(&self) -> &Pool {
        self.store.pool()
    }

    fn key(&self, suffix: &str) -> FredKey {
        FredKey::from(format!("{}:{suffix}", self.prefix))
    }

    async fn call(&self, key: FredKey, args: Vec<Value>) -> Result<Value, Error> {
        self.pool()
            .next()
            .eval::<Value, _, _, _>(CALL_LUA, vec![key], args)
            .await
            .map_err(|e| failed("reading the event log", e))
    }

    /// Up to [`SCAN`] stream entries with ids from `low` to `high`, oldest first (newest first
    /// if `reversed`).
    async fn range(
        &self,
        reversed: bool,
        low: &str,
        high: &str,
    ) -> Result<Vec<(String, LimitEvent)>, Error> {
        let (command, first, second) = if reversed {
            ("XREVRANGE", high, low)
        } else {
            ("XRANGE", low, high)
        };
        let args = vec![
            Value::from(command),
            Value::from(first),
            Value::from(second),
            Value::from("COUNT"),
            Value::from(SCAN.to_string()),
        ];
        let reply = self.call(self.key("events"), args).await?;
        array(reply).into_iter().map(entry).collect()
    }

    /// Calls `visit` on every stream entry, oldest first.
    async fn scan(&self, mut visit: impl FnMut(&str, LimitEvent)) -> Result<(), Error> {
        let mut from = "-".to_owned();
        loop {
            let chunk = self.range(false, &from, "+").await?;
            let done = chunk.len() < SCAN;
            let Some(last) = chunk.last().map(|(id, _)| id.clone()) else {
                return Ok(());
            };
            for (id, event) in chunk {
                visit(&id, event);
            }
            if done {
                return Ok(());
            }
            from = format!("({last}");
        }
    }
}

#[async_trait]
impl EventLog for RedisEventLog {
    async fn append(&self, events: &[LimitEvent]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let mut args: Vec<Value> = Vec::with_capacity(1 + events.len() * 17);
        args.push(Value::from(self.max_len.to_string()));
        for e in events {
            let day = self.calendar.day_bounds(e.at).0;
            let peak = e.period == DAY && e.limit > 0 && e.policy.is_some();
            args.extend([
                Value::from(e.kind.name()),
                Value::from(e.at.to_string()),
                opt(&e.tenant),
                opt(&e.user),
                opt(&e.key_id),
                opt(&e.policy),
                Value::from(e.limit.to_string()),
                Value::from(e.remaining.to_string()),
                Value::from(e.retry_after.to_string()),
                Value::from(e.window_start.to_string()),
                Value::from(e.period.to_string()),
                opt(&e.method),
                opt(&e.route),
                opt(&e.network),
                opt(&e.reason),
                Value::from(day.to_string()),
                Value::from(if peak {
                    e.used().to_string()
                } else {
                    String::new()
                }),
            ]);
        }
        self.pool()
            .next()
            .eval::<Value, _, _, _>(APPEND_LUA, vec![FredKey::from(self.prefix.as_str())], args)
            .await
            .map_err(|e| failed("appending events", e))?;
        Ok(())
    }

    async fn hits(&self, from: Micros, to: Micros) -> Result<Vec<TenantHits>, Error> {
        let mut by_tenant: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        self.scan(|_, e| {
            if let (EventKind::Denied, Some(tenant)) = (e.kind, e.tenant)
                && (from..to).contains(&e.at)
            {
                *by_tenant
                    .entry(tenant)
                    .or_default()
                    .entry(e.policy.unwrap_or_default())
                    .or_default() += 1;
            }
        })
        .await?;
        Ok(by_tenant
            .into_iter()
            .map(|(tenant, by_policy)| TenantHits {
                tenant,
                total: by_policy.values().sum(),
                by_policy: by_policy.into_iter().collect(),
            })
            .collect())
    }

    async fn top_hit_tenants(&self, day: Micros, n: usize) -> Result<Vec<TenantCount>, Error> {
        let day = self.calendar.day_bounds(day).0;
        let args = vec![
            Value::from("ZRANGE"),
            Value::from("0"),
            Value::from("-1"),
            Value::from("WITHSCORES"),
        ];
        let reply = self.call(self.key(&format!("hits:{day}")), args).await?;
        let values = array(reply);
        let mut top = Vec::new();
        for pair in values.chunks(2) {
            let [tenant, count] = pair else {
                return Err(unexpected("tenant and count pairs", &pair[0]));
            };
            let tenant = text(tenant).ok_or_else(|| unexpected("a tenant", tenant))?;
            let count = number(count).ok_or_else(|| unexpected("a count", count))?;
            if count > 0 {
                top.push(TenantCount { tenant, count });
            }
        }
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.tenant.cmp(&b.tenant)));
        top.truncate(n);
        Ok(top)
    }

    async fn near_quota(&self, now: Micros, percent: u8) -> Result<Vec<QuotaUsage>, Error> {
        let day = self.calendar.day_bounds(now).0;
        let args = vec![Value::from("HGETALL")];
        let reply = self.call(self.key(&format!("peak:{day}")), args).await?;
        let mut near = Vec::new();
        let pairs: Vec<(String, String)> = match reply {
            Value::Map(map) => map
                .inner()
                .into_iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_string()?)))
                .collect(),
            other => array(other)
                .chunks(2)
                .filter_map(|p| Some((text(p.first()?)?, text(p.get(1)?)?)))
                .collect(),
        };
        for (field, value) in pairs {
            let bad = || {
                Error::store(
                    "RedisEventLog",
                    ErrorKind::Permanent,
                    format!(
                        "unreadable peak {field:?} = {value:?}; expected tenant, policy, used:limit"
                    ),
                    None,
                )
            };
            let (tenant, policy) = field.split_once('\u{1f}').ok_or_else(bad)?;
            let (used, limit) = value.split_once(':').ok_or_else(bad)?;
            let used: u64 = used.parse().map_err(|_| bad())?;
            let limit: u64 = limit.parse().map_err(|_| bad())?;
            if used * 100 >= u64::from(percent) * limit {
                near.push(QuotaUsage {
                    tenant: tenant.to_owned(),
                    policy: policy.to_owned(),
                    used,
                    limit,
                });
            }
        }
        near.sort_by(|a, b| (&a.tenant, &a.policy).cmp(&(&b.tenant, &b.policy)));
        Ok(near)
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, Error> {
        let mut to = match &query.cursor {
            Some(EventCursor(id)) => format!("({id}"),
            None => "+".to_owned(),
        };
        let limit = query.limit.max(1);
        let mut page: Vec<(String, LimitEvent)> = Vec::new();
        loop {
            let chunk = self.range(true, "-", &to).await?;
            let done = chunk.len() < SCAN;
            let last = chunk.last().map(|(id, _)| id.clone());
            for (id, event) in chunk {
                if !query.matches(&event) {
                    continue;
                }
                if page.len() == limit {
                    // One more matches: the page ends at its last event.
                    let next = page.last().map(|(id, _)| EventCursor(id.clone()));
                    return Ok(EventPage {
                        events: page.into_iter().map(|(_, e)| e).collect(),
                        next,
                    });
                }
                page.push((id, event));
            }
            match last {
                Some(last) if !done => to = format!("({last}"),
                _ => {
                    return Ok(EventPage {
                        events: page.into_iter().map(|(_, e)| e).collect(),
                        next: None,
                    });
                }
            }
        }
    }

    async fn prune(&self, retention: &Retention) -> Result<Pruned, Error> {
        let mut old: Vec<String> = Vec::new();
        self.scan(|id, e| {
            if e.at < retention.events_before {
                old.push(id.to_owned());
            }
        })
        .await?;
        let mut events = 0;
        for ids in old.chunks(SCAN) {
            let mut args = vec![Value::from("XDEL")];
            args.extend(ids.iter().map(|id| Value::from(id.as_str())));
            let reply = self.call(self.key("events"), args).await?;
            events += number(&reply).unwrap_or(0);
        }
        let days = self
            .pool()
            .next()
            .eval::<Value, _, _, _>(
                PRUNE_DAYS_LUA,
                vec![FredKey::from(self.prefix.as_str())],
                vec![Value::from(retention.aggregates_before.to_string())],
            )
            .await
            .map_err(|e| failed("pruning daily aggregates", e))?;
        Ok(Pruned {
            events,
            aggregates: number(&days).unwrap_or(0),
        })
    }
}
