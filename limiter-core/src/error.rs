//! The one public error of the crate boundary.

use std::fmt;
use std::time::Duration;

/// Boxed source error carried by [`Error::Store`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `limiter`, apart from being rate limited.
///
/// Being limited is a [`Decision`](crate::Decision), never an `Error`. An `Error` means the
/// question could not be answered: the input was invalid, the configuration was wrong, or the
/// store failed. [`Error::is_temporary`] tells whether retrying the same call may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rate string could not be parsed or is out of range.
    #[error("invalid rate {input:?}: {reason}")]
    InvalidRate {
        /// The offending input, verbatim.
        input: String,
        /// What was wrong and what is expected.
        reason: String,
    },

    /// A configuration value is invalid.
    #[error("invalid configuration at {path}: {message}")]
    InvalidConfig {
        /// Dotted path of the offending value (`plans.free.burst`), or the environment
        /// variable that set it.
        path: String,
        /// What was wrong, with the offending value, and what is expected.
        message: String,
    },

    /// A request passed to the limiter is invalid (for example a cost of zero).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The request names a plan that the configuration does not define.
    #[error("unknown plan {plan:?} (configured plans: {known})")]
    UnknownPlan {
        /// The plan named by the request.
        plan: String,
        /// Some of the configured plan names, comma separated (at most five, then how many
        /// more there are).
        known: String,
    },

    /// A store could not answer.
    #[error("{backend} store error ({kind}): {message}")]
    Store {
        /// The backend, as its `Display` prints it.
        backend: String,
        /// Whether the failure is temporary.
        kind: ErrorKind,
        /// What happened.
        message: String,
        /// The backend's own error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A store did not answer within the configured timeout.
    ///
    /// The call may still have been carried out, once, after the caller stopped waiting (a
    /// script that ran but whose reply was lost): a timed-out decision may have been charged.
    /// Stores never retry a decision on their own, so it is never charged twice.
    #[error("{backend} store did not answer within {timeout:?}")]
    Timeout {
        /// The backend, as its `Display` prints it.
        backend: String,
        /// The timeout that expired.
        timeout: Duration,
    },
}

/// Whether a store failure may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Retrying later may succeed: a connection dropped, a lock was busy, a timeout expired.
    Temporary,
    /// Retrying will fail again until something is fixed: a corrupt file, a bad script,
    /// a schema from a newer version.
    Permanent,
    /// Temporary, and the call may have run anyway: its reply was lost (a connection dropped
    /// after the command was sent). The decision it made, and any charge, is unknown.
    Indeterminate,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Temporary => "temporary",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Indeterminate => "temporary, may have run",
        })
    }
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Store { kind, .. } => {
                matches!(kind, ErrorKind::Temporary | ErrorKind::Indeterminate)
            }
            Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether the failed call may have charged anyway: it timed out, or its reply was lost,
    /// after the store may have run it. A caller that retries may then pay twice, and a
    /// decision that denies it may still have cost one unit.
    pub fn may_have_charged(&self) -> bool {
        match self {
            Error::Store { kind, .. } => *kind == ErrorKind::Indeterminate,
            Error::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Builds a store error; backends call this from their one error-mapping function.
    pub fn store(
        backend: impl fmt::Display,
        kind: ErrorKind,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Error::Store {
            backend: backend.to_string(),
            kind,
            message: message.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidConfig {
            path: path.into(),
            message: message.into(),
        }
    }
}
