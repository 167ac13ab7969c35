//! [`LimiterBuilder`], and the [`Limiter`] constructors that return one.

use std::sync::Arc;
use std::time::Duration;

use super::limiter::Inner;
use super::telemetry::Metrics;
use super::verify::Keys;
use super::{FailMode, Hook, HookPanics, Limiter};
use crate::api_key::{KeyFormat, KeyStore};
use crate::event::EventRecorder;
use crate::notify::NotifyRules;
use crate::{Clock, Error, PolicySet, Store, SystemClock};

/// Builds a [`Limiter`]. Defaults: the system clock, [`FailMode::Open`], no timeout beyond the
/// store's own, no hooks, an approaching threshold of 80%.
#[derive(Debug)]
#[must_use]
pub struct LimiterBuilder {
    policies: PolicySet,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    fail_mode: FailMode,
    permanent_fail_mode: Option<FailMode>,
    timeout: Option<Duration>,
    hooks: Vec<Arc<dyn Hook>>,
    approaching_percent: u8,
    keys: Option<Keys>,
    recorder: Option<EventRecorder>,
    metrics: bool,
    notify: Option<Arc<NotifyRules>>,
}

// The constructors live beside the builder they return, so that the engine, which the builder
// fills in, does not in turn depend on the builder.
impl Limiter {
    /// A builder over `policies` and `store`.
    pub fn builder(policies: PolicySet, store: impl Store + 'static) -> LimiterBuilder {
        LimiterBuilder::new(policies, Arc::new(store))
    }

    /// A limiter with the builder's defaults.
    pub fn new(policies: PolicySet, store: impl Store + 'static) -> Limiter {
        Limiter::builder(policies, store).build()
    }
}

impl LimiterBuilder {
    fn new(policies: PolicySet, store: Arc<dyn Store>) -> Self {
        LimiterBuilder {
            policies,
            store,
            clock: Arc::new(SystemClock),
            fail_mode: FailMode::default(),
            permanent_fail_mode: None,
            timeout: None,
            hooks: Vec::new(),
            approaching_percent: 80,
            keys: None,
            recorder: None,
            metrics: false,
            notify: None,
        }
    }

    /// The clock the engine asks for `now` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// What to decide when the store fails temporarily (down, slow, its reply lost).
    pub fn fail_mode(mut self, fail_mode: FailMode) -> Self {
        self.fail_mode = fail_mode;
        self
    }

    /// What to decide when the store fails permanently (a corrupt state, a misconfigured
    /// store). By default nothing decides: `check` returns the error, so that a broken store is
    /// never quietly turned into "unlimited". Set this only to keep serving through such a
    /// failure on purpose.
    pub fn permanent_fail_mode(mut self, fail_mode: FailMode) -> Self {
        self.permanent_fail_mode = Some(fail_mode);
        self
    }

    /// How long one store call may take; passed to the store in
    /// [`EvalOptions::timeout`](crate::EvalOptions).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a hook.
    pub fn hook(mut self, hook: impl Hook + 'static) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// The usage, in percent of a limit (1 to 100), at which
    /// [`Threshold::Approaching`](super::Threshold) is emitted. Values outside are clamped.
    pub fn approaching_percent(mut self, percent: u8) -> Self {
        self.approaching_percent = percent.clamp(1, 100);
        self
    }

    /// The API keys that [`Limiter::verify_key`] and [`Limiter::check_key`] verify: keys of
    /// `format`, looked up in `store` (wrap it in `limiter_memory::CachedKeyStore` to cache
    /// verified keys for a bounded time).
    pub fn keys(mut self, format: KeyFormat, store: impl KeyStore + 'static) -> Self {
        self.keys = Some(Keys::new(format, Arc::new(store)));
        self
    }

    /// Records the events of every decision (denials, bypasses, threshold crossings, ...) into
    /// `recorder`'s buffer, whose [`EventDrain`](crate::event::EventDrain) appends them to an
    /// [`EventLog`](crate::event::EventLog). Without it no event is derived.
    pub fn events(mut self, recorder: EventRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Emits metrics through the `metrics` facade (off by default, so that a limiter without
    /// them allocates nothing): `limiter_decisions_total{policy, outcome}`,
    /// `limiter_bypasses_total{reason}`, `limiter_store_duration_seconds{backend}` (timed by
    /// the limiter's clock) and `limiter_store_errors_total{backend, kind}`. Labels are bounded:
    /// never a tenant, user, IP or path. The recorder reports
    /// `limiter_events_dropped_total{class}` whatever this says.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled;
        self
    }

    /// Notifies under `rules` (often [`PolicySet::notify_rules`], the file's `[notify]`): every
    /// admitted charge that crosses a threshold of a notifying limit has its notices written
    /// by the store to its outbox, with the charge where the store can
    /// ([`Store::keeps_notices`]). An error if the store keeps no outbox.
    pub fn notify(mut self, rules: NotifyRules) -> Result<Self, Error> {
        if !self.store.keeps_notices() {
            return Err(Error::config(
                "notify",
                format!(
                    "the store {} keeps no outbox; expected a store whose keeps_notices() is                      true (memory, SQLite or Redis)",
                    self.store
                ),
            ));
        }
        self.notify = Some(Arc::new(rules));
        Ok(self)
    }

    /// The limiter.
    pub fn build(self) -> Limiter {
        let metrics = self.metrics.then(|| Metrics::new(&*self.store));
        Limiter {
            inner: Arc::new(Inner {
                policies: self.policies,
                store: self.store,
                clock: self.clock,
                fail_mode: self.fail_mode,
                permanent_fail_mode: self.permanent_fail_mode,
                timeout: self.timeout,
                hooks: self.hooks,
                approaching_percent: self.approaching_percent,
                hook_panics: HookPanics::default(),
                keys: self.keys,
                recorder: self.recorder,
                metrics,
                notify: self.notify,
            }),
        }
    }
}
