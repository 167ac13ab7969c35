//! `limiter replay`: a request log decided again under a configuration, and optionally under a
//! baseline, with what changed.
//!
//! Each configuration gets its own [`Limiter`] on its own in-process [`MemoryStore`], with a
//! [`ManualClock`] set from each line's `ts` before the line is decided: the library decides,
//! exactly as in the service, and the same log and configurations always give the same report.
//!
//! [`Replay`] is the engine, free of files and terminals, so that benchmarks and tests drive
//! it line by line:
//!
//! ```
//! use limiter_cli::replay::{Replay, ReplayOptions};
//! use limiter_core::PolicySet;
//!
//! let mut replay = Replay::new(PolicySet::default(), None, ReplayOptions::default())?;
//! let line = br#"{"ts":"2026-11-26T10:00:00Z","tenant":"acme","user":"ann","ip":"192.0.2.1","route":"/x"}"#;
//! for n in 1..=11 {
//!     replay.line(n, line)?;
//! }
//! let report = replay.finish();
//! // The free plan's burst is 10/minute: the 11th request is denied.
//! assert_eq!((report.config.allowed, report.config.denied), (10, 1));
//! assert_eq!(report.config.denied_by_policy[0].name, "plan_burst");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use limiter_core::request_log::{RecordedDecision, RequestRecord, format_ts};
use limiter_core::{Decision, Limiter, ManualClock, PolicySet, Request};
use limiter_memory::{MemoryConfig, MemoryStore};
use serde::Serialize;

use crate::args::{Format, ReplayArgs};
use crate::load;
use crate::table::Table;
use crate::{CliError, Outcome};

/// How many malformed lines are reported one by one (all are counted).
const MALFORMED_SHOWN: usize = 20;
/// How many malformed lines the JSON report lists.
const MALFORMED_LISTED: usize = 100;

/// Options of a [`Replay`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReplayOptions {
    /// Rows per table and examples per change in the report (0: all).
    pub top: usize,
    /// The most keys each in-process store holds.
    pub capacity: u64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            top: 10,
            capacity: 4_000_000,
        }
    }
}

/// The decision of one configuration for one request, as the report counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Bypassed,
    /// Denied by this policy (the decision's binding policy).
    Denied(Arc<str>),
    /// The request could not be decided (an unknown plan, a missing client IP).
    Error(String),
}

impl Verdict {
    fn of(decision: &Decision) -> Verdict {
        if decision.bypass().is_some() {
            Verdict::Bypassed
        } else if decision.is_allowed() {
            Verdict::Allowed
        } else {
            let policy = decision
                .binding()
                .map_or_else(|| Arc::from("(store)"), |s| Arc::clone(&s.policy));
            Verdict::Denied(policy)
        }
    }

    fn passes(&self) -> bool {
        matches!(self, Verdict::Allowed | Verdict::Bypassed)
    }

    fn describe(&self) -> String {
        match self {
            Verdict::Allowed => "allowed".into(),
            Verdict::Bypassed => "bypassed".into(),
            Verdict::Denied(p) => format!("denied by {p}"),
            Verdict::Error(e) => format!("error: {e}"),
        }
    }
}

/// A policy, tenant and route: what denials are counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Group {
    policy: Arc<str>,
    tenant: Option<String>,
    route: Option<String>,
}

impl Group {
    fn of(policy: &Arc<str>, request: &Request) -> Group {
        Group {
            policy: Arc::clone(policy),
            tenant: request.tenant.clone(),
            route: request.path.clone(),
        }
    }
}

/// One configuration's limiter and what it decided so far.
struct Side {
    limiter: Limiter,
    clock: ManualClock,
    store: Arc<MemoryStore>,
    allowed: u64,
    denied: u64,
    bypassed: u64,
    differs: u64,
    denied_by: HashMap<Group, u64>,
    shadow_by: HashMap<Arc<str>, u64>,
    errors: HashMap<String, (u64, u64)>,
}

