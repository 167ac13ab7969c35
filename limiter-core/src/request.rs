//! What the service knows about one call.

use std::net::IpAddr;

/// A verified API key, as the service's authentication found it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKey {
    /// The key's id (never the secret).
    pub id: String,
    /// Whether the key is flagged to bypass rate limits.
    pub bypass: bool,
}

/// What the service knows about one call: who makes it, from where, to what.
///
/// Built with chained setters; everything is optional but the cost (default 1).
///
/// ```
/// use limiter_core::Request;
///
/// let req = Request::new()
///     .tenant("acme")
///     .plan("professional")
///     .user("u-42")
///     .role("admin")
///     .ip("203.0.113.9".parse().unwrap())
///     .scope("export");
/// assert_eq!(req.cost, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The tenant (customer account) the call belongs to.
    pub tenant: Option<String>,
    /// The tenant's plan (`free`, `starter`, ...).
    pub plan: Option<String>,
    /// The authenticated user.
    pub user: Option<String>,
    /// The user's roles.
    pub roles: Vec<String>,
    /// Whether the user is staff.
    pub is_staff: bool,
    /// Whether the user is a superuser.
    pub is_superuser: bool,
    /// The verified API key the call came with.
    pub api_key: Option<ApiKey>,
    /// The client's IP address.
    pub client_ip: Option<IpAddr>,
    /// The endpoint group (`auth`, `export`, ...).
    pub scope: Option<String>,
    /// Units the call costs (default 1; must be at least 1).
    pub cost: u32,
    /// The HTTP method, for hooks and logs.
    pub method: Option<String>,
    /// The request path, for hooks and logs.
    pub path: Option<String>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            tenant: None,
            plan: None,
            user: None,
            roles: Vec::new(),
            is_staff: false,
            is_superuser: false,
            api_key: None,
            client_ip: None,
            scope: None,
            cost: 1,
            method: None,
            path: None,
        }
    }
}

impl Request {
    /// An anonymous request of cost 1 with nothing known.
    pub fn new() -> Request {
        Request::default()
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets the plan.
    pub fn plan(mut self, plan: impl Into<String>) -> Self {
        self.plan = Some(plan.into());
        self
    }

    /// Sets the user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Adds a role.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Marks the user as staff.
    pub fn staff(mut self, is_staff: bool) -> Self {
        self.is_staff = is_staff;
        self
    }

    /// Marks the user as superuser.
    pub fn superuser(mut self, is_superuser: bool) -> Self {
        self.is_superuser = is_superuser;
        self
    }

    /// Sets the API key that [`Limiter::verify_key`](crate::Limiter::verify_key) verified:
    /// the request then acts for the key's tenant (whatever tenant it named before), its user
    /// if it has one, and is counted per the key's tenant, with the key's id and bypass flag.
    pub fn verified_key(mut self, key: &crate::api_key::VerifiedKey) -> Self {
        self.tenant = Some(key.tenant.clone());
        if key.user.is_some() {
            self.user.clone_from(&key.user);
        }
        self.api_key = Some(ApiKey {
            id: key.id.to_string(),
            bypass: key.bypass,
        });
        self
    }

    /// Sets an API key that the service's own authentication verified: its id and bypass
    /// flag, as asserted by the caller. Prefer [`verified_key`](Self::verified_key).
    pub fn api_key(mut self, id: impl Into<String>, bypass: bool) -> Self {
        self.api_key = Some(ApiKey {
            id: id.into(),
            bypass,
        });
        self
    }

    /// Sets the client IP.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// Sets the endpoint group.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets the cost.
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// Sets the HTTP method and path.
    pub fn endpoint(mut self, method: impl Into<String>, path: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self.path = Some(path.into());
        self
    }

    /// Whether nobody is authenticated: no user and no API key. A tenant alone does not
    /// authenticate: a service may know it from the host name before anyone signs in, and an
    /// anonymous client must not spend the tenant's plan.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none() && self.api_key.is_none()
    }
}
