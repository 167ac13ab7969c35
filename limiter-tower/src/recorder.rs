//! The JSON Lines request log: [`RecorderLayer`] writes one [`Record`] per request through a
//! [`Recorder`] (a bounded channel and a writer task), the format `limiter replay` reads.
//!
//! One line per request, for example:
//!
//! ```text
//! {"ts":"2026-11-26T10:00:00.123456Z","tenant":"acme","plan":"free","user":"ann","roles":["admin"],"staff":false,"superuser":false,"key_id":null,"bypass_key":false,"ip":"203.0.113.9","scope":null,"method":"GET","route":"/v1/items/{id}","cost":1,"decision":"allowed"}
//! ```
//!
//! `ip` is the client *network* (the address masked to the configured prefix, `/64` for
//! IPv6 by default): what IP-keyed limits count, and less personal than the address. `route`
//! is axum's route template when the router matched one. `decision` is one of `allowed`,
//! `bypass`, `denied`, `key_rejected`, `unavailable`.
//!
//! Writing never slows a request: a full channel drops the line and counts it
//! ([`Recorder::dropped`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::Response;
use limiter_core::policy::IpNet;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};
use tower_layer::Layer;
use tower_service::Service;

use crate::service::Decided;

/// One line of the request log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the request was decided, RFC 3339 in UTC with microseconds.
    pub ts: String,
    /// The tenant.
    pub tenant: Option<String>,
    /// The plan.
    pub plan: Option<String>,
    /// The user.
    pub user: Option<String>,
    /// The user's roles.
    pub roles: Vec<String>,
    /// Whether the user is staff.
    pub staff: bool,
    /// Whether the user is a superuser.
    pub superuser: bool,
    /// The API key's id (never the secret).
    pub key_id: Option<String>,
    /// Whether the API key bypasses the limits.
    pub bypass_key: bool,
    /// The client network.
    pub ip: Option<String>,
    /// The endpoint group.
    pub scope: Option<String>,
    /// The HTTP method.
    pub method: Option<String>,
    /// The route template, or the path.
    pub route: Option<String>,
    /// The request's cost.
    pub cost: u32,
    /// `allowed`, `bypass`, `denied`, `key_rejected` or `unavailable`.
    pub decision: String,
}

impl Record {
    /// The record of what the limiter layer decided, at `ts`, with the client network of
    /// `ipv4_prefix` / `ipv6_prefix` bits.
    pub fn new(decided: &Decided, ts: jiff::Timestamp, ipv4_prefix: u8, ipv6_prefix: u8) -> Record {
        let r = &decided.request;
        let decision = match &decided.decision {
            None => "unavailable",
            Some(d) if d.bypass().is_some() => "bypass",
            Some(d) if d.is_allowed() => "allowed",
            Some(d) if d.key_rejection().is_some() => "key_rejected",
            Some(d) if d.failure().is_some() => "unavailable",
            Some(_) => "denied",
        };
        Record {
            ts: format!("{ts:.6}"),
            tenant: r.tenant.clone(),
            plan: r.plan.clone(),
            user: r.user.clone(),
            roles: r.roles.clone(),
            staff: r.is_staff,
            superuser: r.is_superuser,
            key_id: r.api_key.as_ref().map(|k| k.id.clone()),
            bypass_key: r.api_key.as_ref().is_some_and(|k| k.bypass),
            ip: r
                .client_ip
                .map(|ip| IpNet::client(ip, ipv4_prefix, ipv6_prefix).to_string()),
            scope: r.scope.clone(),
            method: r.method.clone(),
            route: r.path.clone(),
            cost: r.cost,
            decision: decision.into(),
        }
    }
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
    pub fn record(&self, record: &Record) {
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
                let record = Record::new(
                    decided,
                    jiff::Timestamp::now(),
                    recorder.ipv4_prefix,
                    recorder.ipv6_prefix,
                );
                recorder.record(&record);
            }
            Ok(response)
        })
    }
}
