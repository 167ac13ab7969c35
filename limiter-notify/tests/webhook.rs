//! The webhook sink against a real HTTP receiver, and `verify` as receivers use it.

mod common;

use std::time::Duration;

use axum::http::HeaderMap;
use limiter_core::notify::NotifyKind;
use limiter_core::{Clock, ManualClock, PolicySet, SystemClock};
use limiter_notify::{
    DEFAULT_TOLERANCE, Delivery, Renderer, Sink, VerifyError, WebhookEvent, WebhookSecret,
    WebhookSink, sign, verify,
};
use limiter_testkit::conformance::outbox::notice;
use limiter_testkit::fixtures::{BASE_NOW, SECOND};

fn delivery(tenant: &str, kind: NotifyKind) -> Delivery {
    let notice = notice(tenant, kind, BASE_NOW);
    let texts = Renderer::new(PolicySet::default()).render(&notice);
    Delivery::new(notice, texts)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn a_receiver_gets_signed_webhooks_that_verify() {
    let (addr, script) = common::receiver(500, 0).await;
    let secret = WebhookSecret::generate().unwrap();
    let receiver_secret: WebhookSecret = secret.expose_secret().parse().unwrap();
    let sink = WebhookSink::new(&format!("http://{addr}/hooks/limits"), secret).unwrap();
    let sent = [
        delivery("acme", NotifyKind::Approaching),
        delivery("acme", NotifyKind::Exhausted),
        delivery("bolt", NotifyKind::Restored),
    ];
    for d in &sent {
        sink.deliver(d).await.unwrap();
    }
    let received = script.received();
    assert_eq!(received.len(), sent.len());
    for (d, r) in sent.iter().zip(&received) {
        assert_eq!(header(&r.headers, "webhook-id"), d.id);
        assert_eq!(header(&r.headers, "content-type"), "application/json");
        let timestamp: u64 = header(&r.headers, "webhook-timestamp").parse().unwrap();
        assert!(
            timestamp.abs_diff(SystemClock.now() / SECOND) <= 60,
            "sent now"
        );
        verify(
            &receiver_secret,
            &r.headers,
            &r.body,
            SystemClock.now(),
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        let event: WebhookEvent = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(event, WebhookEvent::of(d));
        assert_eq!(event.event_type, format!("limit.{}", d.kind().name()));
        assert_eq!(event.data.id, d.id);
        assert_eq!(event.data.message, d.message);
        assert_eq!(event.data.tenant, d.notice.tenant);
    }
    let approaching: WebhookEvent = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(approaching.timestamp, "2026-11-26T00:00:00Z");
    assert_eq!(approaching.data.threshold, Some(80));
    assert_eq!(approaching.data.period_seconds, 86_400);
    assert_eq!(approaching.data.reset_at, "2026-11-27T00:00:00Z");
    assert_eq!(
        approaching.data.upgrade.as_deref(),
        Some("Upgrade to Professional for 20000/day; you are on Starter at 5000/day")
    );
}

#[tokio::test]
async fn the_timestamp_is_the_sinks_clock_at_send() {
    let (addr, script) = common::receiver(500, 0).await;
    let secret = WebhookSecret::generate().unwrap();
    let clock = ManualClock::new(BASE_NOW + 42 * SECOND);
    let sink = WebhookSink::new(&format!("http://{addr}/h"), secret.clone())
        .unwrap()
        .with_clock(clock.clone());
    let d = delivery("acme", NotifyKind::Exhausted);
    sink.deliver(&d).await.unwrap();
    clock.advance(Duration::from_secs(600));
    sink.deliver(&d.clone().with_attempt(2)).await.unwrap();
    let received = script.received();
    let stamps: Vec<&str> = received
        .iter()
        .map(|r| header(&r.headers, "webhook-timestamp"))
        .collect();
    let first = (BASE_NOW + 42 * SECOND) / SECOND;
    assert_eq!(stamps, [first.to_string(), (first + 600).to_string()]);
    // A retry keeps its id and gets a fresh timestamp and signature.
    assert_eq!(
        header(&received[0].headers, "webhook-id"),
        header(&received[1].headers, "webhook-id")
    );
    for r in &received {
        let at = header(&r.headers, "webhook-timestamp")
            .parse::<u64>()
            .unwrap()
            * SECOND;
        verify(&secret, &r.headers, &r.body, at, DEFAULT_TOLERANCE).unwrap();
    }
}

#[tokio::test]
async fn statuses_decide_retryable_and_permanent() {
    let cases: [(u16, bool); 9] = [
        (408, true),
        (429, true),
        (500, true),
        (502, true),
        (503, true),
        (400, false),
        (404, false),
        (410, false),
        (301, false),
    ];
    for (status, retryable) in cases {
        let (addr, script) = common::receiver(status, 1).await;
        let sink = WebhookSink::new(
            &format!("http://{addr}/h"),
            WebhookSecret::generate().unwrap(),
        )
        .unwrap();
        let d = delivery("acme", NotifyKind::Exhausted);
        let err = sink.deliver(&d).await.unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
        assert!(
            err.message().contains(&format!("answered {status}")),
            "{err}"
        );
        assert_eq!(err.retry_after(), None);
        // The receiver recovered: the same delivery goes through.
        sink.deliver(&d).await.unwrap();
        assert_eq!(script.received().len(), 2);
    }
}

#[tokio::test]
async fn retry_after_in_seconds_is_passed_on() {
    let (addr, script) = common::receiver(429, 1).await;
    *script.retry_after.lock().unwrap() = Some("120".to_owned());
    let sink = WebhookSink::new(
        &format!("http://{addr}/h"),
        WebhookSecret::generate().unwrap(),
    )
    .unwrap();
    let err = sink
        .deliver(&delivery("acme", NotifyKind::Exhausted))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn no_connection_and_no_answer_are_retryable() {
    // A port that was free a moment ago: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let sink = WebhookSink::new(
        &format!("http://{closed}/h"),
        WebhookSecret::generate().unwrap(),
    )
    .unwrap();
    let err = sink
        .deliver(&delivery("acme", NotifyKind::Exhausted))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.message().starts_with("could not connect"), "{err}");

    let (addr, _script) = common::receiver(500, 0).await;
    let sink = WebhookSink::new(
        &format!("http://{addr}/never"),
        WebhookSecret::generate().unwrap(),
    )
    .unwrap()
    .with_timeout(Duration::from_millis(200));
    let err = sink
        .deliver(&delivery("acme", NotifyKind::Exhausted))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.message(), "no answer within 200ms");
}

