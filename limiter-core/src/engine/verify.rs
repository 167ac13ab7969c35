//! API key verification in the decision path: [`Limiter::verify_key`] and
//! [`Limiter::check_key`].
//!
//! Order of the checks, cheapest first: the key's format and checksum (no I/O: a flood of
//! garbage keys costs one CRC each and reaches no cache and no store), then the record by the
//! key's hash (the key store, or the cache in front of it), then the record's state at the
//! limiter's `now`. A well-formed key that fails is charged to the `key_failures` policy of
//! the client's network, so that keys cannot be guessed at speed. A bypass key then skips the
//! limits with no limit-store call: the key lookup is the only I/O.

use std::sync::Arc;

use super::limiter::ask_any;
use super::{Event, Limiter};
use crate::api_key::{KeyChange, KeyFormat, KeyHash, KeyRejection, KeyStore, VerifiedKey};
use crate::batch::{Batch, Mode};
use crate::decision::{Decision, PolicyStatus};
use crate::time::Micros;
use crate::{Error, Request};

/// The outcome of verifying a presented key: who it acts for, or why it was refused.
pub type Verification = Result<VerifiedKey, KeyRejection>;

/// The keys a limiter verifies: their format and where their records are.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    format: KeyFormat,
    store: Arc<dyn KeyStore>,
}

impl Keys {
    pub(super) fn new(format: KeyFormat, store: Arc<dyn KeyStore>) -> Keys {
        Keys { format, store }
    }

    async fn verify(&self, presented: &str, now: Micros) -> Result<Verification, Error> {
        if let Err(malformed) = self.format.parse(presented) {
            return Ok(Err(KeyRejection::Malformed(malformed)));
        }
        let hash = KeyHash::of(presented);
        let Some(record) = self.store.find_by_hash(&hash).await? else {
            return Ok(Err(KeyRejection::Unknown));
        };
        // A store answers for the hash it was asked; a record of another hash is not this key.
        if record.hash != hash {
            return Ok(Err(KeyRejection::Unknown));
        }
        if let Err(rejection) = record.check_at(now) {
            return Ok(Err(rejection));
        }
        if record.needs_touch(now) {
            // Bookkeeping only: a failed write of the last use never refuses a working key.
            let _ = self
                .store
                .update(&record.tenant, &record.id, &KeyChange::Touch, now)
                .await;
        }
        Ok(Ok(VerifiedKey::from_record(&record)))
    }
}

impl Limiter {
    /// Verifies a presented API key at the limiter's `now`: a [`VerifiedKey`] to set on the
    /// request ([`Request::verified_key`]), or why the key is refused.
    ///
    /// `Err` when the limiter was built without keys ([`LimiterBuilder::keys`](crate::LimiterBuilder::keys))
    /// or the key store failed. Charges nothing: [`check_key`](Self::check_key) verifies and
    /// decides, and charges failures.
    pub async fn verify_key(&self, presented: &str) -> Result<Verification, Error> {
        let keys = self.keys()?;
        keys.verify(presented, self.inner.clock.now()).await
    }

    /// Verifies a presented API key and decides `request` with it.
    ///
    /// A working key sets the request's tenant, key id and bypass flag (its user too, if it
    /// has one) and the request is decided as by [`check`](Self::check): a bypass key is let
    /// through with no limit-store call, and recorded as a bypass (an
    /// [`Event::Decided`] whose decision names [`BypassReason::ApiKey`](crate::BypassReason)).
    ///
    /// A refused key makes a denied decision that says why
    /// ([`Decision::key_rejection`]). A well-formed key that is refused is also charged, once,
    /// to the `key_failures` policy of the client's network (default 20/minute); once that is
    /// spent, the decision carries its status and [`Decision::retry_after`]. A malformed key is
    /// refused from its text alone: no cache, key store or limit store is asked.
    ///
    /// `Err` when the key store fails: no fail mode lets through a key that could not be
    /// verified (answer 503); a failed charge of `key_failures` only loses the count.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use limiter_core::api_key::{KeyAdmin, KeyFormat, KeyRejection, NewKey};
    /// use limiter_core::{Limiter, ManualClock, PolicySet, Request};
    /// use limiter_testkit::{ModelKeyStore, ModelStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let format = KeyFormat::new("acme_live")?;
    /// let keys = Arc::new(ModelKeyStore::new());
    /// let now = 1_790_000_000_000_000;
    /// let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
    ///     .clock(ManualClock::new(now))
    ///     .keys(format.clone(), keys.clone())
    ///     .build();
    /// let admin = KeyAdmin::new(format, keys);
    /// let issued = admin.create(NewKey::new("acme", "partner").bypass(true), now).await?;
    ///
    /// let req = Request::new().ip("203.0.113.9".parse().unwrap());
    /// let decision = limiter.check_key(issued.secret.expose(), req.clone()).await?;
    /// assert!(decision.is_allowed());
    /// assert!(decision.bypass().is_some());
    ///
    /// let decision = limiter.check_key("acme_live_garbage", req).await?;
    /// assert!(matches!(decision.key_rejection(), Some(KeyRejection::Malformed(_))));
    /// assert_eq!(decision.message().unwrap(), "Invalid API key: malformed.");
    /// # Ok::<(), limiter_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn check_key(&self, presented: &str, request: Request) -> Result<Decision, Error> {
        match self.verify_key(presented).await? {
            Ok(key) => self.check(&request.verified_key(&key)).await,
            Err(rejection) => Ok(self.reject_key(&request, rejection).await),
        }
    }

    fn keys(&self) -> Result<&Keys, Error> {
        self.inner.keys.as_ref().ok_or_else(|| {
            Error::InvalidRequest(
                "the limiter verifies no API keys; build it with LimiterBuilder::keys".into(),
            )
        })
    }

    /// The decision for a refused key: charged to `key_failures` unless malformed, and
    /// reported to the hooks.
    async fn reject_key(&self, request: &Request, rejection: KeyRejection) -> Decision {
        let statuses = match rejection {
            // Garbage costs no I/O at all; it cannot be used to guess a key either.
            KeyRejection::Malformed(_) => Vec::new(),
            _ => self.charge_key_failure(request).await,
        };
        let decision = Decision::key_rejected(rejection, statuses);
        let event = Event::Decided {
            request,
            decision: &decision,
        };
        for hook in &self.inner.hooks {
            self.inner.hook_panics.call(&**hook, &event);
        }
        decision
    }

    /// Charges one failure to the client's `key_failures` limit; its status, if counted.
    async fn charge_key_failure(&self, request: &Request) -> Vec<PolicyStatus> {
        let inner = &*self.inner;
        let Some(check) = inner.policies.key_failure_check(request) else {
            return Vec::new();
        };
        let Ok(batch) = Batch::new(vec![check]) else {
            return Vec::new();
        };
        let options = self.options(Mode::Consume);
        // The key is refused whatever the store says: a failed charge only loses the count.
        let Ok(outcome) = ask_any(&*inner.store, &batch, &options).await else {
            return Vec::new();
        };
        batch
            .into_checks()
            .into_iter()
            .zip(outcome.statuses)
            .map(|(check, status)| PolicyStatus::of(check, status))
            .collect()
    }
}
