//! [`RedisStore`]: the [`Store`] on Redis or Redis Cluster.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use fred::bytes_utils::Str;
use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, LuaInterface};
use fred::types::config::{Config, Options, ServerConfig};
use fred::types::{Builder, ClusterHash, CustomCommand, Key as FredKey, Value};
use limiter_core::time::MAX_TIMESTAMP;
use limiter_core::{
    Batch, BatchOutcome, Check, Clock, Error, ErrorKind, EvalOptions, Key, Micros, Mode, Store,
};

use crate::cluster::{Decide, SlotGroups, Taken, join_all};
use crate::combine::{self, Answer, Combiner, Consume, Turn, Waiting};
use crate::config::{RedisConfig, TimeSource, redact};
use crate::error::{RedisError, into_core_error};
use crate::notices::Notices;
use crate::script::{
    Call, DECIDE_LUA, DayBounds, Reply, Restore, ScriptMode, ScriptTime, arguments, parse_reply,
    reset_arguments,
};
use crate::subject;

/// The SHA1 of the decision script, computed once per process. Static, so that every call's
/// copy of it is free: a shared, reference-counted one would have every decision of every
/// thread touch the same counter.
fn decide_sha() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| fred::util::sha1_hash(DECIDE_LUA))
}

/// Where each check's state is in a reply: its subject, and its field in the subject's value.
type Places<'c> = Vec<(usize, &'c str)>;

/// A script call's keys and argument, and its [`Places`].
type Built<'c> = (Vec<FredKey>, Value, Places<'c>);

/// The most consumes one call may decide ([`RedisConfig::max_combined`]): the script reads the
/// number of subjects of each in one unpack, whose values Lua holds on its stack.
const MAX_COMBINED: usize = 1024;

/// The URL schemes fred understands.
const SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "valkey",
    "valkeys",
    "redis-cluster",
    "rediss-cluster",
    "valkey-cluster",
    "valkeys-cluster",
    "redis-sentinel",
    "rediss-sentinel",
    "valkey-sentinel",
    "valkeys-sentinel",
    "redis+unix",
    "valkey+unix",
];

/// A [`Store`] on Redis or Redis Cluster: one `EVALSHA` per decision (on a cluster, per
/// decision whose keys share a slot; see the crate documentation for the others).
///
/// It keeps notices ([`Store::keeps_notices`]): for a limiter that notifies, it writes each
/// decision's notices to the [`RedisOutbox`](crate::RedisOutbox) of its limits' namespace
/// right after the decision, and proposes them again on later decisions so that a lost write
/// is made good (see the crate documentation's "Notifications").
///
/// Cheap to clone (clones share the connections); the connections close when the last clone
/// is dropped. See the [crate documentation](crate) for the guarantees and how they are kept.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `redis://host:port` or `redis-cluster://host:port,...`, without credentials.
    target: String,
    clustered: bool,
    time_source: TimeSource,
    command_timeout: Duration,
    days: DayBounds,
    /// This host's clock, read to place calendar days.
    clock: Arc<dyn Clock>,
    /// The server's clock minus this host's, in microseconds, as last learned from the server
    /// (0 until a calendar decision found them a day or more apart).
    server_offset: AtomicI64,
    /// Cross-slot give-backs that failed (see [`RedisStore::give_back_failures`]).
    give_back_failures: AtomicU64,
    /// The ids of the notices this process wrote.
    notices: Notices,
    /// The consumes waiting to go together (on one server; on a cluster, none waits).
    combiner: Combiner,
    /// How long a charge, and a refund, wait before they are sent: for tests that act between
    /// a cross-slot decision's rounds.
    #[cfg(test)]
    delays: std::sync::Mutex<(Duration, Duration)>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Close the connections rather than leave their tasks running in the runtime.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            runtime.spawn(async move {
                let _ = pool.quit().await;
            });
        }
    }
}

