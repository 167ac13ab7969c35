//! Generated configurations (`testkit::strategies::config`) compile, read back equal from
//! their TOML and JSON forms, and resolve any request into a batch a store accepts.

use limiter_core::Error;
use limiter_core::batch::Batch;
use limiter_core::policy::{Config, PolicySet, Resolution};
use limiter_testkit::fixtures::proptest_cases;
use limiter_testkit::strategies;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: proptest_cases(default_cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/config_props.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn every_generated_config_compiles(config in strategies::config()) {
        if let Err(e) = PolicySet::from_config(&config) {
            prop_assert!(false, "{e}\n{config:#?}");
        }
    }

    #[test]
    fn configs_read_back_equal_from_toml(config in strategies::config()) {
        let text = config.to_toml_string().map_err(|e| TestCaseError::fail(e.to_string()))?;
        match Config::from_toml_str(&text) {
            Ok(back) => prop_assert_eq!(back, config, "{}", text),
            Err(e) => prop_assert!(false, "{e}\n{text}"),
        }
    }

    #[test]
    fn configs_read_back_equal_from_json(config in strategies::config()) {
        let text = serde_json::to_string(&config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match Config::from_json_str(&text) {
            Ok(back) => prop_assert_eq!(back, config, "{}", text),
            Err(e) => prop_assert!(false, "{e}\n{text}"),
        }
    }

    #[test]
    fn requests_resolve_into_batches_a_store_accepts(
        config in strategies::config(),
        requests in prop::collection::vec(strategies::request(), 1..8),
    ) {
        let policies = PolicySet::from_config(&config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let prefix = format!("{}:", config.namespace);
        for request in &requests {
            match policies.resolve(request) {
                Ok(Resolution::Limits(checks) | Resolution::Kept { checks, .. }) => {
                    for check in &checks {
                        prop_assert!(check.key.as_str().starts_with(&prefix), "{:?}", check.key);
                        prop_assert_eq!(check.cost, u64::from(request.cost));
                    }
                    if let Err(e) = Batch::new(checks) {
                        prop_assert!(false, "{e} for {request:?}");
                    }
                }
                Ok(Resolution::Bypass(_)) => {}
                Ok(other) => prop_assert!(false, "unexpected {other:?}"),
                Err(Error::UnknownPlan { plan, .. }) => {
                    prop_assert!(!config.plans.contains_key(&plan), "{plan} is configured");
                }
                // Anonymous limits count per client network: without one, the request is
                // refused unless the configuration lets it through.
                Err(Error::InvalidRequest(message)) if request.is_anonymous()
                    && request.client_ip.is_none()
                    && config.client.require_ip => {
                    prop_assert!(message.contains("no client IP"), "{message}");
                }
                Err(e) => prop_assert!(false, "{e} for {request:?}"),
            }
        }
    }
}
