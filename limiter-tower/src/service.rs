//! [`LimiterService`]: decides, then calls the inner service or answers for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{Either, Full};
use limiter_core::{Decision, FailModeUsed, Request};
use tower_service::Service;

use crate::identify::{peer_addr, route};
use crate::layer::Shared;
use crate::problem;

/// The body of a response through the layer: the service's own, or the layer's answer.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// What the layer decided for one request, in the response's extensions: what the
/// [`RecorderLayer`](crate::RecorderLayer) writes, and what outer layers may read.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The request as the limiter saw it (its client IP, route template, identity).
    pub request: Request,
    /// The decision; `None` when the limiter could not decide (an error answered 503/500).
    pub decision: Option<Decision>,
}

/// The [`tower_service::Service`] made by [`LimiterLayer`](crate::LimiterLayer).
#[derive(Clone)]
pub struct LimiterService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for LimiterService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterService").finish_non_exhaustive()
    }
}

impl<S> LimiterService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> LimiterService<S> {
        LimiterService { inner, shared }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for LimiterService<S>
where
    S: Service<http::Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // A per-caller limit cannot apply backpressure: the caller is unknown until `call`.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // The service that `poll_ready` made ready is the one to call; a fresh clone takes
        // its place for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let grpc = is_grpc(&parts.headers);
            let limiter = &shared.limiter;
            let mut request = shared.request(&parts);
            let presented = shared.keys.as_ref().and_then(|k| k.presented(&parts));
            let result = match presented {
                None => {
                    request = unknown_client(shared.identify.identify(&parts, request));
                    limiter.check(&request).await
                }
                Some(key) => match limiter.verify_key(key).await {
                    // The key says who calls; `identify` then adds what the service knows
                    // of that tenant (its plan, say).
                    Ok(Ok(verified)) => {
                        request = shared
                            .identify
                            .identify(&parts, request.verified_key(&verified));
                        limiter.check(&request).await
                    }
                    // Refused: decided again by the core, which charges the failure to the
                    // client's network (no I/O for a malformed key).
                    Ok(Err(_)) => limiter.check_key(key, request.clone()).await,
                    Err(error) => Err(error),
                },
            };
            let mut decision = match result {
                Ok(decision) => decision,
                Err(error) => {
                    // No fail mode let the request through: the limiter cannot answer.
                    let status = if error.is_temporary()
                        || matches!(error, limiter_core::Error::Store { .. })
                    {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    };
                    let mut response = shared.unavailable(status, grpc);
                    response.extensions_mut().insert(Decided {
                        request,
                        decision: None,
                    });
                    return Ok(response);
                }
            };
            if !decision.is_allowed() {
                let mut response = shared.refusal(&decision, &request, grpc);
                response.extensions_mut().insert(Decided {
                    request,
                    decision: Some(decision),
                });
                return Ok(response);
            }
            let response = inner.call(http::Request::from_parts(parts, body)).await?;
            let (mut head, body) = response.into_parts();
            if shared.refund_server_errors && head.status.is_server_error() {
                // The client does not pay for the service's failure; a failed refund only
                // keeps the charge.
                let _ = limiter.refund(&mut decision).await;
            }
            if shared.admitted_headers && decision.bypass().is_none() {
                add_headers(&mut head.headers, &decision, shared.style);
            }
            head.extensions.insert(Decided {
                request,
                decision: Some(decision),
            });
            Ok(Response::from_parts(head, Either::Left(body)))
        })
    }
}

/// An anonymous request whose peer address is unknown (a server that provides no
/// `ConnectInfo`) is counted as one client, `::`: its limits stay enforced, shared by every
/// such request, instead of the request failing.
fn unknown_client(request: Request) -> Request {
    if request.client_ip.is_none() && request.is_anonymous() {
        request.ip(std::net::Ipv6Addr::UNSPECIFIED.into())
    } else {
        request
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

fn add_headers(headers: &mut HeaderMap, decision: &Decision, style: limiter_core::HeaderStyle) {
    for (name, value) in decision.headers(style) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(lower(name)), value);
        }
    }
}

