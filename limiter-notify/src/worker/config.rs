//! [`WorkerConfig`]: how a worker claims, how long it may take, and how it retries.

use std::time::Duration;

use limiter_core::Error;

/// A worker's settings: `WorkerConfig::new()` and `with_*` setters, checked when the worker
/// is built.
///
/// | setting | default | |
/// |---|---|---|
/// | name | `worker-<pid>` | kept with each claim, for operators |
/// | batch size | 32 | notices claimed at once, delivered concurrently |
/// | lease | 5 minutes | how long a claim is the worker's alone; longer than the delivery timeout |
/// | delivery timeout | 30 seconds | a sink still busy after this has failed, retryably |
/// | poll interval | 1 second | the wait when nothing was due |
/// | max attempts | 10 | the attempt that fails with this number gives up (`Failed`) |
/// | backoff | 1 s doubling up to 1 h | the wait after failed attempt *n*: `base * 2^(n-1)`, capped |
/// | jitter | on | each wait drawn from its upper half, by the notice's id |
///
/// The jitter is deterministic: it comes from a hash of the notice's id and attempt, not from
/// a random generator, so every process (and every test) computes the same wait for the same
/// attempt, while notices that failed together spread out instead of coming back at once.
///
/// ```
/// use std::time::Duration;
/// use limiter_notify::WorkerConfig;
///
/// let config = WorkerConfig::new().with_jitter(false);
/// let secs = |attempt| config.retry_delay("ntf_1", attempt).as_secs();
/// assert_eq!([secs(1), secs(2), secs(3), secs(4)], [1, 2, 4, 8]);
/// assert_eq!(secs(13), 3600); // 4096 s, capped at an hour
///
/// let jittered = WorkerConfig::new();
/// let wait = jittered.retry_delay("ntf_1", 4);
/// assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(8));
/// assert_eq!(wait, jittered.retry_delay("ntf_1", 4)); // the same every time
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    name: String,
    batch_size: usize,
    lease: Duration,
    delivery_timeout: Duration,
    poll_interval: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
    jitter: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: format!("worker-{}", std::process::id()),
            batch_size: 32,
            lease: Duration::from_secs(5 * 60),
            delivery_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            max_attempts: 10,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60 * 60),
            jitter: true,
        }
    }
}

impl WorkerConfig {
    /// The defaults (see the table above).
    pub fn new() -> WorkerConfig {
        WorkerConfig::default()
    }

    /// Names the worker in its claims (`worker-<pid>` by default).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> WorkerConfig {
        self.name = name.into();
        self
    }

    /// Claims at most `batch_size` notices at once (at least 1).
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> WorkerConfig {
        self.batch_size = batch_size;
        self
    }

    /// Holds each claim for `lease`: another worker claims the notice again once it ends, so it
    /// must outlast a delivery (the delivery timeout) with room to settle.
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> WorkerConfig {
        self.lease = lease;
        self
    }

    /// Gives up on a sink that has not answered within `timeout` (a retryable failure).
    #[must_use]
    pub fn with_delivery_timeout(mut self, timeout: Duration) -> WorkerConfig {
        self.delivery_timeout = timeout;
        self
    }

    /// Waits `interval` before claiming again when a claim found fewer notices than a batch.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> WorkerConfig {
        self.poll_interval = interval;
        self
    }

    /// Gives up on a notice (settles it `Failed`) when attempt number `max_attempts` fails
    /// (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> WorkerConfig {
        self.max_attempts = max_attempts;
        self
    }

    /// Waits `base * 2^(n-1)`, at most `cap`, after failed attempt `n` (base above zero, at
    /// most the cap).
    #[must_use]
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> WorkerConfig {
        self.backoff_base = base;
        self.backoff_cap = cap;
        self
    }

    /// Draws each wait from the upper half of its backoff (on by default), or not.
    #[must_use]
    pub fn with_jitter(mut self, jitter: bool) -> WorkerConfig {
        self.jitter = jitter;
        self
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Notices claimed at once.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// How long a claim lasts.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How long a sink may take.
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// The wait between claims that found less than a batch.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// The longest wait between two attempts.
    pub fn backoff_cap(&self) -> Duration {
        self.backoff_cap
    }

    /// The attempt that gives up when it fails.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after failed attempt `attempt` (1 for the first) of the notice `id`:
    /// `base * 2^(attempt-1)`, at most the cap, and with jitter somewhere in its upper half,
    /// chosen by a hash of `id` and `attempt`.
    pub fn retry_delay(&self, id: &str, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        let full = self
            .backoff_base
            .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
            .unwrap_or(self.backoff_cap)
            .min(self.backoff_cap);
        if !self.jitter {
            return full;
        }
        let half = full / 2;
        let spread = u64::try_from((full - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(fnv1a(id, attempt) % spread.saturating_add(1))
    }

    /// Checks the settings; an error names the setting (`worker.lease`) and what is expected.
    pub(super) fn check(&self) -> Result<(), Error> {
        let invalid = |path: &str, message: String| {
            Err(Error::InvalidConfig {
                path: format!("worker.{path}"),
                message,
            })
        };
        if self.batch_size == 0 {
            return invalid("batch_size", "0 claims nothing; expected at least 1".into());
        }
        if self.max_attempts == 0 {
            return invalid(
                "max_attempts",
                "0 never delivers; expected at least 1".into(),
            );
        }
        if self.backoff_base.is_zero() || self.backoff_base > self.backoff_cap {
            return invalid(
                "backoff",
                format!(
                    "base {:?} and cap {:?}; expected a base above zero and at most the cap",
                    self.backoff_base, self.backoff_cap
                ),
            );
        }
        if self.lease <= self.delivery_timeout {
            return invalid(
                "lease",
                format!(
                    "{:?} is not longer than the delivery timeout {:?}; expected a lease that \
                     outlasts a delivery, or another worker would deliver the notice again",
                    self.lease, self.delivery_timeout
                ),
            );
        }
        Ok(())
    }
}

/// FNV-1a over the id and the attempt: a hash that is the same in every process and version.
fn fnv1a(id: &str, attempt: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes().chain(attempt.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_notices_that_failed_together() {
        let config = WorkerConfig::new();
        let waits: std::collections::HashSet<Duration> = (0..50)
            .map(|i| config.retry_delay(&format!("ntf_{i}"), 5))
            .collect();
        assert!(waits.len() > 40, "{} distinct waits", waits.len());
        for wait in waits {
            assert!((Duration::from_secs(8)..=Duration::from_secs(16)).contains(&wait));
        }
    }

    #[test]
    fn huge_attempts_stay_at_the_cap() {
        let config = WorkerConfig::new().with_jitter(false);
        assert_eq!(config.retry_delay("x", u32::MAX), Duration::from_secs(3600));
        assert_eq!(config.retry_delay("x", 0), Duration::from_secs(1));
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_name() {
        let err = |c: WorkerConfig| c.check().unwrap_err().to_string();
        assert!(err(WorkerConfig::new().with_batch_size(0)).contains("worker.batch_size"));
        assert!(err(WorkerConfig::new().with_max_attempts(0)).contains("worker.max_attempts"));
        let backoff =
            err(WorkerConfig::new().with_backoff(Duration::from_secs(9), Duration::from_secs(1)));
        assert!(
            backoff.contains("worker.backoff: base 9s and cap 1s"),
            "{backoff}"
        );
        let lease = err(WorkerConfig::new().with_lease(Duration::from_secs(30)));
        assert!(
            lease.contains("worker.lease: 30s is not longer than the delivery timeout 30s"),
            "{lease}"
        );
        assert!(WorkerConfig::new().check().is_ok());
    }
}