impl Side {
    fn new(policies: PolicySet, capacity: u64) -> Side {
        let clock = ManualClock::new(0);
        let config = MemoryConfig::new().with_capacity(capacity.max(1));
        // The only refusal is a capacity of 0, which `max(1)` rules out.
        let store = Arc::new(MemoryStore::new(config).unwrap_or_default());
        let limiter = Limiter::builder(policies, Arc::clone(&store))
            .clock(clock.clone())
            .build();
        Side {
            limiter,
            clock,
            store,
            allowed: 0,
            denied: 0,
            bypassed: 0,
            differs: 0,
            denied_by: HashMap::new(),
            shadow_by: HashMap::new(),
            errors: HashMap::new(),
        }
    }

    /// Decides every request of `batch` in order, into `verdicts` (cleared first).
    fn decide_all(&mut self, batch: &[Pending], verdicts: &mut Vec<Verdict>) {
        verdicts.clear();
        for p in batch {
            verdicts.push(self.decide(p.line, p.ts, &p.request, p.recorded));
        }
    }

    /// Decides `request` at `ts` and counts the outcome.
    fn decide(
        &mut self,
        line: u64,
        ts: u64,
        request: &Request,
        recorded: Option<RecordedDecision>,
    ) -> Verdict {
        self.clock.set(ts);
        match block_on(self.limiter.check(request)) {
            Ok(decision) => {
                let verdict = Verdict::of(&decision);
                if recorded.is_some_and(|r| r != RecordedDecision::of(&decision)) {
                    self.differs += 1;
                }
                for shadow in decision.shadow_denials() {
                    *self
                        .shadow_by
                        .entry(Arc::clone(&shadow.policy))
                        .or_default() += 1;
                }
                match &verdict {
                    Verdict::Allowed => self.allowed += 1,
                    Verdict::Bypassed => self.bypassed += 1,
                    Verdict::Denied(policy) => {
                        self.denied += 1;
                        *self
                            .denied_by
                            .entry(Group::of(policy, request))
                            .or_default() += 1;
                    }
                    Verdict::Error(_) => {}
                }
                verdict
            }
            Err(error) => {
                let message = error.to_string();
                self.errors.entry(message.clone()).or_insert((0, line)).0 += 1;
                Verdict::Error(message)
            }
        }
    }

    fn report(self, files: Vec<String>, top: usize) -> SideReport {
        let mut by_policy: HashMap<String, u64> = HashMap::new();
        let mut by_tenant: HashMap<String, u64> = HashMap::new();
        let mut by_route: HashMap<String, u64> = HashMap::new();
        for (g, n) in &self.denied_by {
            *by_policy.entry(g.policy.to_string()).or_default() += n;
            *by_tenant.entry(label(g.tenant.as_deref())).or_default() += n;
            *by_route.entry(label(g.route.as_deref())).or_default() += n;
        }
        let mut errors: Vec<ErrorCount> = self
            .errors
            .into_iter()
            .map(|(error, (requests, first_line))| ErrorCount {
                error,
                requests,
                first_line,
            })
            .collect();
        errors.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then(a.first_line.cmp(&b.first_line))
        });
        SideReport {
            files,
            allowed: self.allowed,
            denied: self.denied,
            bypassed: self.bypassed,
            errors: errors.iter().map(|e| e.requests).sum(),
            differs_from_recorded: self.differs,
            denied_by_policy: ranked(by_policy, top),
            denied_by_tenant: ranked(by_tenant, top),
            denied_by_route: ranked(by_route, top),
            denied_by: ranked_groups(self.denied_by, top),
            shadow_denied_by_policy: ranked(
                self.shadow_by
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                top,
            ),
            errors_by: cut(errors, top),
            evicted_live_keys: self.store.stats().evicted_live,
        }
    }
}

/// Requests whose outcome changed from the baseline to the new configuration.
#[derive(Default)]
struct Changes {
    count: u64,
    by: HashMap<Group, u64>,
    examples: Vec<Example>,
}

impl Changes {
    fn add(&mut self, group: Group, example: impl FnOnce() -> Example, top: usize) {
        self.count += 1;
        *self.by.entry(group).or_default() += 1;
        if top == 0 || self.examples.len() < top {
            self.examples.push(example());
        }
    }

