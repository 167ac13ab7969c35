//! [`Limiter`]: resolves a request, asks the store once, and decides.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::{Event, FailMode, Hook, HookPanics, Threshold, telemetry};
use crate::batch::{Batch, Checks, InlineVec, Mode, Statuses};
use crate::decision::{Charge, Decision, FailModeUsed, PolicyStatus, StoreFailure};
use crate::event::{EventRecorder, RecorderStats, crossing};
use crate::notify::{NoticePlan, NotifyRules};
use crate::{
    Clock, Error, ErrorKind, EvalOptions, Key, Micros, PolicySet, Request, Resolution, Store,
};

/// The rate limiter: a compiled [`PolicySet`], a [`Store`], a [`Clock`], a [`FailMode`], a
/// timeout and [`Hook`]s. Cheap to clone; clones share everything.
///
/// ```
/// use limiter_core::{Limiter, ManualClock, PolicySet, Request};
/// use limiter_testkit::ModelStore;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
///     .clock(ManualClock::new(1_790_000_000_000_000))
///     .build();
/// let req = Request::new().tenant("acme").plan("free").user("ann").ip([203, 0, 113, 9].into());
/// // The free plan's burst is 10/minute: the 11th request within the minute is denied.
/// for _ in 0..10 {
///     assert!(limiter.check(&req).await?.is_allowed());
/// }
/// let denied = limiter.check(&req).await?;
/// assert!(!denied.is_allowed());
/// assert_eq!(&*denied.binding().unwrap().policy, "plan_burst");
/// assert_eq!(denied.message().unwrap(), "Request was throttled. Expected available in 6 seconds.");
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Limiter {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) policies: PolicySet,
    pub(super) store: Arc<dyn Store>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) fail_mode: FailMode,
    pub(super) permanent_fail_mode: Option<FailMode>,
    pub(super) timeout: Option<Duration>,
    pub(super) hooks: Vec<Arc<dyn Hook>>,
    pub(super) approaching_percent: u8,
    pub(super) hook_panics: HookPanics,
    pub(super) keys: Option<super::verify::Keys>,
    pub(super) recorder: Option<EventRecorder>,
    /// Present when the limiter emits metrics.
    pub(super) metrics: Option<super::telemetry::Metrics>,
    /// Present when the limiter notifies.
    pub(super) notify: Option<Arc<NotifyRules>>,
}

impl Limiter {
    /// Decides `request` and, if it is admitted, charges every limit that applies.
    ///
    /// `Ok` with a denied [`Decision`] when limited; `Err` only for an invalid request (a cost
    /// of 0, an unknown plan) or when the fail mode is [`FailMode::Fallback`] and the fallback
    /// store fails too.
    pub async fn check(&self, request: &Request) -> Result<Decision, Error> {
        self.decide(request, Mode::Consume)
            .instrument(telemetry::span(request))
            .await
    }

    /// What [`check`](Self::check) would decide, without charging anything or emitting events.
    pub async fn peek(&self, request: &Request) -> Result<Decision, Error> {
        self.decide(request, Mode::Peek).await
    }

