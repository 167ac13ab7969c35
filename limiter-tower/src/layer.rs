//! [`LimiterLayer`]: the settings shared by every clone of the service.

use std::sync::Arc;

use limiter_core::{HeaderStyle, Limiter, TrustedProxies};
use tower_layer::Layer;

use crate::identify::{FromExtensions, Identify, KeySource};
use crate::service::LimiterService;

/// Settings, behind one `Arc`: every clone of the layer and of its services shares them, and
/// the limiter's state lives in its store, so a service that axum clones per connection still
/// enforces one budget.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) limiter: Limiter,
    pub(crate) identify: Arc<dyn Identify>,
    pub(crate) proxies: TrustedProxies,
    pub(crate) keys: Option<KeySource>,
    pub(crate) style: HeaderStyle,
    pub(crate) admitted_headers: bool,
    pub(crate) refund_server_errors: bool,
}

/// A [`tower_layer::Layer`] that decides every request with a shared [`Limiter`] before the
/// service sees it.
///
/// - Denied: `429 Too Many Requests` with `RateLimit-Policy`, `RateLimit`, `Retry-After`
///   (whole seconds, never 0) and an RFC 9457 `application/problem+json` body.
/// - Admitted: the service's response, with the rate-limit headers added (unless
///   [`admitted_headers(false)`](Self::admitted_headers), and never for a bypass).
/// - A refused API key: `401` with a problem body. A store failure under a closing fail
///   mode: `503` with `Retry-After`.
/// - gRPC calls (`content-type: application/grpc*`) get the same answers as gRPC statuses:
///   `RESOURCE_EXHAUSTED`, `UNAUTHENTICATED`, `UNAVAILABLE`.
/// - Reading the request never fails it: a header that is not text is ignored, and an
///   anonymous request with no peer address (serve with
///   `into_make_service_with_connect_info::<SocketAddr>()` to have one) counts as one shared
///   client, `::`, so that its limits still hold. Only a limiter that cannot decide answers
///   503 (a store error no fail mode covers) or 500 (a request the configuration cannot
///   decide: an unknown plan, keys read by a limiter built without a key store).
///
/// ```
/// use axum::{Router, routing::get};
/// use limiter_core::{Limiter, PolicySet};
/// use limiter_memory::{MemoryConfig, MemoryStore};
/// use limiter_tower::LimiterLayer;
///
/// let limiter = Limiter::new(PolicySet::default(), MemoryStore::new(MemoryConfig::new())?);
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(LimiterLayer::new(limiter).legacy_headers(true));
/// # Ok::<(), limiter_core::Error>(())
/// ```
#[derive(Clone)]
pub struct LimiterLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LimiterLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterLayer")
            .field("limiter", &self.shared.limiter)
            .field("proxies", &self.shared.proxies)
            .field("keys", &self.shared.keys)
            .field("style", &self.shared.style)
            .field("admitted_headers", &self.shared.admitted_headers)
            .field("refund_server_errors", &self.shared.refund_server_errors)
            .finish_non_exhaustive()
    }
}

impl LimiterLayer {
    /// A layer over `limiter` that trusts no proxy, reads no API key, identifies callers with
    /// [`FromExtensions`], and sends the IETF headers.
    pub fn new(limiter: Limiter) -> LimiterLayer {
        LimiterLayer {
            shared: Arc::new(Shared {
                limiter,
                identify: Arc::new(FromExtensions),
                proxies: TrustedProxies::none(),
                keys: None,
                style: HeaderStyle::Ietf,
                admitted_headers: true,
                refund_server_errors: false,
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Shared)) -> LimiterLayer {
        change(Arc::make_mut(&mut self.shared));
        self
    }

    /// Identifies callers with `identify` (see [`Identify`]).
    pub fn identify(self, identify: impl Identify) -> LimiterLayer {
        self.with(|s| s.identify = Arc::new(identify))
    }

    /// Believes the forwarding header from these proxies ([`TrustedProxies`]); the client IP
    /// is otherwise the peer address.
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> LimiterLayer {
        self.with(|s| s.proxies = proxies)
    }

    /// Reads a presented API key from `source` and verifies it with the limiter's key store
    /// ([`Limiter::check_key`]); the limiter must be built with
    /// [`keys`](limiter_core::LimiterBuilder::keys).
    pub fn api_keys(self, source: KeySource) -> LimiterLayer {
        self.with(|s| s.keys = Some(source))
    }

    /// Also sends the legacy `X-RateLimit-Limit`, `-Remaining` and `-Reset` headers.
    pub fn legacy_headers(self, legacy: bool) -> LimiterLayer {
        self.with(|s| {
            s.style = if legacy {
                HeaderStyle::All
            } else {
                HeaderStyle::Ietf
            }
        })
    }

    /// Whether admitted responses carry the rate-limit headers (default: yes). Bypassed
    /// requests never do.
    pub fn admitted_headers(self, on: bool) -> LimiterLayer {
        self.with(|s| s.admitted_headers = on)
    }

    /// Gives back the charge of requests the service answered with a 5xx
    /// ([`Limiter::refund`]): the client does not pay for the service's failures.
    pub fn refund_server_errors(self, on: bool) -> LimiterLayer {
        self.with(|s| s.refund_server_errors = on)
    }
}

impl<S> Layer<S> for LimiterLayer {
    type Service = LimiterService<S>;

    fn layer(&self, inner: S) -> LimiterService<S> {
        LimiterService::new(inner, Arc::clone(&self.shared))
    }
}