    fn report(self, top: usize) -> Change {
        let mut by_policy: HashMap<String, u64> = HashMap::new();
        let mut by_tenant: HashMap<String, u64> = HashMap::new();
        let mut by_route: HashMap<String, u64> = HashMap::new();
        for (g, n) in &self.by {
            *by_policy.entry(g.policy.to_string()).or_default() += n;
            *by_tenant.entry(label(g.tenant.as_deref())).or_default() += n;
            *by_route.entry(label(g.route.as_deref())).or_default() += n;
        }
        Change {
            requests: self.count,
            by_policy: ranked(by_policy, top),
            by_tenant: ranked(by_tenant, top),
            by_route: ranked(by_route, top),
            by: ranked_groups(self.by, top),
            examples: self.examples,
        }
    }
}

/// A request log replayed line by line under a configuration and, optionally, a baseline.
pub struct Replay {
    new: Decider,
    baseline: Option<Decider>,
    options: ReplayOptions,
    lines: u64,
    requests: u64,
    blank: u64,
    malformed: u64,
    malformed_lines: Vec<Malformed>,
    newly_denied: Changes,
    newly_allowed: Changes,
    /// Requests read but not yet sent to be decided, in log order.
    pending: Vec<Pending>,
    /// The batch being decided, whose verdicts are collected before the next is sent.
    in_flight: Option<Arc<Vec<Pending>>>,
    /// Verdict buffers, reused from batch to batch.
    spare: Vec<Vec<Verdict>>,
}

/// One configuration's [`Side`], deciding batches on a thread of its own, or here when no
/// thread could be started (or when there is nothing to overlap with).
enum Decider {
    Here {
        side: Box<Side>,
        ready: Vec<Verdict>,
    },
    Thread {
        jobs: mpsc::Sender<(Arc<Vec<Pending>>, Vec<Verdict>)>,
        done: mpsc::Receiver<Vec<Verdict>>,
        handle: Option<JoinHandle<Side>>,
    },
}

impl Decider {
    fn here(policies: PolicySet, capacity: u64) -> Decider {
        Decider::Here {
            side: Box::new(Side::new(policies, capacity)),
            ready: Vec::new(),
        }
    }

    /// A decider on its own thread; here if no thread can be started.
    fn thread(policies: PolicySet, capacity: u64) -> Decider {
        let (jobs, batches) = mpsc::channel::<(Arc<Vec<Pending>>, Vec<Verdict>)>();
        let (decided, done) = mpsc::channel();
        let theirs = policies.clone();
        let spawned = std::thread::Builder::new()
            .name("limiter-replay".into())
            .spawn(move || {
                let mut side = Side::new(theirs, capacity);
                while let Ok((batch, mut verdicts)) = batches.recv() {
                    side.decide_all(&batch, &mut verdicts);
                    drop(batch);
                    if decided.send(verdicts).is_err() {
                        break;
                    }
                }
                side
            });
        match spawned {
            Ok(handle) => Decider::Thread {
                jobs,
                done,
                handle: Some(handle),
            },
            Err(_) => Decider::here(policies, capacity),
        }
    }

    /// Starts deciding `batch` into `verdicts`: at once here, in the background on a thread.
    fn submit(&mut self, batch: &Arc<Vec<Pending>>, mut verdicts: Vec<Verdict>) {
        match self {
            Decider::Here { side, ready } => {
                side.decide_all(batch, &mut verdicts);
                *ready = verdicts;
            }
            // Should the thread be gone (a panic), `collect` says so.
            Decider::Thread { jobs, .. } => {
                let _ = jobs.send((Arc::clone(batch), verdicts));
            }
        }
    }

    /// The verdicts of the batch submitted last.
    fn collect(&mut self) -> Vec<Verdict> {
        match self {
            Decider::Here { ready, .. } => std::mem::take(ready),
            Decider::Thread { done, handle, .. } => match done.recv() {
                Ok(verdicts) => verdicts,
                // The thread ended without answering: it panicked. Its panic goes on here, as
                // it would have without the thread.
                Err(_) => match handle.take().map(JoinHandle::join) {
                    Some(Err(panic)) => std::panic::resume_unwind(panic),
                    _ => unreachable!("a replay thread stops only when told to, or panicking"),
                },
            },
        }
    }

