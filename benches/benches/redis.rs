//! The Redis store against baselines on the same private server, measured in the same run.
//!
//! Variants (each a decision, at 1 and at 64 concurrent tasks over one pool of 8 connections):
//! - `trivial_evalsha`: `EVALSHA` of `return redis.call('INCR', KEYS[1])`, the physical floor
//!   of one script round trip.
//! - `gcra_script`: the usual one-key GCRA Lua script (GET the TAT, compare, SET it with PX;
//!   server time), for one limit.
//! - `ours_single_limit`: `RedisStore::evaluate` of one GCRA limit.
//! - `ours_four_limits`: `RedisStore::evaluate` of four limits of one subject (GCRA, two
//!   sliding windows, calendar), subjects rotating over 4096.
//! - `drf_four_limits`: DRF's `SimpleRateThrottle` for the same four limits: per limit, GET the
//!   history list, trim it, SET it back (non-atomic read-modify-write from the client).
//! - `ours_default_decision`: `Limiter::check` under the default policies (five limits: plan
//!   sustained, burst, daily, role, IP burst) of an enterprise tenant's owner, 4096 tenants.
//! - `floor_five_keys`: `EVALSHA` of a script that does only what a one-round-trip decision
//!   over five keys of one key per limit had to: `TIME`, one `MGET` of the five keys, and a
//!   `SET ... PX` of each, deciding nothing.
//! - `floor_three_keys`: the same over three keys, what a decision over three subjects (the
//!   default decision, one key per subject) must do at least.
//! - `ours_denied_flood`: `RedisStore::evaluate` of one limit of a subject that is already
//!   denied (1/hour, spent), every request denied.
//! - `local_denied_flood`: the same through `LocalDenials` (limiter-memory) in front of the
//!   store: denials answered in process.
//! - `cluster_default_decision`: the default decision on the harness's three-node cluster
//!   (its three subjects in two slots: the role shares its tenant's); its commands are counted
//!   on every node.
//! - `peer_flexible_one_limit`: a peer, rate-limiter-flexible's `RateLimiterRedis` (Node.js,
//!   ioredis: one fixed-window limit, one `EVALSHA` per decision) on the same server, over as
//!   many subjects, at as many concurrent promises; its client column is the Node process's CPU.
//!   It runs where `node` is on the `PATH` and its packages are installed
//!   (`npm ci --prefix benches/peers/rate-limiter-flexible`); elsewhere the row is left out.
//!
//! Under `cargo bench`, a report comes first: per variant, decisions per second, median and
//! p99 latency at 1 and 64 tasks, the share of admitted decisions, the server's and this
//! process's CPU time per decision, the commands Redis executed per decision
//! (`INFO commandstats` before/after; commands a script runs count too, so the round trips are
//! the `evalsha` column for scripts), and the target ratios. The machine's speed drifts while
//! it runs, so every variant runs once per round over several interleaved rounds; throughputs
//! and ratios are medians over the rounds. On a machine of two cores, the server and this
//! process share them: a variant's throughput follows the sum of its two CPU columns.
//!
//! Run: `cargo bench -p limiter-benches --bench redis -- --warm-up-time 1 --measurement-time 3`
//!
//! `LIMITER_BENCH_REPORT=<text>[,<text>...]` keeps only the report rows whose `variant/tasks`
//! contains one of the texts (`none`: no report), to profile one of them.
//!
//! `LIMITER_BENCH_REDIS_URL=redis://127.0.0.1:<port>[/<db>]` runs the standalone variants on that
//! server instead of a private one: two builds run one after the other against one server (each
//! in its own database) compare on the same server, in the same run. Use a server of your own:
//! the bench writes keys and reads its counters.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use fred::clients::Pool;
use fred::interfaces::{KeysInterface, LuaInterface};
use limiter_core::{
    Batch, Calendar, Check, Clock, EvalOptions, Key, Limit, Limiter, PolicySet, Rate, Request,
    Store, SubjectKind, SystemClock,
};
use limiter_memory::LocalDenials;
use limiter_redis::{RedisConfig, RedisStore};
use limiter_testkit::redis::{self, RedisCluster, RedisServer};