impl RedisStore {
    /// Connects to the server or cluster of `config`, waiting at most its connect timeout, and
    /// loads the decision script.
    ///
    /// Fails with [`Error::InvalidConfig`] for an unusable configuration (a malformed URL, a
    /// pool of 0), or the error of the failed connection.
    pub async fn connect(config: RedisConfig) -> Result<RedisStore, Error> {
        let invalid = |message: String| {
            into_core_error(
                &redact(&config.url),
                RedisError::Config(message),
                Duration::ZERO,
            )
        };
        let scheme = config.url.split("://").next().unwrap_or_default();
        if !config.url.contains("://") || !SCHEMES.contains(&scheme) {
            return Err(invalid(format!(
                "invalid Redis URL {:?}: unknown scheme {scheme:?}; expected redis://host:port[/db] \
                 or redis-cluster://host:port?node=host:port (or rediss, valkey, -sentinel)",
                redact(&config.url)
            )));
        }
        if config.pool_size == 0 {
            return Err(invalid(
                "pool_size is 0; expected at least 1 connection".into(),
            ));
        }
        if !(1..=MAX_COMBINED).contains(&config.max_combined) {
            return Err(invalid(format!(
                "max_combined is {}; expected 1 (each consume alone) to {MAX_COMBINED} consumes \
                 per call",
                config.max_combined
            )));
        }
        if config.max_calls_in_flight == 0 {
            return Err(invalid(
                "max_calls_in_flight is 0; expected at least 1 call of consumes in flight".into(),
            ));
        }
        // fred reads a command timeout of 0 as "no timeout": calls could then wait forever,
        // for example while the client reconnects to a server that is gone.
        if config.command_timeout.is_zero() {
            return Err(invalid(
                "command_timeout is 0s; expected a positive duration (fred reads 0 as no \
                 timeout, so calls could wait forever)"
                    .into(),
            ));
        }
        let fred_config = Config::from_url(&config.url).map_err(|e| {
            invalid(format!(
                "invalid Redis URL {:?}: {}; expected redis://host:port[/db] or \
                 redis-cluster://host:port?node=host:port",
                redact(&config.url),
                e.details()
            ))
        })?;
        let target = describe(&fred_config.server);
        let clustered = fred_config.server.is_clustered();
        let mut builder = Builder::from_config(fred_config);
        builder
            .set_policy(config.reconnect.clone())
            .with_connection_config(|c| {
                // Never replay a command after a reconnection: a script that ran before the
                // connection dropped would charge twice.
                c.max_command_attempts = 1;
                c.connection_timeout = config.connect_timeout;
                c.internal_command_timeout = config.connect_timeout;
            })
            .with_performance_config(|p| p.default_command_timeout = config.command_timeout);
        let backend = format!("RedisStore({target})");
        let fail =
            |e: fred::error::Error| into_core_error(&backend, e.into(), config.connect_timeout);
        let pool = builder.build_pool(config.pool_size).map_err(fail)?;
        match tokio::time::timeout(config.connect_timeout, pool.init()).await {
            Ok(Ok(_connection_task)) => {}
            Ok(Err(e)) => {
                let _ = pool.quit().await;
                return Err(fail(e));
            }
            Err(_) => {
                let _ = pool.quit().await;
                let waited = fred::error::Error::new(
                    fred::error::ErrorKind::Timeout,
                    "no connection within the connect timeout",
                );
                return Err(fail(waited));
            }
        }
        let store = RedisStore {
            inner: Arc::new(Inner {
                pool,
                target,
                clustered,
                time_source: config.time_source,
                command_timeout: config.command_timeout,
                days: DayBounds::default(),
                clock: config.client_clock(),
                server_offset: AtomicI64::new(0),
                give_back_failures: AtomicU64::new(0),
                notices: Notices::new(),
                // A cluster decides a batch per slot: no call there holds several.
                combiner: Combiner::new(
                    config.max_calls_in_flight,
                    if clustered { 1 } else { config.max_combined },
                ),
                #[cfg(test)]
                delays: std::sync::Mutex::new((Duration::ZERO, Duration::ZERO)),
            }),
        };
        if !config.evicting_policy_allowed {
            store.refuse_evicting_policy(config.connect_timeout).await?;
        }
        store
            .load_script(config.connect_timeout)
            .await
            .map_err(|e| into_core_error(&store, e, config.connect_timeout))?;
        Ok(store)
    }

    /// Fails unless every node's `maxmemory-policy` is `noeviction`: under any other, Redis
    /// may evict live limiter keys, and an evicted key reads as fresh (a whole new budget).
    async fn refuse_evicting_policy(&self, timeout: Duration) -> Result<(), Error> {
        let invalid =
            |message: String| into_core_error(self, RedisError::Config(message), Duration::ZERO);
        let allow = "RedisConfig::with_evicting_policy_allowed(true)";
        let unreadable = |reason: String| {
            invalid(format!(
                "cannot read maxmemory-policy from {self}: {reason}; CONFIG may be disabled or \
                 renamed (as on some managed services). Make sure the policy is noeviction (any \
                 other can evict live limiter keys, which resets their budgets), then set {allow} \
                 to connect without this check"
            ))
        };
        let replies = match self
            .on_every_node(&["CONFIG", "GET", "maxmemory-policy"], timeout)
            .await
        {
            Ok(replies) => replies,
            Err(e) => {
                let error = into_core_error(self, e, timeout);
                // A lost connection or a slow server says nothing about the policy.
                if error.is_temporary() {
                    return Err(error);
                }
                return Err(unreadable(error.to_string()));
            }
        };
        for (node, reply) in replies {
            // RESP2 answers [name, value], RESP3 a map of one pair: both read as an array.
            match reply.into_array().get(1).and_then(Value::as_string) {
                Some(policy) if policy == "noeviction" => {}
                Some(policy) => {
                    return Err(invalid(format!(
                        "{node} has maxmemory-policy {policy}, which can evict live limiter keys \
                         (allkeys-* evict any key, volatile-* any key with a TTL, and every \
                         limiter key has one) and so reset their budgets; expected noeviction: \
                         run CONFIG SET maxmemory-policy noeviction on it (and set it in its \
                         configuration file), or set {allow} to accept evictions"
                    )));
                }
                None => return Err(unreadable(format!("{node} did not name its policy"))),
            }
        }
        Ok(())
    }