    /// Gives back what an admitted `decision` charged: for example when the service failed the
    /// request (a 5xx) and the client should not pay for it. Returns whether there was a
    /// charge to give back; the decision keeps none afterwards, so a second call gives nothing.
    ///
    /// A refund never removes another request's charge ([`Limit::refund`](crate::Limit::refund)):
    /// made soon after the decision it gives back all of it; made later, it gives back what is
    /// certainly still counted. Bypasses, denials and fail-mode decisions charged nothing. The
    /// refund goes to the store that charged (the fallback store if it decided), under the
    /// limiter's timeout.
    ///
    /// ```
    /// use limiter_core::{Limiter, ManualClock, PolicySet, Request};
    /// use limiter_testkit::ModelStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
    ///     .clock(ManualClock::new(1_790_000_000_000_000))
    ///     .build();
    /// let req = Request::new().tenant("acme").plan("free").user("ann").ip([203, 0, 113, 9].into());
    /// for _ in 0..10 {
    ///     let mut decision = limiter.check(&req).await?;
    ///     // The service failed this request: the client does not pay for it.
    ///     assert!(limiter.refund(&mut decision).await?);
    /// }
    /// // The free plan's burst (10/minute) is still whole.
    /// let decision = limiter.check(&req).await?;
    /// assert_eq!(decision.binding().unwrap().status.remaining, 9);
    /// # Ok::<(), limiter_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn refund(&self, decision: &mut Decision) -> Result<bool, Error> {
        let Some(charge) = decision.charge.take() else {
            return Ok(false);
        };
        // The limits that allowed are those the store charged.
        let charged: Checks = decision
            .statuses()
            .iter()
            .filter(|status| status.status.is_allowed())
            .map(|status| status.check(decision.cost))
            .collect();
        let batch = Batch::new(charged)?;
        let inner = &*self.inner;
        let options = self.options(Mode::Refund {
            charged_at: charge.at,
        });
        let store = match (&inner.fail_mode, charge.fallback) {
            (FailMode::Fallback(fallback), true) => &**fallback,
            _ => &*inner.store,
        };
        store.evaluate(&batch, &options).await?;
        Ok(true)
    }

    /// Forgets the state of one key (support tools: "give this tenant a fresh budget").
    pub async fn reset(&self, key: &Key) -> Result<(), Error> {
        self.inner.store.reset(key).await
    }

    /// The panics of hooks caught so far.
    pub fn hook_panics(&self) -> &HookPanics {
        &self.inner.hook_panics
    }

    /// What the event recorder has done (events recorded, dropped, written), if the limiter
    /// records events.
    pub fn event_stats(&self) -> Option<RecorderStats> {
        self.inner.recorder.as_ref().map(EventRecorder::stats)
    }

    /// The compiled policies.
    pub fn policies(&self) -> &PolicySet {
        &self.inner.policies
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    async fn decide(&self, request: &Request, mode: Mode) -> Result<Decision, Error> {
        // The policy set rejects a cost of 0 before any bypass or store call.
        let inner = &*self.inner;
        let (checks, bypass) = match inner.policies.resolve(request)? {
            Resolution::Bypass(reason) => {
                let decision = Decision::bypassed(reason);
                if mode == Mode::Consume {
                    self.emit(&Event::Decided {
                        request,
                        decision: &decision,
                    });
                    telemetry::decided(inner, request, &decision, None).await;
                }
                return Ok(decision);
            }
            Resolution::Limits(checks) => (checks, None),
            // Bypassed, but kept abuse limits still decide.
            Resolution::Kept { bypass, checks } => (checks, Some(bypass)),
        };
        let mut batch = Batch::new(checks)?;
        if mode == Mode::Consume
            && let Some(rules) = &inner.notify
            && batch.checks().iter().any(|c| rules.notifies(&c.policy))
        {
            let plan = NoticePlan::new(
                Arc::clone(rules),
                request,
                Some(inner.policies.default_plan()),
            );
            batch = batch.with_notices(Arc::new(plan));
        }
        let options = self.options(mode);
        let cost = u64::from(request.cost);
        let started = telemetry::store_started(inner);
        let answer = match ask_now(&*inner.store, &batch, &options) {
            Some(answer) => answer,
            None => ask(&*inner.store, &batch, &options).await,
        };
        telemetry::store_finished(inner, started, answer.as_ref().err());
        let mut decision = match answer {
            Ok(outcome) => to_decision(batch, outcome, cost, None, mode),
            Err(error) => {
                let Some((decision, used)) = self.fail(batch, &options, cost, &error).await else {
                    return Err(error);
                };
                if mode == Mode::Consume {
                    self.emit(&Event::StoreFailed {
                        request,
                        error: &error,
                        mode: used,
                    });
                }
                decision
            }
        };
        decision.bypass = bypass;
        if mode == Mode::Consume {
            self.emit_decision(request, &decision, cost);
            telemetry::decided(inner, request, &decision, Some(options.now)).await;
        }
        Ok(decision)
    }

    /// The options of a store call in `mode`: the clock's `now` and the limiter's timeout.
    pub(super) fn options(&self, mode: Mode) -> EvalOptions {
        let options = EvalOptions::at(self.inner.clock.now()).with_mode(mode);
        match self.inner.timeout {
            Some(timeout) => options.with_timeout(timeout),
            None => options,
        }
    }

    async fn fail(
        &self,
        batch: Batch,
        options: &EvalOptions,
        cost: u64,
        error: &Error,
    ) -> Option<(Decision, FailModeUsed)> {
        let failure = |used| StoreFailure {
            mode: used,
            error: error.to_string(),
            temporary: error.is_temporary(),
            may_have_charged: error.may_have_charged(),
        };
        // A fail mode decides temporary failures only: a permanent one (a corrupt state, a
        // misconfigured store) is never quietly turned into "unlimited", unless the limiter was
        // built to decide those too.
        let fail_mode = if error.is_temporary() {
            &self.inner.fail_mode
        } else {
            self.inner.permanent_fail_mode.as_ref()?
        };
        match fail_mode {
            FailMode::Open => Some((
                Decision::failed(true, failure(FailModeUsed::Open)),
                FailModeUsed::Open,
            )),
            FailMode::Closed => Some((
                Decision::failed(false, failure(FailModeUsed::Closed)),
                FailModeUsed::Closed,
            )),
            // If the fallback fails too, the caller returns the primary store's error.
            FailMode::Fallback(fallback) => {
                let outcome = ask_any(&**fallback, &batch, options).await;
                outcome.ok().map(|outcome| {
                    let failure = Some(failure(FailModeUsed::Fallback));
                    let mut decision = to_decision(batch, outcome, cost, failure, options.mode);
                    if let Some(charge) = &mut decision.charge {
                        charge.fallback = true;
                    }
                    (decision, FailModeUsed::Fallback)
                })
            }
        }
    }

    fn emit(&self, event: &Event<'_>) {
        for hook in &self.inner.hooks {
            self.inner.hook_panics.call(&**hook, event);
        }
    }

    fn emit_decision(&self, request: &Request, decision: &Decision, cost: u64) {
        if self.inner.hooks.is_empty() {
            return;
        }
        self.emit(&Event::Decided { request, decision });
        if !decision.is_allowed() {
            for status in decision.statuses().iter().filter(|s| s.denies()) {
                self.emit(&Event::Denied { request, status });
            }
            return;
        }
        for status in decision.statuses().iter().filter(|s| s.status.is_allowed()) {
            let crossed = crossing(&status.status, cost, self.inner.approaching_percent);
            if crossed.approaching {
                self.emit(&Event::ThresholdCrossed {
                    request,
                    status,
                    threshold: Threshold::Approaching {
                        percent: self.inner.approaching_percent,
                    },
                });
            }
            if crossed.exhausted {
                self.emit(&Event::ThresholdCrossed {
                    request,
                    status,
                    threshold: Threshold::Exhausted,
                });
            }
        }
    }
}

