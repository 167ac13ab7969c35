//! [`LogSink`]: one `tracing` event per notice.

use std::fmt;

use async_trait::async_trait;
use tracing::Level;

use crate::{Delivery, Sink, SinkError};

/// Writes one [`tracing`] event per notice (target `limiter_notify::log`, at `INFO` by
/// default) with its id, kind, tenant, user, plan, policy, threshold, limit, usage, text and
/// upgrade hint as fields. It never fails; a redelivery is logged again, with its attempt.
///
/// For operators and development: a record of what was sent, or the only sink while the
/// others are being built.
///
/// ```
/// use limiter_notify::LogSink;
///
/// let sink = LogSink::new().with_level(tracing::Level::WARN);
/// assert_eq!(sink.to_string(), "LogSink(WARN)");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LogSink {
    level: Level,
}

impl Default for LogSink {
    fn default() -> Self {
        LogSink { level: Level::INFO }
    }
}

impl LogSink {
    /// A sink logging at `INFO`.
    pub fn new() -> LogSink {
        LogSink::default()
    }

    /// The same sink logging at `level`.
    #[must_use]
    pub fn with_level(mut self, level: Level) -> LogSink {
        self.level = level;
        self
    }
}

/// The event of one delivery at the constant level `$level` (`tracing` takes no other).
macro_rules! notice_event {
    ($level:expr, $d:ident) => {
        tracing::event!(
            target: "limiter_notify::log",
            $level,
            id = %$d.id,
            kind = %$d.notice.kind(),
            tenant = $d.notice.tenant.as_deref(),
            user = $d.notice.user.as_deref(),
            plan = $d.notice.plan.as_deref(),
            policy = %$d.notice.identity.policy,
            threshold = $d.notice.identity.threshold,
            limit = $d.notice.identity.limit,
            used = $d.notice.used,
            attempt = $d.attempt,
            upgrade = $d.upgrade.as_deref(),
            "{}",
            $d.message
        )
    };
}

/// Logs `d` at `level`.
fn emit(level: Level, d: &Delivery) {
    match level {
        Level::ERROR => notice_event!(Level::ERROR, d),
        Level::WARN => notice_event!(Level::WARN, d),
        Level::INFO => notice_event!(Level::INFO, d),
        Level::DEBUG => notice_event!(Level::DEBUG, d),
        _ => notice_event!(Level::TRACE, d),
    }
}

#[async_trait]
impl Sink for LogSink {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
        emit(self.level, delivery);
        Ok(())
    }
}

impl fmt::Display for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogSink({})", self.level)
    }
}
