//! Rates, periods, limits, instants and costs.

use proptest::prelude::*;
use proptest::sample::select;

use limiter_core::algorithm::SLIDING_LOG_MAX_LIMIT;
use limiter_core::time::{MAX_TIMESTAMP, Micros};
use limiter_core::{Calendar, Limit, MAX_LIMIT, MAX_PERIOD_MICROS, Period, Rate, Unit};

use super::*;

/// 2026-01-01T00:00:00Z.
const YEAR_2026: Micros = 1_767_225_600_000_000;
const DAY: Micros = 86_400_000_000;

/// Noon UTC (or midnight) the day before a DST change in one of [`TIME_ZONES`], so that traces
/// starting there cross it.
const DST_EVES: &[Micros] = &[
    1_774_699_200_000_000, // 2026-03-28T12:00Z, Europe/Paris springs forward next night
    1_792_843_200_000_000, // 2026-10-24T12:00Z, Europe/Paris falls back next night
    1_772_884_800_000_000, // 2026-03-07T12:00Z, America/New_York springs forward
    1_793_448_000_000_000, // 2026-10-31T12:00Z, America/New_York falls back
    1_775_260_800_000_000, // 2026-04-04T00:00Z, Australia/Lord_Howe falls back 30 minutes
    1_790_985_600_000_000, // 2026-10-03T00:00Z, Australia/Lord_Howe springs forward 30 minutes
    1_788_609_600_000_000, // 2026-09-05T12:00Z, America/Santiago skips midnight
];

fn max_count(unit: Unit) -> u32 {
    u32::try_from(MAX_PERIOD_MICROS / unit.micros()).unwrap_or(u32::MAX)
}

fn unit() -> impl Strategy<Value = Unit> {
    select(&[Unit::Second, Unit::Minute, Unit::Hour, Unit::Day][..])
}

/// Any valid period: one to the most units that fit in 366 days, biased towards a multiplier
/// of one and towards the longest.
pub fn period() -> BoxedStrategy<Period> {
    unit()
        .prop_flat_map(|unit| {
            let max = max_count(unit);
            (
                Just(unit),
                prop_oneof![4 => Just(1), 4 => 1..=max, 1 => Just(max)],
            )
        })
        .prop_filter_map("period within 366 days", |(unit, count)| {
            Period::new(count, unit)
        })
        .boxed()
}

/// Any limit `1..=max`, biased towards small ones and the extremes.
pub(super) fn limit_up_to(max: u64) -> BoxedStrategy<u64> {
    prop_oneof![
        4 => 1..=max.min(100),
        4 => 1..=max,
        1 => Just(max),
        1 => Just(1),
    ]
    .boxed()
}

/// Any rate that parses: a limit of 1 to [`MAX_LIMIT`] per any period up to 366 days, at most
/// one per microsecond.
pub fn rate() -> BoxedStrategy<Rate> {
    period()
        .prop_flat_map(|period| {
            let max = MAX_LIMIT.min(period.micros());
            (Just(period), limit_up_to(max))
        })
        .prop_filter_map("valid rate", |(period, limit)| {
            Rate::new(limit, period).ok()
        })
        .boxed()
}

/// Any rate whose period is one day, however it is spelled (`d`, `24h`, `1440m`, `86400s`).
pub fn daily_rate() -> BoxedStrategy<Rate> {
    let periods = [
        Period::new(1, Unit::Day),
        Period::new(24, Unit::Hour),
        Period::new(1_440, Unit::Minute),
        Period::new(86_400, Unit::Second),
    ];
    let periods: Vec<Period> = periods.into_iter().flatten().collect();
    (select(periods), limit_up_to(MAX_LIMIT))
        .prop_filter_map("valid rate", |(period, limit)| {
            Rate::new(limit, period).ok()
        })
        .boxed()
}

/// A calendar in one of [`TIME_ZONES`].
pub fn calendar() -> BoxedStrategy<Calendar> {
    select(TIME_ZONES)
        .prop_filter_map("known time zone", |zone| Calendar::new(zone).ok())
        .boxed()
}

/// Any valid limit, over all four algorithms and the whole accepted domain: GCRA and sliding
/// window on any [`rate`], sliding log up to [`SLIDING_LOG_MAX_LIMIT`], calendar on any
/// [`daily_rate`] in any of [`TIME_ZONES`].
pub fn limit() -> BoxedStrategy<Limit> {
    let log_rate = rate().prop_flat_map(|r| {
        let max = SLIDING_LOG_MAX_LIMIT.min(r.limit());
        (Just(r.period()), limit_up_to(max))
    });
    prop_oneof![
        rate().prop_map(Limit::gcra),
        rate().prop_map(Limit::sliding_window),
        log_rate.prop_filter_map("valid sliding log", |(period, limit)| {
            Limit::sliding_log(Rate::new(limit, period).ok()?).ok()
        }),
        (daily_rate(), calendar())
            .prop_filter_map("valid calendar", |(r, c)| Limit::calendar(r, c).ok()),
    ]
    .boxed()
}

/// A small limit that traces can reach and see roll over: 1 to 12 units per a few seconds to
/// a few hours, or per calendar day; all four algorithms.
pub fn small_limit() -> BoxedStrategy<Limit> {
    let period = prop_oneof![
        (1..=120u32).prop_map(|n| Period::new(n, Unit::Second)),
        (1..=90u32).prop_map(|n| Period::new(n, Unit::Minute)),
        (1..=6u32).prop_map(|n| Period::new(n, Unit::Hour)),
    ]
    .prop_filter_map("valid period", |p| p);
    let rate = (1..=12u64, period).prop_filter_map("valid rate", |(l, p)| Rate::new(l, p).ok());
    let daily = (1..=12u64).prop_filter_map("valid rate", |l| Rate::per(l, Unit::Day).ok());
    prop_oneof![
        rate.clone().prop_map(Limit::gcra),
        rate.clone().prop_map(Limit::sliding_window),
        rate.prop_filter_map("valid sliding log", |r| Limit::sliding_log(r).ok()),
        (daily, calendar()).prop_filter_map("valid calendar", |(r, c)| Limit::calendar(r, c).ok()),
    ]
    .boxed()
}

/// A realistic instant: any time in 2026 or 2027, or shortly before a DST change.
pub fn instant() -> BoxedStrategy<Micros> {
    prop_oneof![
        3 => (0..=2 * 366 * DAY).prop_map(|offset| YEAR_2026 + offset),
        1 => (select(DST_EVES), 0..=2 * DAY).prop_map(|(eve, offset)| eve + offset),
    ]
    .boxed()
}

/// Any instant the algorithms handle, biased towards the epoch, the present and
/// [`MAX_TIMESTAMP`].
pub fn any_instant() -> BoxedStrategy<Micros> {
    prop_oneof![
        2 => instant(),
        2 => 0..=MAX_TIMESTAMP,
        1 => (0..=2 * MAX_PERIOD_MICROS).prop_map(|d| MAX_TIMESTAMP - d),
        1 => 0..=2 * MAX_PERIOD_MICROS,
        1 => Just(MAX_TIMESTAMP),
    ]
    .boxed()
}

/// A cost for `limit`: mostly 1, sometimes up to the limit, sometimes above it (impossible).
pub fn cost(limit: u64) -> BoxedStrategy<u64> {
    let limit = limit.max(1);
    prop_oneof![
        6 => Just(1),
        2 => 1..=limit,
        1 => (limit + 1)..=(2 * limit + 1),
    ]
    .boxed()
}