const POOL: usize = 8;
const SUBJECTS: usize = 4096;
const CONCURRENCY: [usize; 2] = [1, 64];

const TRIVIAL_LUA: &str = "return redis.call('INCR', KEYS[1])";

/// A decision over one limit of a subject that is already denied: the whole hour's budget.
const DENIED_RATE: &str = "1/hour";

/// The work any one-round-trip decision over its keys must do: read the time and every key,
/// write every key with an expiry.
const FLOOR_LUA: &str = r"
local t = redis.call('TIME')
local values = redis.call('MGET', unpack(KEYS))
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], 'G12345678', 'PX', 60000)
end
return 1
";

/// The usual one-key GCRA script: emission interval and capacity in microseconds.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + emission
if new_tat - now > capacity then
  return {0, new_tat - now - capacity}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {1, 0}
";

/// The four limits of `ours_four_limits` and `drf_four_limits`: (policy, rate, period in µs).
const FOUR: [(&str, &str, u64); 4] = [
    ("burst", "1000/minute", 60_000_000),
    ("sustained", "10000/hour", 3_600_000_000),
    ("role", "5000/hour", 3_600_000_000),
    ("daily", "100000/day", 86_400_000_000),
];

struct Fixture {
    store: RedisStore,
    pool: Pool,
    limiter: Limiter,
    denials: LocalDenials<RedisStore>,
    denied: Batch,
    cluster_limiter: Option<Limiter>,
    trivial_sha: String,
    gcra_sha: String,
    floor_sha: String,
    single: Batch,
    four: Vec<Batch>,
    drf_keys: Vec<[String; 4]>,
    floor_keys: Vec<[String; 5]>,
    requests: Vec<Request>,
}

/// The servers of the run: the standalone server every variant but the cluster's runs on, and
/// the cluster's nodes (none if it did not start).
struct Servers {
    standalone: Node,
    cluster: Vec<Node>,
    /// The cluster, stopped when dropped.
    _cluster: Option<RedisCluster>,
}

/// A server whose counters the report reads: `host:port`, and the server if this process started
/// it (stopped when dropped).
struct Node {
    address: String,
    _owned: Option<RedisServer>,
}

impl Node {
    /// The server at `url`'s first address, not owned.
    fn of_url(url: &str) -> Node {
        Node {
            address: redis::addresses(url).into_iter().next().unwrap_or_default(),
            _owned: None,
        }
    }

    fn command(&self, words: &[&str]) -> std::io::Result<String> {
        redis::command(&self.address, words)
    }
}

#[derive(Clone, Copy, Debug)]
enum Variant {
    TrivialEvalsha,
    GcraScript,
    OursSingleLimit,
    OursFourLimits,
    DrfFourLimits,
    OursDefaultDecision,
    FloorFiveKeys,
    FloorThreeKeys,
    OursDeniedFlood,
    LocalDeniedFlood,
    ClusterDefaultDecision,
    PeerFlexibleOneLimit,
}

