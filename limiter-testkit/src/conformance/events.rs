//! The contracts every [`EventLog`] must meet, run by [`event_log_suite!`](crate::event_log_suite):
//! each appends to a fresh log and compares its answers with the [`ReferenceEventLog`]'s and
//! with what the appended trace says.

use std::collections::BTreeMap;
use std::sync::Arc;

use limiter_core::event::{
    EventKind, EventLog, EventQuery, EventRecorder, LimitEvent, RecorderConfig, Retention,
};
use limiter_core::policy::{Config, PlanConfig};
use limiter_core::{Calendar, Limiter, ManualClock, Micros, PolicySet, Request, Unit};

use crate::fixtures::{BASE_NOW, HOUR, MINUTE, rate};
use crate::{ModelStore, ReferenceEventLog};

/// One day.
pub const DAY: Micros = 24 * HOUR;

/// The tenants of [`recorded_trace`], and how many requests each sends per day: the first
/// never comes near its quota of [`TRACE_QUOTA`], the last is denied often.
pub const TRACE_TENANTS: [(&str, u32); 6] = [
    ("alpha", 2),
    ("bravo", 6),
    ("charlie", 12),
    ("delta", 18),
    ("echo", 24),
    ("foxtrot", 30),
];

/// The daily quota of the plan of [`recorded_trace`].
pub const TRACE_QUOTA: u64 = 20;

/// A policy set whose plan `tiny` has a daily quota of [`TRACE_QUOTA`] (and burst and
/// sustained limits that never bind in the trace).
pub fn trace_policies() -> PolicySet {
    trace_policies_in(&Config::default().namespace)
}

/// [`trace_policies`] with every key under `namespace`, so that runs against one long-lived
/// server (`LIMITER_REDIS_URL`) never meet each other's limits or notices.
pub fn trace_policies_in(namespace: &str) -> PolicySet {
    let mut config = trace_config();
    config.namespace = namespace.to_owned();
    PolicySet::from_config(&config).expect("the trace's policies are valid")
}

/// The configuration of [`trace_policies`]: the defaults plus the plan `tiny`, for tests that
/// change something else (the time zone, the namespace) before building the policies.
pub fn trace_config() -> Config {
    let mut config = Config::default();
    config.plans.insert(
        "tiny".into(),
        PlanConfig::new(
            rate(10_000, Unit::Hour),
            rate(1_000, Unit::Minute),
            rate(TRACE_QUOTA, Unit::Day),
        ),
    );
    config
}

/// The events of two days of traffic from [`TRACE_TENANTS`] (plus a staff user's bypasses),
/// as a limiter on the model store records them, starting at [`BASE_NOW`] (a UTC midnight).
pub async fn recorded_trace() -> Vec<LimitEvent> {
    let log = Arc::new(ReferenceEventLog::new());
    let (recorder, drain) =
        EventRecorder::new(log.clone(), RecorderConfig::default().capacity(1 << 20));
    let clock = ManualClock::new(BASE_NOW);
    let limiter = Limiter::builder(trace_policies(), ModelStore::new())
        .clock(clock.clone())
        .events(recorder)
        .build();
    for day in 0..2 {
        for (i, (tenant, per_day)) in TRACE_TENANTS.iter().enumerate() {
            // Bravo sends nothing on the second day; the others send as much again.
            let sends = if day == 1 && *tenant == "bravo" {
                0
            } else {
                *per_day
            };
            for n in 0..sends {
                let index = u8::try_from(i).unwrap_or(0);
                clock.set(
                    BASE_NOW + day * DAY + HOUR + u64::from(n) * 20 * MINUTE + u64::from(index),
                );
                let request = Request::new()
                    .tenant(*tenant)
                    .plan("tiny")
                    .user(format!("{tenant}-user"))
                    .ip([203, 0, 113, index].into())
                    .endpoint("GET", "/v1/orders/{id}");
                limiter.check(&request).await.expect("valid request");
            }
        }
        clock.set(BASE_NOW + day * DAY + 20 * HOUR);
        let staff = Request::new().user("sam").staff(true);
        limiter.check(&staff).await.expect("valid request");
    }
    drain.flush().await.expect("the reference log never fails");
    log.events()
}

