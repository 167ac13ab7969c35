//! The core's conformance suite, including the differential test against the reference model,
//! run against a default `MemoryStore` (automatic sweeps on, so the model also checks that a
//! sweep never changes a decision).

use limiter_memory::MemoryStore;

async fn new_store() -> impl limiter_core::Store + 'static {
    MemoryStore::default()
}

limiter_testkit::conformance_suite!(new_store);
