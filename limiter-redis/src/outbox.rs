//! [`RedisOutbox`]: the durable queue of notices on Redis or Redis Cluster.
//!
//! Layout, with the namespace `ns` (every key under the one hash tag `{ns:notify}`, so that
//! each script below is atomic on a cluster too):
//!
//! - `{ns:notify}:n:<id>`: a hash per notice: its JSON, state, attempt, due time, lease;
//! - `{ns:notify}:pending`: pending ids by due time (ties by id: a sorted set orders equal
//!   scores by member);
//! - `{ns:notify}:claimed`: leased ids by lease end; `{ns:notify}:reclaim`: ids whose lease
//!   ended, by due time, until the next claim takes them;
//! - `{ns:notify}:delivered` and `{ns:notify}:failed`: settled ids by settlement time, for
//!   [`prune`](Outbox::prune).
//!
//! Enqueue, claim, settle, stats and prune are one script each (`src/scripts/outbox_*.lua`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::types::{Key as FredKey, Value};
use limiter_core::notify::{ClaimRequest, Claimed, Notice, Outbox, OutboxStats, Settlement};
use limiter_core::policy::check_namespace;
use limiter_core::{Error, ErrorKind, Key, Micros, SubjectKind};

use crate::RedisStore;
use crate::lua::{Lua, array, number, score};

static ENQUEUE: Lua = Lua::new(include_str!("scripts/outbox_enqueue.lua"));
static CLAIM: Lua = Lua::new(include_str!("scripts/outbox_claim.lua"));
static SETTLE: Lua = Lua::new(include_str!("scripts/outbox_settle.lua"));
static STATS: Lua = Lua::new(include_str!("scripts/outbox_stats.lua"));
static PRUNE: Lua = Lua::new(include_str!("scripts/outbox_prune.lua"));

/// Notices per enqueue call, and settled notices removed per prune call: bounds how long one
/// script holds the server.
const CHUNK: u64 = 1_000;

/// How an enqueued notice meets one the outbox holds under its id (see
/// `outbox_enqueue.lua`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Leaves the held one as it is ([`Outbox::enqueue`]).
    Keep,
    /// Written by the decision that crossed the threshold: replaces a proposal that no worker
    /// has claimed yet, so that the notice reports the crossing's own numbers.
    Exact,
    /// Re-proposed from a later decision's statuses: leaves the held one as it is.
    Proposal,
}

impl Write {
    fn flag(self) -> &'static str {
        match self {
            Write::Keep => "k",
            Write::Exact => "x",
            Write::Proposal => "p",
        }
    }
}

/// An [`Outbox`] on the server or cluster of a [`RedisStore`], sharing its connections.
///
/// A [`RedisStore`] writes the notices of the decisions of a limiter that notifies
/// ([`LimiterBuilder::notify`](limiter_core::LimiterBuilder::notify)) to the outbox of their
/// namespace; a worker claims and settles them through this type, made with the same
/// namespace. Times come from the caller, never the server. See the [crate
/// documentation](crate) for when a notice is written.
///
/// ```no_run
/// use limiter_core::notify::{ClaimRequest, Outbox, Settlement};
/// use limiter_core::PolicySet;
/// use limiter_redis::{RedisConfig, RedisOutbox, RedisStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = RedisStore::connect(RedisConfig::new("redis://10.0.0.5:6379")).await?;
/// let outbox = RedisOutbox::new(&store, PolicySet::default().namespace())?;
/// let now = 1_795_651_200_000_000;
/// let claim = ClaimRequest { worker: "worker-1".into(), now, lease: 60_000_000, max: 10 };
/// for claimed in outbox.claim(&claim).await? {
///     // deliver claimed.notice, then:
///     outbox.settle(&claimed, &Settlement::Delivered { at: now }).await?;
/// }
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RedisOutbox {
    /// Held, so that the connections stay open as long as the outbox.
    store: RedisStore,
    /// `{ns:notify}`: the hash tag every key starts with.
    prefix: String,
}

impl RedisOutbox {
    /// The outbox of `namespace` (give it the policies' namespace, [`PolicySet::namespace`](
    /// limiter_core::PolicySet::namespace): the store writes each decision's notices to the
    /// outbox of its limits' namespace) on `store`'s server or cluster. `namespace` follows the
    /// rule of the configuration's: not empty, without `:`, `{` or `}`.
    pub fn new(store: &RedisStore, namespace: &str) -> Result<RedisOutbox, Error> {
        check_namespace(namespace, "RedisOutbox::namespace")?;
        // Escaped as in the limits' keys, whose namespace part names the outbox the store
        // writes to.
        let key = Key::new(namespace, "notify", SubjectKind::Tenant, "");
        Ok(RedisOutbox::of(store, namespace_of(&key)))
    }

    /// The outbox whose namespace, escaped as in a key, is `escaped`.
    pub(crate) fn of(store: &RedisStore, escaped: &str) -> RedisOutbox {
        RedisOutbox {
            store: store.clone(),
            prefix: format!("{{{escaped}:notify}}"),
        }
    }

