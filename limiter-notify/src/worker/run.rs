//! [`Worker`]: claim, deliver to every sink, settle; and the loop that does it until shutdown.

use std::fmt;
use std::future::Future;
use std::ops::AddAssign;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::join_all;
use limiter_core::notify::{ClaimRequest, Claimed, Outbox, Settlement};
use limiter_core::time::micros;
use limiter_core::{Clock, Error, SystemClock};

use super::WorkerConfig;
use crate::{Delivery, Renderer, Sink, SinkError};

/// What one or more rounds of a worker did ([`Worker::run_once`], [`Worker::run`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Notices claimed.
    pub claimed: u64,
    /// Settled `Delivered`: every sink took them.
    pub delivered: u64,
    /// Settled `Retry`: a sink failed and may not next time.
    pub retried: u64,
    /// Settled `Failed`: a sink refused them for good, or their last attempt failed.
    pub failed: u64,
    /// Settlements the outbox refused: the lease had ended and another worker had claimed the
    /// notice again (it is that worker's now).
    pub fenced: u64,
    /// Settlements that failed with an outbox error: the notice is claimed again when its
    /// lease ends.
    pub unsettled: u64,
    /// Sink calls that panicked (each also counted as a retryable failure).
    pub panicked: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.claimed += other.claimed;
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.failed += other.failed;
        self.fenced += other.fenced;
        self.unsettled += other.unsettled;
        self.panicked += other.panicked;
    }
}

/// Delivers the notices of an [`Outbox`] to a list of [`Sink`]s.
///
/// Each round ([`run_once`](Self::run_once)) claims up to a batch of due notices under a lease,
/// renders each one's texts, hands it to every sink (notices and sinks concurrently, each sink
/// call bounded by the delivery timeout), then settles each claimed attempt:
///
/// - `Delivered` when every sink took it;
/// - `Failed` when a sink refused it for good (a permanent [`SinkError`]), or when the attempt
///   that failed was the last one allowed;
/// - otherwise `Retry`, at now plus the backoff of this attempt (or the sink's `Retry-After`,
///   if longer; both at most the backoff cap).
///
/// A retry goes to every sink again, so sinks see a notice more than once: the [`Sink`]
/// contract makes that harmless. Several workers, in one process or many, can share one
/// outbox: each claim leases a notice to one worker, and a worker whose lease ran out before it
/// settled is refused ([`Counts::fenced`]), so each attempt is settled once. A sink that
/// panics is caught and counted as a retryable failure; an outbox error ends the round with
/// that error and leaves the claims to expire.
///
/// Runs on tokio (it needs its timer). Time for claims and settlements comes from the
/// worker's [`Clock`], so tests drive it with a [`ManualClock`](limiter_core::ManualClock).
///
/// ```no_run
/// use std::sync::Arc;
/// use limiter_core::PolicySet;
/// use limiter_core::notify::Outbox;
/// use limiter_notify::{LogSink, Renderer, WebhookSecret, WebhookSink, Worker, WorkerConfig};
///
/// # async fn run(
/// #     outbox: Arc<dyn Outbox>,
/// #     stop: tokio::sync::oneshot::Receiver<()>,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// let secret: WebhookSecret = std::env::var("WEBHOOK_SECRET")?.parse()?;
/// let worker = Worker::builder(outbox, Renderer::new(PolicySet::default()))
///     .sink(WebhookSink::new("https://hooks.example.com/limits", secret)?)
///     .sink(LogSink::new())
///     .config(WorkerConfig::new().with_name("notify-1"))
///     .build()?;
/// // Delivers until `stop` fires (or its sender is dropped), then returns what it did.
/// let totals = worker.run(async { stop.await.ok(); }).await;
/// println!("delivered {}, failed {}", totals.delivered, totals.failed);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Worker {
    outbox: Arc<dyn Outbox>,
    sinks: Arc<[Arc<dyn Sink>]>,
    renderer: Renderer,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
}

/// Builds a [`Worker`]: [`Worker::builder`], then sinks, then [`build`](Self::build).
pub struct WorkerBuilder {
    outbox: Arc<dyn Outbox>,
    sinks: Vec<Arc<dyn Sink>>,
    renderer: Renderer,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
}