    /// The side, once every batch is collected.
    fn finish(self) -> Side {
        match self {
            Decider::Here { side, .. } => *side,
            Decider::Thread { jobs, handle, .. } => {
                drop(jobs);
                match handle.map(JoinHandle::join) {
                    Some(Ok(side)) => side,
                    Some(Err(panic)) => std::panic::resume_unwind(panic),
                    None => unreachable!("a replay thread is joined once"),
                }
            }
        }
    }
}

/// A request read from the log, waiting for its batch to be decided.
struct Pending {
    line: u64,
    ts: u64,
    recorded: Option<RecordedDecision>,
    request: Request,
}

/// How many requests are read before they are sent to be decided: enough that the threads
/// meet rarely, few enough to hold little memory.
const BATCH: usize = 4096;

/// Why a line of the log could not be read as a request.
#[derive(Debug, Clone, Serialize)]
pub struct Malformed {
    /// The 1-based line number.
    pub line: u64,
    /// The 1-based column where reading stopped.
    pub column: usize,
    /// What is wrong.
    pub error: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.error
        )
    }
}

impl std::error::Error for Malformed {}

impl Replay {
    /// A replay under `new`, compared with `baseline` if given.
    pub fn new(
        new: PolicySet,
        baseline: Option<PolicySet>,
        options: ReplayOptions,
    ) -> Result<Replay, CliError> {
        let capacity = options.capacity;
        // Alone, deciding here costs no more than handing over to a thread; with a baseline,
        // each configuration decides on its own thread while this one reads the next batch.
        let (new, baseline) = match baseline {
            None => (Decider::here(new, capacity), None),
            Some(b) => (
                Decider::thread(new, capacity),
                Some(Decider::thread(b, capacity)),
            ),
        };
        Ok(Replay {
            new,
            baseline,
            options,
            lines: 0,
            requests: 0,
            blank: 0,
            malformed: 0,
            malformed_lines: Vec::new(),
            newly_denied: Changes::default(),
            newly_allowed: Changes::default(),
            pending: Vec::with_capacity(BATCH),
            in_flight: None,
            spare: Vec::new(),
        })
    }

