//! [`MemoryInbox`]: each tenant's in-app notices in process memory.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use async_trait::async_trait;
use limiter_core::notify::{Inbox, InboxItem, InboxQuery};
use limiter_core::{Error, Micros};
use parking_lot::Mutex;

/// An [`Inbox`] in process memory: for a single process, tests and development. Items are
/// lost when the process ends; use the SQLite or Redis backends to keep them.
///
/// Each tenant's items are held by id and indexed by (`at`, id), so a list reads the newest
/// first without sorting, and the unread count is kept as items are added and read.
///
/// ```
/// use limiter_core::notify::{Inbox, InboxItem, InboxQuery, NotifyKind};
/// use limiter_memory::MemoryInbox;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let inbox = MemoryInbox::new();
/// let item = InboxItem {
///     id: "ntf_1".into(),
///     tenant: "acme".into(),
///     kind: NotifyKind::Approaching,
///     policy: "plan_daily".into(),
///     message: "You're at 80% of your daily limit".into(),
///     upgrade: None,
///     at: 1_000,
///     read_at: None,
/// };
/// assert!(inbox.put(&item).await?);
/// assert!(!inbox.put(&item).await?, "a redelivery adds nothing");
/// assert_eq!(inbox.unread("acme").await?, 1);
/// assert!(inbox.mark_read("acme", "ntf_1", 2_000).await?);
/// assert!(inbox.list(&InboxQuery::tenant("acme").unread()).await?.is_empty());
/// # Ok::<(), limiter_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Default)]
pub struct MemoryInbox {
    tenants: Mutex<HashMap<String, Items>>,
}

/// One tenant's items.
#[derive(Debug, Default)]
struct Items {
    by_id: HashMap<String, InboxItem>,
    /// (at, id) of every item: iterated backwards, newest first, ties by id descending.
    by_time: BTreeSet<(Micros, String)>,
    unread: u64,
}

impl MemoryInbox {
    /// An empty inbox.
    pub fn new() -> MemoryInbox {
        MemoryInbox::default()
    }
}

impl fmt::Debug for MemoryInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counts only: tenants' names and messages are their data, not the inbox's.
        match self.tenants.try_lock() {
            Some(tenants) => {
                let items: usize = tenants.values().map(|t| t.by_id.len()).sum();
                write!(f, "MemoryInbox(tenants={}, items={items})", tenants.len())
            }
            None => f.write_str("MemoryInbox(<locked>)"),
        }
    }
}

#[async_trait]
impl Inbox for MemoryInbox {
    async fn put(&self, item: &InboxItem) -> Result<bool, Error> {
        let mut tenants = self.tenants.lock();
        let items = tenants.entry(item.tenant.clone()).or_default();
        if items.by_id.contains_key(&item.id) {
            return Ok(false);
        }
        items.by_time.insert((item.at, item.id.clone()));
        items.unread += u64::from(item.read_at.is_none());
        items.by_id.insert(item.id.clone(), item.clone());
        Ok(true)
    }

    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxItem>, Error> {
        let tenants = self.tenants.lock();
        let Some(items) = tenants.get(&query.tenant) else {
            return Ok(Vec::new());
        };
        Ok(items
            .by_time
            .iter()
            .rev()
            .filter_map(|(_, id)| items.by_id.get(id))
            .filter(|item| !query.unread_only || item.read_at.is_none())
            .take(query.limit.max(1))
            .cloned()
            .collect())
    }

    async fn mark_read(&self, tenant: &str, id: &str, at: Micros) -> Result<bool, Error> {
        let mut tenants = self.tenants.lock();
        let Some(items) = tenants.get_mut(tenant) else {
            return Ok(false);
        };
        match items.by_id.get_mut(id) {
            Some(item) if item.read_at.is_none() => {
                item.read_at = Some(at);
                items.unread = items.unread.saturating_sub(1);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unread(&self, tenant: &str) -> Result<u64, Error> {
        Ok(self
            .tenants
            .lock()
            .get(tenant)
            .map_or(0, |items| items.unread))
    }
}
