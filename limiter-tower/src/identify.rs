//! How an HTTP request becomes a limiter [`Request`]: [`Identify`], the client's address
//! ([`peer_addr`]) and the presented API key ([`KeySource`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath};
use http::request::Parts;
use limiter_core::Request;

/// Fills in who makes a call from what the service's own layers found out.
///
/// The layer first builds a [`Request`] with the client IP (through the trusted proxies),
/// the method and the route template; `identify` then adds the tenant, plan, user, roles,
/// staff flags, scope and cost, typically from the request's extensions where an
/// authentication layer put them. When the layer reads API keys, a verified key is applied
/// first: `identify` sees its tenant, user and key id, and can add the tenant's plan.
///
/// Any `Fn(&Parts, Request) -> Request` is an `Identify`:
///
/// ```
/// use limiter_core::Request;
/// use limiter_tower::Identify;
///
/// #[derive(Clone)]
/// struct User { tenant: String, plan: String, id: String }
///
/// fn identify(parts: &http::request::Parts, req: Request) -> Request {
///     match parts.extensions.get::<User>() {
///         Some(u) => req.tenant(&u.tenant).plan(&u.plan).user(&u.id),
///         None => req,
///     }
/// }
/// fn takes(_: impl Identify) {}
/// takes(identify);
/// ```
pub trait Identify: Send + Sync + 'static {
    /// Adds what the service knows about the caller of `parts` to `request`.
    fn identify(&self, parts: &Parts, request: Request) -> Request;
}

impl<F> Identify for F
where
    F: Fn(&Parts, Request) -> Request + Send + Sync + 'static,
{
    fn identify(&self, parts: &Parts, request: Request) -> Request {
        self(parts, request)
    }
}

/// The default [`Identify`]: takes a [`Request`] that an earlier layer stored in the request's
/// extensions (its tenant, plan, user, roles, staff flags, scope and cost), and leaves the
/// request anonymous otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct FromExtensions;

impl Identify for FromExtensions {
    fn identify(&self, parts: &Parts, mut request: Request) -> Request {
        if let Some(known) = parts.extensions.get::<Request>() {
            // A key the layer verified says who calls; the extensions add the rest.
            if request.api_key.is_none() {
                request.tenant.clone_from(&known.tenant);
                request.user.clone_from(&known.user);
                request.api_key.clone_from(&known.api_key);
            }
            request.plan.clone_from(&known.plan);
            request.roles.clone_from(&known.roles);
            request.is_staff = known.is_staff;
            request.is_superuser = known.is_superuser;
            request.scope.clone_from(&known.scope);
            request.cost = known.cost;
            if known.client_ip.is_some() {
                request.client_ip = known.client_ip;
            }
        }
        request
    }
}

/// Where the layer reads a presented API key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The whole value of this header (`x-api-key`).
    Header(http::HeaderName),
}

impl KeySource {
    /// The presented key, if any. A header that is not text counts as no key: reading the
    /// request never fails.
    pub(crate) fn presented<'a>(&self, parts: &'a Parts) -> Option<&'a str> {
        match self {
            KeySource::Bearer => {
                let value = parts
                    .headers
                    .get(http::header::AUTHORIZATION)?
                    .to_str()
                    .ok()?;
                let (scheme, key) = value.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| key.trim())
                    .filter(|k| !k.is_empty())
            }
            KeySource::Header(name) => parts
                .headers
                .get(name)?
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty()),
        }
    }
}

/// The address the connection came from: axum's [`ConnectInfo<SocketAddr>`], or a plain
/// [`SocketAddr`] or [`IpAddr`] extension (what a hyper or tonic server can insert).
pub fn peer_addr(parts: &Parts) -> Option<IpAddr> {
    let ext = &parts.extensions;
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| ext.get::<SocketAddr>().map(SocketAddr::ip))
        .or_else(|| ext.get::<IpAddr>().copied())
}

/// The route template (axum's [`MatchedPath`], `/v1/items/{id}`) when the router set it, or
/// the path. Templates keep logs and hooks free of ids and their cardinality small.
pub fn route(parts: &Parts) -> String {
    parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned())
}