#[tokio::test]
async fn errors_and_names_hold_no_token_of_the_url_and_no_secret() {
    let (addr, _script) = common::receiver(404, 1).await;
    let secret = WebhookSecret::generate().unwrap();
    let written = secret.expose_secret();
    let url = format!("http://user:hunter2@{addr}/services/T0/SECRETPATH?token=SECRETQUERY");
    let sink = WebhookSink::new(&url, secret).unwrap();
    let err = sink
        .deliver(&delivery("acme", NotifyKind::Exhausted))
        .await
        .unwrap_err();
    for text in [
        err.to_string(),
        format!("{err:?}"),
        sink.to_string(),
        format!("{sink:?}"),
    ] {
        for secret in ["SECRETPATH", "SECRETQUERY", "hunter2", &written[6..]] {
            assert!(!text.contains(secret), "{text:?} shows {secret:?}");
        }
    }
    assert_eq!(sink.to_string(), format!("WebhookSink(http://{addr})"));
}

#[test]
fn addresses_that_cannot_work_are_refused_by_name() {
    let secret = || WebhookSecret::generate().unwrap();
    let err = |url: &str| WebhookSink::new(url, secret()).unwrap_err().to_string();
    assert!(err("ftp://x.example/h").contains("scheme \"ftp\" is not supported"));
    assert!(
        err("/relative/path")
            .starts_with("invalid configuration at webhook.url: not an absolute URL")
    );
    assert!(err("mailto:ops@example.com").contains("scheme \"mailto\""));
    // The rejected address is not repeated: it may hold a token.
    assert!(!err("not a url?token=SECRET").contains("SECRET"));
}

fn signed(secret: &WebhookSecret, id: &str, at: u64, body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", id.parse().unwrap());
    headers.insert("webhook-timestamp", at.to_string().parse().unwrap());
    headers.insert(
        "webhook-signature",
        sign(secret, id, at, body).parse().unwrap(),
    );
    headers
}