    /// Reads line `number` of the log (its bytes, with or without the line break). Requests are
    /// decided in batches, in log order, and all of them by [`finish`](Self::finish). A blank
    /// line is counted and skipped; a malformed one is counted, kept for the report and
    /// returned as an error, so that the caller reports it or stops.
    pub fn line(&mut self, number: u64, bytes: &[u8]) -> Result<(), Malformed> {
        self.lines += 1;
        // Without its line break, so that an error at the end of the line is placed on it.
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            self.blank += 1;
            return Ok(());
        }
        let record: RequestRecord = match serde_json::from_slice(bytes) {
            Ok(record) => record,
            Err(e) => {
                let full = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                let error = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
                let malformed = Malformed {
                    line: number,
                    column: e.column(),
                    error,
                };
                self.malformed += 1;
                if self.malformed_lines.len() < MALFORMED_LISTED {
                    self.malformed_lines.push(malformed.clone());
                }
                return Err(malformed);
            }
        };
        self.requests += 1;
        let recorded = record.decision;
        self.pending.push(Pending {
            line: number,
            ts: record.ts,
            recorded,
            request: record.into_request(),
        });
        if self.pending.len() >= BATCH {
            self.flush();
        }
        Ok(())
    }

    /// Collects the batch in flight, then sends the pending requests to be decided.
    ///
    /// With a baseline, each configuration decides on its own thread while this one reads
    /// and parses the next batch: each limiter still sees every request in log order, so the
    /// report is the same as one after the other.
    fn flush(&mut self) {
        self.land();
        if self.pending.is_empty() {
            return;
        }
        let batch = Arc::new(std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(BATCH),
        ));
        let buffer = self.spare.pop().unwrap_or_default();
        self.new.submit(&batch, buffer);
        if let Some(baseline) = &mut self.baseline {
            let buffer = self.spare.pop().unwrap_or_default();
            baseline.submit(&batch, buffer);
        }
        self.in_flight = Some(batch);
    }

    /// Collects the verdicts of the batch in flight and compares them.
    fn land(&mut self) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        let new_verdicts = self.new.collect();
        let Some(baseline) = &mut self.baseline else {
            self.spare.push(new_verdicts);
            return;
        };
        let old_verdicts = baseline.collect();
        let top = self.options.top;
        for ((p, old), new) in batch.iter().zip(&old_verdicts).zip(&new_verdicts) {
            let request = &p.request;
            let example = || Example {
                line: p.line,
                ts: format_ts(p.ts),
                tenant: request.tenant.clone(),
                user: request.user.clone(),
                key_id: request.api_key.as_ref().map(|k| k.id.clone()),
                ip: request.client_ip.map(|ip| ip.to_string()),
                method: request.method.clone(),
                route: request.path.clone(),
                baseline: old.describe(),
                new: new.describe(),
            };
            match (old, new) {
                (o, Verdict::Denied(policy)) if o.passes() => {
                    self.newly_denied
                        .add(Group::of(policy, request), example, top);
                }
                (Verdict::Denied(policy), n) if n.passes() => {
                    self.newly_allowed
                        .add(Group::of(policy, request), example, top);
                }
                _ => {}
            }
        }
        self.spare.push(new_verdicts);
        self.spare.push(old_verdicts);
    }

    /// The report, once every line is read.
    pub fn finish(mut self) -> Report {
        self.flush();
        self.land();
        let top = self.options.top;
        let has_baseline = self.baseline.is_some();
        Report {
            log: String::new(),
            lines: self.lines,
            requests: self.requests,
            blank_lines: self.blank,
            malformed_lines: self.malformed,
            malformed: self.malformed_lines,
            config: self.new.finish().report(Vec::new(), top),
            baseline: self.baseline.map(|b| b.finish().report(Vec::new(), top)),
            newly_denied: has_baseline.then(|| self.newly_denied.report(top)),
            newly_allowed: has_baseline.then(|| self.newly_allowed.report(top)),
            gate: None,
        }
    }
}

/// What a replay found; `--format json` prints it.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The log replayed.
    pub log: String,
    /// Lines read.
    pub lines: u64,
    /// Requests decided (lines that are neither blank nor malformed).
    pub requests: u64,
    /// Blank lines, skipped.
    pub blank_lines: u64,
    /// Malformed lines, skipped.
    pub malformed_lines: u64,
    /// The first malformed lines, with what is wrong.
    pub malformed: Vec<Malformed>,
    /// The configuration replayed.
    pub config: SideReport,
    /// The baseline, if any.
    pub baseline: Option<SideReport>,
    /// Requests the baseline let through and the configuration denies (with a baseline).
    pub newly_denied: Option<Change>,
    /// Requests the baseline denied and the configuration lets through (with a baseline).
    pub newly_allowed: Option<Change>,
    /// The `--max-newly-denied` gate, if set.
    pub gate: Option<GateReport>,
}

/// What one configuration decided.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct SideReport {
    /// Its files.
    pub files: Vec<String>,
    /// Requests counted and let through.
    pub allowed: u64,
    /// Requests denied.
    pub denied: u64,
    /// Requests let through without counting.
    pub bypassed: u64,
    /// Requests that could not be decided (see `errors_by`).
    pub errors: u64,
    /// Requests whose outcome differs from the one the log recorded.
    pub differs_from_recorded: u64,
    /// Denials by the policy that denied.
    pub denied_by_policy: Vec<Count>,
    /// Denials by tenant.
    pub denied_by_tenant: Vec<Count>,
    /// Denials by route.
    pub denied_by_route: Vec<Count>,
    /// Denials by policy, tenant and route.
    pub denied_by: Vec<GroupCount>,
    /// Shadow policies' would-be denials, by policy.
    pub shadow_denied_by_policy: Vec<Count>,
    /// Requests that could not be decided, by error.
    pub errors_by: Vec<ErrorCount>,
    /// Keys evicted from the in-process store while still live (raise `--capacity` until 0:
    /// each restarted with a whole budget).
    pub evicted_live_keys: u64,
}

