//! The request log: one JSON object per line for each decided request, written by the HTTP
//! layer's recorder and read back by `limiter replay`.
//!
//! A [`RequestRecord`] holds exactly what a [`Request`] needs, so that a line rebuilds the
//! request the limiter saw, plus when it was decided and what was decided, kept for reference:
//!
//! ```json
//! {"ts":"2026-11-26T10:00:00.123456Z","tenant":"acme","plan":"starter","user":"u-42",
//!  "roles":["admin"],"staff":false,"superuser":false,"key_id":null,"bypass_key":false,
//!  "ip":"203.0.113.9","scope":"export","method":"GET","route":"/reports/{id}","cost":1,
//!  "decision":"denied","policy":"scope.export"}
//! ```
//!
//! (one line in the file). Every field but `ts` may be left out: absent strings are `null`,
//! `roles` is empty, the flags are false and `cost` is 1. Fields this version does not know
//! are ignored, so that a newer recorder's log still replays. `ts` is an RFC 3339 instant,
//! written in UTC with microseconds; `route` is the route's pattern, not the raw path, so that
//! requests group by endpoint and no identifier leaks into the log. The API key appears by its
//! id only, never its secret.
//!
//! ```
//! use limiter_core::request_log::{RecordedDecision, RequestRecord};
//!
//! let line = r#"{"ts":"2026-11-26T10:00:00.123456Z","tenant":"acme","user":"u-42","ip":"203.0.113.9","route":"/export","decision":"allowed"}"#;
//! let record: RequestRecord = serde_json::from_str(line)?;
//! assert_eq!(record.ts, 1_795_687_200_123_456);
//! assert_eq!(record.decision, Some(RecordedDecision::Allowed));
//! let request = record.to_request();
//! assert_eq!(request.tenant.as_deref(), Some("acme"));
//! assert_eq!(request.cost, 1);
//! // Written back, the line reads the same.
//! let again: RequestRecord = serde_json::from_str(&serde_json::to_string(&record)?)?;
//! assert_eq!(again, record);
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::{ApiKey, Decision, Micros, Request};

/// One line of the request log: a request as the limiter saw it, when, and what it decided.
///
/// See the [module docs](self) for the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RequestRecord {
    /// When the request was decided, in microseconds since the Unix epoch (an RFC 3339
    /// instant in the file, such as `2026-11-26T10:00:00.123456Z`).
    #[serde(serialize_with = "write_ts", deserialize_with = "read_ts")]
    pub ts: Micros,
    /// The tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The tenant's plan.
    #[serde(default)]
    pub plan: Option<String>,
    /// The authenticated user.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether the user is staff.
    #[serde(default)]
    pub staff: bool,
    /// Whether the user is a superuser.
    #[serde(default)]
    pub superuser: bool,
    /// The id of the verified API key the request came with (never its secret).
    #[serde(default)]
    pub key_id: Option<String>,
    /// Whether that key is flagged to bypass rate limits.
    #[serde(default)]
    pub bypass_key: bool,
    /// The client IP.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// The endpoint group.
    #[serde(default)]
    pub scope: Option<String>,
    /// The HTTP method.
    #[serde(default)]
    pub method: Option<String>,
    /// The route's pattern (`/reports/{id}`), which replay reports group by.
    #[serde(default)]
    pub route: Option<String>,
    /// Units the request cost.
    #[serde(default = "one")]
    pub cost: u32,
    /// What was decided, for reference: replay decides again and compares.
    #[serde(default)]
    pub decision: Option<RecordedDecision>,
    /// The policy that denied the request (the decision's binding policy), if denied.
    #[serde(default)]
    pub policy: Option<String>,
}

fn one() -> u32 {
    1
}

/// What the limiter decided for a recorded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordedDecision {
    /// `allowed`: counted and let through.
    Allowed,
    /// `denied`: rate limited.
    Denied,
    /// `bypassed`: let through without counting.
    Bypassed,
    /// `key_rejected`: the presented API key was refused.
    KeyRejected,
    /// `unavailable`: the store failed and the request was refused (a closing fail mode), or
    /// the limiter could not decide at all.
    Unavailable,
}