    /// The fred connection pool, for commands of your own on the same connections. It is
    /// closed when the last clone of the store is dropped, even if you cloned it.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// A connected client of the pool, for the crate's other scripts (keys, outbox, inbox).
    pub(crate) fn client(&self) -> Client {
        self.inner.pool.next_connected().clone()
    }

    /// The timeout the store was configured with for one command.
    pub(crate) fn command_timeout(&self) -> Duration {
        self.inner.pool.next().perf_config().default_command_timeout
    }

    /// How many refunds of a cross-slot give-back have failed since the store connected.
    ///
    /// On a cluster, a decision whose limits span slots charges each slot, and when a slot then
    /// denies, gives back what the others took (see the crate documentation). The give-back
    /// runs on its own task, so that it goes on if the caller stops waiting; if it fails (a
    /// timeout, a lost connection), the decision is still the denial it was, and that slot's
    /// limits stay charged until they refill: fewer requests admitted for a while, never more.
    /// Each failed slot counts one here, for monitoring.
    pub fn give_back_failures(&self) -> u64 {
        self.inner.give_back_failures.load(Ordering::Relaxed)
    }

    /// Whether the store talks to a Redis Cluster.
    pub fn is_clustered(&self) -> bool {
        self.inner.clustered
    }

    /// The call's timeout: the caller's, if shorter than the store's.
    fn timeout(&self, options: &EvalOptions) -> Result<Duration, Error> {
        match options.timeout {
            // A zero budget cannot be met, and a zero timeout would read as none below.
            Some(t) if t.is_zero() => Err(Error::InvalidRequest(
                "EvalOptions::timeout is 0s; expected a positive duration (or none, for the \
                 store's command_timeout)"
                    .into(),
            )),
            Some(t) => Ok(t.min(self.inner.command_timeout)),
            None => Ok(self.inner.command_timeout),
        }
    }

    fn time(&self, options: &EvalOptions) -> ScriptTime {
        match self.inner.time_source {
            TimeSource::Injected => ScriptTime::Injected(options.now),
            _ => ScriptTime::Server,
        }
    }