    /// The prefix, hash tag included, that every key of the outbox starts with
    /// (`{ns:notify}`): for monitoring.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn client(&self) -> Client {
        self.store.client()
    }

    fn timeout(&self) -> Duration {
        self.store.command_timeout()
    }

    async fn run(&self, lua: &Lua, args: Vec<Value>, timeout: Duration) -> Result<Value, Error> {
        let keys = vec![FredKey::from(self.prefix.as_str())];
        lua.call(&self.client(), self, keys, args, timeout).await
    }

    fn unexpected(&self, what: &str, value: &Value) -> Error {
        Error::store(
            self,
            ErrorKind::Permanent,
            format!("unexpected reply {value:?}; expected {what}"),
            None,
        )
    }

    /// Writes `notices`, each meeting a held notice of its id as its [`Write`] says, within
    /// `timeout` per call; how many were added.
    pub(crate) async fn write(
        &self,
        notices: &[(&Notice, Write)],
        timeout: Duration,
    ) -> Result<u64, Error> {
        let mut added = 0;
        let mut args = Vec::new();
        let mut pending: u64 = 0;
        for &(notice, how) in notices {
            let json = serde_json::to_string(notice).map_err(|e| {
                Error::store(
                    self,
                    ErrorKind::Permanent,
                    format!("cannot encode notice {}: {e}", notice.identity),
                    None,
                )
            })?;
            args.extend([
                Value::from(notice.id()),
                Value::from(json),
                score(notice.due),
                Value::from(how.flag()),
            ]);
            pending += 1;
            if pending == CHUNK {
                added += self
                    .enqueue_chunk(std::mem::take(&mut args), timeout)
                    .await?;
                pending = 0;
            }
        }
        if pending > 0 {
            added += self.enqueue_chunk(args, timeout).await?;
        }
        Ok(added)
    }

    async fn enqueue_chunk(&self, args: Vec<Value>, timeout: Duration) -> Result<u64, Error> {
        let reply = self.run(&ENQUEUE, args, timeout).await?;
        number(&reply).ok_or_else(|| self.unexpected("a count of notices added", &reply))
    }

    /// One claimed notice from its id, JSON and attempt.
    fn claimed(&self, parts: &[Value], lease_until: Micros) -> Result<Claimed, Error> {
        let [id, json, attempt] = parts else {
            return Err(self.unexpected("an id, a notice and an attempt", &parts[0]));
        };
        let json = json
            .as_str()
            .ok_or_else(|| self.unexpected("a notice's JSON", json))?;
        let notice: Notice = serde_json::from_str(&json).map_err(|e| {
            Error::store(
                self,
                ErrorKind::Permanent,
                format!(
                    "notice {id:?} holds invalid JSON ({e}); expected a notice written by this \
                     crate"
                ),
                None,
            )
        })?;
        let attempt = number(attempt)
            .and_then(|a| u32::try_from(a).ok())
            .ok_or_else(|| self.unexpected("an attempt number", attempt))?;
        Ok(Claimed {
            notice,
            attempt,
            lease_until,
        })
    }
}

/// The namespace part of a key (escaped): its text before the first `:`, or all of it.
pub(crate) fn namespace_of(key: &Key) -> &str {
    let key = key.as_str();
    key.split_once(':').map_or(key, |(namespace, _)| namespace)
}

#[async_trait]
impl Outbox for RedisOutbox {
    async fn enqueue(&self, notices: &[Notice]) -> Result<u64, Error> {
        let timeout = self.timeout();
        let notices: Vec<(&Notice, Write)> = notices.iter().map(|n| (n, Write::Keep)).collect();
        self.write(&notices, timeout).await
    }

    async fn claim(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>, Error> {
        let lease_until = claim.now.saturating_add(claim.lease);
        let args = vec![
            score(claim.now),
            score(lease_until),
            Value::from(claim.max.max(1).to_string()),
            Value::from(claim.worker.as_str()),
        ];
        let reply = self.run(&CLAIM, args, self.timeout()).await?;
        array(reply)
            .chunks(3)
            .map(|parts| self.claimed(parts, lease_until))
            .collect()
    }

    async fn settle(&self, claimed: &Claimed, settlement: &Settlement) -> Result<bool, Error> {
        let (outcome, at, error) = match settlement {
            Settlement::Delivered { at } => ("delivered", *at, ""),
            Settlement::Retry { retry_at, error } => ("retry", *retry_at, error.as_str()),
            Settlement::Failed { at, error } => ("failed", *at, error.as_str()),
            other => {
                return Err(Error::InvalidRequest(format!(
                    "settlement {other:?} is not known to {self}; expected Delivered, Retry or \
                     Failed"
                )));
            }
        };
        let args = vec![
            Value::from(claimed.notice.id()),
            Value::from(claimed.attempt.to_string()),
            Value::from(outcome),
            score(at),
            Value::from(error),
        ];
        let reply = self.run(&SETTLE, args, self.timeout()).await?;
        match number(&reply) {
            Some(settled) => Ok(settled == 1),
            None => Err(self.unexpected("1 or 0", &reply)),
        }
    }

    async fn stats(&self, now: Micros) -> Result<OutboxStats, Error> {
        let reply = self.run(&STATS, vec![score(now)], self.timeout()).await?;
        let counts = array(reply.clone())
            .iter()
            .map(number)
            .collect::<Option<Vec<u64>>>();
        match counts.as_deref() {
            Some(&[pending, due, claimed, delivered, failed]) => Ok(OutboxStats {
                pending,
                due,
                claimed,
                delivered,
                failed,
            }),
            _ => Err(self.unexpected("five counts", &reply)),
        }
    }

    async fn prune(&self, before: Micros) -> Result<u64, Error> {
        let mut removed = 0;
        loop {
            let args = vec![score(before), Value::from(CHUNK.to_string())];
            let reply = self.run(&PRUNE, args, self.timeout()).await?;
            let n = number(&reply).ok_or_else(|| self.unexpected("a count", &reply))?;
            removed += n;
            if n < CHUNK {
                return Ok(removed);
            }
        }
    }
}

impl fmt::Display for RedisOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisOutbox({} on {})", self.prefix, self.store)
    }
}

impl fmt::Debug for RedisOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
