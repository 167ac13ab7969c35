//! Each decision opens a `tracing` span carrying the tenant.
//!
//! Alone in its test binary: `tracing` caches, per call site, whether any subscriber wants its
//! spans, and a test on another thread without a subscriber could cache "no" while this one's
//! scoped subscriber is installed.

use std::sync::Arc;

use limiter_core::{Limiter, ManualClock, Micros, PolicySet, Request};
use limiter_testkit::ModelStore;

const NOW: Micros = 1_790_000_000_000_000;

fn free_user() -> Request {
    Request::new()
        .tenant("acme")
        .plan("free")
        .user("ann")
        .ip("203.0.113.9".parse().expect("ip"))
}

/// A `tracing` subscriber that keeps the name and fields of every span opened.
#[derive(Debug, Default)]
struct Spans(Arc<std::sync::Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl tracing::Subscriber for Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = Fields(span.metadata().name().to_owned());
        span.record(&mut fields);
        let mut spans = self.0.lock().expect("not poisoned");
        spans.push(fields.0);
        tracing::span::Id::from_u64(u64::try_from(spans.len()).expect("small"))
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn each_decision_has_a_span_with_the_tenant() {
    let spans = Spans::default();
    let seen = Arc::clone(&spans.0);
    tracing::subscriber::with_default(spans, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let limiter = Limiter::builder(PolicySet::default(), ModelStore::new())
                .clock(ManualClock::new(NOW))
                .build();
            limiter.check(&free_user()).await.expect("check");
            limiter.check(&free_user()).await.expect("check");
        });
    });
    let seen = seen.lock().expect("not poisoned");
    assert_eq!(
        *seen,
        ["limiter.check tenant=acme", "limiter.check tenant=acme"]
    );
}