impl RecordedDecision {
    /// The outcome of `decision`.
    pub fn of(decision: &Decision) -> RecordedDecision {
        if decision.bypass().is_some() {
            RecordedDecision::Bypassed
        } else if decision.is_allowed() {
            RecordedDecision::Allowed
        } else if decision.key_rejection().is_some() {
            RecordedDecision::KeyRejected
        } else if decision.failure().is_some() {
            RecordedDecision::Unavailable
        } else {
            RecordedDecision::Denied
        }
    }

    /// The name in the log: `allowed`, `denied`, `bypassed`, `key_rejected` or `unavailable`.
    pub fn name(self) -> &'static str {
        match self {
            RecordedDecision::Allowed => "allowed",
            RecordedDecision::Denied => "denied",
            RecordedDecision::Bypassed => "bypassed",
            RecordedDecision::KeyRejected => "key_rejected",
            RecordedDecision::Unavailable => "unavailable",
        }
    }

    /// Whether the request went through (allowed or bypassed).
    pub fn is_allowed(self) -> bool {
        matches!(self, RecordedDecision::Allowed | RecordedDecision::Bypassed)
    }
}

impl fmt::Display for RecordedDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl RequestRecord {
    /// The record of `request`, decided at `ts` (microseconds since the epoch) as `decision`
    /// says: what the recorder writes. `route` is the route's pattern, if the service knows
    /// it; otherwise the request's path is recorded.
    ///
    /// ```
    /// use limiter_core::request_log::RequestRecord;
    /// use limiter_core::{Decision, Request, BypassReason};
    ///
    /// let request = Request::new().user("root").staff(true).endpoint("GET", "/admin");
    /// let decision = Decision::bypassed(BypassReason::Staff);
    /// let record = RequestRecord::new(&request, 1_795_687_200_000_000, &decision, None);
    /// assert_eq!(
    ///     serde_json::to_string(&record)?,
    ///     r#"{"ts":"2026-11-26T10:00:00Z","tenant":null,"plan":null,"user":"root","roles":[],"staff":true,"superuser":false,"key_id":null,"bypass_key":false,"ip":null,"scope":null,"method":"GET","route":"/admin","cost":1,"decision":"bypassed","policy":null}"#
    /// );
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn new(
        request: &Request,
        ts: Micros,
        decision: &Decision,
        route: Option<&str>,
    ) -> RequestRecord {
        let recorded = RecordedDecision::of(decision);
        let policy = match recorded {
            RecordedDecision::Denied => decision.binding().map(|s| s.policy.to_string()),
            _ => None,
        };
        RequestRecord::decided(request, ts, route, recorded, policy)
    }

    fn decided(
        request: &Request,
        ts: Micros,
        route: Option<&str>,
        decision: RecordedDecision,
        policy: Option<String>,
    ) -> RequestRecord {
        RequestRecord {
            ts,
            tenant: request.tenant.clone(),
            plan: request.plan.clone(),
            user: request.user.clone(),
            roles: request.roles.clone(),
            staff: request.is_staff,
            superuser: request.is_superuser,
            key_id: request.api_key.as_ref().map(|k| k.id.clone()),
            bypass_key: request.api_key.as_ref().is_some_and(|k| k.bypass),
            ip: request.client_ip,
            scope: request.scope.clone(),
            method: request.method.clone(),
            route: route.map(str::to_owned).or_else(|| request.path.clone()),
            cost: request.cost,
            decision: Some(decision),
            policy,
        }
    }

    /// The record of `request`, which the limiter could not decide (the store failed with no
    /// fail mode to decide, or the request was invalid), at `ts`.
    pub fn undecided(request: &Request, ts: Micros, route: Option<&str>) -> RequestRecord {
        RequestRecord::decided(request, ts, route, RecordedDecision::Unavailable, None)
    }

    /// The request this line records (its route as the request's path).
    pub fn to_request(&self) -> Request {
        self.clone().into_request()
    }

    /// The request this line records, moving the strings out of the record instead of copying
    /// them: the fast path for a replay that reads one record per line.
    pub fn into_request(self) -> Request {
        Request {
            tenant: self.tenant,
            plan: self.plan,
            user: self.user,
            roles: self.roles,
            is_staff: self.staff,
            is_superuser: self.superuser,
            api_key: self.key_id.map(|id| ApiKey {
                id,
                bypass: self.bypass_key,
            }),
            client_ip: self.ip,
            scope: self.scope,
            cost: self.cost,
            method: self.method,
            path: self.route,
        }
    }
}