impl WorkerBuilder {
    /// Adds a sink: every notice goes to each.
    #[must_use]
    pub fn sink(mut self, sink: impl Sink + 'static) -> WorkerBuilder {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Adds a sink shared with other code.
    #[must_use]
    pub fn shared_sink(mut self, sink: Arc<dyn Sink>) -> WorkerBuilder {
        self.sinks.push(sink);
        self
    }

    /// Reads the time from `clock` (the system clock by default).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> WorkerBuilder {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses `config` (the defaults otherwise).
    #[must_use]
    pub fn config(mut self, config: WorkerConfig) -> WorkerBuilder {
        self.config = config;
        self
    }

    /// The worker; an error (naming `worker.sinks` or the setting) if it has no sink or a
    /// setting cannot work.
    pub fn build(self) -> Result<Worker, Error> {
        if self.sinks.is_empty() {
            return Err(Error::InvalidConfig {
                path: "worker.sinks".to_owned(),
                message: "no sink; expected at least one (a webhook, an inbox, a log or \
                          your own), or every notice would be settled as delivered unsent"
                    .to_owned(),
            });
        }
        self.config.check()?;
        Ok(Worker {
            outbox: self.outbox,
            sinks: self.sinks.into(),
            renderer: self.renderer,
            clock: self.clock,
            config: self.config,
        })
    }
}

/// How the sinks took one notice.
#[derive(Default)]
struct Attempt {
    /// The failures, each `sink: message`.
    errors: Vec<String>,
    permanent: bool,
    /// The longest wait a failed sink asked for.
    retry_after: Option<std::time::Duration>,
    panicked: u64,
}

impl Worker {
    /// A builder of a worker delivering the notices of `outbox`, with texts from `renderer`.
    pub fn builder(outbox: Arc<dyn Outbox>, renderer: Renderer) -> WorkerBuilder {
        WorkerBuilder {
            outbox,
            sinks: Vec::new(),
            renderer,
            clock: Arc::new(SystemClock),
            config: WorkerConfig::default(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// One round: claims the notices due now (up to a batch), delivers each to every sink and
    /// settles it. An error only if the outbox could not be claimed from; failures of sinks
    /// and of settlements are counted, never returned.
    pub async fn run_once(&self) -> Result<Counts, Error> {
        let claim = ClaimRequest {
            worker: self.config.name().to_owned(),
            now: self.clock.now(),
            lease: micros(self.config.lease()),
            max: self.config.batch_size(),
        };
        let claimed = self.outbox.claim(&claim).await?;
        let rounds = join_all(claimed.iter().map(|c| self.handle(c))).await;
        let mut counts = Counts {
            claimed: u64::try_from(claimed.len()).unwrap_or(u64::MAX),
            ..Counts::default()
        };
        for round in rounds {
            counts += round;
        }
        Ok(counts)
    }

    /// Runs rounds until `shutdown` resolves: at once after a full batch (more may be due),
    /// after the poll interval otherwise, and after the poll interval when the outbox fails
    /// (logged as a warning). A round under way when `shutdown` resolves is finished and
    /// settled first. Returns the counts of all rounds.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Counts {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut totals = Counts::default();
        loop {
            let wait = match self.run_once().await {
                Ok(counts) => {
                    totals += counts;
                    let full = usize::try_from(counts.claimed)
                        .is_ok_and(|n| n >= self.config.batch_size());
                    if full {
                        std::time::Duration::ZERO
                    } else {
                        self.config.poll_interval()
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        target: "limiter_notify",
                        worker = self.config.name(),
                        error = %e,
                        "could not claim notices; trying again after the poll interval"
                    );
                    self.config.poll_interval()
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => return totals,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Delivers one claimed notice to every sink and settles the attempt.
    async fn handle(&self, claimed: &Claimed) -> Counts {
        let rendered = self.renderer.render(&claimed.notice);
        let delivery =
            Delivery::new(claimed.notice.clone(), rendered).with_attempt(claimed.attempt);
        let results = join_all(self.sinks.iter().map(|sink| self.to_sink(sink, &delivery))).await;
        let mut attempt = Attempt::default();
        for (sink, result) in self.sinks.iter().zip(results) {
            let Err((error, panicked)) = result else {
                continue;
            };
            attempt.panicked += u64::from(panicked);
            attempt.permanent |= !error.is_retryable();
            attempt.retry_after = attempt.retry_after.max(error.retry_after());
            attempt.errors.push(format!("{sink}: {}", error.message()));
        }
        let mut counts = Counts {
            panicked: attempt.panicked,
            ..Counts::default()
        };
        let settlement = self.settlement(&delivery, attempt);
        match self.outbox.settle(claimed, &settlement).await {
            Ok(true) => match settlement {
                Settlement::Delivered { .. } => counts.delivered += 1,
                Settlement::Retry { .. } => counts.retried += 1,
                _ => counts.failed += 1,
            },
            Ok(false) => {
                tracing::debug!(
                    target: "limiter_notify",
                    id = %delivery.id,
                    attempt = claimed.attempt,
                    "settlement refused: the lease ended and the notice was claimed again"
                );
                counts.fenced += 1;
            }
            Err(e) => {
                tracing::warn!(
                    target: "limiter_notify",
                    id = %delivery.id,
                    attempt = claimed.attempt,
                    error = %e,
                    "could not settle; the notice is claimed again when its lease ends"
                );
                counts.unsettled += 1;
            }
        }
        let outcome = match () {
            () if counts.delivered > 0 => "delivered",
            () if counts.retried > 0 => "retried",
            () if counts.failed > 0 => "failed",
            () if counts.fenced > 0 => "fenced",
            () => "unsettled",
        };
        metrics::counter!("limiter_notify_deliveries_total", "outcome" => outcome).increment(1);
        counts
    }

    /// How an attempt that went as `attempt` settles.
    fn settlement(&self, delivery: &Delivery, attempt: Attempt) -> Settlement {
        let now = self.clock.now();
        if attempt.errors.is_empty() {
            return Settlement::Delivered { at: now };
        }
        let error = attempt.errors.join("; ");
        let last = delivery.attempt >= self.config.max_attempts();
        if attempt.permanent || last {
            let error = if attempt.permanent {
                error
            } else {
                format!("gave up after {} attempts: {error}", delivery.attempt)
            };
            tracing::warn!(
                target: "limiter_notify",
                id = %delivery.id,
                kind = %delivery.kind(),
                tenant = delivery.notice.tenant.as_deref(),
                attempt = delivery.attempt,
                error = %error,
                "notice failed"
            );
            return Settlement::Failed { at: now, error };
        }
        let backoff = self.config.retry_delay(&delivery.id, delivery.attempt);
        let wait = attempt
            .retry_after
            .map_or(backoff, |asked| asked.max(backoff))
            .min(self.config.backoff_cap());
        tracing::info!(
            target: "limiter_notify",
            id = %delivery.id,
            attempt = delivery.attempt,
            wait = ?wait,
            error = %error,
            "notice will be retried"
        );
        Settlement::Retry {
            retry_at: now.saturating_add(micros(wait)),
            error,
        }
    }

    /// Hands `delivery` to `sink` within the delivery timeout, a panic caught: the error and
    /// whether it was a panic.
    async fn to_sink(
        &self,
        sink: &Arc<dyn Sink>,
        delivery: &Delivery,
    ) -> Result<(), (SinkError, bool)> {
        // The call itself inside the guarded future: an implementation may panic before its
        // future is even returned.
        let guarded = AssertUnwindSafe(async { sink.deliver(delivery).await }).catch_unwind();
        let timeout = self.config.delivery_timeout();
        match tokio::time::timeout(timeout, guarded).await {
            Ok(Ok(result)) => result.map_err(|e| (e, false)),
            Ok(Err(_panic)) => {
                tracing::error!(
                    target: "limiter_notify",
                    sink = %sink,
                    id = %delivery.id,
                    "sink panicked; the notice will be retried"
                );
                // The payload is the sink's own text, reported by the panic hook already; it
                // is not copied into the outbox, where it could carry anything.
                Err((SinkError::retryable("panicked"), true))
            }
            Err(_elapsed) => Err((
                SinkError::retryable(format!("did not finish within {timeout:?}")),
                false,
            )),
        }
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("outbox", &self.outbox)
            .field("sinks", &self.sinks)
            .field("clock", &self.clock)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("outbox", &self.outbox)
            .field("sinks", &self.sinks)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
