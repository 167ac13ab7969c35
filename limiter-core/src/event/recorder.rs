//! [`EventRecorder`]: the bounded buffer between the request path and an [`EventLog`], and
//! [`EventDrain`], the future that empties it in batches.
//!
//! The core has no runtime: the buffer is a mutex-guarded queue, and the drain and waiting
//! producers park on wakers, so the drain runs on whatever executor the service spawns it on.

use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use super::{EventLog, LimitEvent};
use crate::Error;

/// What the recorder does when its buffer is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Drop the event and count it ([`RecorderStats::dropped`], the metric
    /// `limiter_events_dropped_total`): a decision never waits for the log. The default.
    #[default]
    Drop,
    /// Make the decision wait for room: nothing is lost, but a slow log slows requests.
    Wait,
}

/// How the recorder buffers and batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// Events the buffer holds (default 16384). Threshold events (approaching, exhausted,
    /// restored) may use as many again beyond it before any is dropped.
    pub capacity: usize,
    /// Events per [`EventLog::append`] at most (default 512).
    pub batch: usize,
    /// What to do when the buffer is full.
    pub overflow: Overflow,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            capacity: 16_384,
            batch: 512,
            overflow: Overflow::Drop,
        }
    }
}

impl RecorderConfig {
    /// Sets the capacity (at least 1).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Sets the batch size (at least 1).
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Sets what happens when the buffer is full.
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }
}

/// What a recorder has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Events accepted into the buffer.
    pub recorded: u64,
    /// Events dropped because the buffer was full (threshold events included).
    pub dropped: u64,
    /// Of [`dropped`](Self::dropped), the threshold events: each one is also logged as an
    /// error, since notifications depend on them.
    pub dropped_thresholds: u64,
    /// Events the log accepted.
    pub written: u64,
    /// Events lost because the log failed to append their batch.
    pub failed: u64,
}

struct Queue {
    events: VecDeque<LimitEvent>,
    /// The drain, parked while the queue is empty.
    drain: Option<Waker>,
    /// Producers parked while the queue is full ([`Overflow::Wait`]).
    waiting: Vec<Waker>,
    /// No recorder handle is left: the drain finishes once the queue is empty.
    closed: bool,
    /// The queue length at which a producer wakes the parked drain: 1 for
    /// [`EventDrain::run`], a whole batch for [`EventDrain::run_every`], whose tick writes
    /// what is left.
    wake_at: usize,
}

#[derive(Default)]
struct Counters {
    recorded: AtomicU64,
    dropped: AtomicU64,
    dropped_thresholds: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
}

struct Shared {
    config: RecorderConfig,
    queue: Mutex<Queue>,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent between statements: a panic elsewhere leaves it usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> RecorderStats {
        let c = &self.counters;
        RecorderStats {
            recorded: c.recorded.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            dropped_thresholds: c.dropped_thresholds.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

/// Closes the queue when the last recorder handle goes.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.closed = true;
        if let Some(waker) = queue.drain.take() {
            waker.wake();
        }
    }
}

/// The request-path end of the event buffer: give it to
/// [`LimiterBuilder::events`](crate::LimiterBuilder::events). Clones share one buffer.
///
/// ```
/// use limiter_core::event::{EventRecorder, RecorderConfig};
/// use limiter_core::{Limiter, ManualClock, PolicySet, Request};
/// use limiter_testkit::{ModelStore, ReferenceEventLog};
/// use std::sync::Arc;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let log = Arc::new(ReferenceEventLog::new());
/// let (recorder, drain) = EventRecorder::new(log.clone(), RecorderConfig::default());
/// let drain = tokio::spawn(drain.run());
/// let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
///     .clock(ManualClock::new(1_790_000_000_000_000))
///     .events(recorder)
///     .build();
/// let req = Request::new().tenant("acme").plan("free").user("ann");
/// for _ in 0..11 {
///     limiter.check(&req).await?;
/// }
/// drop(limiter); // the last recorder handle: the drain writes what is left, then ends
/// drain.await.unwrap();
/// assert_eq!(log.events().iter().filter(|e| e.kind.name() == "denied").count(), 1);
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct EventRecorder {
    closer: Arc<Closer>,
}

impl fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRecorder")
            .field("config", &self.shared().config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl EventRecorder {
    /// A recorder and the drain that appends what it records to `log`. Spawn
    /// [`EventDrain::run`] on the service's runtime (or call [`EventDrain::flush`] now and
    /// then).
    pub fn new(log: Arc<dyn EventLog>, config: RecorderConfig) -> (EventRecorder, EventDrain) {
        let config = config.capacity(config.capacity).batch(config.batch);
        let shared = Arc::new(Shared {
            config,
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                drain: None,
                waiting: Vec::new(),
                closed: false,
                wake_at: 1,
            }),
            counters: Counters::default(),
        });
        let recorder = EventRecorder {
            closer: Arc::new(Closer(Arc::clone(&shared))),
        };
        (recorder, EventDrain { shared, log })
    }