    /// Runs the command `words` on every primary (cluster) or the server, each under
    /// `timeout`; the replies in the order of the nodes, with the node of each.
    ///
    /// A custom command, sent through [`WithOptions`](fred::clients::WithOptions): fred's
    /// `LuaInterface` and `script_load_cluster` ignore per-command options, so they would wait
    /// the pool's `command_timeout` whatever `timeout` says.
    async fn on_every_node(
        &self,
        words: &[&'static str],
        timeout: Duration,
    ) -> Result<Vec<(String, Value)>, RedisError> {
        let client = self.inner.pool.next();
        let nodes = if self.inner.clustered {
            client.active_connections().into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        let command = || CustomCommand::new_static(words[0], ClusterHash::Random, false);
        let args: Vec<Value> = words[1..].iter().map(|w| Value::from(*w)).collect();
        let calls = nodes.into_iter().map(|node| {
            let name = node.as_ref().map_or_else(
                || self.inner.target.clone(),
                |s| format!("{}:{}", s.host, s.port),
            );
            let options = Options {
                timeout: Some(timeout),
                max_attempts: Some(1),
                cluster_node: node,
                ..Options::default()
            };
            let args = args.clone();
            async move {
                let reply = client.with_options(&options).custom(command(), args).await;
                reply.map(|value| (name, value))
            }
        });
        let replies = join_all(calls).await;
        Ok(replies.into_iter().collect::<Result<Vec<_>, _>>()?)
    }

    /// `SCRIPT LOAD` on every primary (cluster) or the server.
    async fn load_script(&self, timeout: Duration) -> Result<(), RedisError> {
        self.on_every_node(&["SCRIPT", "LOAD", DECIDE_LUA], timeout)
            .await
            .map(drop)
    }

    /// This host's estimate of the server's time: its clock, corrected by the offset last
    /// learned from the server.
    fn server_now(&self) -> Micros {
        let offset = self.inner.server_offset.load(Ordering::Relaxed);
        self.inner.clock.now().saturating_add_signed(offset)
    }

    /// Learns the server's clock from a `LIMITER_CLOCK_SKEW` error (whose script stopped before
    /// it wrote anything); whether it was one.
    fn learn_server_time(&self, error: &fred::error::Error) -> bool {
        let server_now = error
            .details()
            .strip_prefix("LIMITER_CLOCK_SKEW server time ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<i64>().ok());
        let Some(server_now) = server_now else {
            return false;
        };
        let client_now = i64::try_from(self.inner.clock.now()).unwrap_or(i64::MAX);
        self.inner
            .server_offset
            .store(server_now.saturating_sub(client_now), Ordering::Relaxed);
        true
    }

    /// `EVALSHA` of the decision script, under the pool's defaults (the store's command
    /// timeout and a single attempt), on a connected client if there is one;
    /// [`decide`](Self::decide) bounds the whole call.
    async fn evalsha(&self, keys: Vec<FredKey>, args: Value) -> Result<Value, fred::error::Error> {
        let sha = Str::from_static(decide_sha());
        self.inner
            .pool
            .next_connected()
            .evalsha(sha, keys, args)
            .await
    }

    /// Fails at once, with a temporary error, while no client of the pool is connected (the
    /// connections dropped and fred is re-establishing them, or the pool was closed). fred
    /// would hold the command until it reconnects or the timeout passes; the limiter's fail
    /// mode can decide now instead. Once a client is back, calls go to the server again.
    fn expect_connected(&self) -> Result<(), Error> {
        let client = self.inner.pool.next_connected();
        if client.is_connected() {
            return Ok(());
        }
        Err(Error::store(
            self,
            ErrorKind::Temporary,
            format!(
                "not connected: no connection to {} is up (client state {:?}); the call was not \
                 sent",
                self.inner.target,
                client.state()
            ),
            None,
        ))
    }

    /// One script call over `checks` (all in one slot when clustered, owned or borrowed) in
    /// `mode`, read.
    async fn decide<C: Borrow<Check> + Sync>(
        &self,
        mode: ScriptMode,
        checks: &[C],
        options: &EvalOptions,
    ) -> Result<Reply, Error> {
        self.decide_with(mode, checks, &[], options).await
    }

    /// [`decide`](Self::decide), for a refund with a [`Restore`] per check: a give-back.
    async fn decide_with<C: Borrow<Check> + Sync>(
        &self,
        mode: ScriptMode,
        checks: &[C],
        restores: &[Restore],
        options: &EvalOptions,
    ) -> Result<Reply, Error> {
        #[cfg(test)]
        {
            let (charge, refund) = *self.inner.delays.lock().expect("delays");
            match mode {
                ScriptMode::Consume => tokio::time::sleep(charge).await,
                ScriptMode::Refund(_) => tokio::time::sleep(refund).await,
                ScriptMode::Peek => {}
            }
        }
        let timeout = self.timeout(options)?;
        self.connected().await?;
        // One deadline for the whole call, a NOSCRIPT reload and retry included: fred's
        // timeouts are per command, and its `LuaInterface` honours only the pool's.
        let call = self.decide_once(mode, checks, restores, options, timeout);
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                backend: self.to_string(),
                timeout,
            }),
        }
    }

    /// [`decide`](Self::decide), without its deadline.
    async fn decide_once<C: Borrow<Check> + Sync>(
        &self,
        mode: ScriptMode,
        checks: &[C],
        restores: &[Restore],
        options: &EvalOptions,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        let time = self.time(options);
        let server_now = || self.server_now();
        let days = &self.inner.days;
        let build = || arguments(mode, time, checks, restores, days, &server_now).map(Call::finish);
        let (reply, places) = if mode == ScriptMode::Consume && self.inner.combiner.combines() {
            self.call_combined(&build, timeout).await?
        } else {
            self.call_script(&build, timeout).await?
        };
        let reply = match (reply, time) {
            // The server's day is not among those sent: this host's clock is off by a day or
            // more. The script stopped before it wrote anything, and its error names the
            // server's time: place the days around it (and keep the correction for the next
            // calls), then try once more.
            (Err(e), ScriptTime::Server) if self.learn_server_time(&e) => {
                let (keys, args, _) = build()?;
                self.evalsha(keys, args).await
            }
            (reply, _) => reply,
        };
        let reply = reply.map_err(|e| into_core_error(self, e.into(), timeout))?;
        parse_reply(reply, mode, checks, &places)
            .map_err(|e| into_core_error(self, e, Duration::ZERO))
    }