/// Requests whose outcome changed, by policy, tenant and route, with examples.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Change {
    /// How many.
    pub requests: u64,
    /// By the policy that denies (the new configuration's for newly denied requests, the
    /// baseline's for newly allowed ones).
    pub by_policy: Vec<Count>,
    /// By tenant.
    pub by_tenant: Vec<Count>,
    /// By route.
    pub by_route: Vec<Count>,
    /// By policy, tenant and route.
    pub by: Vec<GroupCount>,
    /// The first few, in log order.
    pub examples: Vec<Example>,
}

/// A count under a name.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Count {
    /// The policy, tenant or route (`-` for none).
    pub name: String,
    /// Requests.
    pub requests: u64,
}

/// A count by policy, tenant and route.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct GroupCount {
    /// The policy.
    pub policy: String,
    /// The tenant, if any.
    pub tenant: Option<String>,
    /// The route, if any.
    pub route: Option<String>,
    /// Requests.
    pub requests: u64,
}

/// Requests that could not be decided, by error.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct ErrorCount {
    /// The error.
    pub error: String,
    /// Requests.
    pub requests: u64,
    /// The first line it happened on.
    pub first_line: u64,
}

/// One request whose outcome changed.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Example {
    /// Its line in the log.
    pub line: u64,
    /// When it was made.
    pub ts: String,
    /// Its tenant.
    pub tenant: Option<String>,
    /// Its user.
    pub user: Option<String>,
    /// Its API key's id.
    pub key_id: Option<String>,
    /// Its client IP.
    pub ip: Option<String>,
    /// Its method.
    pub method: Option<String>,
    /// Its route.
    pub route: Option<String>,
    /// The baseline's outcome.
    pub baseline: String,
    /// The new configuration's outcome.
    pub new: String,
}

/// The `--max-newly-denied` gate.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct GateReport {
    /// The gate, as given (`25` or `0.1%`).
    pub max_newly_denied: String,
    /// Requests newly denied.
    pub newly_denied: u64,
    /// Whether the replay stayed within it.
    pub passed: bool,
}

fn label(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// The first `top` (0: all) of `items`.
fn cut<T>(mut items: Vec<T>, top: usize) -> Vec<T> {
    if top > 0 {
        items.truncate(top);
    }
    items
}

/// Counts from the largest, ties by name, the first `top`.
fn ranked(counts: HashMap<String, u64>, top: usize) -> Vec<Count> {
    let mut v: Vec<Count> = counts
        .into_iter()
        .map(|(name, requests)| Count { name, requests })
        .collect();
    v.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.name.cmp(&b.name))
    });
    cut(v, top)
}

fn ranked_groups(counts: HashMap<Group, u64>, top: usize) -> Vec<GroupCount> {
    let mut v: Vec<GroupCount> = counts
        .into_iter()
        .map(|(g, requests)| GroupCount {
            policy: g.policy.to_string(),
            tenant: g.tenant,
            route: g.route,
            requests,
        })
        .collect();
    v.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.policy.cmp(&b.policy))
            .then_with(|| a.tenant.cmp(&b.tenant))
            .then_with(|| a.route.cmp(&b.route))
    });
    cut(v, top)
}

/// Runs a future that never waits, as the limiter's are on the in-process store.
///
/// The memory store answers at once ([`limiter_core::Store::evaluate_now`]), so the first poll
/// is ready; should a future ever be pending, it is polled again until it is.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}