/// Appends `events` to `log` in batches of `batch`.
pub async fn append_in_batches(log: &dyn EventLog, events: &[LimitEvent], batch: usize) {
    for chunk in events.chunks(batch.max(1)) {
        log.append(chunk).await.expect("append");
    }
}

/// Every page of `query`, concatenated.
pub async fn all_pages(log: &dyn EventLog, query: EventQuery) -> Vec<LimitEvent> {
    let mut events = Vec::new();
    let mut query = query;
    loop {
        let page = log.events(&query).await.expect("events");
        assert!(
            page.events.len() <= query.limit,
            "{log:?}: a page holds at most its limit"
        );
        events.extend(page.events);
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => return events,
        }
    }
}

/// Asserts that `log` answers every question as `reference` does, at the instants given.
pub async fn assert_same_answers(log: &dyn EventLog, reference: &dyn EventLog, days: &[Micros]) {
    let tenants: Vec<String> = reference
        .hits(0, Micros::MAX)
        .await
        .expect("hits")
        .into_iter()
        .map(|h| h.tenant)
        .chain(TRACE_TENANTS.iter().map(|(t, _)| (*t).to_owned()))
        .collect();
    assert_eq!(
        log.hits(0, Micros::MAX).await.expect("hits"),
        reference.hits(0, Micros::MAX).await.expect("hits"),
        "{log:?}: tenants that hit limits, all time"
    );
    for &day in days {
        assert_eq!(
            log.hits(day, day + DAY).await.expect("hits"),
            reference.hits(day, day + DAY).await.expect("hits"),
            "{log:?}: tenants that hit limits on the day of {day}"
        );
        for n in [1, 3, 100] {
            assert_eq!(
                log.top_hit_tenants(day + HOUR, n).await.expect("top"),
                reference.top_hit_tenants(day + HOUR, n).await.expect("top"),
                "{log:?}: top {n} hit tenants of the day of {day}"
            );
        }
        for percent in [1, 50, 80, 100] {
            assert_eq!(
                log.near_quota(day + HOUR, percent).await.expect("near"),
                reference
                    .near_quota(day + HOUR, percent)
                    .await
                    .expect("near"),
                "{log:?}: tenants at {percent}% of a daily quota on the day of {day}"
            );
        }
    }
    for tenant in tenants {
        let queries = [
            EventQuery::tenant(&tenant).limit(7),
            EventQuery::tenant(&tenant).kind(EventKind::Denied).limit(3),
            EventQuery::tenant(&tenant)
                .kind(EventKind::Approaching)
                .kind(EventKind::Exhausted)
                .policy("plan_daily"),
            EventQuery::tenant(&tenant).policy("plan_burst"),
        ];
        for query in queries {
            assert_eq!(
                all_pages(log, query.clone()).await,
                all_pages(reference, query.clone()).await,
                "{log:?}: {query:?}"
            );
        }
    }
}