    /// `EVALSHA` of the script over the arguments `build` makes, and where each check's state
    /// is in its reply; when the server lost its scripts (restarted, flushed, a new node),
    /// loads it and tries once more: the script did not run, so this cannot charge twice. The
    /// outer error is one of loading or building.
    async fn call_script<'c>(
        &self,
        build: &(dyn Fn() -> Result<Built<'c>, Error> + Sync),
        timeout: Duration,
    ) -> Result<(Result<Value, fred::error::Error>, Places<'c>), Error> {
        let (keys, args, places) = build()?;
        let reply = self.evalsha_reloading(keys, args, build, timeout).await?;
        Ok((reply, places))
    }

    /// `EVALSHA` of the script over `keys` and `args`; when the server lost its scripts, loads
    /// it and sends again what `build` makes (the script did not run, so this cannot charge
    /// twice). The outer error is one of loading or building.
    async fn evalsha_reloading<'c>(
        &self,
        keys: Vec<FredKey>,
        args: Value,
        build: &(dyn Fn() -> Result<Built<'c>, Error> + Sync),
        timeout: Duration,
    ) -> Result<Result<Value, fred::error::Error>, Error> {
        Ok(match self.evalsha(keys, args).await {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                self.load_script(timeout)
                    .await
                    .map_err(|e| into_core_error(self, e, timeout))?;
                let (keys, args, _) = build()?;
                self.evalsha(keys, args).await
            }
            result => result,
        })
    }

    /// [`call_script`](Self::call_script) for a consume on one server: at once if a slot is
    /// free and no other waits, else with the consumes waiting, in one call (see
    /// [`combine`]). A consume the call did not decide goes alone.
    async fn call_combined<'c>(
        &self,
        build: &(dyn Fn() -> Result<Built<'c>, Error> + Sync),
        timeout: Duration,
    ) -> Result<(Result<Value, fred::error::Error>, Places<'c>), Error> {
        let (keys, args, places) = build()?;
        let Value::Bytes(arg) = args else {
            return self.call_script(build, timeout).await;
        };
        let answer = match self.inner.combiner.enter(Consume { keys, arg }) {
            Turn::Send(consume) => {
                // The slot goes to the consumes waiting once this call is back, or dropped.
                let _slot = Slot::taken(self);
                let args = Value::Bytes(consume.arg);
                let reply = self
                    .evalsha_reloading(consume.keys, args, build, timeout)
                    .await?;
                return Ok((reply, places));
            }
            Turn::Wait(answer) => answer.await,
            Turn::Lead(batch, answer) => {
                self.send_on_slot(batch);
                answer.await
            }
        };
        match answer {
            Ok(Answer::Reply(reply)) => Ok((Ok(reply), places)),
            Ok(Answer::Failed(error)) => Ok((Err(error), places)),
            Ok(Answer::Alone) => self.call_script(build, timeout).await,
            // The task that held it ended without answering: the runtime is shutting down, or
            // the task failed.
            Err(_) => Err(Error::store(
                self,
                ErrorKind::Temporary,
                "the task sending this consume with others ended without an answer (the runtime \
                 is shutting down, or the task failed); it may or may not have been decided"
                    .to_owned(),
                None,
            )),
        }
    }

    /// Sends `batch`, and whatever waits after it, on a slot already taken, in a task of its
    /// own: the call answers several callers, so none of them may cancel it by stopping to
    /// wait.
    fn send_on_slot(&self, batch: Vec<Waiting>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to send from: each consume fails as unsent, and the slot is freed.
            let mut batch = batch;
            while !batch.is_empty() {
                let unsent = fred::error::Error::new(
                    fred::error::ErrorKind::Canceled,
                    "not sent: no runtime to send it from",
                );
                combine::answer(batch, Err(unsent));
                batch = self.inner.combiner.next();
            }
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            // Should a call panic, the slot still goes on to the consumes waiting.
            let mut slot = Slot::taken(&store);
            let mut batch = batch;
            loop {
                store.send_batch(batch).await;
                batch = store.inner.combiner.next();
                if batch.is_empty() {
                    // `next` freed the slot.
                    slot.0 = None;
                    break;
                }
            }
        });
    }

    /// One call over the consumes of `batch` (alone if it holds one), under the store's
    /// command timeout, and each its answer; reloads the script once if the server lost it.
    async fn send_batch(&self, batch: Vec<Waiting>) {
        let timeout = self.inner.command_timeout;
        let call = || {
            if let [one] = batch.as_slice() {
                let consume = &one.consume;
                (consume.keys.clone(), Value::Bytes(consume.arg.clone()))
            } else {
                combine::call_of(&batch)
            }
        };
        let send = async {
            let (keys, args) = call();
            match self.evalsha(keys, args).await {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    if let Err(e) = self.load_script(timeout).await {
                        return Err(fred::error::Error::new(
                            fred::error::ErrorKind::Unknown,
                            format!("the server lost the script, and loading it failed: {e}"),
                        ));
                    }
                    let (keys, args) = call();
                    self.evalsha(keys, args).await
                }
                reply => reply,
            }
        };
        let reply = tokio::time::timeout(timeout, send)
            .await
            .unwrap_or_else(|_| {
                Err(fred::error::Error::new(
                    fred::error::ErrorKind::Timeout,
                    format!("no reply within {timeout:?}"),
                ))
            });
        let mut batch = batch;
        if batch.len() > 1 {
            combine::answer(batch, reply);
        } else if let Some(one) = batch.pop() {
            combine::answer_alone(one, reply);
        }
    }

    /// Fails at once while no connection is up ([`expect_connected`](Self::expect_connected)),
    /// after giving the runtime back: a caller that retries at once (a loop under load) would
    /// otherwise keep fred's reconnection task, and every other task of its thread, from
    /// running.
    async fn connected(&self) -> Result<(), Error> {
        let connected = self.expect_connected();
        if connected.is_err() {
            tokio::task::yield_now().await;
        }
        connected
    }

    /// The Redis key that holds the state of `key`, with the other limits of its subject.
    ///
    /// The store keeps all the limits of one subject (`api:plan_burst:{t=acme}`,
    /// `api:plan_daily:{t=acme}`) in one value under `namespace:{subject}` (`api:{t=acme}`),
    /// one field per policy, so that a decision reads and writes one key per subject. For
    /// monitoring, or to `DEL` a subject's every limit at once; [`Store::reset`] forgets one
    /// limit. A key not made by [`Key::new`] is stored under its own name.
    ///
    /// ```
    /// use limiter_core::{Key, SubjectKind};
    /// use limiter_redis::RedisStore;
    ///
    /// let key = Key::new("api", "plan_burst", SubjectKind::Tenant, "acme");
    /// assert_eq!(RedisStore::storage_key(&key), "api:{t=acme}");
    /// ```
    pub fn storage_key(key: &Key) -> String {
        subject::place(key).0
    }
}

