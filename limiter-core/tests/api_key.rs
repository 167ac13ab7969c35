//! API keys: the format's properties, and verification in the decision path.

use std::sync::Arc;

use proptest::prelude::*;

use limiter_core::api_key::{
    KeyAdmin, KeyFormat, KeyId, KeyRecord, KeyRejection, Malformed, NewKey, SCANNER_PATTERN,
    has_valid_checksum,
};
use limiter_core::time::Micros;
use limiter_core::{BypassReason, Event, Hook, Limiter, ManualClock, PolicySet, Request};
use limiter_testkit::{CountingKeyStore, CountingStore, ModelKeyStore, ModelStore};

const NOW: Micros = 1_790_000_000_000_000;

fn prefixes() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_]{0,38}[A-Za-z0-9]|[A-Za-z]"
}

fn base62() -> impl Strategy<Value = String> {
    "[0-9A-Za-z]{32}"
}

proptest! {
    #[test]
    fn generated_keys_always_parse(prefix in prefixes()) {
        let format = KeyFormat::new(prefix).unwrap();
        let key = format.generate().unwrap();
        prop_assert_eq!(format.parse(key.expose()), Ok(()));
        prop_assert!(has_valid_checksum(key.expose()));
        prop_assert_eq!(key.expose().len(), format.key_len());
        prop_assert!(key.start().len() == format.prefix().len() + 5);
    }

    #[test]
    fn any_single_character_change_is_refused(
        prefix in prefixes(),
        random in base62(),
        position in any::<prop::sample::Index>(),
        replacement in any::<char>(),
    ) {
        let format = KeyFormat::new(prefix).unwrap();
        let key = format.with_random(&random).unwrap();
        let key = key.expose();
        let i = position.index(key.len());
        prop_assume!(key.as_bytes()[i] as char != replacement);
        let mut changed = key[..i].to_owned();
        changed.push(replacement);
        changed.push_str(&key[i + 1..]);
        let err = format.parse(&changed).unwrap_err();
        // A change after the prefix to another base62 character is caught by the checksum.
        if i > format.prefix().len() && replacement.is_ascii_alphanumeric() {
            prop_assert_eq!(err, Malformed::BadChecksum);
        }
        prop_assert!(!has_valid_checksum(&changed) || !changed.starts_with(format.prefix()));
    }

    #[test]
    fn deleting_or_inserting_a_character_is_refused(
        random in base62(),
        position in any::<prop::sample::Index>(),
        extra in "[0-9A-Za-z_]",
    ) {
        let format = KeyFormat::new("acme_live").unwrap();
        let key = format.with_random(&random).unwrap();
        let key = key.expose();
        let i = position.index(key.len());
        let deleted = format!("{}{}", &key[..i], &key[i + 1..]);
        let inserted = format!("{}{extra}{}", &key[..i], &key[i..]);
        prop_assert!(format.parse(&deleted).is_err());
        prop_assert!(format.parse(&inserted).is_err());
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let format = KeyFormat::new("acme_live").unwrap();
        let _ = format.parse(&text);
        let _ = has_valid_checksum(&text);
    }
}

#[test]
fn the_scanner_patterns_describe_the_keys() {
    let format = KeyFormat::new("acme_live").unwrap();
    assert_eq!(format.scanner_pattern(), r"\bacme_live_[0-9A-Za-z]{38}\b");
    assert!(SCANNER_PATTERN.contains("{38}"));
}

/// Records the bypass reasons of decisions.
#[derive(Debug, Default)]
struct Bypasses(std::sync::Mutex<Vec<BypassReason>>);

impl Hook for Bypasses {
    fn on_event(&self, event: &Event<'_>) {
        if let Event::Decided { decision, .. } = event
            && let Some(reason) = decision.bypass()
        {
            self.0.lock().unwrap().push(reason.clone());
        }
    }
}

struct Setup {
    limiter: Limiter,
    admin: KeyAdmin,
    keys: Arc<CountingKeyStore<ModelKeyStore>>,
    limits: Arc<CountingStore<ModelStore>>,
    clock: ManualClock,
    bypasses: Arc<Bypasses>,
}

