//! Arbitrary bytes as a TOML and as a JSON configuration: loading and compiling never panic;
//! a configuration that loads serializes to TOML that loads back equal; a policy set that
//! compiles resolves requests without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limiter_core::Request;
use limiter_core::policy::{Config, PolicySet};

fn requests() -> Vec<Request> {
    vec![
        Request::new(),
        Request::new()
            .ip("203.0.113.9".parse().expect("valid ip"))
            .scope("auth"),
        Request::new()
            .tenant("acme")
            .plan("professional")
            .user("u-1")
            .role("admin")
            .role("member")
            .scope("export")
            .ip("2001:db8::1".parse().expect("valid ip")),
        Request::new()
            .tenant("acme")
            .plan("gold")
            .user("u-2")
            .api_key("k-1", true),
        Request::new().user("u-3").staff(true),
        Request::new().user("u-4").scope("anon").cost(1_000_000),
    ]
}

fn exercise(config: &Config) {
    if let Ok(text) = config.to_toml_string() {
        let back = Config::from_toml_str(&text)
            .unwrap_or_else(|e| panic!("serialized config does not load: {e}\n{text}"));
        assert_eq!(
            &back, config,
            "serialized config loads back different:\n{text}"
        );
    }
    if let Ok(policies) = PolicySet::from_config(config) {
        for request in requests() {
            let _ = policies.resolve(&request);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(config) = Config::from_toml_str(&input) {
        exercise(&config);
    }
    if let Ok(config) = Config::from_json_str(&input) {
        exercise(&config);
    }
});
