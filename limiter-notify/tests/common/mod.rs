//! What the tests share: a webhook receiver on a free port, a sink that records, and the
//! outbox and inbox the worker runs over.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use limiter_core::notify::{
    ClaimRequest, Claimed, Inbox, InboxItem, InboxQuery, Notice, Outbox, OutboxStats, Settlement,
};
use limiter_core::{Error, Micros};
use limiter_notify::{Delivery, Sink, SinkError};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
}

/// What the receiver answers and what it got.
#[derive(Debug, Default)]
pub struct Script {
    /// Answer this status to the first `failures` requests...
    pub failure: AtomicU16,
    pub failures: AtomicUsize,
    /// ...and 200 afterwards.
    pub seen: AtomicUsize,
    pub received: Mutex<Vec<Received>>,
    /// A `Retry-After` to send with failures, if any.
    pub retry_after: Mutex<Option<String>>,
}

impl Script {
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A webhook receiver on 127.0.0.1 at a free port: it answers `failure` to the first
/// `failures` requests, then 200, and keeps every request.
pub async fn receiver(failure: u16, failures: usize) -> (SocketAddr, Arc<Script>) {
    let script = Arc::new(Script {
        failure: AtomicU16::new(failure),
        failures: AtomicUsize::new(failures),
        ..Script::default()
    });
    let app = Router::new()
        .route("/{*path}", axum::routing::post(receive))
        .route("/never", axum::routing::post(never))
        .with_state(Arc::clone(&script));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, script)
}

async fn receive(
    State(script): State<Arc<Script>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    let n = script.seen.fetch_add(1, Ordering::SeqCst);
    let failing = n < script.failures.load(Ordering::SeqCst);
    let status = if failing {
        script.failure.load(Ordering::SeqCst)
    } else {
        200
    };
    script.received.lock().unwrap().push(Received {
        headers,
        body,
        status,
    });
    let mut answer = HeaderMap::new();
    if failing && let Some(wait) = script.retry_after.lock().unwrap().clone() {
        answer.insert("retry-after", wait.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), answer)
}

/// Never answers.
async fn never() -> StatusCode {
    std::future::pending::<()>().await;
    StatusCode::OK
}

/// A sink that keeps what it is given, failing the first `failures` deliveries retryably.
#[derive(Debug, Default)]
pub struct Recording {
    pub got: Mutex<Vec<Delivery>>,
    pub failures: AtomicUsize,
}

impl Recording {
    pub fn ids(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.id.clone())
            .collect()
    }
}

impl std::fmt::Display for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recording")
    }
}

#[async_trait]
impl Sink for Recording {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(SinkError::retryable("not yet"));
        }
        self.got.lock().unwrap().push(delivery.clone());
        Ok(())
    }
}

/// An outbox for the worker's tests, held to the outbox contract: pending, claimed under a
/// lease, settled once per attempt.
#[derive(Debug, Default)]
pub struct ListOutbox {
    rows: Mutex<BTreeMap<String, Row>>,
}

#[derive(Debug, Clone)]
struct Row {
    notice: Notice,
    state: State_,
    attempt: u32,
    due: Micros,
    lease_until: Micros,
    settled_at: Micros,
    error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State_ {
    Pending,
    Claimed,
    Delivered,
    Failed,
}

impl ListOutbox {
    /// The last error settled on the notice `id`.
    pub fn error(&self, id: &str) -> Option<String> {
        self.rows.lock().unwrap().get(id)?.error.clone()
    }

    /// The attempts the notice `id` has been claimed for.
    pub fn attempts(&self, id: &str) -> u32 {
        self.rows.lock().unwrap().get(id).map_or(0, |r| r.attempt)
    }
}

#[async_trait]
impl Outbox for ListOutbox {
    async fn enqueue(&self, notices: &[Notice]) -> Result<u64, Error> {
        let mut rows = self.rows.lock().unwrap();
        let mut added = 0;
        for n in notices {
            rows.entry(n.id()).or_insert_with(|| {
                added += 1;
                Row {
                    notice: n.clone(),
                    state: State_::Pending,
                    attempt: 0,
                    due: n.due,
                    lease_until: 0,
                    settled_at: 0,
                    error: None,
                }
            });
        }
        Ok(added)
    }