const VARIANTS: [Variant; 12] = [
    Variant::TrivialEvalsha,
    Variant::GcraScript,
    Variant::OursSingleLimit,
    Variant::OursFourLimits,
    Variant::DrfFourLimits,
    Variant::OursDefaultDecision,
    Variant::FloorFiveKeys,
    Variant::FloorThreeKeys,
    Variant::OursDeniedFlood,
    Variant::LocalDeniedFlood,
    Variant::ClusterDefaultDecision,
    Variant::PeerFlexibleOneLimit,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::TrivialEvalsha => "trivial_evalsha",
            Variant::GcraScript => "gcra_script",
            Variant::OursSingleLimit => "ours_single_limit",
            Variant::OursFourLimits => "ours_four_limits",
            Variant::DrfFourLimits => "drf_four_limits",
            Variant::OursDefaultDecision => "ours_default_decision",
            Variant::FloorFiveKeys => "floor_five_keys",
            Variant::FloorThreeKeys => "floor_three_keys",
            Variant::OursDeniedFlood => "ours_denied_flood",
            Variant::LocalDeniedFlood => "local_denied_flood",
            Variant::ClusterDefaultDecision => "cluster_default_decision",
            Variant::PeerFlexibleOneLimit => "peer_flexible_one_limit",
        }
    }

    /// The servers whose counters the variant moves (none: the variant cannot run here).
    fn servers(self, servers: &Servers) -> Vec<&Node> {
        match self {
            Variant::ClusterDefaultDecision => servers.cluster.iter().collect(),
            Variant::PeerFlexibleOneLimit if !peer::installed() => Vec::new(),
            _ => vec![&servers.standalone],
        }
    }

    /// Whether the variant runs in this process (the peer runs in its own).
    fn in_process(self) -> bool {
        !matches!(self, Variant::PeerFlexibleOneLimit)
    }

    /// One decision, the `i`th; whether it was admitted.
    async fn run(self, f: &Fixture, i: usize) -> bool {
        let name = self.name();
        match self {
            Variant::TrivialEvalsha => {
                let n: i64 = f
                    .pool
                    .evalsha(f.trivial_sha.as_str(), "bench:trivial", ())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: EVALSHA: {e}"));
                n > 0
            }
            Variant::GcraScript => {
                // 10^6 per second: one microsecond per unit, a capacity of 10^6 µs (as ours).
                let reply: Vec<i64> = f
                    .pool
                    .evalsha(f.gcra_sha.as_str(), "bench:gcra", vec![1_i64, 1_000_000])
                    .await
                    .unwrap_or_else(|e| panic!("{name}: EVALSHA: {e}"));
                reply.first() == Some(&1)
            }
            Variant::OursSingleLimit => {
                let at = EvalOptions::at(SystemClock.now());
                f.store
                    .evaluate(&f.single, &at)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: evaluate: {e}"))
                    .allowed
            }
            Variant::OursFourLimits => {
                let at = EvalOptions::at(SystemClock.now());
                let batch = &f.four[i % f.four.len()];
                f.store
                    .evaluate(batch, &at)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: evaluate: {e}"))
                    .allowed
            }
            Variant::DrfFourLimits => drf(f, &f.drf_keys[i % f.drf_keys.len()]).await,
            Variant::OursDefaultDecision => f
                .limiter
                .check(&f.requests[i % f.requests.len()])
                .await
                .unwrap_or_else(|e| panic!("{name}: check: {e}"))
                .is_allowed(),
            Variant::FloorFiveKeys | Variant::FloorThreeKeys => {
                let keys = &f.floor_keys[i % f.floor_keys.len()];
                let count = if matches!(self, Variant::FloorFiveKeys) {
                    5
                } else {
                    3
                };
                let keys: Vec<&str> = keys[..count].iter().map(String::as_str).collect();
                let n: i64 = f
                    .pool
                    .evalsha(f.floor_sha.as_str(), keys, ())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: EVALSHA: {e}"));
                n == 1
            }
            Variant::OursDeniedFlood => {
                let at = EvalOptions::at(SystemClock.now());
                f.store
                    .evaluate(&f.denied, &at)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: evaluate: {e}"))
                    .allowed
            }
            Variant::LocalDeniedFlood => {
                let at = EvalOptions::at(SystemClock.now());
                f.denials
                    .evaluate(&f.denied, &at)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: evaluate: {e}"))
                    .allowed
            }
            Variant::ClusterDefaultDecision => {
                let Some(limiter) = &f.cluster_limiter else {
                    return false;
                };
                limiter
                    .check(&f.requests[i % f.requests.len()])
                    .await
                    .unwrap_or_else(|e| panic!("{name}: check: {e}"))
                    .is_allowed()
            }
            Variant::PeerFlexibleOneLimit => unreachable!("{name} runs in its own process"),
        }
    }
}

/// The peer's process: rate-limiter-flexible, driven by `benches/peers/rate-limiter-flexible`.
mod peer {
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::Duration;

