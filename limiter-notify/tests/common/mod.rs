//! What the tests share: a webhook receiver on a free port, a sink that records, and an inbox.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use limiter_core::notify::{Inbox, InboxItem, InboxQuery};
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
