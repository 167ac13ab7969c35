//! [`InboxSink`]: puts notices in their tenant's in-app inbox.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use limiter_core::notify::{Inbox, InboxItem};

use crate::{Delivery, Sink, SinkError};

/// Puts each notice of a tenant in that tenant's [`Inbox`] (the backend's: memory, SQLite or
/// Redis), with its text and upgrade hint. A notice without a tenant (a limit keyed by user or
/// IP for an anonymous request) has no inbox to go to: it is skipped, not failed.
///
/// A redelivery finds the item there already and leaves it as it is (read mark included): the
/// inbox keeps one item per notice id.
///
/// ```
/// use std::sync::Arc;
/// use limiter_core::notify::Inbox;
/// use limiter_notify::InboxSink;
///
/// fn inbox_sink(inbox: Arc<dyn Inbox>) -> InboxSink {
///     InboxSink::new(inbox)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct InboxSink {
    inbox: Arc<dyn Inbox>,
}

impl InboxSink {
    /// A sink writing to `inbox`.
    pub fn new(inbox: Arc<dyn Inbox>) -> InboxSink {
        InboxSink { inbox }
    }

    /// The item `delivery` puts in its tenant's inbox, or `None` if it has no tenant.
    pub fn item(delivery: &Delivery) -> Option<InboxItem> {
        let notice = &delivery.notice;
        Some(InboxItem {
            id: delivery.id.clone(),
            tenant: notice.tenant.clone()?,
            kind: notice.kind(),
            policy: notice.identity.policy.clone(),
            message: delivery.message.clone(),
            upgrade: delivery.upgrade.clone(),
            at: delivery.happened_at(),
            read_at: None,
        })
    }
}

#[async_trait]
impl Sink for InboxSink {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
        let Some(item) = InboxSink::item(delivery) else {
            return Ok(());
        };
        match self.inbox.put(&item).await {
            // `false` is a redelivery: the item is there, which is what was asked.
            Ok(_) => Ok(()),
            Err(e) if e.is_temporary() => Err(SinkError::retryable(e.to_string())),
            Err(e) => Err(SinkError::permanent(e.to_string())),
        }
    }
}

impl fmt::Display for InboxSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InboxSink")
    }
}