/// The report's three questions, answered from [`recorded_trace`] and checked against what the
/// trace itself says.
pub async fn answers_the_report_from_a_recorded_trace(log: &dyn EventLog) {
    let trace = recorded_trace().await;
    append_in_batches(log, &trace, 17).await;

    // What the trace says, counted by hand.
    let mut denied: BTreeMap<&str, u64> = BTreeMap::new();
    for e in trace.iter().filter(|e| e.kind == EventKind::Denied) {
        *denied
            .entry(e.tenant.as_deref().expect("a tenant"))
            .or_default() += 1;
    }
    // Day 1: echo sends 24 against a quota of 20, foxtrot 30.
    let per_day = |sent: u32| u64::from(sent).saturating_sub(TRACE_QUOTA);
    assert_eq!(denied.get("echo"), Some(&(2 * per_day(24))));
    assert_eq!(denied.get("foxtrot"), Some(&(2 * per_day(30))));

    let hits = log.hits(BASE_NOW, BASE_NOW + DAY).await.expect("hits");
    let names: Vec<(&str, u64)> = hits.iter().map(|h| (h.tenant.as_str(), h.total)).collect();
    assert_eq!(
        names,
        [("echo", 4), ("foxtrot", 10)],
        "{log:?}: who hit limits on day 1"
    );
    assert_eq!(hits[1].by_policy, [("plan_daily".to_owned(), 10)]);

    let top = log
        .top_hit_tenants(BASE_NOW + DAY + HOUR, 1)
        .await
        .expect("top");
    assert_eq!(top.len(), 1);
    assert_eq!((top[0].tenant.as_str(), top[0].count), ("foxtrot", 10));

    let near = log.near_quota(BASE_NOW + 5 * HOUR, 80).await.expect("near");
    let near: Vec<&str> = near.iter().map(|q| q.tenant.as_str()).collect();
    assert_eq!(
        near,
        ["delta", "echo", "foxtrot"],
        "{log:?}: at 80%+ on day 1"
    );
    // On day 2 bravo sent nothing, and the others as much as on day 1.
    let near = log
        .near_quota(BASE_NOW + DAY + 5 * HOUR, 80)
        .await
        .expect("near");
    let near: Vec<&str> = near.iter().map(|q| q.tenant.as_str()).collect();
    assert_eq!(
        near,
        ["delta", "echo", "foxtrot"],
        "{log:?}: at 80%+ on day 2"
    );

    // Exactly one approaching and one exhausted event per tenant and daily window.
    for (tenant, sent) in TRACE_TENANTS {
        for kind in [EventKind::Approaching, EventKind::Exhausted] {
            let query = EventQuery::tenant(tenant).kind(kind).policy("plan_daily");
            let found = all_pages(log, query).await;
            let days = if tenant == "bravo" { 1 } else { 2 };
            let expected = match kind {
                EventKind::Approaching if u64::from(sent) * 100 >= 80 * TRACE_QUOTA => days,
                EventKind::Exhausted if u64::from(sent) >= TRACE_QUOTA => days,
                _ => 0,
            };
            assert_eq!(found.len(), expected, "{log:?}: {kind} events of {tenant}");
        }
        // A restore on day 2 for the tenants exhausted on day 1, and for nobody else.
        let restored = all_pages(log, EventQuery::tenant(tenant).kind(EventKind::Restored)).await;
        let expected = usize::from(u64::from(sent) >= TRACE_QUOTA);
        assert_eq!(restored.len(), expected, "{log:?}: restores of {tenant}");
    }
    let reference = ReferenceEventLog::new();
    append_in_batches(&reference, &trace, 1000).await;
    assert_same_answers(log, &reference, &[BASE_NOW, BASE_NOW + DAY]).await;
}

/// A small deterministic generator (xorshift), so that a failing case is the same every run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// `count` arbitrary events over three days, from a handful of tenants and policies.
pub fn random_events(seed: u64, count: usize) -> Vec<LimitEvent> {
    let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let tenants = ["t1", "t2", "t3", "t4"];
    let policies = ["plan_daily", "plan_burst", "scope.export"];
    (0..count)
        .map(|_| {
            let kinds = EventKind::ALL;
            let kind = kinds[usize::try_from(random.below(kinds.len() as u64)).unwrap_or(0)];
            let at = BASE_NOW + random.below(3 * DAY);
            let mut event = LimitEvent::new(at, kind);
            if random.below(10) > 0 {
                event.tenant = Some(tenants[usize::try_from(random.below(4)).unwrap_or(0)].into());
            }
            event.user = Some(format!("u{}", random.below(3)));
            if !matches!(kind, EventKind::Bypassed | EventKind::StoreFailed) {
                let policy = policies[usize::try_from(random.below(3)).unwrap_or(0)];
                event.policy = Some(policy.into());
                let daily = policy == "plan_daily";
                event.period = if daily { DAY } else { MINUTE };
                event.window_start = at - at % event.period;
                event.limit = if daily { 100 } else { 10 };
                event.remaining = random.below(event.limit + 1);
                if kind == EventKind::Denied {
                    event.retry_after = 1 + random.below(HOUR);
                }
            } else {
                event.reason = Some("staff".into());
            }
            event.network = Some("203.0.113.0/24".into());
            event
        })
        .collect()
}

/// Random batches of events, appended to the log and to the reference: same answers.
pub async fn differential_against_the_reference(log: &dyn EventLog) {
    let reference = ReferenceEventLog::new();
    let mut events = random_events(7, 600);
    // Appends are in time order, as a recorder's are (give or take a batch).
    events.sort_by_key(|e| e.at);
    append_in_batches(log, &events, 50).await;
    append_in_batches(&reference, &events, 50).await;
    assert_same_answers(
        log,
        &reference,
        &[BASE_NOW, BASE_NOW + DAY, BASE_NOW + 2 * DAY],
    )
    .await;
    assert_eq!(
        all_pages(log, EventQuery::tenant("t1").limit(1000))
            .await
            .len(),
        reference
            .events()
            .iter()
            .filter(|e| e.tenant.as_deref() == Some("t1"))
            .count(),
        "{log:?}: every event of t1"
    );
}