/// Parses an RFC 3339 instant into microseconds since the epoch; instants before the epoch are
/// refused, since the limiter's time starts there.
///
/// ```
/// use limiter_core::request_log::parse_ts;
///
/// assert_eq!(parse_ts("1970-01-01T00:00:01.5Z"), Ok(1_500_000));
/// assert_eq!(parse_ts("2026-11-26T11:00:00+01:00"), Ok(1_795_687_200_000_000));
/// assert!(parse_ts("yesterday").is_err());
/// ```
pub fn parse_ts(text: &str) -> Result<Micros, String> {
    let ts: jiff::Timestamp = text.parse().map_err(|e| {
        format!("invalid ts {text:?}: {e}; expected an RFC 3339 instant such as 2026-11-26T10:00:00.123456Z")
    })?;
    Micros::try_from(ts.as_microsecond()).map_err(|_| {
        format!("invalid ts {text:?}: before 1970-01-01T00:00:00Z; expected a later instant")
    })
}

/// Renders microseconds since the epoch as an RFC 3339 instant in UTC, as the log holds it.
///
/// ```
/// use limiter_core::request_log::format_ts;
///
/// assert_eq!(format_ts(1_795_687_200_123_456), "2026-11-26T10:00:00.123456Z");
/// ```
pub fn format_ts(ts: Micros) -> String {
    i64::try_from(ts)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map_or_else(|| jiff::Timestamp::MAX.to_string(), |t| t.to_string())
}

fn write_ts<S: Serializer>(ts: &Micros, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_ts(*ts))
}

fn read_ts<'de, D: Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
    struct TsVisitor;
    impl de::Visitor<'_> for TsVisitor {
        type Value = Micros;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 instant such as 2026-11-26T10:00:00.123456Z")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Micros, E> {
            parse_ts(v).map_err(E::custom)
        }
    }
    // A borrowed string where the input allows: no allocation per line.
    d.deserialize_str(TsVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_line_rebuilds_an_anonymous_request_of_cost_one() {
        let record: RequestRecord =
            serde_json::from_str(r#"{"ts":"2026-11-26T10:00:00Z","ip":"192.0.2.1"}"#).unwrap();
        let request = record.into_request();
        assert_eq!(request, Request::new().ip([192, 0, 2, 1].into()));
    }

    #[test]
    fn every_field_survives_a_round_trip_through_a_request() {
        let line = r#"{"ts":"2026-11-26T10:00:00.000001Z","tenant":"acme","plan":"starter","user":"u","roles":["admin","hr"],"staff":true,"superuser":true,"key_id":"k1","bypass_key":true,"ip":"2001:db8::1","scope":"export","method":"POST","route":"/x","cost":3,"decision":"denied","policy":"plan_burst","extra":"ignored"}"#;
        let record: RequestRecord = serde_json::from_str(line).unwrap();
        let request = record.to_request();
        let expected = Request::new()
            .tenant("acme")
            .plan("starter")
            .user("u")
            .role("admin")
            .role("hr")
            .staff(true)
            .superuser(true)
            .api_key("k1", true)
            .ip("2001:db8::1".parse().unwrap())
            .scope("export")
            .endpoint("POST", "/x")
            .cost(3);
        assert_eq!(request, expected);
        assert_eq!(record.decision, Some(RecordedDecision::Denied));
        assert_eq!(record.policy.as_deref(), Some("plan_burst"));
    }

    #[test]
    fn a_bad_timestamp_names_the_value_and_the_expected_form() {
        let err = serde_json::from_str::<RequestRecord>(r#"{"ts":"26/11/2026"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid ts \"26/11/2026\": "),
            "{err}"
        );
        assert!(
            err.to_string().contains("expected an RFC 3339 instant"),
            "{err}"
        );
        let err = serde_json::from_str::<RequestRecord>(r#"{"ip":"192.0.2.1"}"#).unwrap_err();
        assert!(err.to_string().starts_with("missing field `ts`"), "{err}");
    }
}
