//! The store's own failures, and the one place where they become [`limiter_core::Error`].

use limiter_core::{Error, ErrorKind};

/// What can go wrong inside the memory store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemoryError {
    /// The configured capacity cannot hold a single key.
    #[error("capacity 0 cannot hold any key; expected at least 1")]
    ZeroCapacity,
    /// A key's state cell kept being evicted between lookup and lock.
    #[error(
        "the state of {key} was evicted {attempts} times while this call waited for it; the \
         capacity ({capacity} keys) is too small for the keys in use at once"
    )]
    Evicted {
        /// The key that could not be held.
        key: String,
        /// How many times the call tried.
        attempts: u32,
        /// The configured capacity.
        capacity: u64,
    },
}

/// Maps a [`MemoryError`] to the crate boundary's error; `backend` is the store's `Display`.
pub(crate) fn into_core_error(backend: &dyn std::fmt::Display, error: MemoryError) -> Error {
    match error {
        MemoryError::ZeroCapacity => Error::InvalidConfig {
            path: "capacity".into(),
            message: error.to_string(),
        },
        // Eviction pressure passes as the working set shrinks: retrying may succeed.
        MemoryError::Evicted { .. } => {
            Error::store(backend, ErrorKind::Temporary, error.to_string(), None)
        }
    }
}
