//! Rates: `N/period`, such as `100/hour`, `10/5m` or `1000/1d`.

use std::fmt;
use std::str::FromStr;

use crate::Error;
use crate::time::{MICROS_PER_SECOND, Micros};

/// The largest limit a rate may have.
pub const MAX_LIMIT: u64 = 1_000_000_000;

/// The longest period a rate may have: 366 days.
pub const MAX_PERIOD_MICROS: Micros = 366 * 86_400 * MICROS_PER_SECOND;

/// A unit of a rate's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// One second.
    Second,
    /// Sixty seconds.
    Minute,
    /// Sixty minutes.
    Hour,
    /// Twenty-four hours. A [calendar window](crate::algorithm::Calendar) reads a day as
    /// midnight to midnight in its time zone, which may be 23 or 25 hours on DST days.
    Day,
}

impl Unit {
    /// The unit's length in microseconds.
    pub const fn micros(self) -> Micros {
        match self {
            Unit::Second => MICROS_PER_SECOND,
            Unit::Minute => 60 * MICROS_PER_SECOND,
            Unit::Hour => 3_600 * MICROS_PER_SECOND,
            Unit::Day => 86_400 * MICROS_PER_SECOND,
        }
    }

    fn long_name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
        }
    }

    fn short_name(self) -> &'static str {
        match self {
            Unit::Second => "s",
            Unit::Minute => "m",
            Unit::Hour => "h",
            Unit::Day => "d",
        }
    }

    fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "s" | "sec" | "secs" | "second" | "seconds" => Unit::Second,
            "m" | "min" | "mins" | "minute" | "minutes" => Unit::Minute,
            "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Hour,
            "d" | "day" | "days" => Unit::Day,
            _ => return None,
        })
    }
}

/// A rate's period: a multiplier and a unit (`5m` is five minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    count: u32,
    unit: Unit,
}

impl Period {
    /// A period of `count` units; `None` if `count` is zero or the period exceeds 366 days.
    pub fn new(count: u32, unit: Unit) -> Option<Period> {
        let micros = u64::from(count).checked_mul(unit.micros())?;
        (count > 0 && micros <= MAX_PERIOD_MICROS).then_some(Period { count, unit })
    }

    /// The multiplier (`5` in `5m`).
    pub fn count(self) -> u32 {
        self.count
    }

    /// The unit (`Minute` in `5m`).
    pub fn unit(self) -> Unit {
        self.unit
    }

    /// The period's length in microseconds.
    pub fn micros(self) -> Micros {
        // Cannot overflow: checked in `new`.
        u64::from(self.count) * self.unit.micros()
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 1 {
            f.write_str(self.unit.long_name())
        } else {
            write!(f, "{}{}", self.count, self.unit.short_name())
        }
    }
}

/// `limit` requests per `period`.
///
/// Parsed from strings of the form `N/period`, where the period is an optional multiplier and a
/// unit: `s`, `sec`, `second(s)`; `m`, `min`, `minute(s)`; `h`, `hour(s)`; `d`, `day(s)`.
///
/// ```
/// use limiter_core::Rate;
///
/// let r: Rate = "10/5m".parse()?;
/// assert_eq!(r.limit(), 10);
/// assert_eq!(r.period().micros(), 300_000_000);
/// assert_eq!(r.to_string(), "10/5m");
///
/// // Django REST Framework's spellings mean the same here...
/// assert_eq!("100/hour".parse::<Rate>()?, "100/h".parse::<Rate>()?);
/// // ...except that the multiplier counts: DRF reads "10/5m" as 10 per minute.
/// assert_ne!("10/5m".parse::<Rate>()?, "10/m".parse::<Rate>()?);
///
/// let err = "10/fortnight".parse::<Rate>().unwrap_err();
/// assert!(err.to_string().contains("unknown period unit \"fortnight\""));
/// # Ok::<(), limiter_core::Error>(())
/// ```
///
/// A limit is 1 to 1,000,000,000, a period at most 366 days, and a rate at most one request
/// per microsecond, so that every algorithm's arithmetic stays exact (below 2^53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    limit: u64,
    period: Period,
}

impl Rate {
    /// `limit` per `period`; an error if the limit is zero, above [`MAX_LIMIT`], or more than one
    /// per microsecond of the period.
    pub fn new(limit: u64, period: Period) -> Result<Rate, Error> {
        let invalid = |reason: String| Error::InvalidRate {
            input: format!("{limit}/{period}"),
            reason,
        };
        if limit == 0 {
            return Err(invalid("the limit must be at least 1".into()));
        }
        if limit > MAX_LIMIT {
            return Err(invalid(format!("the limit must be at most {MAX_LIMIT}")));
        }
        if limit > period.micros() {
            return Err(invalid(
                "more than one request per microsecond is not supported".into(),
            ));
        }
        Ok(Rate { limit, period })
    }

    /// Shorthand for `N` per one `unit`.
    pub fn per(limit: u64, unit: Unit) -> Result<Rate, Error> {
        // A count of 1 is always a valid period.
        let period = Period { count: 1, unit };
        Rate::new(limit, period)
    }

    /// The number of requests (cost units) admitted per period.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, self.period)
    }
}

const EXPECTED: &str = "expected N/period such as 100/hour, 10/5m or 1000/1d, \
                        with units s, m, h or d, optionally with a multiplier such as 5m";

impl FromStr for Rate {
    type Err = Error;