    async fn claim(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>, Error> {
        let mut rows = self.rows.lock().unwrap();
        let mut due: Vec<(Micros, String)> = rows
            .iter()
            .filter(|(_, r)| match r.state {
                State_::Pending => r.due <= claim.now,
                State_::Claimed => r.lease_until <= claim.now,
                _ => false,
            })
            .map(|(id, r)| (r.due, id.clone()))
            .collect();
        due.sort();
        let mut out = Vec::new();
        for (_, id) in due.into_iter().take(claim.max.max(1)) {
            let row = rows.get_mut(&id).unwrap();
            row.state = State_::Claimed;
            row.attempt += 1;
            row.lease_until = claim.now + claim.lease;
            out.push(Claimed {
                notice: row.notice.clone(),
                attempt: row.attempt,
                lease_until: row.lease_until,
            });
        }
        Ok(out)
    }

    async fn settle(&self, claimed: &Claimed, settlement: &Settlement) -> Result<bool, Error> {
        let mut rows = self.rows.lock().unwrap();
        let Some(row) = rows.get_mut(&claimed.notice.id()) else {
            return Ok(false);
        };
        if row.state != State_::Claimed || row.attempt != claimed.attempt {
            return Ok(false);
        }
        match settlement {
            Settlement::Delivered { at } => {
                row.state = State_::Delivered;
                row.settled_at = *at;
            }
            Settlement::Retry { retry_at, error } => {
                row.state = State_::Pending;
                row.due = *retry_at;
                row.error = Some(error.clone());
            }
            Settlement::Failed { at, error } => {
                row.state = State_::Failed;
                row.settled_at = *at;
                row.error = Some(error.clone());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    async fn stats(&self, now: Micros) -> Result<OutboxStats, Error> {
        let rows = self.rows.lock().unwrap();
        let mut stats = OutboxStats::default();
        for r in rows.values() {
            match r.state {
                State_::Pending => {
                    stats.pending += 1;
                    stats.due += u64::from(r.due <= now);
                }
                State_::Claimed => stats.claimed += 1,
                State_::Delivered => stats.delivered += 1,
                State_::Failed => stats.failed += 1,
            }
        }
        Ok(stats)
    }

    async fn prune(&self, before: Micros) -> Result<u64, Error> {
        let mut rows = self.rows.lock().unwrap();
        let n = rows.len();
        rows.retain(|_, r| {
            !matches!(r.state, State_::Delivered | State_::Failed) || r.settled_at >= before
        });
        Ok(u64::try_from(n - rows.len()).unwrap())
    }
}

/// An inbox for the inbox sink's tests.
#[derive(Debug, Default)]
pub struct ListInbox {
    items: Mutex<Vec<InboxItem>>,
}

#[async_trait]
impl Inbox for ListInbox {
    async fn put(&self, item: &InboxItem) -> Result<bool, Error> {
        let mut items = self.items.lock().unwrap();
        if items
            .iter()
            .any(|i| i.tenant == item.tenant && i.id == item.id)
        {
            return Ok(false);
        }
        items.push(item.clone());
        Ok(true)
    }

    async fn list(&self, query: &InboxQuery) -> Result<Vec<InboxItem>, Error> {
        let mut out: Vec<InboxItem> = self
            .items
            .lock()
            .unwrap()
            .iter()
            .filter(|i| i.tenant == query.tenant && (!query.unread_only || i.read_at.is_none()))
            .cloned()
            .collect();
        out.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        out.truncate(query.limit);
        Ok(out)
    }

    async fn mark_read(&self, tenant: &str, id: &str, at: Micros) -> Result<bool, Error> {
        let mut items = self.items.lock().unwrap();
        match items
            .iter_mut()
            .find(|i| i.tenant == tenant && i.id == id && i.read_at.is_none())
        {
            Some(item) => {
                item.read_at = Some(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn unread(&self, tenant: &str) -> Result<u64, Error> {
        let items = self.items.lock().unwrap();
        Ok(items
            .iter()
            .filter(|i| i.tenant == tenant && i.read_at.is_none())
            .count() as u64)
    }
}
