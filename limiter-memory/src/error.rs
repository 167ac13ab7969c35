//! The store's own failures, and the one place where they become [`limiter_core::Error`].

use limiter_core::{Error, ErrorKind};

/// What can go wrong inside the memory store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemoryError {
    /// The configured capacity cannot hold a single key.
    #[error("capacity 0 cannot hold any key; expected at least 1")]
    ZeroCapacity,
    /// Every held key is live and the policy is to refuse new ones.
    #[error(
        "no room for the key {key}: the store holds its capacity of {capacity} keys and none \
         is droppable yet; expected fewer live keys at once (retry later, or raise the capacity)"
    )]
    Full {
        /// The first key of the batch that the store does not hold.
        key: String,
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
        // Room comes back as states turn droppable: retrying may succeed.
        MemoryError::Full { .. } => {
            Error::store(backend, ErrorKind::Temporary, error.to_string(), None)
        }
    }
}
