//! [`RedisInbox`]: the in-app inbox, one list per tenant, on Redis or Redis Cluster.
//!
//! Layout, with the namespace `ns` and the tenant `acme` (escaped as in a limit's key, so no
//! tenant can reach another's keys), all under the tenant's hash tag, the slot of its limits:
//!
//! - `ns:inbox:{t=acme}:items`: a hash, id -> the item's JSON;
//! - `ns:inbox:{t=acme}:order`: every id by time; `ns:inbox:{t=acme}:unread`: the unread
//!   ones (a sorted set orders equal times by id, read in reverse: newest first, ties by id
//!   descending);
//! - `ns:inbox:{t=acme}:reads`: a hash, id -> when it was read.
//!
//! Put, list and mark-read are one script each (`src/scripts/inbox_*.lua`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::SortedSetsInterface;
use fred::types::{Key as FredKey, Value};
use limiter_core::notify::{Inbox, InboxItem, InboxQuery};
use limiter_core::policy::check_namespace;
use limiter_core::{Error, ErrorKind, Key, Micros, SubjectKind};

use crate::RedisStore;
use crate::error::{RedisError, into_core_error};
use crate::lua::{Lua, array, number, score};

static PUT: Lua = Lua::new(include_str!("scripts/inbox_put.lua"));
static LIST: Lua = Lua::new(include_str!("scripts/inbox_list.lua"));
static MARK_READ: Lua = Lua::new(include_str!("scripts/inbox_mark_read.lua"));

/// An [`Inbox`] on the server or cluster of a [`RedisStore`], sharing its connections: each
/// tenant's items under the tenant's hash tag, so every call is one atomic script in one slot.
///
/// ```no_run
/// use limiter_core::notify::{Inbox, InboxQuery};
/// use limiter_core::PolicySet;
/// use limiter_redis::{RedisConfig, RedisInbox, RedisStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = RedisStore::connect(RedisConfig::new("redis://10.0.0.5:6379")).await?;
/// let inbox = RedisInbox::new(&store, PolicySet::default().namespace())?;
/// for item in inbox.list(&InboxQuery::tenant("acme").unread()).await? {
///     println!("{}: {}", item.kind, item.message);
/// }
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct RedisInbox {
    /// Held, so that the connections stay open as long as the inbox.
    store: RedisStore,
    namespace: String,
}

impl RedisInbox {
    /// The inboxes of `namespace` (give it the policies' namespace) on `store`'s server or
    /// cluster. `namespace` follows the rule of the configuration's: not empty, without `:`,
    /// `{` or `}`.
    pub fn new(store: &RedisStore, namespace: &str) -> Result<RedisInbox, Error> {
        check_namespace(namespace, "RedisInbox::namespace")?;
        Ok(RedisInbox {
            store: store.clone(),
            namespace: namespace.to_owned(),
        })
    }

    /// The prefix of every key of `tenant`'s inbox: `ns:inbox:{t=tenant}`.
    fn tenant_key(&self, tenant: &str) -> String {
        Key::new(&self.namespace, "inbox", SubjectKind::Tenant, tenant)
            .as_str()
            .to_owned()
    }

    fn client(&self) -> Client {
        self.store.client()
    }

    fn timeout(&self) -> Duration {
        self.store.command_timeout()
    }

    async fn run(&self, lua: &Lua, tenant: &str, args: Vec<Value>) -> Result<Value, Error> {
        let keys = vec![FredKey::from(self.tenant_key(tenant))];
        lua.call(&self.client(), self, keys, args, self.timeout())
            .await
    }

    fn unexpected(&self, what: &str, value: &Value) -> Error {
        Error::store(
            self,
            ErrorKind::Permanent,
            format!("unexpected reply {value:?}; expected {what}"),
            None,
        )
    }

    fn flag(&self, reply: &Value) -> Result<bool, Error> {
        match number(reply) {
            Some(n) => Ok(n == 1),
            None => Err(self.unexpected("1 or 0", reply)),
        }
    }

    /// One listed item from its JSON and its read time.
    fn item(&self, tenant: &str, json: &Value, read_at: &Value) -> Result<InboxItem, Error> {
        let text = json
            .as_str()
            .ok_or_else(|| self.unexpected("an item's JSON", json))?;
        let mut item: InboxItem = serde_json::from_str(&text).map_err(|e| {
            Error::store(
                self,
                ErrorKind::Permanent,
                format!(
                    "{}:items holds invalid JSON ({e}); expected an inbox item written by this \
                     crate",
                    self.tenant_key(tenant)
                ),
                None,
            )
        })?;
        item.read_at = match read_at {
            Value::Null => None,
            other => Some(number(other).ok_or_else(|| self.unexpected("a read time", other))?),
        };
        Ok(item)
    }
}

#[async_trait]
impl Inbox for RedisInbox {
    async fn put(&self, item: &InboxItem) -> Result<bool, Error> {
        // The read mark lives apart from the item (a hash of read times), so that marking an
        // item read rewrites no JSON.
        let stored = InboxItem {
            read_at: None,
            ..item.clone()
        };
        let json = serde_json::to_string(&stored).map_err(|e| {
            Error::store(
                self,
                ErrorKind::Permanent,
                format!("cannot encode inbox item {}: {e}", item.id),
                None,
            )
        })?;
        let read_at = item.read_at.map_or_else(String::new, |at| at.to_string());
        let args = vec![
            Value::from(item.id.as_str()),
            Value::from(json),
            score(item.at),
            Value::from(read_at),
        ];
        let reply = self.run(&PUT, &item.tenant, args).await?;
        self.flag(&reply)
    }

    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxItem>, Error> {
        let args = vec![
            Value::from(if query.unread_only { "1" } else { "0" }),
            Value::from(query.limit.max(1).to_string()),
        ];
        let reply = self.run(&LIST, &query.tenant, args).await?;
        let values = array(reply);
        let mut items = Vec::with_capacity(values.len() / 2);
        for pair in values.chunks(2) {
            let [json, read_at] = pair else {
                return Err(self.unexpected("pairs of an item and its read time", &pair[0]));
            };
            // An id listed without its item (deleted by hand) is skipped.
            if json.is_null() {
                continue;
            }
            items.push(self.item(&query.tenant, json, read_at)?);
        }
        Ok(items)
    }

    async fn mark_read(&self, tenant: &str, id: &str, at: Micros) -> Result<bool, Error> {
        let args = vec![Value::from(id), Value::from(at.to_string())];
        let reply = self.run(&MARK_READ, tenant, args).await?;
        self.flag(&reply)
    }

    async fn unread(&self, tenant: &str) -> Result<u64, Error> {
        let key = format!("{}:unread", self.tenant_key(tenant));
        let timeout = self.timeout();
        let count = tokio::time::timeout(timeout, self.client().zcard::<u64, _>(key)).await;
        match count {
            Ok(count) => count.map_err(|e| into_core_error(self, RedisError::Fred(e), timeout)),
            Err(_) => Err(Error::Timeout {
                backend: self.to_string(),
                timeout,
            }),
        }
    }
}

impl fmt::Display for RedisInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisInbox({} on {})", self.namespace, self.store)
    }
}

impl fmt::Debug for RedisInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
