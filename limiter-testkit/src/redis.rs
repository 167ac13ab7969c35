//! Private Redis servers for tests and benchmarks (feature `redis`).
//!
//! [`RedisServer::start`] runs `redis-server` (found on `PATH`) on a free port of 127.0.0.1, in a
//! temporary directory, without persistence (`--save "" --appendonly no`);
//! [`RedisCluster::start`] runs three such nodes with `--cluster-enabled yes` and joins them
//! with `redis-cli --cluster create`. Both stop what they start when dropped.
//!
//! Every server runs under a small `sh` guard that holds the read end of a pipe whose write end
//! only the test process holds: when the process exits, however it exits (a panic, `exit`, a
//! `SIGKILL`), the pipe closes, and the guard kills the server and removes its directory. So
//! servers shared through a `static` ([`standalone_url`], [`cluster_url`]) never outlive the
//! test binary, and nothing leaks across runs.
//!
//! Environment:
//! - `LIMITER_REDIS_URL` / `LIMITER_REDIS_CLUSTER_URL`: use that server or cluster instead of
//!   starting one.
//! - `LIMITER_REQUIRE_REDIS=1`: a missing `redis-server` fails the test instead of skipping it.
//!
//! ```no_run
//! # async fn demo() {
//! // In a test: skip (loudly) when no server can be had.
//! let Some(url) = limiter_testkit::redis::standalone_url() else { return };
//! let namespace = limiter_testkit::redis::namespace("my_test");
//! # }
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable naming an existing server to test against.
pub const URL_VAR: &str = "LIMITER_REDIS_URL";
/// The environment variable naming an existing cluster (`redis-cluster://host:port?node=...`).
pub const CLUSTER_URL_VAR: &str = "LIMITER_REDIS_CLUSTER_URL";
/// The environment variable that turns a missing `redis-server` into a failure.
pub const REQUIRE_VAR: &str = "LIMITER_REQUIRE_REDIS";

/// How long a server may take to answer its first `PING`, or a cluster to agree.
const STARTUP: Duration = Duration::from_secs(20);

/// Kills the server when its guard's stdin closes, then removes the server's directory.
/// `$1` is the directory; the rest is the command line.
const GUARD: &str = r#"dir="$1"; shift
"$@" & server=$!
cat >/dev/null
kill -9 "$server" 2>/dev/null
wait "$server" 2>/dev/null
rm -rf "$dir""#;

/// A `redis-server` process of this test process, on 127.0.0.1.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    guard: Option<(Child, ChildStdin)>,
}

impl RedisServer {
    /// Starts a standalone server on a free port.
    pub fn start() -> io::Result<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// Starts a server on a free port (whose cluster bus port, +10000, is free too) with extra
    /// `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> io::Result<RedisServer> {
        find_on_path("redis-server")?;
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let dir = tempfile::Builder::new()
                .prefix("limiter-redis-")
                .tempdir()?
                .keep();
            let mut server = RedisServer {
                port,
                dir,
                extra: extra.iter().map(|s| (*s).to_owned()).collect(),
                guard: None,
            };
            // Another process may take the port between the probe and the bind: try another.
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("could not start redis-server")))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.guard.is_some()
    }

    /// Kills the server at once (`SIGKILL`: no goodbye to clients, as in a crash) and waits for
    /// it to be gone.
    pub fn kill(&mut self) {
        if let Some((mut child, stdin)) = self.guard.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty (nothing is persisted).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        let deadline = Instant::now() + STARTUP;
        loop {
            // The port is usually free at once; a socket in the kernel may hold it a moment.
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Sends one command (its words) and returns the reply, rendered as text (an error reply is
    /// an `Err`).
    pub fn command(&self, words: &[&str]) -> io::Result<String> {
        command(&format!("127.0.0.1:{}", self.port), words)
    }

    fn spawn(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let port = self.port.to_string();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(GUARD)
            .arg("redis-guard")
            .arg(&self.dir)
            .arg("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args([
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--logfile",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(debug_command_switch())
            .args(&self.extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin for the guard"))?;
        self.guard = Some((child, stdin));
        let deadline = Instant::now() + STARTUP;
        loop {
            if self.command(&["PING"]).is_ok_and(|reply| reply == "PONG") {
                return Ok(());
            }
            let exited = match &mut self.guard {
                Some((child, _)) => child.try_wait()?.is_some(),
                None => true,
            };
            if exited || Instant::now() > deadline {
                self.kill();
                return Err(io::Error::other(format!(
                    "redis-server on port {} did not answer PING within {STARTUP:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-node Redis Cluster (primaries only) of this test process.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, joins them with `redis-cli --cluster create`, and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start() -> io::Result<RedisCluster> {
        find_on_path("redis-cli")?;
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            nodes.push(RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "5000",
            ])?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create {} failed: {}",
                addresses.join(" "),
                String::from_utf8_lossy(&output.stdout)
            )));
        }
        let deadline = Instant::now() + STARTUP;
        for node in &nodes {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]).unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "the cluster node on port {} did not report cluster_state:ok within {STARTUP:?}",
                        node.port
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(RedisCluster { nodes })
    }

    /// `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let mut url = String::from("redis-cluster://");
        for (i, node) in self.nodes.iter().enumerate() {
            url.push_str(if i == 0 {
                ""
            } else if i == 1 {
                "?node="
            } else {
                "&node="
            });
            url.push_str(&format!("127.0.0.1:{}", node.port));
        }
        url
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// The URL of the server shared by the tests of this process: `LIMITER_REDIS_URL`, or a
/// [`RedisServer`] started on first use. `None` (after a loud banner on stderr) when no server
/// can be had: the test should return. Panics instead when `LIMITER_REQUIRE_REDIS=1`.
pub fn standalone_url() -> Option<String> {
    if let Ok(url) = std::env::var(URL_VAR) {
        return Some(url);
    }
    static SHARED: OnceLock<Result<RedisServer, String>> = OnceLock::new();
    match SHARED.get_or_init(|| RedisServer::start().map_err(|e| e.to_string())) {
        Ok(server) => Some(server.url()),
        Err(reason) => unavailable("a Redis server", reason),
    }
}

/// The URL of the cluster shared by the tests of this process: `LIMITER_REDIS_CLUSTER_URL`,
/// or a [`RedisCluster`] started on first use. `None` (after a loud banner) when none can be
/// had; panics instead when `LIMITER_REQUIRE_REDIS=1`.
pub fn cluster_url() -> Option<String> {
    if let Ok(url) = std::env::var(CLUSTER_URL_VAR) {
        return Some(url);
    }
    static SHARED: OnceLock<Result<RedisCluster, String>> = OnceLock::new();
    match SHARED.get_or_init(|| RedisCluster::start().map_err(|e| e.to_string())) {
        Ok(cluster) => Some(cluster.url()),
        Err(reason) => unavailable("a Redis Cluster", reason),
    }
}

/// Reports that no server can be had: a skip, or a failure under `LIMITER_REQUIRE_REDIS=1`.
/// Always `None`.
pub fn unavailable<T>(what: &str, reason: &str) -> Option<T> {
    let required = std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1");
    if required {
        panic!("{REQUIRE_VAR}=1 but {what} could not be started: {reason}");
    }
    eprintln!(
        "\n{bar}\nSKIPPED: {what} could not be started: {reason}\n\
         Install redis-server and redis-cli on PATH, or point {URL_VAR} / {CLUSTER_URL_VAR} at a \
         server. Set {REQUIRE_VAR}=1 to make this a failure.\n{bar}\n",
        bar = "=".repeat(100)
    );
    None
}

/// A key namespace unique to this test in this run, so that tests can share one server (and
/// runs one `LIMITER_REDIS_URL`).
pub fn namespace(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{test}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn find_on_path(program: &str) -> io::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| Path::is_file(path))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{program} not found on PATH"),
            )
        })
}

