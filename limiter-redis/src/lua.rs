//! [`Lua`]: a script of the outbox or the inbox, sent by its SHA1 (`EVALSHA`) and loaded again
//! when the server lost it, as the decision script is.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use fred::bytes_utils::Str;
use fred::clients::Client;
use fred::interfaces::LuaInterface;
use fred::types::{Key as FredKey, Value};
use limiter_core::Error;

use crate::error::{RedisError, into_core_error};

/// One Lua script: its source, and its SHA1 computed on first use.
pub(crate) struct Lua {
    source: &'static str,
    sha: OnceLock<Str>,
}

impl Lua {
    /// The script `source`.
    pub(crate) const fn new(source: &'static str) -> Lua {
        Lua {
            source,
            sha: OnceLock::new(),
        }
    }

    fn sha(&self) -> Str {
        self.sha
            .get_or_init(|| Str::from(fred::util::sha1_hash(self.source)))
            .clone()
    }

    /// Runs the script on `client` over `keys` and `args`, within `timeout` in all.
    ///
    /// `EVALSHA` first; when the server answers `NOSCRIPT` (restarted, flushed, a new cluster
    /// node), the script did not run: it is loaded on every primary and sent once more, so
    /// no call runs twice. Errors name `backend` and are mapped by
    /// [`into_core_error`].
    pub(crate) async fn call(
        &self,
        client: &Client,
        backend: &(dyn fmt::Display + Sync),
        keys: Vec<FredKey>,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, Error> {
        let run = async {
            let first = client
                .evalsha::<Value, _, _, _>(self.sha(), keys.clone(), args.clone())
                .await;
            match first {
                Err(e) if e.details().starts_with("NOSCRIPT") => {
                    client
                        .script_load_cluster::<Value, _>(Str::from_static(self.source))
                        .await?;
                    client.evalsha(self.sha(), keys, args).await
                }
                result => result,
            }
        };
        // One deadline for the whole call, a reload included: fred's timeouts are per command.
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => {
                result.map_err(|e| into_core_error(backend, RedisError::Fred(e), timeout))
            }
            Err(_) => Err(Error::Timeout {
                backend: backend.to_string(),
                timeout,
            }),
        }
    }
}

/// A time as a sorted set's score: exact, as Redis keeps scores as doubles and every time
/// below 2^53 is one. A later time (no clock reaches it) is held at 2^53 - 1, so that order
/// among real times is kept.
pub(crate) fn score(micros: u64) -> Value {
    const EXACT: u64 = (1 << 53) - 1;
    Value::from(micros.min(EXACT).to_string())
}

/// The elements of an array reply (none for a nil reply; one for anything else).
pub(crate) fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(values) => values,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// A whole number in a reply: an integer, or its text.
pub(crate) fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        other => other.as_string()?.parse().ok(),
    }
}
