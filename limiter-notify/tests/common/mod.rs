//! What the tests share: a webhook receiver on a free port, a sink that records, and an outbox
//! that keeps what the worker settled.

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
use limiter_core::notify::{ClaimRequest, Claimed, Notice, Outbox, OutboxStats, Settlement};
use limiter_core::{Error, Micros};
use limiter_memory::MemoryOutbox;
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

/// An outbox that keeps what the worker settled, around a [`MemoryOutbox`].
#[derive(Debug, Default)]
pub struct Watched {
    inner: MemoryOutbox,
    settled: Mutex<Vec<(String, u32, Settlement)>>,
    attempts: Mutex<BTreeMap<String, u32>>,
}

impl Watched {
    /// The error of the last accepted settlement of the notice `id` that had one.
    pub fn error(&self, id: &str) -> Option<String> {
        let settled = self.settled.lock().unwrap();
        settled
            .iter()
            .rev()
            .filter(|(s, _, _)| s == id)
            .find_map(|(_, _, settlement)| match settlement {
                Settlement::Retry { error, .. } | Settlement::Failed { error, .. } => {
                    Some(error.clone())
                }
                _ => None,
            })
    }

    /// The last attempt the notice `id` was claimed for.
    pub fn attempts(&self, id: &str) -> u32 {
        self.attempts.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl Outbox for Watched {
    async fn enqueue(&self, notices: &[Notice]) -> Result<u64, Error> {
        self.inner.enqueue(notices).await
    }

    async fn claim(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>, Error> {
        let claimed = self.inner.claim(claim).await?;
        let mut attempts = self.attempts.lock().unwrap();
        for c in &claimed {
            attempts.insert(c.notice.id(), c.attempt);
        }
        Ok(claimed)
    }

    async fn settle(&self, claimed: &Claimed, settlement: &Settlement) -> Result<bool, Error> {
        let accepted = self.inner.settle(claimed, settlement).await?;
        if accepted {
            self.settled.lock().unwrap().push((
                claimed.notice.id(),
                claimed.attempt,
                settlement.clone(),
            ));
        }
        Ok(accepted)
    }

    async fn stats(&self, now: Micros) -> Result<OutboxStats, Error> {
        self.inner.stats(now).await
    }

    async fn prune(&self, before: Micros) -> Result<u64, Error> {
        self.inner.prune(before).await
    }
}
