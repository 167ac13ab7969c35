//! The JSON Lines request log: [`RecorderLayer`] writes one
//! [`RequestRecord`](limiter_core::request_log::RequestRecord) per request through a
//! [`Recorder`] (a bounded channel and a writer task), the format `limiter replay` reads.
//!
//! One line per request, for example:
//!
//! ```text
//! {"ts":"2026-11-26T10:00:00.123456Z","tenant":"acme","plan":"free","user":"ann","roles":["admin"],"staff":false,"superuser":false,"key_id":null,"bypass_key":false,"ip":"203.0.113.9","scope":null,"method":"GET","route":"/v1/items/{id}","cost":1,"decision":"allowed","policy":null}
//! ```
//!
//! `ip` is the client address masked to its *network* (the configured prefix, `/64` for IPv6
//! by default): what IP-keyed limits count, and less personal than the address. `route` is
//! axum's route template when the router matched one. `decision` is one of `allowed`,
//! `bypassed`, `denied` (with the denying `policy`), `key_rejected`, `unavailable`.
//!
//! Writing never slows a request: a full channel drops the line and counts it
//! ([`Recorder::dropped`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::Response;
use limiter_core::Micros;
use limiter_core::policy::IpNet;
use limiter_core::request_log::RequestRecord;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};
use tower_layer::Layer;
use tower_service::Service;

use crate::service::Decided;

/// The line of the request log for what the limiter layer decided, at `ts` (microseconds
/// since the epoch), with the client's address masked to its network (`ipv4_prefix` /
/// `ipv6_prefix` bits): what IP-keyed limits count, so a replay counts the same subjects, and
/// less personal than the address.
pub fn record_of(decided: &Decided, ts: Micros, ipv4_prefix: u8, ipv6_prefix: u8) -> RequestRecord {
    let request = &decided.request;
    let mut record = match &decided.decision {
        Some(decision) => RequestRecord::new(request, ts, decision, None),
        None => RequestRecord::undecided(request, ts, None),
    };
    record.ip = request
        .client_ip
        .map(|ip| IpNet::client(ip, ipv4_prefix, ipv6_prefix).addr());
    record
}

enum Message {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// The writing end of the request log: cheap to clone, shared by every service.
#[derive(Debug, Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

impl Recorder {
    /// Starts a writer task on the current tokio runtime that writes lines to `out`, with
    /// room for `capacity` lines in flight (at least 1). Client networks are /32 and /64.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn(out: impl AsyncWrite + Send + Unpin + 'static, capacity: usize) -> Recorder {
        let (sender, mut receiver) = mpsc::channel::<Message>(capacity.max(1));
        tokio::spawn(async move {
            let mut out = BufWriter::new(out);
            while let Some(message) = receiver.recv().await {
                match message {
                    Message::Line(line) => {
                        // A failed write loses the line; the service goes on.
                        let _ = out.write_all(line.as_bytes()).await;
                    }
                    Message::Flush(done) => {
                        let _ = out.flush().await;
                        let _ = done.send(());
                    }
                }
                if receiver.is_empty() {
                    let _ = out.flush().await;
                }
            }
            let _ = out.flush().await;
        });
        Recorder {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }

    /// Records client networks of these prefix lengths (match the limiter's
    /// [`ClientConfig`](limiter_core::policy::ClientConfig)).
    pub fn prefixes(mut self, ipv4_prefix: u8, ipv6_prefix: u8) -> Recorder {
        self.ipv4_prefix = ipv4_prefix;
        self.ipv6_prefix = ipv6_prefix;
        self
    }

    /// Queues `record`; drops it (and counts it) if the writer is behind.
    pub fn record(&self, record: &RequestRecord) {
        let Ok(mut line) = serde_json::to_string(record) else {
            return;
        };
        line.push('\n');
        if self.sender.try_send(Message::Line(line)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many lines were dropped because the writer was behind (or gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every line queued before this call is written out.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// A layer that records every request that went through a
/// [`LimiterLayer`](crate::LimiterLayer) inside it. Put it outside the limiter layer.
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use limiter_core::{Limiter, PolicySet};
/// use limiter_memory::{MemoryConfig, MemoryStore};
/// use limiter_tower::{LimiterLayer, Recorder, RecorderLayer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = Limiter::new(PolicySet::default(), MemoryStore::new(MemoryConfig::new())?);
/// let log = tokio::fs::File::create("requests.jsonl").await?;
/// let recorder = Recorder::spawn(log, 10_000);
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(LimiterLayer::new(limiter))
///     .layer(RecorderLayer::new(recorder));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RecorderLayer {
    recorder: Recorder,
}

impl RecorderLayer {
    /// A layer that writes through `recorder`.
    pub fn new(recorder: Recorder) -> RecorderLayer {
        RecorderLayer { recorder }
    }
}

impl<S> Layer<S> for RecorderLayer {
    type Service = RecorderService<S>;

    fn layer(&self, inner: S) -> RecorderService<S> {
        RecorderService {
            inner,
            recorder: self.recorder.clone(),
        }
    }
}

/// The service made by [`RecorderLayer`].
#[derive(Debug, Clone)]
pub struct RecorderService<S> {
    inner: S,
    recorder: Recorder,
}

impl<S, Req, ResBody> Service<Req> for RecorderService<S>
where
    S: Service<Req, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let future = self.inner.call(req);
        let recorder = self.recorder.clone();
        Box::pin(async move {
            let response = future.await?;
            if let Some(decided) = response.extensions().get::<Decided>() {
                let now = jiff::Timestamp::now().as_microsecond();
                let record = record_of(
                    decided,
                    u64::try_from(now).unwrap_or(0),
                    recorder.ipv4_prefix,
                    recorder.ipv6_prefix,
                );
                recorder.record(&record);
            }
            Ok(response)
        })
    }
}