    fn from_str(input: &str) -> Result<Rate, Error> {
        let invalid = |reason: String| Error::InvalidRate {
            input: input.to_owned(),
            reason,
        };
        let Some((num, period)) = input.trim().split_once('/') else {
            return Err(invalid(format!("missing \"/\" ({EXPECTED})")));
        };
        let num = num.trim();
        let period = period.trim();
        if num.is_empty() {
            return Err(invalid(format!(
                "missing the number of requests ({EXPECTED})"
            )));
        }
        if !num.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!(
                "the number of requests {num:?} is not a whole number ({EXPECTED})"
            )));
        }
        let limit: u64 = num.parse().map_err(|_| {
            invalid(format!(
                "the limit {num} is too large (at most {MAX_LIMIT})"
            ))
        })?;
        if limit == 0 {
            return Err(invalid("the limit must be at least 1".into()));
        }
        if limit > MAX_LIMIT {
            return Err(invalid(format!(
                "the limit {limit} is too large (at most {MAX_LIMIT})"
            )));
        }
        if period.is_empty() {
            return Err(invalid(format!("missing the period ({EXPECTED})")));
        }
        let digits = period.bytes().take_while(u8::is_ascii_digit).count();
        let (count, unit) = period.split_at(digits);
        let unit_str = unit.trim_start();
        let count: u32 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| {
                invalid(format!(
                    "the period multiplier {count} is too large (at most 366 days)"
                ))
            })?
        };
        if count == 0 {
            return Err(invalid("the period multiplier must be at least 1".into()));
        }
        let Some(unit) = Unit::parse(&unit_str.to_ascii_lowercase()) else {
            return Err(invalid(if unit_str.is_empty() {
                format!("missing the period unit ({EXPECTED})")
            } else {
                format!("unknown period unit {unit_str:?} ({EXPECTED})")
            }));
        };
        let Some(period) = Period::new(count, unit) else {
            return Err(invalid(format!(
                "the period {count}{} is too long (at most 366 days)",
                unit.short_name()
            )));
        };
        if limit > period.micros() {
            return Err(invalid(
                "more than one request per microsecond is not supported".into(),
            ));
        }
        Ok(Rate { limit, period })
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate string such as \"100/hour\" or \"10/5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Rate, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        s.parse::<Rate>().unwrap_err().to_string()
    }

    #[test]
    fn drf_spellings_parse_like_drf() {
        for (s, limit, micros) in [
            ("100/hour", 100, 3_600_000_000),
            ("100/h", 100, 3_600_000_000),
            ("10/minute", 10, 60_000_000),
            ("10/min", 10, 60_000_000),
            ("5/second", 5, 1_000_000),
            ("5/sec", 5, 1_000_000),
            ("500/day", 500, 86_400_000_000),
            ("500/d", 500, 86_400_000_000),
            ("3/m", 3, 60_000_000),
            ("30/hours", 30, 3_600_000_000),
        ] {
            let r: Rate = s.parse().unwrap();
            assert_eq!((r.limit(), r.period().micros()), (limit, micros), "{s}");
        }
    }

    #[test]
    fn multipliers_count() {
        let r: Rate = "10/5m".parse().unwrap();
        assert_eq!(r.period().micros(), 300_000_000);
        let r: Rate = "5/30s".parse().unwrap();
        assert_eq!(r.period().micros(), 30_000_000);
        let r: Rate = "1000/1d".parse().unwrap();
        assert_eq!(r.period().micros(), 86_400_000_000);
        let r: Rate = " 7 / 2 hours ".parse().unwrap();
        assert_eq!((r.limit(), r.period().micros()), (7, 7_200_000_000));
    }

    #[test]
    fn malformed_rates_name_the_input_and_the_expectation() {
        let cases = [
            ("", "missing \"/\""),
            ("100", "invalid rate \"100\": missing \"/\""),
            ("/hour", "missing the number of requests"),
            (
                "abc/hour",
                "the number of requests \"abc\" is not a whole number",
            ),
            ("-5/hour", "\"-5\" is not a whole number"),
            ("1.5/hour", "\"1.5\" is not a whole number"),
            ("0/hour", "the limit must be at least 1"),
            ("99999999999999999999999/hour", "too large"),
            (
                "2000000000/day",
                "the limit 2000000000 is too large (at most 1000000000)",
            ),
            ("10/", "missing the period"),
            (
                "10/fortnight",
                "unknown period unit \"fortnight\" (expected N/period",
            ),
            ("10/5", "missing the period unit"),
            ("10/0m", "the period multiplier must be at least 1"),
            ("10/400d", "the period 400d is too long (at most 366 days)"),
            ("10/99999999999m", "multiplier 99999999999 is too large"),
            ("2000000/1s", "more than one request per microsecond"),
        ];
        for (input, needle) in cases {
            let msg = err(input);
            assert!(msg.contains(needle), "{input:?}: {msg}");
            assert!(msg.starts_with(&format!("invalid rate {input:?}")), "{msg}");
        }
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!("100/h".parse::<Rate>().unwrap().to_string(), "100/hour");
        assert_eq!("10/5min".parse::<Rate>().unwrap().to_string(), "10/5m");
        assert_eq!("1000/1d".parse::<Rate>().unwrap().to_string(), "1000/day");
    }

    #[test]
    fn serde_round_trips_as_a_string() {
        let r: Rate = serde_json::from_str("\"10/5m\"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"10/5m\"");
        let e = serde_json::from_str::<Rate>("\"10/parsec\"").unwrap_err();
        assert!(
            e.to_string().contains("unknown period unit \"parsec\""),
            "{e}"
        );
    }
}