fn setup() -> Setup {
    let format = KeyFormat::new("acme_live").unwrap();
    let keys = Arc::new(CountingKeyStore::new(ModelKeyStore::new()));
    let limits = Arc::new(CountingStore::new(ModelStore::new()));
    let clock = ManualClock::new(NOW);
    let bypasses = Arc::new(Bypasses::default());
    let limiter = Limiter::builder(PolicySet::default(), limits.clone())
        .clock(clock.clone())
        .keys(format.clone(), keys.clone())
        .hook(bypasses.clone())
        .build();
    let admin = KeyAdmin::new(format, keys.clone());
    Setup {
        limiter,
        admin,
        keys,
        limits,
        clock,
        bypasses,
    }
}

fn client() -> Request {
    Request::new()
        .plan("free")
        .ip("203.0.113.9".parse().unwrap())
}

#[tokio::test]
async fn a_bypass_key_skips_the_limits_without_a_limit_store_call_and_is_recorded() {
    let s = setup();
    let issued = s
        .admin
        .create(NewKey::new("acme", "partner").bypass(true), NOW)
        .await
        .unwrap();
    for _ in 0..1_000 {
        let d = s
            .limiter
            .check_key(issued.secret.expose(), client())
            .await
            .unwrap();
        assert!(d.is_allowed());
    }
    assert_eq!(s.limits.calls(), 0, "no limit-store call for a bypass key");
    let bypasses = s.bypasses.0.lock().unwrap().clone();
    assert_eq!(bypasses.len(), 1_000);
    assert_eq!(
        bypasses[0],
        BypassReason::ApiKey(issued.record.id.to_string())
    );
    // The last use is written once, not once per request.
    assert_eq!(s.keys.touches(), 1);
    let record = s.admin.get("acme", &issued.record.id).await.unwrap();
    assert_eq!(record.last_used_at, Some(NOW));
}

#[tokio::test]
async fn without_the_flag_the_key_is_held_to_its_tenants_plan() {
    let s = setup();
    let issued = s
        .admin
        .create(NewKey::new("acme", "partner").bypass(true), NOW)
        .await
        .unwrap();
    s.admin
        .set_bypass("acme", &issued.record.id, false, NOW)
        .await
        .unwrap();
    // A request naming another tenant is counted against the key's tenant.
    let req = client().tenant("someone-else");
    for i in 0..10 {
        let d = s
            .limiter
            .check_key(issued.secret.expose(), req.clone())
            .await
            .unwrap();
        assert!(d.is_allowed(), "request {}", i + 1);
        assert!(d.statuses()[0].key.as_str().contains("{t=acme}"));
    }
    let d = s
        .limiter
        .check_key(issued.secret.expose(), req)
        .await
        .unwrap();
    assert!(!d.is_allowed(), "the 11th within a minute");
    assert_eq!(&*d.binding().unwrap().policy, "plan_burst");
    assert_eq!(d.key_rejection(), None);
}

#[tokio::test]
async fn each_refusal_says_why_and_charges_the_clients_network() {
    let s = setup();
    let admin = &s.admin;
    let revoked = admin.create(NewKey::new("acme", "r"), NOW).await.unwrap();
    admin.revoke("acme", &revoked.record.id, NOW).await.unwrap();
    let expired = admin
        .create(NewKey::new("acme", "e").expires_at(NOW + 5), NOW)
        .await
        .unwrap();
    let inactive = admin.create(NewKey::new("acme", "i"), NOW).await.unwrap();
    admin
        .set_active("acme", &inactive.record.id, false, NOW)
        .await
        .unwrap();
    s.clock.set(NOW + 5);
    let unknown = KeyFormat::new("acme_live").unwrap().generate().unwrap();
    let cases = [
        (revoked.secret.expose(), KeyRejection::Revoked),
        (expired.secret.expose(), KeyRejection::Expired),
        (inactive.secret.expose(), KeyRejection::Inactive),
        (unknown.expose(), KeyRejection::Unknown),
    ];
    for (n, (secret, why)) in cases.into_iter().enumerate() {
        let d = s.limiter.check_key(secret, client()).await.unwrap();
        assert!(!d.is_allowed());
        assert_eq!(d.key_rejection(), Some(why));
        assert_eq!(
            d.message().unwrap(),
            format!("Invalid API key: {}.", why.name())
        );
        assert_eq!(d.retry_after(), None, "a valid key helps, waiting does not");
        let status = &d.statuses()[0];
        assert_eq!(&*status.policy, "key_failures");
        assert_eq!(status.key.as_str(), "limiter:key_failures:{ip=203.0.113.9}");
        assert_eq!(status.status.remaining, 20 - 1 - n as u64);
    }
}