pub(crate) fn run(args: &ReplayArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let new = load::load(&args.config, args.sources.no_env)?;
    let baseline = if args.baseline.is_empty() {
        None
    } else {
        Some(load::load(&args.baseline, args.sources.no_env)?)
    };
    let stdin = args.log.as_os_str() == "-";
    let log_name = if stdin {
        "standard input".to_owned()
    } else {
        args.log.display().to_string()
    };
    let io_error = |source| CliError::Io {
        path: args.log.clone(),
        source,
    };
    let (input, size): (Box<dyn Read>, Option<u64>) = if stdin {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let file = std::fs::File::open(&args.log).map_err(io_error)?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let progress = progress_bar(args.quiet, size);
    let options = ReplayOptions {
        top: args.top,
        capacity: args.capacity,
    };
    let mut replay = Replay::new(
        new.policies.clone(),
        baseline.as_ref().map(|b| b.policies.clone()),
        options,
    )?;
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut buf = Vec::with_capacity(1024);
    let mut number = 0u64;
    let mut read = 0u64;
    let mut stderr = std::io::stderr();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io_error)?;
        if n == 0 {
            break;
        }
        number += 1;
        read += n as u64;
        if number.is_multiple_of(4096) {
            progress.set_position(read);
        }
        if let Err(m) = replay.line(number, &buf) {
            let at = format!("{log_name}:{}:{}", m.line, m.column);
            if args.strict {
                progress.finish_and_clear();
                return Err(CliError::MalformedLine {
                    at,
                    message: m.error,
                });
            }
            if replay.malformed <= MALFORMED_SHOWN as u64 {
                progress.suspend(|| {
                    let _ = writeln!(stderr, "warning: {at}: {}; line skipped", m.error);
                });
            }
        }
    }
    progress.finish_and_clear();
    let mut report = replay.finish();
    report.log = log_name;
    report.config.files = files(&args.config);
    if let Some(b) = &mut report.baseline {
        b.files = files(&args.baseline);
    }
    if report.malformed_lines > MALFORMED_SHOWN as u64 {
        let _ = writeln!(
            stderr,
            "warning: {} malformed lines skipped in all ({} not shown above)",
            report.malformed_lines,
            report.malformed_lines - MALFORMED_SHOWN as u64
        );
    }
    let mut outcome = Outcome::Ok;
    if let (Some(gate), Some(change)) = (args.max_newly_denied, &report.newly_denied) {
        let passed = gate.allows(change.requests, report.requests);
        report.gate = Some(GateReport {
            max_newly_denied: gate.to_string(),
            newly_denied: change.requests,
            passed,
        });
        if !passed {
            outcome = Outcome::Finding;
        }
    }
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
    for side in std::iter::once(&report.config).chain(&report.baseline) {
        if side.evicted_live_keys > 0 {
            let _ = writeln!(
                stderr,
                "warning: {}: {} live keys were evicted from the in-process store, each \
                 restarted with a whole budget; raise --capacity (now {})",
                side.files.join(", "),
                side.evicted_live_keys,
                args.capacity
            );
        }
    }
    if let (Some(gate), Some(g)) = (args.max_newly_denied, &report.gate)
        && !g.passed
    {
        let _ = writeln!(
            stderr,
            "error: {} newly denied, above --max-newly-denied {gate}",
            share(g.newly_denied, report.requests)
        );
    }
    Ok(outcome)
}

