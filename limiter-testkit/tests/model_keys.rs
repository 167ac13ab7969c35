//! The reference key store meets the key conformance suite.

use limiter_testkit::ModelKeyStore;

async fn new_store() -> ModelKeyStore {
    ModelKeyStore::new()
}

limiter_testkit::key_store_suite!(new_store);