#[tokio::test]
async fn guessing_is_limited_per_network() {
    let s = setup();
    let format = KeyFormat::new("acme_live").unwrap();
    for _ in 0..20 {
        let guess = format.generate().unwrap();
        let d = s.limiter.check_key(guess.expose(), client()).await.unwrap();
        assert!(d.retry_after().is_none());
    }
    let guess = format.generate().unwrap();
    let d = s.limiter.check_key(guess.expose(), client()).await.unwrap();
    assert_eq!(d.key_rejection(), Some(KeyRejection::Unknown));
    assert!(
        d.retry_after().is_some(),
        "the 21st failure within a minute"
    );
    assert!(d.message().unwrap().starts_with("Request was throttled."));
    // Another network is not held back.
    let other = Request::new().ip("198.51.100.1".parse().unwrap());
    let d = s.limiter.check_key(guess.expose(), other).await.unwrap();
    assert!(d.retry_after().is_none());
}

#[tokio::test]
async fn a_garbage_flood_reaches_no_store() {
    let s = setup();
    let format = KeyFormat::new("acme_live").unwrap();
    let key = format.generate().unwrap();
    let mut typo = key.expose().to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let garbage = [
        "",
        "acme_live_",
        "Bearer xyz",
        "acme_test_0000000000000000000000000000000000000",
        typo.as_str(),
    ];
    for _ in 0..200 {
        for g in garbage {
            let d = s.limiter.check_key(g, client()).await.unwrap();
            assert!(
                matches!(d.key_rejection(), Some(KeyRejection::Malformed(_))),
                "{g:?}"
            );
            assert!(d.statuses().is_empty());
        }
    }
    assert_eq!(s.keys.lookups(), 0, "no key lookup");
    assert_eq!(s.limits.calls(), 0, "no limit-store call");
}

#[tokio::test]
async fn rotation_keeps_both_keys_working_through_the_overlap() {
    let s = setup();
    let old = s
        .admin
        .create(NewKey::new("acme", "ci"), NOW)
        .await
        .unwrap();
    let new = s
        .admin
        .rotate(
            "acme",
            &old.record.id,
            std::time::Duration::from_secs(60),
            NOW,
        )
        .await
        .unwrap();
    assert_ne!(old.record.id, new.record.id);
    for secret in [&old.secret, &new.secret] {
        assert!(s.limiter.verify_key(secret.expose()).await.unwrap().is_ok());
    }
    s.clock.set(NOW + 60_000_000);
    assert_eq!(
        s.limiter.verify_key(old.secret.expose()).await.unwrap(),
        Err(KeyRejection::Expired)
    );
    assert!(
        s.limiter
            .verify_key(new.secret.expose())
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn a_limiter_without_keys_says_so() {
    let limiter = Limiter::new(PolicySet::default(), ModelStore::new());
    let err = limiter.verify_key("acme_live_x").await.unwrap_err();
    assert!(err.to_string().contains("LimiterBuilder::keys"), "{err}");
}

#[test]
fn no_type_that_holds_a_secret_prints_it() {
    let format = KeyFormat::new("acme_live").unwrap();
    let secret = format.generate().unwrap();
    let record = KeyRecord::new(
        KeyId::new("key_1"),
        &secret,
        &NewKey::new("acme", "ci"),
        NOW,
    );
    let hidden = &secret.expose()[format.prefix().len() + 5..];
    for shown in [format!("{secret:?}"), format!("{record:?}")] {
        assert!(!shown.contains(hidden), "{shown}");
    }
    let json = serde_json::to_string(&record).unwrap();
    assert!(!json.contains(hidden), "{json}");
}