    use super::Run;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/rate-limiter-flexible")
    }

    /// Whether `node` runs here and the peer's packages are installed.
    pub(super) fn installed() -> bool {
        dir().join("node_modules/rate-limiter-flexible").is_dir()
            && Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
    }

    /// `decisions` decisions at `tasks` concurrent promises on the server at `address`, and the
    /// peer's CPU time over them.
    pub(super) fn run(address: &str, tasks: usize, decisions: usize) -> (Run, Duration) {
        let out = Command::new("node")
            .arg(dir().join("bench.js"))
            .arg(format!("redis://{address}"))
            .arg(tasks.to_string())
            .arg(decisions.to_string())
            .output()
            .expect("run node");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the peer failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("the peer's report {text:?}: {e}"));
        let number = |name: &str| {
            report[name]
                .as_f64()
                .unwrap_or_else(|| panic!("the peer's report {text:?} has no {name}"))
        };
        let count = |name: &str| {
            report[name]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or_else(|| panic!("the peer's report {text:?} has no count {name}"))
        };
        let latencies = report["latencies_us"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(serde_json::Value::as_u64)
                    .map(Duration::from_micros)
                    .collect()
            })
            .unwrap_or_default();
        let run = Run {
            elapsed: Duration::from_secs_f64(number("seconds")),
            latencies,
            admitted: count("admitted"),
            decisions: count("decisions"),
        };
        (run, Duration::from_secs_f64(number("cpu_seconds")))
    }
}

/// DRF's throttles, one after the other: each reads its history, trims it to the period, and
/// either fails (stopping there) or prepends now and writes the history back.
async fn drf(f: &Fixture, keys: &[String; 4]) -> bool {
    let now = SystemClock.now();
    for (key, (_, rate, period)) in keys.iter().zip(FOUR) {
        let limit: usize = rate
            .split('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let raw: Option<String> = f.pool.get(key.as_str()).await.expect("drf: GET");
        let mut history: Vec<u64> = raw
            .unwrap_or_default()
            .split(',')
            .filter_map(|t| t.parse().ok())
            .filter(|&t| t + period > now)
            .collect();
        if history.len() >= limit {
            return false;
        }
        history.insert(0, now);
        let value = history
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let ttl = i64::try_from(period / 1_000_000).unwrap_or(i64::MAX);
        let expiry = Some(fred::types::Expiration::EX(ttl));
        let _: () = f
            .pool
            .set(key.as_str(), value, expiry, None, false)
            .await
            .expect("drf: SET");
    }
    true
}

async fn fixture(url: &str, cluster_url: Option<String>) -> Fixture {
    let store = RedisStore::connect(RedisConfig::new(url).with_pool_size(POOL))
        .await
        .expect("connect to the bench server");
    let pool = store.pool().clone();
    let trivial_sha: String = pool.script_load(TRIVIAL_LUA).await.expect("SCRIPT LOAD");
    let gcra_sha: String = pool.script_load(GCRA_LUA).await.expect("SCRIPT LOAD");
    let floor_sha: String = pool.script_load(FLOOR_LUA).await.expect("SCRIPT LOAD");
    let rate = |s: &str| s.parse::<Rate>().expect("bench rates are valid");
    let single = Batch::new(vec![Check::new(
        "burst",
        Key::new("bench", "single", SubjectKind::User, "hot"),
        Limit::gcra(rate("1000000/second")),
        1,
    )])
    .expect("batch");
    let four = (0..SUBJECTS)
        .map(|s| {
            let subject = format!("user-{s}");
            let checks = FOUR.iter().map(|&(policy, r, _)| {
                let limit = match policy {
                    "burst" => Limit::gcra(rate(r)),
                    "daily" => Limit::calendar(rate(r), Calendar::utc()).expect("calendar"),
                    _ => Limit::sliding_window(rate(r)),
                };
                Check::new(
                    policy,
                    Key::new("bench", policy, SubjectKind::User, &subject),
                    limit,
                    1,
                )
            });
            Batch::new(checks).expect("batch")
        })
        .collect();
    let drf_keys = (0..SUBJECTS)
        .map(|s| FOUR.map(|(policy, _, _)| format!("bench:drf:{policy}:user-{s}")))
        .collect();
    let floor_keys = (0..SUBJECTS)
        .map(|s| {
            ["sustained", "burst", "daily", "role", "ip_burst"]
                .map(|policy| format!("bench:floor:{policy}:{{user-{s}}}"))
        })
        .collect();
    let requests = (0..SUBJECTS)
        .map(|s| {
            let [a, b] = u16::try_from(s).unwrap_or(0).to_be_bytes();
            let mut request = Request::new()
                .tenant(format!("tenant-{s}"))
                .plan("enterprise")
                .user(format!("owner-{s}"))
                .role("owner");
            request.client_ip = Some(IpAddr::V4(Ipv4Addr::new(10, 1, a, b)));
            request
        })
        .collect();
    let limiter = Limiter::builder(PolicySet::default(), store.clone())
        .clock(SystemClock)
        .build();
    let denied = Batch::new(vec![Check::new(
        "denied",
        Key::new("bench", "denied", SubjectKind::User, "flooder"),
        Limit::gcra(rate(DENIED_RATE)),
        1,
    )])
    .expect("batch");
    // Spend the hour's budget: every decision of the floods is a denial.
    store
        .evaluate(&denied, &EvalOptions::at(SystemClock.now()))
        .await
        .expect("spend the denied subject's budget");
    let denials = LocalDenials::new(store.clone());
    let cluster_limiter = match cluster_url {
        Some(url) => {
            let cluster = RedisStore::connect(RedisConfig::new(url).with_pool_size(POOL))
                .await
                .expect("connect to the bench cluster");
            Some(
                Limiter::builder(PolicySet::default(), cluster)
                    .clock(SystemClock)
                    .build(),
            )
        }
        None => None,
    };
    Fixture {
        store,
        pool,
        limiter,
        denials,
        denied,
        cluster_limiter,
        trivial_sha,
        gcra_sha,
        floor_sha,
        single,
        four,
        drf_keys,
        floor_keys,
        requests,
    }
}

/// Runs `total` decisions of `variant` over `tasks` tasks; returns the wall time, the latency
/// of every decision and how many were admitted.
async fn run_tasks(
    f: &Arc<Fixture>,
    variant: Variant,
    tasks: usize,
    total: usize,
    timed: bool,
) -> Run {
    let per_task = total.div_ceil(tasks);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let f = Arc::clone(f);
        set.spawn(async move {
            let mut latencies = Vec::with_capacity(if timed { per_task } else { 0 });
            let mut admitted = 0;
            for n in 0..per_task {
                let i = task * per_task + n;
                let t = timed.then(Instant::now);
                admitted += usize::from(variant.run(&f, i).await);
                if let Some(t) = t {
                    latencies.push(t.elapsed());
                }
            }
            (latencies, admitted)
        });
    }
    let mut run = Run {
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        admitted: 0,
        decisions: per_task * tasks,
    };
    for (latencies, admitted) in set.join_all().await {
        run.latencies.extend(latencies);
        run.admitted += admitted;
    }
    run.elapsed = start.elapsed();
    run
}

struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    admitted: usize,
    decisions: usize,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64()
    }
}

/// The servers' CPU time so far (user + system), from `INFO cpu`.
fn server_cpu(servers: &[&Node]) -> Duration {
    let seconds: f64 = servers
        .iter()
        .map(|server| {
            let info = server.command(&["INFO", "cpu"]).expect("INFO cpu");
            info.lines()
                .filter_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    matches!(name, "used_cpu_sys" | "used_cpu_user")
                        .then(|| value.trim().parse::<f64>().ok())?
                })
                .sum::<f64>()
        })
        .sum();
    Duration::from_secs_f64(seconds)
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`; zero where that
/// file does not exist.
fn client_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th
    // and 13th of them, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Per-command call counts and microseconds from `INFO commandstats`, summed over the
/// servers, without `info` itself.
fn command_stats(servers: &[&Node]) -> BTreeMap<String, (u64, u64)> {
    let mut stats: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for server in servers {
        let info = server
            .command(&["INFO", "commandstats"])
            .expect("INFO commandstats");
        for line in info.lines() {
            let Some((name, rest)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(":calls="))
            else {
                continue;
            };
            let mut fields = rest.split(',');
            let calls: u64 = fields.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let usec: u64 = fields
                .next()
                .and_then(|f| f.strip_prefix("usec="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if name != "info" {
                let entry = stats.entry(name.to_owned()).or_default();
                entry.0 += calls;
                entry.1 += usec;
            }
        }
    }
    stats
}

/// What the report gathers of one variant at one concurrency, over every round.
#[derive(Default)]
struct Row {
    latencies: Vec<Duration>,
    decisions: usize,
    admitted: usize,
    server: Duration,
    client: Duration,
    /// Per command: calls, and microseconds the server spent in them.
    commands: BTreeMap<String, (u64, u64)>,
    /// Decisions per second, one per round.
    per_round: Vec<f64>,
    /// The median latency, once reported.
    p50: Duration,
}

/// The latency below which `permille` of the decisions completed.
fn percentile(latencies: &mut [Duration], permille: usize) -> Duration {
    latencies.sort_unstable();
    let last = latencies.len().saturating_sub(1);
    latencies
        .get(last * permille / 1000)
        .copied()
        .unwrap_or_default()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(rt: &tokio::runtime::Runtime, f: &Arc<Fixture>, servers: &Servers) {
    // The machine's speed drifts (other tenants, frequency): every variant runs once per round,
    // interleaved, and throughputs and ratios are medians over the rounds. Enough decisions per
    // row that CPU times (counted in 10 ms ticks) mean something.
    const ROUNDS: usize = 7;
    let decisions = |tasks: usize| if tasks == 1 { 2_000 } else { 16_000 };
    eprintln!(
        "\nRedis store report: {ROUNDS} interleaved rounds of {} decisions per variant at 1 task, \
         {} at 64; pool of {POOL} connections. decisions/s: median over the rounds; server and \
         client: CPU time per decision (server: INFO cpu, all nodes for the cluster); script: \
         the server's time inside EVALSHA per decision (INFO commandstats)",
        decisions(1),
        decisions(64)
    );
    eprintln!(
        "{:<26} {:>5} {:>12} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9}  commands per decision",
        "variant",
        "tasks",
        "decisions/s",
        "median",
        "p99",
        "admitted",
        "server",
        "script",
        "client"
    );
    let only = std::env::var("LIMITER_BENCH_REPORT").unwrap_or_default();
    let only: Vec<&str> = only.split(',').collect();
    let mut rows: BTreeMap<(usize, &str), Row> = BTreeMap::new();
    for tasks in CONCURRENCY {
        let variants: Vec<Variant> = VARIANTS
            .into_iter()
            .filter(|v| {
                let row = format!("{}/{tasks}", v.name());
                only.iter().any(|text| row.contains(text))
            })
            .filter(|v| !v.servers(servers).is_empty())
            .collect();
        for &variant in variants.iter().filter(|v| v.in_process()) {
            // Warm up: connections, script caches, keys (the peer warms up in its own run).
            rt.block_on(run_tasks(f, variant, tasks, 640, false));
        }
        for round in 0..ROUNDS {
            // Each round starts one variant further on, so that no variant always follows the
            // same one (a variant can leave the server's memory or the scheduler in a state
            // that helps or hinders the next).
            let start = round % variants.len().max(1);
            for &variant in variants[start..].iter().chain(&variants[..start]) {
                let nodes = variant.servers(servers);
                let before = command_stats(&nodes);
                let (server_before, client_before) = (server_cpu(&nodes), client_cpu());
                let (run, client) = if variant.in_process() {
                    let run = rt.block_on(run_tasks(f, variant, tasks, decisions(tasks), true));
                    (run, client_cpu().saturating_sub(client_before))
                } else {
                    peer::run(&servers.standalone.address, tasks, decisions(tasks))
                };
                let row = rows.entry((tasks, variant.name())).or_default();
                row.server += server_cpu(&nodes).saturating_sub(server_before);
                row.client += client;
                for (name, (calls, usec)) in command_stats(&nodes) {
                    let (calls_before, usec_before) = before.get(&name).copied().unwrap_or((0, 0));
                    let entry = row.commands.entry(name).or_default();
                    entry.0 += calls - calls_before;
                    entry.1 += usec - usec_before;
                }
                row.per_round.push(run.per_second());
                row.decisions += run.decisions;
                row.admitted += run.admitted;
                row.latencies.extend(run.latencies);
            }
        }
        for &variant in &variants {
            let Some(row) = rows.get_mut(&(tasks, variant.name())) else {
                continue;
            };
            let n = row.decisions as f64;
            let commands: Vec<String> = row
                .commands
                .iter()
                .filter(|(_, (calls, _))| *calls > 0)
                .map(|(name, &(calls, _))| format!("{name} {:.2}", calls as f64 / n))
                .collect();
            let script = row.commands.get("evalsha").map_or(0, |&(_, usec)| usec);
            let (p50, p99) = (
                percentile(&mut row.latencies, 500),
                percentile(&mut row.latencies, 990),
            );
            row.p50 = p50;
            eprintln!(
                "{:<26} {:>5} {:>12.0} {:>8.0}µs {:>8.0}µs {:>8.1}% {:>7.1}µs {:>7.1}µs {:>7.1}µs  {}",
                variant.name(),
                tasks,
                median(&mut row.per_round.clone()),
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                100.0 * row.admitted as f64 / n,
                row.server.as_secs_f64() * 1e6 / n,
                script as f64 / n,
                row.client.as_secs_f64() * 1e6 / n,
                commands.join(", ")
            );
        }
    }
    // Where the server's time goes in a decision: microseconds per call of each command, and
    // per decision.
    for name in [
        "ours_default_decision",
        "floor_three_keys",
        "trivial_evalsha",
    ] {
        let Some(row) = rows.get(&(64, name)) else {
            continue;
        };
        let n = row.decisions as f64;
        let parts: Vec<String> = row
            .commands
            .iter()
            .filter(|(_, (calls, _))| *calls > 0)
            .map(|(command, &(calls, usec))| {
                format!(
                    "{command} {:.2} µs/call, {:.2} µs/decision",
                    usec as f64 / calls as f64,
                    usec as f64 / n
                )
            })
            .collect();
        eprintln!("server time of {name}/64: {}", parts.join("; "));
    }
    let complete = VARIANTS.iter().all(|v| {
        v.servers(servers).is_empty()
            || !v.in_process()
            || CONCURRENCY
                .iter()
                .all(|&t| rows.contains_key(&(t, v.name())))
    });
    if !complete {
        return;
    }
    // The median over rounds of the ratio within each round.
    let ratio = |a: &str, b: &str, tasks: usize| {
        let (a, b) = (&rows[&(tasks, a)].per_round, &rows[&(tasks, b)].per_round);
        median(&mut a.iter().zip(b).map(|(a, b)| a / b).collect::<Vec<_>>())
    };
    let per_decision = |name: &str, tasks: usize, command: &str| {
        let row = &rows[&(tasks, name)];
        let calls: u64 = row
            .commands
            .iter()
            .filter(|(c, _)| command == "*" || c.as_str() == command)
            .map(|(_, &(calls, _))| calls)
            .sum();
        calls as f64 / row.decisions as f64
    };
    let server_us = |name: &str, tasks: usize| {
        let row = &rows[&(tasks, name)];
        row.server.as_secs_f64() * 1e6 / row.decisions as f64
    };
    eprintln!(
        "targets: default decision / trivial EVALSHA at 64 tasks = {:.2} (target >= 0.40); \
         server CPU per default decision = {:.1} µs at 64 tasks (target <= 25); \
         single limit / GCRA script = {:.2} at 1 task, {:.2} at 64 (target >= 1.0); \
         denied flood with local denials / trivial EVALSHA = {:.1}x at 64 tasks, {:.1}x at 1 \
         (target >= 10x), {:.4} commands per denied decision (without: {:.2}); \
         four limits ours / DRF-style = {:.2} at 1 task, {:.2} at 64; \
         floor of three keys / trivial EVALSHA at 64 tasks = {:.2}, default decision / that \
         floor = {:.2}; floor of five keys / trivial EVALSHA = {:.2}",
        ratio("ours_default_decision", "trivial_evalsha", 64),
        server_us("ours_default_decision", 64),
        ratio("ours_single_limit", "gcra_script", 1),
        ratio("ours_single_limit", "gcra_script", 64),
        ratio("local_denied_flood", "trivial_evalsha", 64),
        ratio("local_denied_flood", "trivial_evalsha", 1),
        per_decision("local_denied_flood", 64, "*"),
        per_decision("ours_denied_flood", 64, "*"),
        ratio("ours_four_limits", "drf_four_limits", 1),
        ratio("ours_four_limits", "drf_four_limits", 64),
        ratio("floor_three_keys", "trivial_evalsha", 64),
        ratio("ours_default_decision", "floor_three_keys", 64),
        ratio("floor_five_keys", "trivial_evalsha", 64),
    );
    let peer = "peer_flexible_one_limit";
    if rows.contains_key(&(64, peer)) && rows.contains_key(&(1, peer)) {
        eprintln!(
            "peer: default decision (five limits) / rate-limiter-flexible's one limit = {:.2} at \
             64 tasks (mark: >= 1.0), {:.2} at 1; single limit / its one limit = {:.2} at 64 \
             tasks; server CPU per decision: {:.1} µs for its one limit, {:.1} µs for our \
             single limit",
            ratio("ours_default_decision", peer, 64),
            ratio("ours_default_decision", peer, 1),
            ratio("ours_single_limit", peer, 64),
            server_us(peer, 64),
            server_us("ours_single_limit", 64),
        );
    }
    if !servers.cluster.is_empty() {
        let cluster = "cluster_default_decision";
        eprintln!(
            "cluster (3 nodes on this machine): {:.2} EVALSHA and {:.2} commands per default \
             decision (standalone: {:.2} and {:.2}); median latency at 1 task {:.0} µs against \
             {:.0} µs standalone ({:.2}x); {:.2}x the standalone rate at 64 tasks\n",
            per_decision(cluster, 1, "evalsha"),
            per_decision(cluster, 1, "*"),
            per_decision("ours_default_decision", 1, "evalsha"),
            per_decision("ours_default_decision", 1, "*"),
            rows[&(1, cluster)].p50.as_secs_f64() * 1e6,
            rows[&(1, "ours_default_decision")].p50.as_secs_f64() * 1e6,
            rows[&(1, cluster)].p50.as_secs_f64()
                / rows[&(1, "ours_default_decision")].p50.as_secs_f64(),
            ratio(cluster, "ours_default_decision", 64),
        );
    }
}

fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime, f: &Arc<Fixture>) {
    let mut group = c.benchmark_group("redis");
    group.throughput(Throughput::Elements(1));
    for variant in VARIANTS.into_iter().filter(|v| v.in_process()) {
        for tasks in CONCURRENCY {
            group.bench_function(BenchmarkId::new(variant.name(), tasks), |b| {
                b.to_async(rt).iter_custom(|iters| {
                    let f = Arc::clone(f);
                    async move {
                        let total = usize::try_from(iters).unwrap_or(usize::MAX);
                        let run = run_tasks(&f, variant, tasks, total, false).await;
                        // Scale to the iterations asked for (tasks may round them up).
                        run.elapsed.mul_f64(total as f64 / run.decisions as f64)
                    }
                });
            });
        }
    }
    group.finish();
}

fn main() {
    // The standalone server: the one named, or a private one.
    let (standalone, url) = match std::env::var("LIMITER_BENCH_REDIS_URL") {
        Ok(url) => (Node::of_url(&url), url),
        Err(_) => match RedisServer::start() {
            Ok(server) => {
                let url = server.url();
                let node = Node {
                    _owned: Some(server),
                    ..Node::of_url(&url)
                };
                (node, url)
            }
            Err(e) => {
                eprintln!("\n==== SKIPPED the Redis bench: cannot start redis-server: {e} ====\n");
                return;
            }
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The harness's cluster, for the cluster's variant (skipped without one).
    let cluster = RedisCluster::start()
        .map_err(|e| eprintln!("\n==== the cluster variant is skipped: {e} ====\n"))
        .ok();
    let cluster_url = cluster.as_ref().map(RedisCluster::url);
    let f = Arc::new(rt.block_on(fixture(&url, cluster_url)));
    let servers = Servers {
        standalone,
        cluster: cluster
            .iter()
            .flat_map(|c| c.nodes().iter().map(|node| Node::of_url(&node.url())))
            .collect(),
        _cluster: cluster,
    };
    // `cargo test --benches` runs without `--bench`: skip the long report there.
    if std::env::args().any(|a| a == "--bench") {
        report(&rt, &f, &servers);
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &rt, &f);
    c.final_summary();
}
