//! Requests as a service would describe them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proptest::sample::select;

use limiter_core::Request;

use super::*;

pub(super) fn one_of(names: &'static [&'static str]) -> BoxedStrategy<String> {
    select(names).prop_map(str::to_owned).boxed()
}

fn ip() -> BoxedStrategy<IpAddr> {
    prop_oneof![
        3 => (0..4u8).prop_map(|n| IpAddr::V4(Ipv4Addr::new(203, 0, 113, n))),
        1 => any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        1 => any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
    ]
    .boxed()
}

/// A request as a service would describe it: maybe a tenant on one of [`PLANS`], a user with
/// some of [`ROLES`], staff or superuser now and then, maybe an API key (sometimes flagged
/// bypass), maybe a client IP, maybe one of [`SCOPES`], a cost of mostly 1. Tenants, users and
/// IPs come from small pools, so requests share keys.
pub fn request() -> BoxedStrategy<Request> {
    let who = (
        prop::option::of(select(&["t-1", "t-2", "t-3"][..])),
        prop::option::of(one_of(PLANS)),
        prop::option::of(select(&["u-1", "u-2", "u-3", "u-4"][..])),
        prop::collection::vec(one_of(ROLES), 0..=2),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.05),
    );
    let how = (
        prop::option::weighted(
            0.2,
            (select(&["k-1", "k-2"][..]), prop::bool::weighted(0.3)),
        ),
        prop::option::weighted(0.8, ip()),
        prop::option::of(one_of(SCOPES)),
        prop_oneof![8 => Just(1u32), 1 => 2..=10u32],
        prop::option::weighted(
            0.3,
            (
                select(&["GET", "POST"][..]),
                select(&["/", "/v1/export"][..]),
            ),
        ),
    );
    (who, how)
        .prop_map(
            |((tenant, plan, user, roles, staff, superuser), (key, ip, scope, cost, endpoint))| {
                let mut r = Request::new().staff(staff).superuser(superuser).cost(cost);
                r.tenant = tenant.map(str::to_owned);
                r.plan = plan;
                r.user = user.map(str::to_owned);
                r.roles = roles;
                r.client_ip = ip;
                r.scope = scope;
                if let Some((id, bypass)) = key {
                    r = r.api_key(id, bypass);
                }
                if let Some((method, path)) = endpoint {
                    r = r.endpoint(method, path);
                }
                r
            },
        )
        .boxed()
}