impl Decide for RedisStore {
    fn decide_slot<'a>(
        &'a self,
        mode: ScriptMode,
        checks: &'a [&'a Check],
        options: &'a EvalOptions,
    ) -> impl Future<Output = Result<Reply, Error>> + Send + 'a {
        self.decide(mode, checks, options)
    }

    fn give_back(
        &self,
        taken: Vec<Taken>,
        options: &EvalOptions,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (store, options) = (self.clone(), options.clone());
        let refunds = tokio::spawn(async move {
            let calls: Vec<(Micros, Vec<Check>, Vec<Restore>)> = taken
                .into_iter()
                .map(|Taken { at, charged }| {
                    let restores = charged
                        .iter()
                        .map(|(check, state)| Restore::of(check, state, at))
                        .collect();
                    let checks = charged.into_iter().map(|(check, _)| check).collect();
                    (at, checks, restores)
                })
                .collect();
            let refunds = calls.iter().map(|(at, checks, restores)| {
                let mode = ScriptMode::Refund(*at);
                store.decide_with(mode, checks.as_slice(), restores, &options)
            });
            let failed = join_all(refunds)
                .await
                .iter()
                .filter(|r| r.is_err())
                .count();
            store
                .inner
                .give_back_failures
                .fetch_add(failed as u64, Ordering::Relaxed);
        });
        async move {
            // The task ends on its own: only a runtime shutting down stops it.
            let _ = refunds.await;
        }
    }
}

/// A slot of calls in flight, taken: when dropped (its call is back, its caller stopped waiting,
/// or its sender panicked), the slot goes to the consumes waiting, if any, or is freed (see
/// [`combine`]). `None` once given up some other way.
struct Slot<'s>(Option<&'s RedisStore>);

