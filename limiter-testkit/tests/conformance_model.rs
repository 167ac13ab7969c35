//! The conformance suite run against the reference model itself: the contracts must hold for
//! the model before they can judge a backend by it.

use limiter_testkit::ModelStore;

async fn new_store() -> ModelStore {
    ModelStore::new()
}

limiter_testkit::conformance_suite!(new_store);
