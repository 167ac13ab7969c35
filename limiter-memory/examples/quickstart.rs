//! A few minutes of simulated traffic under the default policies, on the in-process store.
//!
//! Tenants on every plan, a staff user, an API key flagged to bypass, and anonymous clients
//! send requests each second of a `ManualClock`; the limiter decides each one. The table shows
//! who was admitted and who was denied by which policy, then the headers and message of a
//! denied response. Every decision's events go to an in-memory event log, from which the
//! quickstart ends by answering the dashboard's three questions: which tenants hit limits, the
//! top hit tenants, and the tenants at 80% or more of their daily quota (one of them, `ember`,
//! has been busy since midnight).
//!
//! The limiter also notifies: the store writes a notice to its outbox when a charge crosses
//! 80% of a plan's daily or sustained limit and when it uses the last unit, and a worker
//! delivers them to each tenant's in-app inbox. `ember` goes on through the day until its quota
//! runs out; the clock then reaches an hour before midnight ("resets soon") and midnight
//! ("restored"), and the quickstart ends with the inboxes as the product would list them.
//!
//! Run: `cargo run --release --example quickstart`

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use limiter_core::event::{EventLog, EventRecorder, RecorderConfig};
use limiter_core::notify::{Inbox, InboxQuery};
use limiter_core::{
    Calendar, Clock, Decision, HeaderStyle, Limiter, ManualClock, PolicySet, Request,
};
use limiter_memory::{MemoryEventLog, MemoryInbox, MemoryStore};
use limiter_notify::{InboxSink, Renderer, Worker};

/// 2026-11-26T09:00:00Z.
const START: u64 = 1_795_683_600_000_000;
/// Midnight before it.
const MIDNIGHT: u64 = START - 9 * 3_600_000_000;
const SECONDS: u32 = 180;

/// Someone sending traffic: a request to send, and how many per second.
struct Client {
    name: &'static str,
    request: Request,
    per_second: u32,
}

#[derive(Default)]
struct Tally {
    sent: u32,
    admitted: u32,
    bypassed: u32,
    denied_by: BTreeMap<String, u32>,
    first_denial: Option<(u32, Decision)>,
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
}

fn tenant(name: &'static str, plan: &str, user: &str, role: &str, last: u8) -> Request {
    Request::new()
        .tenant(name)
        .plan(plan)
        .user(user)
        .role(role)
        .ip(ip(last))
}

