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
            at: masked(url),
            source,
        })
}

/// `url` with its credentials masked (`redis://***@host:port`, and the values of
/// `sentinelUsername` and `sentinelPassword`): a URL on the command line may carry a password,
/// and errors end up in logs.
///
/// The twin of `redact` in limiter-redis/src/config.rs, which masks the URL in the store's own
/// messages but is not public; change both together.
fn masked(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (address, query) = match url[scheme_end..].find('?') {
        Some(q) => url.split_at(scheme_end + q),
        None => (url, ""),
    };
    // The user information ends at the last `@` before the query: a password may hold an
    // unescaped `@` of its own.
    let mut out = match address[scheme_end..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &address[scheme_end + at..]),
        None => address.to_owned(),
    };
    let query = query.trim_start_matches('?');
    if query.is_empty() {
        return out;
    }
    for (i, pair) in query.split('&').enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        match pair.split_once('=') {
            Some((name, _)) if name == "sentinelPassword" || name == "sentinelUsername" => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            masked("redis://user:secret@host:6379"),
            "redis://***@host:6379"
        );
        assert_eq!(masked("redis://host:6379/2"), "redis://host:6379/2");
        assert_eq!(masked("redis://u:p@ss@host:1/0"), "redis://***@host:1/0");
        assert_eq!(
            masked("redis-sentinel://u:p@h:1?sentinelServiceName=m&sentinelPassword=s@x&node=n:2"),
            "redis-sentinel://***@h:1?sentinelServiceName=m&sentinelPassword=***&node=n:2"
        );
        assert_eq!(masked("not a url"), "not a url");
    }
}
