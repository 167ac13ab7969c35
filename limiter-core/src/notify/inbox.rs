//! [`Inbox`]: the notices a tenant reads in the product, per tenant, with read marks.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::NotifyKind;
use crate::Error;
use crate::time::Micros;

/// One message in a tenant's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItem {
    /// The notice's id ([`Notice::id`](super::Notice::id)): one item per notice.
    pub id: String,
    /// The tenant whose inbox holds it.
    pub tenant: String,
    /// What it says.
    pub kind: NotifyKind,
    /// The policy of the limit (`plan_daily`).
    pub policy: String,
    /// The rendered text.
    pub message: String,
    /// The upgrade hint, for approaching and exhausted notices on a plan with a next plan.
    pub upgrade: Option<String>,
    /// When the notice happened (its crossing, or its due time for "resets soon" and
    /// "restored").
    pub at: Micros,
    /// When the tenant read it.
    pub read_at: Option<Micros>,
}

/// Which items to list ([`Inbox::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxQuery {
    /// The tenant.
    pub tenant: String,
    /// Only items not read yet.
    pub unread_only: bool,
    /// At most this many (at least 1).
    pub limit: usize,
}

impl InboxQuery {
    /// All of `tenant`'s items, 50 at most.
    pub fn tenant(tenant: impl Into<String>) -> InboxQuery {
        InboxQuery {
            tenant: tenant.into(),
            unread_only: false,
            limit: 50,
        }
    }

    /// Only the unread ones.
    #[must_use]
    pub fn unread(mut self) -> InboxQuery {
        self.unread_only = true;
        self
    }

    /// At most `limit` items.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> InboxQuery {
        self.limit = limit.max(1);
        self
    }
}

/// The in-app inbox: one list of notices per tenant. Every backend implements it; the test
/// kit's `inbox_suite!` holds each to its reference.
#[async_trait]
pub trait Inbox: fmt::Debug + Send + Sync {
    /// Adds `item` unless the tenant's inbox holds its id already (a redelivery); returns
    /// whether it was added. A redelivery never clears a read mark.
    async fn put(&self, item: &InboxItem) -> Result<bool, Error>;

    /// The tenant's items matching `query`, newest first (by `at`, then by id descending).
    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxItem>, Error>;

    /// Marks the tenant's item `id` read at `at`, if it is there and unread; returns whether
    /// it changed. Another tenant's id is never found.
    async fn mark_read(&self, tenant: &str, id: &str, at: Micros) -> Result<bool, Error>;

    /// How many of the tenant's items are unread.
    async fn unread(&self, tenant: &str) -> Result<u64, Error>;
}
