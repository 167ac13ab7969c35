//! [`Outbox`]: the durable queue of notices between the store that writes them and the workers
//! that deliver them.

use std::fmt;

use async_trait::async_trait;

use super::Notice;
use crate::Error;
use crate::time::Micros;

/// Where notices wait for delivery. Every backend implements it; the test kit's conformance
/// suite (`outbox_suite!`) holds each implementation to the same answers as its reference.
///
/// A notice moves from *pending* to *claimed* (leased to one worker until its lease ends) to
/// *delivered*, back to pending with a later due time when a delivery must be retried, or to
/// *failed* when the worker gives up. A claim whose lease ended (its worker stopped or
/// crashed) is claimed again by the next worker that asks, with the next attempt number; the
/// old worker's settlement of the earlier attempt is then refused, so a notice is settled once
/// per attempt and never lost across a restart.
#[async_trait]
pub trait Outbox: fmt::Debug + Send + Sync {
    /// Adds the notices whose id the outbox does not hold yet, as pending; a notice whose id it
    /// holds (in any state) is left as it is. Returns how many were added.
    async fn enqueue(&self, notices: &[Notice]) -> Result<u64, Error>;

    /// Leases to `claim.worker`, until `claim.now + claim.lease`, up to `claim.max` notices
    /// that are due at `claim.now`: pending with `due <= now`, or claimed under a lease that
    /// ended. Earliest due first (ties by id). Each claim counts one attempt.
    async fn claim(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>, Error>;

    /// Settles one claimed attempt. `false` (and no change) when the attempt is no longer the
    /// notice's current claim: its lease ended and another worker claimed it again, or it was
    /// settled already.
    async fn settle(&self, claimed: &Claimed, settlement: &Settlement) -> Result<bool, Error>;

    /// How many notices are in each state, and how many pending ones are due at `now`.
    async fn stats(&self, now: Micros) -> Result<OutboxStats, Error>;

    /// Removes delivered and failed notices settled before `before`; returns how many. Their ids
    /// are forgotten, so keep them at least as long as a window (a day) to keep each notice
    /// once per window.
    async fn prune(&self, before: Micros) -> Result<u64, Error>;
}

/// Which notices a worker asks for ([`Outbox::claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The worker's name, kept with the claim (for operators; fencing uses the attempt).
    pub worker: String,
    /// The time of the claim.
    pub now: Micros,
    /// How long the claim lasts: longer than one delivery with its retries' timeouts.
    pub lease: Micros,
    /// At most this many notices (at least 1).
    pub max: usize,
}

/// One notice leased to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The notice.
    pub notice: Notice,
    /// Which claim of the notice this is: 1 for the first.
    pub attempt: u32,
    /// When the lease ends.
    pub lease_until: Micros,
}

/// How one attempt ended ([`Outbox::settle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// Every sink took it.
    Delivered {
        /// When.
        at: Micros,
    },
    /// A sink failed: try again at `retry_at`.
    Retry {
        /// When to try again.
        retry_at: Micros,
        /// What failed (no secrets: sinks' errors never carry them).
        error: String,
    },
    /// A sink failed for good (too many attempts, or an answer that retrying cannot change).
    Failed {
        /// When.
        at: Micros,
        /// What failed.
        error: String,
    },
}

/// The outbox's contents by state ([`Outbox::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Waiting for delivery (due or not).
    pub pending: u64,
    /// Pending and due now.
    pub due: u64,
    /// Leased to a worker (including leases that ended and wait to be claimed again).
    pub claimed: u64,
    /// Delivered.
    pub delivered: u64,
    /// Given up.
    pub failed: u64,
}
