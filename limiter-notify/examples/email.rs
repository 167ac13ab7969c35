//! A sink of your own: one email per notice, rendered from a template and "sent" by printing it.
//!
//! A starter-plan tenant works through its daily quota of 5000 requests; the limiter writes the
//! notices of its `plan_daily` limit to the memory store's outbox as the charges cross 80% and
//! 100%; a worker delivers them through the email sink, and, as the manual clock reaches an
//! hour before midnight and midnight, the "resets soon" and "restored" notices too.
//!
//! ```sh
//! cargo run -p limiter-notify --example email
//! ```
//!
//! A real service would send with an SMTP or API client (lettre, an email provider's API) in
//! `deliver`, use the notice's id as the provider's idempotency key, and answer
//! `SinkError::retryable` for a timeout and `SinkError::permanent` for a refused address.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use limiter_core::notify::{NotifyKind, NotifyRules};
use limiter_core::policy::PolicyKind;
use limiter_core::{Limiter, ManualClock, Micros, PolicySet, Request};
use limiter_memory::MemoryStore;
use limiter_notify::{Delivery, Renderer, Sink, SinkError, Worker, WorkerConfig};

/// The email's subject and body, with `{tenant}`, `{message}`, `{upgrade}`, `{reset_at}` and
/// `{id}` filled in per notice. A line whose placeholder has no value is left out.
const SUBJECT: &str = "[Acme API] {message}";
const BODY: &str = "\
Hello {tenant} team,

{message}.
{upgrade}.
Your daily limit resets at {reset_at}.

Reference: {id}
";

/// Renders an email for each notice of a tenant with an address, and prints it.
#[derive(Debug)]
struct EmailSink {
    from: String,
    /// Where each tenant's notices go.
    addresses: HashMap<String, String>,
}

/// One rendered email.
struct Email {
    to: String,
    subject: String,
    body: String,
}

impl EmailSink {
    /// The email of `delivery`, or `None` if its tenant has no address.
    fn render(&self, delivery: &Delivery) -> Option<Email> {
        let notice = &delivery.notice;
        let tenant = notice.tenant.as_deref()?;
        let to = self.addresses.get(tenant)?.clone();
        // The reset is news while the quota runs low; after it, "resets soon" says it all.
        let warns = matches!(
            notice.kind(),
            NotifyKind::Approaching | NotifyKind::Exhausted
        );
        let reset_at = i64::try_from(notice.reset_at)
            .ok()
            .filter(|_| warns)
            .and_then(|at| jiff::Timestamp::from_microsecond(at).ok())
            .map(|at| at.strftime("%Y-%m-%d %H:%M UTC").to_string());
        let values: [(&str, Option<String>); 5] = [
            ("{tenant}", Some(tenant.to_owned())),
            ("{message}", Some(delivery.message.clone())),
            ("{upgrade}", delivery.upgrade.clone()),
            ("{reset_at}", reset_at),
            ("{id}", Some(delivery.id.clone())),
        ];
        let fill = |template: &str| -> String {
            template
                .lines()
                .filter_map(|line| {
                    let mut line = line.to_owned();
                    for (placeholder, value) in &values {
                        if line.contains(placeholder) {
                            line = line.replace(placeholder, value.as_deref()?);
                        }
                    }
                    Some(line)
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        Some(Email {
            to,
            subject: fill(SUBJECT),
            body: fill(BODY),
        })
    }
}

impl fmt::Display for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailSink({})", self.from)
    }
}

#[async_trait]
impl Sink for EmailSink {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
        let Some(email) = self.render(delivery) else {
            // No address for this tenant: nothing to send, and nothing to retry.
            return Ok(());
        };
        // Sending: the notice's id is the Message-ID, so a repeat (at least once delivery)
        // can be recognised by the provider or the reader's client.
        println!("From: {}", self.from);
        println!("To: {}", email.to);
        println!("Message-ID: <{}@notify.acme.example>", delivery.id);
        println!("Subject: {}\n\n{}\n", email.subject, email.body);
        Ok(())
    }
}

const HOUR: Micros = 3_600_000_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 2026-11-26, 08:00 UTC.
    let morning: Micros = 1_795_651_200_000_000 + 8 * HOUR;
    let clock = ManualClock::new(morning);
    let policies = Arc::new(PolicySet::default());
    let store = MemoryStore::default();
    let outbox = store.outbox();
    let limiter = Limiter::builder(PolicySet::clone(&policies), store)
        .clock(clock.clone())
        .notify(NotifyRules::new([PolicyKind::PlanDaily], [80])?)?
        .build();

    let sink = EmailSink {
        from: "limits@acme.example".to_owned(),
        addresses: HashMap::from([("globex".to_owned(), "ops@globex.example".to_owned())]),
    };
    let worker = Worker::builder(outbox, Renderer::new(Arc::clone(&policies)))
        .sink(sink)
        .clock(clock.clone())
        .config(WorkerConfig::new().with_name("email-example"))
        .build()?;

    // One request every 8 seconds (450 an hour, under the plan's 500/hour and 30/minute): the
    // daily quota of 5000 runs out in the evening.
    let request = Request::new().tenant("globex").plan("starter").user("u-7");
    let (mut admitted, mut denied) = (0, 0);
    for _ in 0..5_200 {
        if limiter.check(&request).await?.is_allowed() {
            admitted += 1;
        } else {
            denied += 1;
        }
        clock.advance(Duration::from_secs(8));
    }
    println!("== {admitted} requests admitted, {denied} denied by the daily quota\n");

    // The worker sends what is due: approaching (80%) and exhausted.
    let evening = worker.run_once().await?;
    // An hour before midnight: "resets soon". At midnight: "restored".
    clock.set(morning + 15 * HOUR);
    let late = worker.run_once().await?;
    clock.set(morning + 16 * HOUR);
    let midnight = worker.run_once().await?;
    println!(
        "== emails sent: {} in the evening, {} an hour before midnight, {} at midnight",
        evening.delivered, late.delivered, midnight.delivered
    );
    assert_eq!(
        (evening.delivered, late.delivered, midnight.delivered),
        (2, 1, 1)
    );
    Ok(())
}