/// What a store answered for one batch.
pub(super) struct Answer {
    allowed: bool,
    pub(super) statuses: Statuses,
    /// When the store charged it (its own clock, for a store that keeps one).
    at: Micros,
}

/// Asks `store` to evaluate `batch` through its future; callers try [`ask_now`] first, so that
/// a store that answers at once costs no future (and no copy of one into the caller's state).
async fn ask(store: &dyn Store, batch: &Batch, options: &EvalOptions) -> Result<Answer, Error> {
    let outcome = store.evaluate(batch, options).await?;
    checked(
        store,
        batch,
        Answer {
            allowed: outcome.allowed,
            statuses: outcome.statuses.into(),
            at: outcome.at,
        },
    )
}

/// Asks `store` to evaluate `batch`, at once if it can, else through its future: for the
/// paths off the warm decision (a fallback store, a failed key), where the size of the future
/// does not matter.
pub(super) async fn ask_any(
    store: &dyn Store,
    batch: &Batch,
    options: &EvalOptions,
) -> Result<Answer, Error> {
    match ask_now(store, batch, options) {
        Some(answer) => answer,
        None => ask(store, batch, options).await,
    }
}

/// What `store` answers for `batch` at once, if it can answer without waiting.
fn ask_now(
    store: &dyn Store,
    batch: &Batch,
    options: &EvalOptions,
) -> Option<Result<Answer, Error>> {
    let mut statuses = Statuses::new();
    let allowed = store.evaluate_now(batch, options, &mut statuses)?;
    Some(allowed.and_then(|allowed| {
        checked(
            store,
            batch,
            Answer {
                allowed,
                statuses,
                at: options.now,
            },
        )
    }))
}

/// `answer`, unless it does not have one status per check of `batch`.
fn checked(store: &dyn Store, batch: &Batch, answer: Answer) -> Result<Answer, Error> {
    if answer.statuses.len() != batch.len() {
        return Err(Error::store(
            store,
            ErrorKind::Permanent,
            format!(
                "answered {} statuses for a batch of {} checks",
                answer.statuses.len(),
                batch.len()
            ),
            None,
        ));
    }
    Ok(answer)
}

/// The decision for `batch` from what the store answered: each check becomes the status of its
/// policy (moved, not copied).
fn to_decision(
    batch: Batch,
    outcome: Answer,
    cost: u64,
    failure: Option<StoreFailure>,
    mode: Mode,
) -> Decision {
    let statuses: InlineVec<PolicyStatus> = batch
        .into_checks()
        .into_iter()
        .zip(outcome.statuses)
        .map(|(check, status)| PolicyStatus::of(check, status))
        .collect();
    let mut decision = Decision::from_statuses(outcome.allowed, statuses, cost, failure);
    if outcome.allowed && mode == Mode::Consume {
        decision.charge = Some(Charge {
            at: outcome.at,
            fallback: false,
        });
    }
    decision
}
