//! The options of a [`RedisStore`](crate::RedisStore).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use fred::types::config::ReconnectPolicy;
use limiter_core::{Clock, SystemClock};

/// Where a [`RedisStore`](crate::RedisStore) reads the time its scripts compute with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeSource {
    /// The Redis server's clock (`redis.call('TIME')`), so that application hosts with skewed
    /// clocks still agree. The default.
    #[default]
    Server,
    /// The caller's `now` ([`EvalOptions::now`](limiter_core::EvalOptions::now)): for tests,
    /// simulations and the conformance suite, which drive time with a
    /// [`ManualClock`](limiter_core::ManualClock).
    ///
    /// Keys still expire by the server's clock, which the caller's time need not follow (a
    /// frozen test clock does not move at all): each key then lives a day longer than its state
    /// needs, so that none is dropped while still live.
    Injected,
}

/// The options of a [`RedisStore`](crate::RedisStore): [`Default`] or [`new`](Self::new), then
/// `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use limiter_redis::{RedisConfig, TimeSource};
///
/// let config = RedisConfig::new("redis://10.0.0.5:6379")
///     .with_pool_size(8)
///     .with_command_timeout(Duration::from_millis(200));
/// assert_eq!(config.time_source, TimeSource::Server);
///
/// // Any node of a cluster will do as a seed; the others are discovered.
/// let cluster = RedisConfig::cluster(["10.0.0.5:7000", "10.0.0.6:7000"]);
/// assert_eq!(cluster.url, "redis-cluster://10.0.0.5:7000?node=10.0.0.6:7000");
/// ```
///
/// Its `Debug` masks the URL's credentials (`redis://***@host:port`), so a configuration can
/// be logged.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server or cluster: `redis://host:port[/db]` is one server,
    /// `redis-cluster://host:port?node=host:port&...` a cluster (credentials as
    /// `redis://user:password@host`; see fred's `Config::from_url`).
    pub url: String,
    /// Connections (per cluster node); calls are spread over them. At least 1.
    pub pool_size: usize,
    /// How long a call may wait for its reply when the caller gives no timeout of its own
    /// ([`EvalOptions::timeout`](limiter_core::EvalOptions::timeout)). Past it the call fails
    /// with a temporary [`Error::Timeout`](limiter_core::Error::Timeout); its script may still
    /// have run, once. Must be positive.
    pub command_timeout: Duration,
    /// How long [`RedisStore::connect`](crate::RedisStore::connect) waits for its connections.
    pub connect_timeout: Duration,
    /// How lost connections are re-established. Whatever the policy, a command is never
    /// replayed after a reconnection (fred's `max_command_attempts` is 1): a replayed script
    /// would charge twice.
    pub reconnect: ReconnectPolicy,
    /// Where the time comes from (the server's clock by default).
    pub time_source: TimeSource,
    /// Whether [`connect`](crate::RedisStore::connect) accepts a server whose
    /// `maxmemory-policy` can evict limiter keys (`false` by default).
    ///
    /// Every policy but `noeviction` can: the `allkeys-*` ones evict any key, and the
    /// `volatile-*` ones any key with a TTL, which every limiter key has. An evicted key reads as
    /// fresh, so its subject gets a whole new budget. So `connect` reads the policy of the
    /// server (of every primary of a cluster) and refuses any other than `noeviction`, or a
    /// server where it cannot read it (`CONFIG` disabled or renamed, as on some managed
    /// services). Set this to connect anyway, when the evictions are acceptable or the policy is
    /// known to be `noeviction`.
    pub evicting_policy_allowed: bool,
    /// How many consumes one script call may decide at most, on one server (not a cluster). From
    /// 1 (each alone) to 1024.
    ///
    /// The store keeps at most [`max_calls_in_flight`](Self::max_calls_in_flight) calls of
    /// consumes in flight on a server. A consume that comes while that many are out waits, and
    /// when a call comes back, the consumes waiting go together in one call, up to this many:
    /// each is decided in turn, atomically, exactly as it would be alone at that instant, and
    /// the fixed cost of a call (the round trip, the server's work to start a script, its
    /// reading of the time) is paid once for all of them. A consume that finds a call free and
    /// none waiting goes at once. So under load the server, which every API server shares,
    /// spends less of its one thread per decision. Peeks, refunds and resets always go alone.
    pub max_combined: usize,
    /// How many calls of consumes the store has in flight on one server at most (see
    /// [`max_combined`](Self::max_combined)). At least 1; 3 by default.
    ///
    /// A few in flight keep the server busy (one call is decided while another travels or is
    /// read) and let the consumes that come meanwhile gather; each call more makes the batches
    /// smaller, each paying a call's fixed cost again. On the Redis bench (server and client on
    /// one machine of two cores, 64 tasks), 3 decided the most per second: about 6% more than 2
    /// and 15% more than 4. Under light load nothing waits: a consume waits only while this
    /// many calls are out.
    pub max_calls_in_flight: usize,
    /// This host's clock (see [`with_client_clock`](Self::with_client_clock)).
    client_clock: ClientClock,
}

