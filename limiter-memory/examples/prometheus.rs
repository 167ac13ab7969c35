//! Metrics in the Prometheus text format: a limiter built with `.metrics(true)` emits through
//! the `metrics` facade, and `metrics-exporter-prometheus` renders what it gathered.
//!
//! A service would serve `handle.render()` on `/metrics` (or enable the exporter's HTTP
//! listener); this example prints it after a few seconds of simulated traffic. Labels are
//! bounded: policy, outcome, backend, error kind, bypass reason, never a tenant, user, IP or
//! path.
//!
//! Run: `cargo run --example prometheus`

use std::sync::Arc;
use std::time::Duration;

use limiter_core::event::{EventRecorder, RecorderConfig};
use limiter_core::{Calendar, Limiter, ManualClock, PolicySet, Request};
use limiter_memory::{MemoryEventLog, MemoryStore};
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;

    let clock = ManualClock::new(1_795_683_600_000_000);
    // A tiny buffer, never drained during the run: the flood below overflows it, and the
    // drops show in `limiter_events_dropped_total`.
    let log = Arc::new(MemoryEventLog::new(Calendar::utc()));
    let (recorder, drain) = EventRecorder::new(log, RecorderConfig::default().capacity(64));
    let limiter = Limiter::builder(PolicySet::default(), MemoryStore::default())
        .clock(clock.clone())
        .metrics(true)
        .events(recorder)
        .build();

    let acme = Request::new().tenant("acme").plan("free").user("ann");
    let staff = Request::new().user("sam").staff(true);
    let anonymous = Request::new().ip([198, 51, 100, 7].into());
    for _ in 0..30 {
        for _ in 0..5 {
            limiter.check(&acme).await?;
            limiter.check(&anonymous).await?;
        }
        limiter.check(&staff).await?;
        clock.advance(Duration::from_secs(1));
    }
    drain.flush().await?;

    // Store latency is timed by the limiter's clock: 0 under this simulation's manual clock,
    // real figures under the system clock.
    println!("{}", handle.render());
    Ok(())
}