/// Paging walks every matching event once, newest first, and a page holds at most its limit.
pub async fn events_are_paged_newest_first(log: &dyn EventLog) {
    let events: Vec<LimitEvent> = (0..25)
        .map(|i| {
            let mut e = LimitEvent::new(BASE_NOW + i * MINUTE, EventKind::Denied);
            e.tenant = Some("pager".into());
            e.policy = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
            e.remaining = i;
            e
        })
        .collect();
    append_in_batches(log, &events, 4).await;
    let all = all_pages(log, EventQuery::tenant("pager").limit(6)).await;
    let mut expected = events.clone();
    expected.reverse();
    assert_eq!(all, expected, "{log:?}: all events, newest first");
    let odd = all_pages(log, EventQuery::tenant("pager").policy("odd").limit(5)).await;
    assert_eq!(odd.len(), 12, "{log:?}: the odd ones");
    let range = all_pages(
        log,
        EventQuery::tenant("pager").between(BASE_NOW + 5 * MINUTE, BASE_NOW + 10 * MINUTE),
    )
    .await;
    let at: Vec<Micros> = range.iter().map(|e| (e.at - BASE_NOW) / MINUTE).collect();
    assert_eq!(at, [9, 8, 7, 6, 5], "{log:?}: the range is half open");
    let none = log
        .events(&EventQuery::tenant("nobody"))
        .await
        .expect("events");
    assert!(
        none.events.is_empty() && none.next.is_none(),
        "{log:?}: {none:?}"
    );
}

/// Pruning raw events keeps the aggregates, and the reverse.
pub async fn retention_prunes_events_and_aggregates_separately(log: &dyn EventLog) {
    let denial = |day: u64, tenant: &str| {
        let mut e = LimitEvent::new(BASE_NOW + day * DAY + HOUR, EventKind::Denied);
        e.tenant = Some(tenant.into());
        e.policy = Some("plan_daily".into());
        e
    };
    let events = [denial(0, "old"), denial(0, "old"), denial(2, "new")];
    log.append(&events).await.expect("append");
    let pruned = log
        .prune(&Retention {
            events_before: BASE_NOW + DAY,
            aggregates_before: 0,
        })
        .await
        .expect("prune");
    assert_eq!((pruned.events, pruned.aggregates), (2, 0), "{log:?}");
    assert!(
        log.hits(0, Micros::MAX)
            .await
            .expect("hits")
            .iter()
            .all(|h| h.tenant == "new")
    );
    let top = log.top_hit_tenants(BASE_NOW, 5).await.expect("top");
    assert_eq!(
        top.len(),
        1,
        "{log:?}: the aggregates of day 0 survive its raw events"
    );
    assert_eq!((top[0].tenant.as_str(), top[0].count), ("old", 2));
    let pruned = log
        .prune(&Retention {
            events_before: BASE_NOW + DAY,
            aggregates_before: BASE_NOW + DAY,
        })
        .await
        .expect("prune");
    assert_eq!((pruned.events, pruned.aggregates), (0, 1), "{log:?}");
    assert!(
        log.top_hit_tenants(BASE_NOW, 5)
            .await
            .expect("top")
            .is_empty()
    );
    let top = log
        .top_hit_tenants(BASE_NOW + 2 * DAY, 5)
        .await
        .expect("top");
    assert_eq!(top.len(), 1, "{log:?}: later days stay");
}