/// `--enable-debug-command local` where the server has the switch (Redis 7 and later turn
/// `DEBUG` off by default; fault tests use `DEBUG SLEEP` to make the server slow).
fn debug_command_switch() -> &'static [&'static str] {
    static SWITCH: OnceLock<bool> = OnceLock::new();
    let has_switch = *SWITCH.get_or_init(|| {
        let version = Command::new("redis-server").arg("--version").output();
        let text = version
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        // "Redis server v=7.0.15 sha=..." (Valkey: "Valkey server v=8.0.1 ...").
        let major = text
            .split("v=")
            .nth(1)
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        major.is_some_and(|m| m >= 7)
    });
    if has_switch {
        &["--enable-debug-command", "local"]
    } else {
        &[]
    }
}

/// The `host:port` addresses in a `redis://` or `redis-cluster://` URL (its seed nodes).
pub fn addresses(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let (first, query) = rest.split_once('?').unwrap_or((rest, ""));
    let first = first.split('/').next().unwrap_or(first);
    std::iter::once(first.to_owned())
        .chain(
            query
                .split('&')
                .filter_map(|p| p.strip_prefix("node="))
                .map(str::to_owned),
        )
        .collect()
}

/// A free port of 127.0.0.1 whose cluster bus port (+10000) is free too; never 6379.
fn free_port() -> io::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port == 6379 || port > 55_000 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::other("no free port pair found on 127.0.0.1"))
}

/// Sends one command (its words) over a fresh connection to `address` (`host:port`) and returns
/// its reply as text: simple strings, integers and bulk strings as they are, arrays one element
/// per line, error replies as `Err`.
pub fn command(address: &str, words: &[&str]) -> io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("*{}\r\n", words.len());
    for w in words {
        request.push_str(&format!("${}\r\n{w}\r\n", w.len()));
    }
    stream.write_all(request.as_bytes())?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1).unwrap_or(("", ""));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| io::Error::other(format!("bad reply line {line:?}")))
    };
    match kind {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Err(io::Error::other(rest.to_owned())),
        "$" => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(String::new());
            };
            let mut buf = vec![0; len + 2];
            reader.read_exact(&mut buf)?;
            buf.truncate(len);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        "*" => {
            let n = usize::try_from(number()?).unwrap_or(0);
            let items = (0..n)
                .map(|_| read_reply(reader))
                .collect::<io::Result<Vec<_>>>()?;
            Ok(items.join("\n"))
        }
        _ => Err(io::Error::other(format!("bad reply line {line:?}"))),
    }
}