fn files(paths: &[std::path::PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

fn progress_bar(quiet: bool, size: Option<u64>) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    // indicatif hides a stderr target that is not a terminal: no escape codes in a pipe.
    let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr());
    let template = if size.is_some() {
        "replaying {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)"
    } else {
        "replaying {spinner} {bytes} ({bytes_per_sec})"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// `n` out of `total` requests: `12 requests (0.12% of 10000)`.
fn share(n: u64, total: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let percent = if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    };
    let plural = if n == 1 { "request" } else { "requests" };
    format!("{n} {plural} ({percent:.2}% of {total})")
}

fn human(r: &Report) -> String {
    let mut s = String::new();
    let mut skipped = Vec::new();
    if r.blank_lines > 0 {
        skipped.push(format!("{} blank", r.blank_lines));
    }
    if r.malformed_lines > 0 {
        skipped.push(format!("{} malformed", r.malformed_lines));
    }
    s.push_str(&format!(
        "Replayed {}: {} requests from {} lines{}\n\n",
        r.log,
        r.requests,
        r.lines,
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" ({} skipped)", skipped.join(", "))
        }
    ));
    let mut t = Table::new(&[
        "CONFIGURATION",
        "ALLOWED",
        "DENIED",
        "BYPASSED",
        "ERRORS",
        "DIFFERS FROM LOG",
    ]);
    for side in std::iter::once(&r.config).chain(&r.baseline) {
        t.row(vec![
            side.files.join(", "),
            side.allowed.to_string(),
            side.denied.to_string(),
            side.bypassed.to_string(),
            side.errors.to_string(),
            side.differs_from_recorded.to_string(),
        ]);
    }
    s.push_str(&t.render(0));
    let counts = |s: &mut String, title: &str, column: &str, counts: &[Count]| {
        if counts.is_empty() {
            return;
        }
        s.push_str(&format!("  {title}\n"));
        let mut t = Table::new(&[column, "REQUESTS"]);
        for c in counts {
            t.row(vec![c.name.clone(), c.requests.to_string()]);
        }
        s.push_str(&t.render(4));
    };
    match (&r.newly_denied, &r.newly_allowed) {
        (Some(denied), Some(allowed)) => {
            for (title, change, policy) in [
                ("Newly denied", denied, "POLICY (NEW)"),
                ("Newly allowed", allowed, "POLICY (BASELINE)"),
            ] {
                s.push_str(&format!(
                    "\n{title}: {}\n",
                    share(change.requests, r.requests)
                ));
                counts(&mut s, "by policy", policy, &change.by_policy);
                counts(&mut s, "by tenant", "TENANT", &change.by_tenant);
                counts(&mut s, "by route", "ROUTE", &change.by_route);
                if !change.examples.is_empty() {
                    s.push_str("  examples\n");
                    let mut t = Table::new(&[
                        "LINE", "TS", "TENANT", "USER", "IP", "ROUTE", "BASELINE", "NEW",
                    ]);
                    for e in &change.examples {
                        let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                        let route = match (&e.method, &e.route) {
                            (Some(m), Some(r)) => format!("{m} {r}"),
                            (None, Some(r)) => r.clone(),
                            _ => "-".into(),
                        };
                        t.row(vec![
                            e.line.to_string(),
                            e.ts.clone(),
                            o(&e.tenant),
                            o(&e.user).to_string(),
                            o(&e.ip),
                            route,
                            e.baseline.clone(),
                            e.new.clone(),
                        ]);
                    }
                    s.push_str(&t.render(4));
                }
            }
        }
        _ => {
            s.push_str(&format!(
                "\nDenied: {}\n",
                share(r.config.denied, r.requests)
            ));
            counts(&mut s, "by policy", "POLICY", &r.config.denied_by_policy);
            counts(&mut s, "by tenant", "TENANT", &r.config.denied_by_tenant);
            counts(&mut s, "by route", "ROUTE", &r.config.denied_by_route);
            if !r.config.denied_by.is_empty() {
                s.push_str("  by policy, tenant and route\n");
                let mut t = Table::new(&["POLICY", "TENANT", "ROUTE", "REQUESTS"]);
                for g in &r.config.denied_by {
                    t.row(vec![
                        g.policy.clone(),
                        label(g.tenant.as_deref()),
                        label(g.route.as_deref()),
                        g.requests.to_string(),
                    ]);
                }
                s.push_str(&t.render(4));
            }
        }
    }
    if !r.config.shadow_denied_by_policy.is_empty() {
        s.push('\n');
        counts(
            &mut s,
            "Shadow policies that would deny (not enforced)",
            "POLICY",
            &r.config.shadow_denied_by_policy,
        );
    }
    for side in std::iter::once(&r.config).chain(&r.baseline) {
        if side.errors_by.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "\nRequests {} could not decide: {}\n",
            side.files.join(", "),
            side.errors
        ));
        let mut t = Table::new(&["ERROR", "REQUESTS", "FIRST LINE"]);
        for e in &side.errors_by {
            t.row(vec![
                e.error.clone(),
                e.requests.to_string(),
                e.first_line.to_string(),
            ]);
        }
        s.push_str(&t.render(2));
    }
    if let Some(g) = &r.gate {
        s.push_str(&format!(
            "\nGate --max-newly-denied {}: {} ({} newly denied)\n",
            g.max_newly_denied,
            if g.passed { "passed" } else { "FAILED" },
            g.newly_denied
        ));
    }
    s
}