/// `HeaderName::from_static` wants lower case; the core renders the canonical spelling.
fn lower(name: &'static str) -> &'static str {
    match name {
        "RateLimit-Policy" => "ratelimit-policy",
        "RateLimit" => "ratelimit",
        "X-RateLimit-Limit" => "x-ratelimit-limit",
        "X-RateLimit-Remaining" => "x-ratelimit-remaining",
        "X-RateLimit-Reset" => "x-ratelimit-reset",
        "Retry-After" => "retry-after",
        _ => "x-ratelimit-other",
    }
}

/// gRPC status codes the layer answers with.
const GRPC_RESOURCE_EXHAUSTED: u16 = 8;
const GRPC_UNAVAILABLE: u16 = 14;
const GRPC_UNAUTHENTICATED: u16 = 16;
const GRPC_INTERNAL: u16 = 13;

impl Shared {
    /// What the layer knows of a request by itself: client IP, method and route template.
    fn request(&self, parts: &http::request::Parts) -> Request {
        let mut request = Request::new().endpoint(parts.method.as_str(), route(parts));
        if let Some(peer) = peer_addr(parts) {
            if !self.proxies.is_trusted(peer) {
                // Not a proxy of ours: its headers mean nothing, so they are not even read.
                return request.ip(peer);
            }
            let header = self.proxies.forwarded_header().name();
            // A header value that is not text is no address: it is skipped, and a chain
            // left without addresses gives the peer.
            let lines: Vec<&str> = parts
                .headers
                .get_all(header)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            request = request.ip(self.proxies.client_ip(peer, &lines));
        }
        request
    }

    fn refusal<B>(
        &self,
        decision: &Decision,
        request: &Request,
        grpc: bool,
    ) -> Response<ResponseBody<B>> {
        let closed = decision
            .failure()
            .is_some_and(|f| f.mode == FailModeUsed::Closed);
        if closed {
            let secs = decision.retry_after_secs().unwrap_or(1);
            return self.unavailable_after(StatusCode::SERVICE_UNAVAILABLE, secs, grpc);
        }
        if decision.key_rejection().is_some() && decision.retry_after().is_none() {
            let body = problem::key_refused(decision);
            let mut response = answer(StatusCode::UNAUTHORIZED, &body, grpc, GRPC_UNAUTHENTICATED);
            if !grpc {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            return response;
        }
        let plan = request
            .plan
            .as_deref()
            .or_else(|| (!request.is_anonymous()).then(|| self.limiter.policies().default_plan()));
        let body = problem::throttled(decision, plan, self.limiter.policies());
        let mut response = answer(
            StatusCode::TOO_MANY_REQUESTS,
            &body,
            grpc,
            GRPC_RESOURCE_EXHAUSTED,
        );
        add_headers(response.headers_mut(), decision, self.style);
        response
    }

    fn unavailable<B>(&self, status: StatusCode, grpc: bool) -> Response<ResponseBody<B>> {
        self.unavailable_after(status, 1, grpc)
    }

    fn unavailable_after<B>(
        &self,
        status: StatusCode,
        secs: u64,
        grpc: bool,
    ) -> Response<ResponseBody<B>> {
        let mut body = problem::unavailable(secs);
        body["status"] = status.as_u16().into();
        let code: u16 = if status == StatusCode::SERVICE_UNAVAILABLE {
            GRPC_UNAVAILABLE
        } else {
            body["title"] = "Internal Server Error".into();
            body["detail"] = "Rate limits are misconfigured for this request.".into();
            GRPC_INTERNAL
        };
        let mut response = answer(status, &body, grpc, code);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// A problem+json response, or for gRPC a trailers-only response whose status is in the
/// headers (`grpc-status`, `grpc-message`), as gRPC clients read it.
fn answer<B>(
    status: StatusCode,
    body: &serde_json::Value,
    grpc: bool,
    grpc_code: u16,
) -> Response<ResponseBody<B>> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
    let headers = response.headers_mut();
    if grpc {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(grpc_code));
        let detail = body["detail"].as_str().unwrap_or_default();
        if let Ok(message) = HeaderValue::from_str(&problem::grpc_message(detail)) {
            headers.insert("grpc-message", message);
        }
        return response;
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    *response.status_mut() = status;
    *response.body_mut() = Either::Right(Full::new(Bytes::from(body.to_string())));
    response
}