#[test]
fn verify_rejects_a_wrong_secret_a_tampered_body_and_an_old_timestamp() {
    let secret = WebhookSecret::generate().unwrap();
    let other = WebhookSecret::generate().unwrap();
    let body = br#"{"type":"limit.exhausted","data":{"tenant":"acme"}}"#;
    let sent = BASE_NOW / SECOND;
    let headers = signed(&secret, "ntf_1", sent, body);
    let now = BASE_NOW + 10 * SECOND;
    assert_eq!(
        verify(&secret, &headers, body, now, DEFAULT_TOLERANCE),
        Ok(())
    );

    assert_eq!(
        verify(&other, &headers, body, now, DEFAULT_TOLERANCE),
        Err(VerifyError::NoMatchingSignature { count: 1 })
    );
    let tampered = br#"{"type":"limit.exhausted","data":{"tenant":"bolt"}}"#;
    assert_eq!(
        verify(&secret, &headers, tampered, now, DEFAULT_TOLERANCE),
        Err(VerifyError::NoMatchingSignature { count: 1 })
    );
    // The id is signed too: moving the signature to another id fails.
    let mut moved = headers.clone();
    moved.insert("webhook-id", "ntf_2".parse().unwrap());
    assert!(verify(&secret, &moved, body, now, DEFAULT_TOLERANCE).is_err());

    let six_minutes_late = BASE_NOW + 6 * 60 * SECOND;
    let old = verify(&secret, &headers, body, six_minutes_late, DEFAULT_TOLERANCE).unwrap_err();
    assert_eq!(
        old,
        VerifyError::OutsideTolerance {
            timestamp: sent,
            now: sent + 360,
            tolerance: DEFAULT_TOLERANCE
        }
    );
    assert_eq!(
        old.to_string(),
        format!(
            "webhook-timestamp {sent} is 360s from now ({}); expected within 300s",
            sent + 360
        )
    );
    // From the future, by more than the tolerance: refused as well.
    let early = BASE_NOW - 6 * 60 * SECOND;
    assert!(matches!(
        verify(&secret, &headers, body, early, DEFAULT_TOLERANCE),
        Err(VerifyError::OutsideTolerance { .. })
    ));
    // Within a wider tolerance, the late one passes.
    assert_eq!(
        verify(
            &secret,
            &headers,
            body,
            six_minutes_late,
            Duration::from_secs(600)
        ),
        Ok(())
    );
}

#[test]
fn verify_accepts_any_one_of_several_signatures_and_names_missing_headers() {
    let (old, new) = (
        WebhookSecret::generate().unwrap(),
        WebhookSecret::generate().unwrap(),
    );
    let body = b"{}";
    let sent = BASE_NOW / SECOND;
    let mut headers = signed(&new, "ntf_1", sent, body);
    let rotated = format!(
        "v1a,bm9wZQ== v1,!!notbase64 {} {}",
        sign(&old, "ntf_1", sent, body),
        sign(&new, "ntf_1", sent, body)
    );
    headers.insert("webhook-signature", rotated.parse().unwrap());
    assert_eq!(
        verify(&old, &headers, body, BASE_NOW, DEFAULT_TOLERANCE),
        Ok(())
    );
    assert_eq!(
        verify(&new, &headers, body, BASE_NOW, DEFAULT_TOLERANCE),
        Ok(())
    );
    let third = WebhookSecret::generate().unwrap();
    assert_eq!(
        verify(&third, &headers, body, BASE_NOW, DEFAULT_TOLERANCE),
        Err(VerifyError::NoMatchingSignature { count: 4 })
    );

    headers.remove("webhook-timestamp");
    let err = verify(&new, &headers, body, BASE_NOW, DEFAULT_TOLERANCE).unwrap_err();
    assert_eq!(err, VerifyError::MissingHeader("webhook-timestamp"));
    headers.insert("webhook-timestamp", "yesterday".parse().unwrap());
    let err = verify(&new, &headers, body, BASE_NOW, DEFAULT_TOLERANCE).unwrap_err();
    assert_eq!(err, VerifyError::InvalidTimestamp("yesterday".to_owned()));
}