fn clients() -> Vec<Client> {
    vec![
        Client {
            name: "acme (free)",
            request: tenant("acme", "free", "ann", "owner", 10),
            per_second: 1,
        },
        Client {
            name: "bolt (starter)",
            request: tenant("bolt", "starter", "bob", "member", 11),
            per_second: 1,
        },
        Client {
            name: "core (professional)",
            request: tenant("core", "professional", "cat", "admin", 12),
            per_second: 3,
        },
        Client {
            name: "dyna (enterprise)",
            request: tenant("dyna", "enterprise", "dan", "employee", 13),
            per_second: 12,
        },
        Client {
            name: "staff user sam",
            request: Request::new().user("sam").staff(true).ip(ip(20)),
            per_second: 20,
        },
        Client {
            name: "API key ci-bot (bypass)",
            request: Request::new()
                .tenant("dyna")
                .plan("enterprise")
                .api_key("ci-bot", true),
            per_second: 20,
        },
        Client {
            name: "anonymous 198.51.100.7",
            request: Request::new().ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
            per_second: 1,
        },
        Client {
            name: "anonymous 198.51.100.8",
            request: Request::new()
                .ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8)))
                .endpoint("POST", "/login")
                .scope("auth"),
            per_second: 1,
        },
    ]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), limiter_core::Error> {
    let clock = ManualClock::new(MIDNIGHT);
    let log = Arc::new(MemoryEventLog::new(Calendar::utc()));
    // The drain is flushed by hand each simulated second; a service spawns `drain.run()`.
    let (recorder, drain) = EventRecorder::new(log.clone(), RecorderConfig::default());
    let policies = PolicySet::default();
    let store = MemoryStore::default();
    let outbox = store.outbox();
    let limiter = Limiter::builder(policies.clone(), store)
        .clock(clock.clone())
        .events(recorder)
        .notify(policies.notify_rules().clone())?
        .build();
    // The worker a service runs beside its limiters (`worker.run(shutdown)` on its runtime);
    // here it is driven a round at a time.
    let inbox = Arc::new(MemoryInbox::new());
    let worker = Worker::builder(outbox, Renderer::new(policies.clone()))
        .sink(InboxSink::new(inbox.clone()))
        .clock(clock.clone())
        .build()?;

    // Since midnight, ember (free plan, 500/day) has sent one request every 72 seconds: 450
    // by 09:00, 90% of its daily quota, never fast enough to meet its hourly or burst limits.
    let ember = tenant("ember", "free", "eve", "owner", 14);
    for _ in 0..450 {
        limiter.check(&ember).await?;
        clock.advance(Duration::from_secs(72));
    }
    clock.set(START);

    let clients = clients();
    let mut tallies: Vec<Tally> = clients.iter().map(|_| Tally::default()).collect();

    for second in 0..SECONDS {
        for (client, tally) in clients.iter().zip(tallies.iter_mut()) {
            for _ in 0..client.per_second {
                let decision = limiter.check(&client.request).await?;
                tally.sent += 1;
                if decision.bypass().is_some() {
                    tally.bypassed += 1;
                }
                if decision.is_allowed() {
                    tally.admitted += 1;
                    continue;
                }
                let policy = decision
                    .binding()
                    .map_or_else(|| "?".to_owned(), |b| b.policy.to_string());
                *tally.denied_by.entry(policy).or_default() += 1;
                if tally.first_denial.is_none() {
                    tally.first_denial = Some((second, decision));
                }
            }
        }
        clock.advance(Duration::from_secs(1));
        drain.flush().await?;
    }

    println!(
        "{SECONDS} s of traffic under PolicySet::default(), on {}\n",
        limiter.store()
    );
    println!(
        "{:<26} {:>5} {:>9} {:>7}  denied by",
        "client", "sent", "admitted", "denied"
    );
    println!("{}", "-".repeat(80));
    for (client, tally) in clients.iter().zip(&tallies) {
        let denied = tally.sent - tally.admitted;
        let by = if tally.bypassed == tally.sent {
            "- (bypass: nothing counted)".to_owned()
        } else {
            tally
                .denied_by
                .iter()
                .map(|(policy, n)| format!("{policy} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{:<26} {:>5} {:>9} {:>7}  {by}",
            client.name, tally.sent, tally.admitted, denied
        );
    }

    for (client, tally) in clients.iter().zip(&tallies) {
        let Some((second, decision)) = &tally.first_denial else {
            continue;
        };
        println!("\n{} first denied at t = {second} s:", client.name);
        for (name, value) in decision.headers(HeaderStyle::All) {
            println!("  {name}: {value}");
        }
        if let Some(message) = decision.message() {
            println!("  body: {message}");
        }
    }
    report(&*log, clock.now(), &limiter).await?;
    notifications(&limiter, &ember, &clock, &worker, &*inbox).await
}

/// The rest of `ember`'s day, then the notifications every tenant's inbox holds.
async fn notifications(
    limiter: &Limiter,
    ember: &Request,
    clock: &ManualClock,
    worker: &Worker,
    inbox: &dyn Inbox,
) -> Result<(), limiter_core::Error> {
    worker.run_once().await?;
    // ember keeps its pace until the quota runs out (a denial ends it).
    while limiter.check(ember).await?.is_allowed() {
        clock.advance(Duration::from_secs(72));
    }
    worker.run_once().await?;
    let day = 24 * 3_600_000_000;
    for at in [MIDNIGHT + day - 3_600_000_000, MIDNIGHT + day] {
        clock.set(at);
        worker.run_once().await?;
    }
    println!("\nNotifications, as each tenant's inbox lists them (newest first):");
    for tenant in ["acme", "bolt", "core", "dyna", "ember"] {
        for item in inbox.list(&InboxQuery::tenant(tenant)).await? {
            let minute = item.at % day / 60_000_000;
            let at = format!("{:02}:{:02}", minute / 60, minute % 60);
            println!(
                "  {tenant:<6} {at}  {:<12} {}",
                item.kind.name(),
                item.message
            );
            if let Some(upgrade) = &item.upgrade {
                println!("  {:<6} {:<5}  {:<12} {upgrade}", "", "", "");
            }
        }
    }
    Ok(())
}

/// The dashboard's three questions, answered from the recorded events.
async fn report(
    log: &dyn EventLog,
    now: u64,
    limiter: &Limiter,
) -> Result<(), limiter_core::Error> {
    let stats = limiter.event_stats().unwrap_or_default();
    println!(
        "\nEvents: {} recorded, {} written, {} dropped",
        stats.recorded, stats.written, stats.dropped
    );
    println!("\nTenants that hit limits today:");
    for hits in log.hits(MIDNIGHT, now).await? {
        let by: Vec<String> = hits
            .by_policy
            .iter()
            .map(|(policy, n)| format!("{policy} x{n}"))
            .collect();
        println!(
            "  {:<8} {:>5} denials ({})",
            hits.tenant,
            hits.total,
            by.join(", ")
        );
    }
    println!("\nTop hit tenants today:");
    for (rank, top) in log.top_hit_tenants(now, 3).await?.iter().enumerate() {
        println!("  {}. {:<8} {:>5}", rank + 1, top.tenant, top.count);
    }
    // Usage is what the day's events recorded: the approaching event at the crossing, so "at
    // least" until the tenant is denied.
    println!("\nTenants at 80%+ of their daily quota:");
    for quota in log.near_quota(now, 80).await? {
        println!(
            "  {:<8} {}: at least {} of {} ({}%)",
            quota.tenant,
            quota.policy,
            quota.used,
            quota.limit,
            quota.used * 100 / quota.limit.max(1)
        );
    }
    Ok(())
}