impl<'s> Slot<'s> {
    fn taken(store: &'s RedisStore) -> Slot<'s> {
        Slot(Some(store))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.0 {
            let next = store.inner.combiner.next();
            if !next.is_empty() {
                store.send_on_slot(next);
            }
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn evaluate(&self, batch: &Batch, options: &EvalOptions) -> Result<BatchOutcome, Error> {
        if batch.is_empty() {
            return Ok(BatchOutcome::empty(options.now));
        }
        let mode = match options.mode {
            Mode::Consume => ScriptMode::Consume,
            Mode::Peek => ScriptMode::Peek,
            Mode::Refund { charged_at } => ScriptMode::Refund(charged_at.min(MAX_TIMESTAMP)),
        };
        let groups = self
            .inner
            .clustered
            .then(|| SlotGroups::of(batch.checks()))
            .filter(|groups| groups.slots() > 1);
        let outcome = match groups {
            Some(groups) => groups.evaluate(self, mode, options).await?,
            None => {
                // One server, or one slot: one script call decides the whole batch atomically.
                let reply = self.decide(mode, batch.checks(), options).await?;
                BatchOutcome {
                    allowed: reply.admitted,
                    statuses: reply.statuses,
                    at: reply.at,
                }
            }
        };
        // The notices of the decision, after it (see notices.rs and the crate documentation).
        if options.mode == Mode::Consume
            && let Some(plan) = batch.notices()
        {
            let timeout = self.timeout(options).unwrap_or(self.inner.command_timeout);
            let notices = &self.inner.notices;
            notices
                .write(self, plan, batch.checks(), &outcome, timeout)
                .await;
        }
        Ok(outcome)
    }

    fn keeps_notices(&self) -> bool {
        true
    }

    async fn reset(&self, key: &Key) -> Result<(), Error> {
        // The key's state is one field of its subject's value: the script removes it, and
        // the value once it holds no other.
        let timeout = self.inner.command_timeout;
        self.connected().await?;
        let build = || reset_arguments(key).map(Call::finish);
        let call = async {
            let (reply, _) = self.call_script(&build, timeout).await?;
            reply
                .map(drop)
                .map_err(|e| into_core_error(self, e.into(), timeout))
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                backend: self.to_string(),
                timeout,
            }),
        }
    }
}

impl fmt::Display for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisStore({})", self.inner.target)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.inner.target)
            .field("clustered", &self.inner.clustered)
            .field("pool_size", &self.inner.pool.size())
            .field("time_source", &self.inner.time_source)
            .field("command_timeout", &self.inner.command_timeout)
            .finish()
    }
}

