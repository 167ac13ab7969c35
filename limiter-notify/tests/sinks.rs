//! The inbox sink keeps notices per tenant; the log sink writes one event per notice.

use std::io::Write;
use std::sync::{Arc, Mutex};

use limiter_core::PolicySet;
use limiter_core::notify::{Inbox, InboxQuery, NotifyKind};
use limiter_memory::MemoryInbox;
use limiter_notify::{Delivery, InboxSink, LogSink, Renderer, Sink};
use limiter_testkit::conformance::events::DAY;
use limiter_testkit::conformance::outbox::notice;
use limiter_testkit::fixtures::{BASE_NOW, HOUR};

fn delivery(tenant: Option<&str>, kind: NotifyKind, due: u64) -> Delivery {
    let mut notice = notice(tenant.unwrap_or("nobody"), kind, due);
    if tenant.is_none() {
        notice.tenant = None;
        notice.identity.subject = "ip=192.0.2.0/24".into();
    }
    let texts = Renderer::new(PolicySet::default()).render(&notice);
    Delivery::new(notice, texts)
}

#[tokio::test]
async fn the_inbox_sink_lists_notices_per_tenant_once_each() {
    let inbox = Arc::new(MemoryInbox::new());
    let sink = InboxSink::new(inbox.clone());
    let acme_80 = delivery(Some("acme"), NotifyKind::Approaching, BASE_NOW);
    let acme_out = delivery(Some("acme"), NotifyKind::Exhausted, BASE_NOW);
    let acme_back = delivery(Some("acme"), NotifyKind::Restored, BASE_NOW + DAY);
    let bolt_80 = delivery(Some("bolt"), NotifyKind::Approaching, BASE_NOW);
    let anonymous = delivery(None, NotifyKind::Exhausted, BASE_NOW);
    for d in [&acme_80, &acme_out, &acme_back, &bolt_80, &anonymous] {
        sink.deliver(d).await.unwrap();
    }
    // At least once: a redelivery leaves one item, and its read mark.
    assert!(
        inbox
            .mark_read("acme", &acme_80.id, BASE_NOW + HOUR)
            .await
            .unwrap()
    );
    sink.deliver(&acme_80.clone().with_attempt(2))
        .await
        .unwrap();

    let acme = inbox.list(&InboxQuery::tenant("acme")).await.unwrap();
    let ids: Vec<&str> = acme.iter().map(|i| i.id.as_str()).collect();
    // Newest first: "restored" happens at the reset, a day after the crossing.
    assert_eq!(ids[0], acme_back.id);
    assert_eq!(acme.len(), 3);
    assert_eq!(acme[0].at, BASE_NOW + DAY);
    assert_eq!(acme[0].message, "Your API access has been restored");
    let out = acme.iter().find(|i| i.id == acme_out.id).unwrap();
    assert_eq!(out.kind, NotifyKind::Exhausted);
    assert_eq!(out.policy, "plan_daily");
    assert_eq!(
        out.message,
        "You've used all of your daily limit of 5000/day"
    );
    assert_eq!(
        out.upgrade.as_deref(),
        Some("Upgrade to Professional for 20000/day; you are on Starter at 5000/day")
    );
    assert_eq!(inbox.unread("acme").await.unwrap(), 2);

    let bolt = inbox.list(&InboxQuery::tenant("bolt")).await.unwrap();
    assert_eq!(bolt.len(), 1);
    assert_eq!(bolt[0].id, bolt_80.id);
    // The notice without a tenant went nowhere, and was no error.
    assert!(InboxSink::item(&anonymous).is_none());
    assert!(
        inbox
            .list(&InboxQuery::tenant("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A writer into a shared buffer, for the log sink's output.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_log_sink_writes_one_event_per_notice_with_its_fields() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let sink = LogSink::new();
    let d = delivery(Some("acme"), NotifyKind::Approaching, BASE_NOW);
    sink.deliver(&d).await.unwrap();
    LogSink::new()
        .with_level(tracing::Level::WARN)
        .deliver(&delivery(Some("bolt"), NotifyKind::Exhausted, BASE_NOW))
        .await
        .unwrap();
    let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].contains(" INFO limiter_notify::log:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("You're at 80% of your daily limit"),
        "{}",
        lines[0]
    );
    for field in [
        format!("id={}", d.id),
        "kind=approaching".to_owned(),
        "tenant=\"acme\"".to_owned(),
        "policy=plan_daily".to_owned(),
        "threshold=80".to_owned(),
        "limit=5000".to_owned(),
        "attempt=1".to_owned(),
    ] {
        assert!(lines[0].contains(&field), "{field} in {}", lines[0]);
    }
    assert!(
        lines[1].contains(" WARN limiter_notify::log:"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("tenant=\"bolt\""), "{}", lines[1]);
}
