//! Policies: the configuration model, bypass rules, and resolution of a request into the limits
//! to check.
//!
//! A [`Config`] (defaults, then a file, then the environment) compiles into a [`PolicySet`],
//! whose [`resolve`](PolicySet::resolve) turns each [`Request`](crate::Request) into a
//! [`Resolution`]: a bypass with its reason, or the checks the store evaluates all or nothing.
//!
//! # The default policies
//!
//! Each policy is a [`PolicyKind`]; its settings ([`PolicyConfig`], under `[policies.<name>]`)
//! default to [`PolicyConfig::default_for`] it.
//!
//! | policy           | rate                                  | algorithm        | keyed by (first present)   |
//! |------------------|---------------------------------------|------------------|----------------------------|
//! | `plan_sustained` | plan's `sustained` (free: 100/hour)   | `sliding_window` | tenant, user, api_key, ip  |
//! | `plan_burst`     | plan's `burst` (free: 10/minute)      | `gcra`           | tenant, user, api_key, ip  |
//! | `plan_daily`     | plan's `daily` (free: 500/day)        | `calendar`       | tenant, user, api_key, ip  |
//! | `role`           | most generous of the user's roles     | `sliding_window` | user (in the tenant)¹      |
//! | `scope.<name>`   | `scopes.<name>` (auth: 5/minute)      | `auto`           | user, api_key, ip          |
//! | `anon`           | `scopes.anon` (30/hour)               | `sliding_window` | ip                         |
//! | `ip_burst`       | `ip_burst` (600/minute)               | `gcra`           | ip                         |
//! | `key_failures`   | `key_failures` (20/minute)            | `auto`           | ip                         |
//!
//! ¹ A role is a user's membership of a tenant: with a tenant, a user's role limit counts within
//! it, keyed [`Key::in_tenant`](crate::Key::in_tenant) under the tenant's hash tag (so on Redis
//! Cluster it shares the tenant's slot); without one, per user.
//!
//! Plans: free 100/hour, 10/minute, 500/day; starter 500/hour, 30/minute, 5000/day;
//! professional 2000/hour, 100/minute, 20000/day; enterprise 10000/hour, 500/minute,
//! 100000/day. Roles: owner 5000/hour, admin 3000/hour, supervisor, hr and marketer 2000/hour,
//! employee 1000/hour, member 500/hour. Scopes: anon 30/hour, user 1000/hour, auth 5/minute,
//! token 10/minute, password 3/minute, registration 5/hour, file_upload 20/hour, export 10/hour.
//!
//! A request is authenticated by a user or an API key; a tenant alone does not authenticate, so
//! a request with only a tenant counts as anonymous. `ip` means the client's network: each IPv4
//! address and each IPv6 /64 by default (`[client]`, or per policy), with IPv4-mapped and NAT64
//! addresses counted as the IPv4 client they carry. An anonymous request must carry its client
//! IP unless `client.require_ip = false`.
//!
//! Keys are `{namespace}:{policy}:{kind=subject}` (see [`Key`](crate::Key)): the limits of one
//! tenant share its hash tag, and a tenant keeps its counters when it changes plans.
//!
//! # Files
//!
//! [`Config::from_toml_str`] and [`Config::from_json_str`] read a file over the defaults: it
//! names only what it changes. `limiter-core/examples/limiter.toml` lists every setting with
//! its default.
//!
//! ```toml
//! [plans.professional]
//! sustained = "3000/hour"   # burst and daily stay 100/minute and 20000/day
//!
//! [plans.gold]              # a new plan sets all three
//! sustained = "5000/hour"
//! burst = "200/minute"
//! daily = "50000/day"
//!
//! [roles]
//! member = "off"            # "off" removes a plan, role or scope
//!
//! [policies.scope]
//! shadow = true             # report scope limits, do not enforce them
//! ```
//!
//! Scalars and lists replace what they override (a `bypass.ips` list replaces the previous
//! list); plans, roles and scopes merge by name. To switch a whole policy off, set
//! `enabled = false` under `[policies.<policy>]`.
//!
//! # Environment
//!
//! [`Config::apply_env`] reads variables named `LIMITER_` then the setting's path in upper case,
//! its parts separated by a double underscore (a single underscore belongs to a name). Values
//! are what the file would hold, unquoted; lists are comma separated; booleans are `true` or
//! `false`.
//!
//! ```text
//! LIMITER_PLANS__PROFESSIONAL__SUSTAINED=3000/hour
//! LIMITER_ROLES__OWNER=6000/hour
//! LIMITER_SCOPES__EXPORT=off
//! LIMITER_BYPASS__STAFF=false
//! LIMITER_BYPASS__IPS=10.0.0.0/8,192.168.1.1
//! LIMITER_TIME_ZONE=Europe/Paris
//! LIMITER_POLICIES__SCOPE__SHADOW=true
//! LIMITER_POLICIES__PLAN_BURST__KEY=tenant,ip
//! ```
//!
//! Names are lower-cased, so plans, roles and scopes set from the environment have lower-case
//! names. Variables without the prefix are ignored, and so are variables of other components
//! that share it (`LIMITER_LOG_LEVEL`, `LIMITER_REDIS_URL`): one word that is no setting. A
//! variable that aims at a setting but names none is an error that names it, so that a typo is
//! not silently ignored: a path (`LIMITER_PLANS__FREE__BRUST`), or a near miss of a top-level
//! setting (`LIMITER_TIMEZONE`, `LIMITER_PLANS_FREE_BURST`). [`Config::apply_env_with_prefix`]
//! takes another prefix.
//!
//! # Errors
//!
//! Every error is an [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the path of the
//! setting (`plans.free.burst`, `bypass.ips[2]`), the environment variable, or for a syntax
//! error the line and column, with the offending value and what is expected:
//!
//! ```
//! use limiter_core::policy::Config;
//!
//! let err = Config::from_toml_str("[plans.free]\nburst = \"10/fortnight\"").unwrap_err();
//! assert!(err.to_string().starts_with(
//!     "invalid configuration at plans.free.burst: invalid rate \"10/fortnight\": \
//!      unknown period unit \"fortnight\""
//! ));
//! ```

mod compile;
mod config;
mod ip;
mod key_failures;
mod kind;
mod load;
mod patch;
mod resolve;

pub use config::{
    AUTO_SLIDING_LOG_MAX, AlgorithmChoice, BypassConfig, ClientConfig, Config, PlanConfig,
    PoliciesConfig, PolicyConfig, check_namespace,
};
pub use ip::{IpNet, client_address};
pub use kind::PolicyKind;
pub use resolve::{BypassReason, PlanLimits, PolicySet, Resolution};