/// A restore candidate is kept only after an exhaustion in an earlier window, once.
pub async fn restores_follow_an_exhaustion(log: &dyn EventLog) {
    let event = |kind, day: u64| {
        let mut e = LimitEvent::new(BASE_NOW + day * DAY + HOUR, kind);
        e.tenant = Some("r".into());
        e.policy = Some("plan_daily".into());
        e.period = DAY;
        e.window_start = BASE_NOW + day * DAY;
        e.limit = 5;
        e
    };
    // Day 0: a first request (no exhaustion before it), then the exhaustion.
    log.append(&[
        event(EventKind::Restored, 0),
        event(EventKind::Exhausted, 0),
    ])
    .await
    .expect("append");
    // Day 1: the first request restores; a second candidate (a duplicate) does not.
    log.append(&[event(EventKind::Restored, 1)])
        .await
        .expect("append");
    log.append(&[event(EventKind::Restored, 1)])
        .await
        .expect("append");
    // Day 2: nothing was exhausted on day 1.
    log.append(&[event(EventKind::Restored, 2)])
        .await
        .expect("append");
    let restored = all_pages(log, EventQuery::tenant("r").kind(EventKind::Restored)).await;
    let days: Vec<Micros> = restored
        .iter()
        .map(|e| (e.window_start - BASE_NOW) / DAY)
        .collect();
    assert_eq!(days, [1], "{log:?}: one restore, on day 1");
}

/// Days are local days in the log's time zone: `Pacific/Auckland` (UTC+13 in November).
pub async fn days_follow_the_time_zone(log: &dyn EventLog) {
    // 10:00 UTC on BASE_NOW's day is 23:00 local; 12:00 UTC is 01:00 the next local day.
    let denial = |at: Micros, tenant: &str| {
        let mut e = LimitEvent::new(at, EventKind::Denied);
        e.tenant = Some(tenant.into());
        e.policy = Some("plan_daily".into());
        e
    };
    log.append(&[
        denial(BASE_NOW + 10 * HOUR, "late"),
        denial(BASE_NOW + 12 * HOUR, "early"),
    ])
    .await
    .expect("append");
    let top = log
        .top_hit_tenants(BASE_NOW + 10 * HOUR, 5)
        .await
        .expect("top");
    let names: Vec<&str> = top.iter().map(|t| t.tenant.as_str()).collect();
    assert_eq!(names, ["late"], "{log:?}: the local day of 23:00");
    let top = log
        .top_hit_tenants(BASE_NOW + 12 * HOUR, 5)
        .await
        .expect("top");
    let names: Vec<&str> = top.iter().map(|t| t.tenant.as_str()).collect();
    assert_eq!(names, ["early"], "{log:?}: the next local day");
}

/// The time zone [`days_follow_the_time_zone`] expects its log to count days in.
pub fn time_zone_of(contract: &str) -> Calendar {
    if contract == "days_follow_the_time_zone" {
        Calendar::new("Pacific/Auckland").expect("a known zone")
    } else {
        Calendar::utc()
    }
}

/// Generates one `#[tokio::test]` per [`EventLog`] contract, each on a fresh log from
/// `$new_log`: an `async fn(Calendar) -> Option<(impl EventLog + 'static, impl Send + 'static)>`
/// in the invoking file, given the time zone the log must count days in; `None` skips the
/// contract (no server), and the second element (a temporary directory, a server) outlives the
/// contract.
///
/// ```no_run
/// use limiter_core::Calendar;
/// use limiter_testkit::ReferenceEventLog;
///
/// async fn new_log(calendar: Calendar) -> Option<(ReferenceEventLog, ())> {
///     Some((ReferenceEventLog::with_calendar(calendar), ()))
/// }
///
/// limiter_testkit::event_log_suite!(new_log);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! event_log_suite {
    ($new_log:path) => {
        $crate::__event_log_tests! {
            $new_log;
            answers_the_report_from_a_recorded_trace,
            differential_against_the_reference,
            events_are_paged_newest_first,
            retention_prunes_events_and_aggregates_separately,
            restores_follow_an_exhaustion,
            days_follow_the_time_zone,
        }
    };
}

/// Implementation detail of [`event_log_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __event_log_tests {
    ($new_log:path; $($contract:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                let calendar = $crate::conformance::events::time_zone_of(stringify!($contract));
                let Some((log, _guard)) = $new_log(calendar).await else {
                    ::std::eprintln!("SKIPPED {}: no event log to test", stringify!($contract));
                    return;
                };
                $crate::conformance::events::$contract(&log).await;
            }
        )*
    };
}

/// Every limiter of `limiters` sends `requests` requests for each of `tenants` (plan `tiny` of
/// [`trace_policies`]), all at once from concurrent tasks; returns how many were admitted.
pub async fn fleet_day(limiters: &[Limiter], tenants: &[&'static str], requests: u32) -> u64 {
    let mut tasks = Vec::new();
    for limiter in limiters {
        for &tenant in tenants {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let request = Request::new().tenant(tenant).plan("tiny").user("u");
                let mut admitted = 0;
                for _ in 0..requests {
                    let decision = limiter.check(&request).await.expect("decided");
                    admitted += u64::from(decision.is_allowed());
                }
                admitted
            }));
        }
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.expect("a task");
    }
    admitted
}

