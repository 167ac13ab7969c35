//! Opening the service's stores from the command line: a SQLite file that must exist, and a
//! Redis named by its URL, which errors name without its credentials.

use std::path::Path;
use std::time::Duration;

use limiter_redis::{RedisConfig, RedisStore};

use crate::CliError;

/// How long `--sqlite` waits for a writer's lock.
pub(crate) const BUSY: Duration = Duration::from_secs(5);

/// How long `--redis` waits for the server.
const CONNECT: Duration = Duration::from_secs(5);

/// Fails unless `path` exists: a command that reads the service's file never creates an
/// empty one in its place, so a typo cannot pass for a clean store.
pub(crate) fn existing(path: &Path) -> Result<(), CliError> {
    std::fs::metadata(path)
        .map(drop)
        .map_err(|source| CliError::Io {
            path: path.to_owned(),
            source,
        })
}

/// The failure of the SQLite file at `path`, named by its path.
pub(crate) fn sqlite_failed(path: &Path) -> impl Fn(limiter_core::Error) -> CliError + '_ {
    move |source| CliError::Store {
        at: path.display().to_string(),
        source,
    }
}

/// Connects to the Redis (or Redis Cluster node) at `url`.
pub(crate) async fn redis(url: &str) -> Result<RedisStore, CliError> {
    let config = RedisConfig::new(url).with_connect_timeout(CONNECT);
    RedisStore::connect(config)
        .await
        .map_err(|source| CliError::Store {
            // A URL on the command line may carry a password, and errors end up in logs.
            at: limiter_redis::redact(url),
            source,
        })
}

/// Runs `work` to completion on a runtime of its own: the commands that talk to a store are
/// async, the command line is not.
pub(crate) fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            path: "the async runtime".into(),
            source,
        })?
        .block_on(work)
}