    fn shared(&self) -> &Shared {
        &self.closer.0
    }

    /// What the recorder has done so far.
    pub fn stats(&self) -> RecorderStats {
        self.shared().stats()
    }

    /// Events waiting in the buffer.
    pub fn pending(&self) -> usize {
        self.shared().lock().events.len()
    }

    /// Hands `event` to the buffer. With [`Overflow::Drop`] this never waits; with
    /// [`Overflow::Wait`] it waits for room.
    pub async fn record(&self, event: LimitEvent) {
        let mut event = Some(event);
        poll_fn(|cx| match self.push(&mut event, Some(cx.waker())) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
        .await;
    }

    /// Pushes `event` without waiting: `None` once it is buffered or dropped, or the event
    /// back if the buffer is full and [`Overflow::Wait`] says to wait for room.
    pub(crate) fn push_now(&self, event: LimitEvent) -> Option<LimitEvent> {
        let mut event = Some(event);
        self.push(&mut event, None);
        event
    }

    /// Buffers or drops the event in `slot` (taking it), or, when the buffer is full under
    /// [`Overflow::Wait`], leaves it there and parks `waker` (if any) until there is room.
    /// Returns whether the slot was taken.
    fn push(&self, slot: &mut Option<LimitEvent>, waker: Option<&Waker>) -> bool {
        let shared = self.shared();
        let Some(kind) = slot.as_ref().map(|e| e.kind) else {
            return true;
        };
        let mut queue = shared.lock();
        let len = queue.events.len();
        let room = match shared.config.overflow {
            Overflow::Drop if kind.is_threshold() => len < shared.config.capacity * 2,
            _ => len < shared.config.capacity,
        };
        if room {
            queue.events.extend(slot.take());
            shared.counters.recorded.fetch_add(1, Ordering::Relaxed);
            if queue.events.len() >= queue.wake_at
                && let Some(waker) = queue.drain.take()
            {
                waker.wake();
            }
            return true;
        }
        if shared.config.overflow == Overflow::Wait {
            if let Some(waker) = waker {
                queue.waiting.push(waker.clone());
            }
            return false;
        }
        drop(queue);
        dropped(shared, kind.is_threshold());
        *slot = None;
        true
    }
}

/// Counts a dropped event and reports it: a metric always, a log line on the first drop and
/// at every power of two (the core reads no clock to rate-limit its logs by time).
fn dropped(shared: &Shared, threshold: bool) {
    let n = shared.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
    let class = if threshold { "threshold" } else { "other" };
    metrics::counter!("limiter_events_dropped_total", "class" => class).increment(1);
    if threshold {
        let t = shared
            .counters
            .dropped_thresholds
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        tracing::error!(
            dropped_thresholds = t,
            "event buffer full: a threshold event was dropped"
        );
    } else if n.is_power_of_two() {
        tracing::warn!(dropped = n, "event buffer full: events dropped");
    }
}

/// The log end of the event buffer: appends what the recorder buffered, in batches.
pub struct EventDrain {
    shared: Arc<Shared>,
    log: Arc<dyn EventLog>,
}

impl fmt::Debug for EventDrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventDrain")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl EventDrain {
    /// Appends batches as events arrive, until every recorder handle is dropped and the buffer
    /// is empty; returns the recorder's final figures. A batch the log refuses is counted in
    /// [`RecorderStats::failed`] and logged; the drain goes on with the next.
    pub async fn run(self) -> RecorderStats {
        loop {
            let batch = poll_fn(|cx| {
                let mut queue = self.shared.lock();
                if !queue.events.is_empty() {
                    return Poll::Ready(Some(self.take(&mut queue)));
                }
                if queue.closed {
                    return Poll::Ready(None);
                }
                queue.drain = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            let Some(batch) = batch else {
                return self.stats();
            };
            // The error is counted and logged inside.
            let _ = self.write(&batch).await;
        }
    }

    /// Like [`run`](Self::run), but wakes for whole batches only, and for what is left each
    /// time `tick()` completes: a flood then costs one wake-up per batch instead of one per
    /// event, and an event waits at most one tick. `tick` comes from the service's runtime,
    /// such as `|| tokio::time::sleep(Duration::from_millis(200))`.
    pub async fn run_every<T, F>(self, mut tick: T) -> RecorderStats
    where
        T: FnMut() -> F,
        F: Future<Output = ()>,
    {
        let batch = self.shared.config.batch;
        self.shared.lock().wake_at = batch;
        loop {
            let mut sleep = pin!(tick());
            let mut ticked = false;
            let taken = poll_fn(|cx| {
                let mut queue = self.shared.lock();
                if queue.events.len() >= batch
                    || (ticked || queue.closed) && !queue.events.is_empty()
                {
                    return Poll::Ready(Some(self.take(&mut queue)));
                }
                if queue.closed {
                    return Poll::Ready(None);
                }
                if ticked {
                    // Nothing to write this tick: start the next one.
                    return Poll::Ready(Some(Vec::new()));
                }
                queue.drain = Some(cx.waker().clone());
                drop(queue);
                if sleep.as_mut().poll(cx).is_ready() {
                    ticked = true;
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            })
            .await;
            match taken {
                None => return self.stats(),
                Some(batch) if batch.is_empty() => {}
                // The error is counted and logged inside.
                Some(batch) => {
                    let _ = self.write(&batch).await;
                }
            }
        }
    }

    /// Appends everything buffered now, in batches; returns how many events the log accepted,
    /// or the first error (the failed batch is counted as lost).
    pub async fn flush(&self) -> Result<usize, Error> {
        let mut written = 0;
        loop {
            let batch = {
                let mut queue = self.shared.lock();
                if queue.events.is_empty() {
                    return Ok(written);
                }
                self.take(&mut queue)
            };
            self.write(&batch).await?;
            written += batch.len();
        }
    }

    /// What the recorder has done so far.
    pub fn stats(&self) -> RecorderStats {
        self.shared.stats()
    }

    /// Takes one batch off the queue and wakes the producers waiting for room.
    fn take(&self, queue: &mut Queue) -> Vec<LimitEvent> {
        let n = queue.events.len().min(self.shared.config.batch);
        let batch: Vec<LimitEvent> = queue.events.drain(..n).collect();
        for waker in queue.waiting.drain(..) {
            waker.wake();
        }
        batch
    }

    async fn write(&self, batch: &[LimitEvent]) -> Result<(), Error> {
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        match self.log.append(batch).await {
            Ok(()) => {
                self.shared.counters.written.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                self.shared.counters.failed.fetch_add(n, Ordering::Relaxed);
                metrics::counter!("limiter_events_failed_total").increment(n);
                tracing::error!(%error, events = n, "the event log refused a batch");
                Err(error)
            }
        }
    }
}
