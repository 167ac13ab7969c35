//! The store's private error, and the one function that turns it into [`limiter_core::Error`].

use std::fmt;
use std::time::Duration;

use fred::error::{Error as FredError, ErrorKind as FredKind};
use limiter_core::{Error, ErrorKind};

/// What can go wrong inside the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisError {
    /// The client or the server failed.
    #[error("{0}")]
    Fred(#[from] FredError),
    /// The decision script answered something it never sends.
    #[error("unexpected reply from the decision script: {0}")]
    Reply(String),
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
}

/// Maps every failure of the store to the core error, saying whether it is temporary.
///
/// `timeout` is the limit the failed call ran under (reported by [`Error::Timeout`]).
pub(crate) fn into_core_error(
    backend: &dyn fmt::Display,
    error: RedisError,
    timeout: Duration,
) -> Error {
    let fred = match error {
        RedisError::Fred(e) => e,
        RedisError::Reply(_) => {
            return Error::store(backend, ErrorKind::Permanent, error.to_string(), None);
        }
        RedisError::Config(message) => {
            return Error::InvalidConfig {
                path: "redis".into(),
                message,
            };
        }
    };
    if *fred.kind() == FredKind::Timeout {
        return Error::Timeout {
            backend: backend.to_string(),
            timeout,
        };
    }
    let (kind, message) = classify(&fred);
    Error::store(backend, kind, message, Some(Box::new(fred)))
}

fn classify(e: &FredError) -> (ErrorKind, String) {
    use ErrorKind::{Permanent, Temporary};
    let details = e.details();
    let in_flight =
        " (a script already sent may have run, at most once: its decision may be charged)";
    match e.kind() {
        // The connection broke: the command may have reached the server before it did.
        FredKind::IO | FredKind::Canceled => (
            Temporary,
            format!("connection failed: {details}{in_flight}"),
        ),
        FredKind::Backpressure | FredKind::Routing | FredKind::Cluster => {
            (Temporary, format!("no usable connection: {details}"))
        }
        FredKind::Config | FredKind::Url => {
            (Permanent, format!("invalid configuration: {details}"))
        }
        FredKind::Auth => (Permanent, format!("authentication failed: {details}")),
        FredKind::InvalidCommand
        | FredKind::InvalidArgument
        | FredKind::Protocol
        | FredKind::Parse => (
            Permanent,
            format!("the server rejected the command: {details}"),
        ),
        _ => server_reply(details, in_flight),
    }
}

/// Classifies an error reply by its code (its first word, in capitals); fred's own messages
/// (sentences: "Failed to route command.", "Too many failed write attempts.") are about the
/// connection, so temporary.
fn server_reply(details: &str, in_flight: &str) -> (ErrorKind, String) {
    use ErrorKind::{Permanent, Temporary};
    let code = details.split_whitespace().next().unwrap_or("");
    let is_code = !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if !is_code {
        return (
            Temporary,
            format!("connection failed: {details}{in_flight}"),
        );
    }
    match code {
        // The server is busy, loading, failing over or resharding: it will answer later.
        "BUSY" | "LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "READONLY" | "MOVED"
        | "ASK" | "OOM" | "NOREPLICAS" | "NOSCRIPT" => {
            (Temporary, format!("server unavailable: {details}"))
        }
        "NOAUTH" | "WRONGPASS" | "NOPERM" => (Permanent, format!("not authorised: {details}")),
        "LIMITER_CORRUPT_STATE" => (
            Permanent,
            format!(
                "{details}: the stored value is no limiter state, so the key counts as spent \
                 until it expires (when its state would have been fresh) instead of restarting \
                 with a whole budget; expected only this store to write under the namespace: \
                 find what else writes there, or DEL the key to give it a fresh budget now"
            ),
        ),
        "LIMITER_CLOCK_SKEW" => (
            Permanent,
            format!(
                "{details}: even corrected by the server's time, the client placed the local \
                 days away from it (do the cluster nodes' clocks differ by a day or more?)"
            ),
        ),
        _ => (Permanent, format!("command failed: {details}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(kind: FredKind, details: &str) -> ErrorKind {
        let e = into_core_error(
            &"RedisStore(test)",
            FredError::new(kind, details.to_owned()).into(),
            Duration::ZERO,
        );
        match e {
            Error::Store { kind, .. } => kind,
            Error::Timeout { .. } => ErrorKind::Temporary,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn failures_that_go_away_are_temporary() {
        for (kind, details) in [
            (FredKind::IO, "broken pipe"),
            (FredKind::Timeout, "timed out"),
            (FredKind::Unknown, "BUSY Redis is busy running a script"),
            (FredKind::Cluster, "CLUSTERDOWN The cluster is down"),
            (FredKind::Unknown, "LOADING Redis is loading"),
            (FredKind::Unknown, "Too many failed write attempts."),
            (FredKind::Unknown, "Failed to route command."),
        ] {
            assert_eq!(kind_of(kind, details), ErrorKind::Temporary, "{details}");
        }
    }

    #[test]
    fn failures_that_need_a_fix_are_permanent() {
        for (kind, details) in [
            (FredKind::Auth, "WRONGPASS invalid password"),
            (FredKind::Unknown, "ERR user_script:1: bad"),
            (FredKind::Unknown, "LIMITER_CLOCK_SKEW server time 1"),
            (FredKind::Url, "bad url"),
        ] {
            assert_eq!(kind_of(kind, details), ErrorKind::Permanent, "{details}");
        }
    }

    #[test]
    fn a_timeout_is_the_core_timeout() {
        let e = into_core_error(
            &"RedisStore(x)",
            FredError::new(FredKind::Timeout, "t").into(),
            Duration::from_millis(250),
        );
        assert!(
            matches!(e, Error::Timeout { timeout, .. } if timeout == Duration::from_millis(250))
        );
        assert!(e.is_temporary());
    }
}
