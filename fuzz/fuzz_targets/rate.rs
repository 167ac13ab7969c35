//! Arbitrary strings parsed as rates: parsing never panics, and a parsed rate's `Display`
//! parses back to the same rate (and displays the same).
#![no_main]

use libfuzzer_sys::fuzz_target;
use limiter_core::{MAX_LIMIT, MAX_PERIOD_MICROS, Rate};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Ok(rate) = input.parse::<Rate>() else {
        return;
    };
    assert!(
        (1..=MAX_LIMIT).contains(&rate.limit()),
        "{input:?} -> {rate:?}"
    );
    assert!(
        rate.period().micros() <= MAX_PERIOD_MICROS,
        "{input:?} -> {rate:?}"
    );
    assert!(
        rate.limit() <= rate.period().micros(),
        "{input:?} -> {rate:?}"
    );
    let shown = rate.to_string();
    let again: Rate = shown.parse().unwrap_or_else(|e| {
        panic!("{input:?} -> {rate:?} displays as {shown:?}, which fails: {e}")
    });
    assert_eq!(again, rate, "{input:?} displays as {shown:?}");
    assert_eq!(again.to_string(), shown);
});