/// `redis://host:port` for a server, `redis-cluster://host:port,host:port` for a cluster's
/// seeds: where the store points, without credentials.
fn describe(server: &ServerConfig) -> String {
    match server {
        ServerConfig::Centralized { server } => format!("redis://{}:{}", server.host, server.port),
        ServerConfig::Clustered { hosts, .. } => {
            let mut hosts: Vec<String> = hosts
                .iter()
                .map(|s| format!("{}:{}", s.host, s.port))
                .collect();
            // fred lists the URL's own host after its `node=` hosts: show the URL's order.
            hosts.rotate_right(1);
            format!("redis-cluster://{}", hosts.join(","))
        }
        ServerConfig::Sentinel {
            hosts,
            service_name,
            ..
        } => {
            let hosts: Vec<String> = hosts
                .iter()
                .map(|s| format!("{}:{}", s.host, s.port))
                .collect();
            format!("redis-sentinel://{}/{service_name}", hosts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use limiter_core::{Limit, StoreExt, SubjectKind};
    use limiter_testkit::redis;

    /// A check of `subject` under `rate` (GCRA), in namespace `ns`.
    fn check(ns: &str, subject: &str, rate: &str) -> Check {
        let key = Key::new(ns, "p", SubjectKind::User, subject);
        Check::new("p", key, Limit::gcra(rate.parse().expect("rate")), 1)
    }

    /// A check of 10/minute, and one of 1/minute in another slot.
    fn roomy_and_tight(ns: &str) -> (Check, Check) {
        let roomy = check(ns, "roomy", "10/minute");
        let slot = |c: &Check| fred::util::redis_keyslot(c.key.as_str().as_bytes());
        let tight = (0..)
            .map(|i| check(ns, &format!("tight-{i}"), "1/minute"))
            .find(|c| slot(c) != slot(&roomy))
            .expect("a key in another slot");
        (roomy, tight)
    }

    async fn cluster_store(url: &str) -> RedisStore {
        let config = RedisConfig::new(url).with_time_source(TimeSource::Injected);
        RedisStore::connect(config).await.expect("connect")
    }

    /// Runs a cross-slot decision over `roomy` and `tight` on `store`, whose charges wait 300 ms
    /// and refunds `refund_delay`, under `options`; meanwhile `other` takes `tight`'s one unit,
    /// before the decision's charge, which then denies on `tight`'s slot. So the
    /// decision gives back `roomy`'s charge. The caller stops waiting after `patience`.
    async fn deny_before_the_charge(
        store: &RedisStore,
        other: &RedisStore,
        (roomy, tight): (&Check, &Check),
        refund_delay: Duration,
        options: EvalOptions,
        patience: Duration,
    ) -> Option<Result<BatchOutcome, Error>> {
        *store.inner.delays.lock().expect("delays") = (Duration::from_millis(300), refund_delay);
        let b = Batch::new(vec![roomy.clone(), tight.clone()]).expect("batch");
        let decision = {
            let (store, options) = (store.clone(), options.clone());
            tokio::spawn(async move {
                tokio::time::timeout(patience, store.evaluate(&b, &options))
                    .await
                    .ok()
            })
        };
        // Orchestration only: the decision's charges wait.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let spend = Batch::new(vec![tight.clone()]).expect("batch");
        assert!(
            other
                .evaluate(&spend, &options)
                .await
                .expect("spend")
                .allowed
        );
        decision.await.expect("decision task")
    }

    /// `check`'s remaining units after one more.
    async fn left(store: &RedisStore, check: &Check) -> u64 {
        let b = Batch::new(vec![check.clone()]).expect("batch");
        store
            .peek(&b, &EvalOptions::at(0))
            .await
            .expect("peek")
            .statuses[0]
            .remaining
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn l1_a_cancelled_cross_slot_decision_still_gives_back() {
        let Some(url) = redis::cluster_url() else {
            return;
        };
        let (store, other) = (cluster_store(&url).await, cluster_store(&url).await);
        let ns = redis::namespace("l1_cancelled");
        let (roomy, tight) = roomy_and_tight(&ns);
        // The caller gives up at 450 ms: after the charges (300 ms), before the refund is sent
        // (600 ms).
        let answer = deny_before_the_charge(
            &store,
            &other,
            (&roomy, &tight),
            Duration::from_millis(300),
            EvalOptions::at(0),
            Duration::from_millis(450),
        )
        .await;
        assert!(answer.is_none(), "the caller was to give up: {answer:?}");
        // The give-back goes on without the caller.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while left(&other, &roomy).await != 9 {
            assert!(
                std::time::Instant::now() < deadline,
                "roomy kept the charge of a denied decision: {} left after one more",
                left(&other, &roomy).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(store.give_back_failures(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn l1_a_failed_give_back_is_counted() {
        // A private cluster: the test puts its nodes to sleep.
        let cluster = match redis::RedisCluster::start() {
            Ok(cluster) => cluster,
            Err(e) => return redis::unavailable("a Redis Cluster", &e.to_string()).unwrap_or(()),
        };
        let url = cluster.url();
        let (store, other) = (cluster_store(&url).await, cluster_store(&url).await);
        let ns = redis::namespace("l1_failed");
        let (roomy, tight) = roomy_and_tight(&ns);
        // Every node sleeps from 350 ms on: the refund, sent at 600 ms, times out.
        let sleepers: Vec<_> = cluster
            .nodes()
            .iter()
            .map(|node| {
                let address = format!("127.0.0.1:{}", node.port());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(350));
                    let _ = redis::command(&address, &["DEBUG", "SLEEP", "1"]);
                })
            })
            .collect();
        let answer = deny_before_the_charge(
            &store,
            &other,
            (&roomy, &tight),
            Duration::from_millis(300),
            EvalOptions::at(0).with_timeout(Duration::from_millis(200)),
            Duration::from_secs(10),
        )
        .await;
        let outcome = answer.expect("answered").expect("a decision");
        // The decision stands (denied); the failed refund is counted, not turned into an error
        // that a fail-open limiter would admit.
        assert!(!outcome.allowed, "{outcome:?}");
        for sleeper in sleepers {
            sleeper.join().expect("sleeper");
        }
        // (Whether the refund ran once the nodes woke is not known: a timed-out call may have.)
        assert_eq!(store.give_back_failures(), 1);
    }

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(
            redact("redis://user:secret@host:6379"),
            "redis://***@host:6379"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        // An `@` in the password, or in the query, does not confuse the mask.
        assert_eq!(redact("redis://u:p@ss@host:1/0"), "redis://***@host:1/0");
        assert_eq!(
            redact("redis-sentinel://u:p@h:1?sentinelServiceName=m&sentinelPassword=s@x&node=n:2"),
            "redis-sentinel://***@h:1?sentinelServiceName=m&sentinelPassword=***&node=n:2"
        );
        assert_eq!(
            redact("redis://h:1?sentinelUsername=admin"),
            "redis://h:1?sentinelUsername=***"
        );
    }
}