/// Requests each limiter of [`fleet_records_one_crossing_per_window`] sends per tenant per day.
pub const FLEET_REQUESTS: u32 = 10;

/// Tenants of [`fleet_records_one_crossing_per_window`].
pub const FLEET_TENANTS: [&str; 5] = ["ant", "bee", "cat", "dog", "elk"];

/// Four limiters, one per `(store, log)` (the stores sharing one state, such as one SQLite file
/// or one Redis), each recording through its own recorder into its log, send concurrent
/// requests for two days: [`FLEET_REQUESTS`] per tenant each, twice the daily quota of
/// [`trace_policies`] in all. `query` (a log that sees every append) must then hold exactly one
/// approaching and one exhausted event of `plan_daily` per tenant per day, and one restore on
/// the second day. Between the days every drain writes what it holds, as a day's time gives it
/// to: a restore is judged against the earlier exhaustion the log holds when it arrives.
pub async fn fleet_records_one_crossing_per_window(
    members: Vec<(Arc<dyn limiter_core::Store>, Arc<dyn EventLog>)>,
    query: &dyn EventLog,
) {
    let clock = ManualClock::new(BASE_NOW);
    let mut limiters = Vec::new();
    let mut drains = Vec::new();
    for (store, log) in members {
        let (recorder, drain) = EventRecorder::new(log, RecorderConfig::default().batch(16));
        drains.push(tokio::spawn(drain.run()));
        limiters.push(
            Limiter::builder(trace_policies(), store)
                .clock(clock.clone())
                .events(recorder)
                .build(),
        );
    }
    for day in 0..2 {
        clock.set(BASE_NOW + day * DAY + HOUR);
        let admitted = fleet_day(&limiters, &FLEET_TENANTS, FLEET_REQUESTS).await;
        let tenants = u64::try_from(FLEET_TENANTS.len()).expect("small");
        assert_eq!(
            admitted,
            tenants * TRACE_QUOTA,
            "the fleet admits exactly the quota"
        );
        // A day passes before the next one starts: every drain has long written the day's
        // events, the exhaustion that a restore is judged against among them.
        for limiter in &limiters {
            while limiter
                .event_stats()
                .is_some_and(|s| s.written + s.failed + s.dropped < s.recorded)
            {
                tokio::task::yield_now().await;
            }
        }
    }
    let dropped: u64 = limiters
        .iter()
        .map(|l| l.event_stats().expect("a recorder").dropped)
        .sum();
    assert_eq!(dropped, 0, "the buffers are large enough for this load");
    drop(limiters);
    for drain in drains {
        let stats = drain.await.expect("the drain ends");
        assert_eq!(
            stats.failed, 0,
            "{query:?}: every batch was appended: {stats:?}"
        );
    }
    for tenant in FLEET_TENANTS {
        for day in 0..2 {
            let window = BASE_NOW + day * DAY;
            for kind in [EventKind::Approaching, EventKind::Exhausted] {
                let q = EventQuery::tenant(tenant)
                    .kind(kind)
                    .policy("plan_daily")
                    .between(window, window + DAY);
                let found = all_pages(query, q).await;
                assert_eq!(
                    found.len(),
                    1,
                    "{query:?}: {kind} events of {tenant} on day {day}"
                );
                assert_eq!(found[0].window_start, window);
            }
        }
        let restored = all_pages(query, EventQuery::tenant(tenant).kind(EventKind::Restored)).await;
        let days: Vec<Micros> = restored
            .iter()
            .map(|e| (e.window_start - BASE_NOW) / DAY)
            .collect();
        assert_eq!(days, [1], "{query:?}: restores of {tenant}");
        let denied = all_pages(query, EventQuery::tenant(tenant).kind(EventKind::Denied)).await;
        let sent = 4 * u64::from(FLEET_REQUESTS);
        assert_eq!(
            u64::try_from(denied.len()).expect("small"),
            2 * (sent - TRACE_QUOTA),
            "{query:?}: denials of {tenant}"
        );
    }
}