/// A clock compared by identity, so that the configuration stays comparable.
#[derive(Clone)]
pub(crate) struct ClientClock(pub(crate) Arc<dyn Clock>);

impl PartialEq for ClientClock {
    fn eq(&self, other: &ClientClock) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for ClientClock {}

impl Default for RedisConfig {
    /// A local server (`redis://127.0.0.1:6379`), 4 connections, 1 s command timeout, 5 s
    /// connect timeout, reconnecting forever with exponential backoff from 10 ms to 2 s, server
    /// time, and up to 32 consumes per call with 3 calls in flight; an evicting
    /// `maxmemory-policy` is refused.
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            pool_size: 4,
            command_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            reconnect: ReconnectPolicy::new_exponential(0, 10, 2_000, 2),
            time_source: TimeSource::Server,
            evicting_policy_allowed: false,
            max_combined: 32,
            max_calls_in_flight: 3,
            client_clock: ClientClock(Arc::new(SystemClock)),
        }
    }
}

impl RedisConfig {
    /// The defaults, for the server or cluster at `url` (see [`url`](Self::url)).
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig::default().with_url(url)
    }

    /// The defaults, for the Redis Cluster reachable at the seed nodes `host:port`.
    pub fn cluster<I, S>(nodes: I) -> RedisConfig
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut url = String::from("redis-cluster://");
        for (i, node) in nodes.into_iter().enumerate() {
            url.push_str(match i {
                0 => "",
                1 => "?node=",
                _ => "&node=",
            });
            url.push_str(node.as_ref());
        }
        RedisConfig::new(url)
    }

    /// Sets [`url`](Self::url).
    pub fn with_url(mut self, url: impl Into<String>) -> RedisConfig {
        self.url = url.into();
        self
    }

    /// Sets [`pool_size`](Self::pool_size).
    pub fn with_pool_size(mut self, size: usize) -> RedisConfig {
        self.pool_size = size;
        self
    }

    /// Sets [`command_timeout`](Self::command_timeout).
    pub fn with_command_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.command_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`reconnect`](Self::reconnect).
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> RedisConfig {
        self.reconnect = policy;
        self
    }

    /// Sets [`time_source`](Self::time_source).
    pub fn with_time_source(mut self, source: TimeSource) -> RedisConfig {
        self.time_source = source;
        self
    }

    /// Sets the clock of this host, the system clock by default.
    ///
    /// With the server's time ([`TimeSource::Server`]), the store reads it only to place
    /// calendar days (Lua knows no time zones, so the client sends the bounds of the local days
    /// around the server's time), corrected by what the server reports of its own clock. A
    /// [`ManualClock`](limiter_core::ManualClock) here simulates a host whose clock is off.
    pub fn with_client_clock(mut self, clock: impl Clock + 'static) -> RedisConfig {
        self.client_clock = ClientClock(Arc::new(clock));
        self
    }

    /// The clock of this host.
    pub(crate) fn client_clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.client_clock.0)
    }

    /// Sets [`evicting_policy_allowed`](Self::evicting_policy_allowed).
    pub fn with_evicting_policy_allowed(mut self, allowed: bool) -> RedisConfig {
        self.evicting_policy_allowed = allowed;
        self
    }

    /// Sets [`max_combined`](Self::max_combined).
    pub fn with_max_combined(mut self, consumes: usize) -> RedisConfig {
        self.max_combined = consumes;
        self
    }

    /// Sets [`max_calls_in_flight`](Self::max_calls_in_flight).
    pub fn with_max_calls_in_flight(mut self, calls: usize) -> RedisConfig {
        self.max_calls_in_flight = calls;
        self
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("pool_size", &self.pool_size)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &self.reconnect)
            .field("time_source", &self.time_source)
            .field("evicting_policy_allowed", &self.evicting_policy_allowed)
            .field("max_combined", &self.max_combined)
            .field("max_calls_in_flight", &self.max_calls_in_flight)
            .field("client_clock", &self.client_clock.0)
            .finish()
    }
}

/// The URL with its credentials masked (`redis://***@host:port`, and the values of
/// `sentinelUsername` and `sentinelPassword`), for messages and logs: the store's own, and
/// those of tools that print a URL they were given.
///
/// ```
/// assert_eq!(limiter_redis::redact("redis://user:secret@cache:6379/0"), "redis://***@cache:6379/0");
/// ```
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (address, query) = match url[scheme_end..].find('?') {
        Some(q) => url.split_at(scheme_end + q),
        None => (url, ""),
    };
    // The user information ends at the last `@` before the query: a password may hold an
    // unescaped `@` of its own.
    let mut out = match address[scheme_end..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &address[scheme_end + at..]),
        None => address.to_owned(),
    };
    for (i, pair) in query.trim_start_matches('?').split('&').enumerate() {
        if query.is_empty() {
            break;
        }
        out.push(if i == 0 { '?' } else { '&' });
        match pair.split_once('=') {
            Some((name, _)) if name == "sentinelPassword" || name == "sentinelUsername" => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
    }
    out
}
