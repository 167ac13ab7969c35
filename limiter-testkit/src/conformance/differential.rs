//! The differential test against the reference model on random traffic traces.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use limiter_core::{EvalOptions, Store};

use super::DEFAULT_DIFFERENTIAL_CASES;
use crate::ModelStore;
use crate::fixtures::proptest_cases;
use crate::strategies::{self, Op, Trace};

/// On random traffic traces (see [`strategies::trace`]), the store answers every call exactly
/// as a fresh [`ModelStore`] does: the same verdict and the same status for every limit.
///
/// Each replay moves the trace to a namespace of its own, so that shrinking a failing trace
/// replays it on a clean slate. [`DEFAULT_DIFFERENTIAL_CASES`] traces, or
/// `LIMITER_PROPTEST_CASES`. Must run on a multi-threaded tokio runtime.
pub async fn differential_against_the_model(store: &dyn Store, namespace: &str) {
    let config = Config {
        cases: proptest_cases(DEFAULT_DIFFERENTIAL_CASES),
        failure_persistence: None,
        // Enough to reach a short trace; each iteration replays a trace on the store.
        max_shrink_iters: 1_024,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let replays = AtomicU64::new(0);
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategies::trace(namespace), |trace| {
            let n = replays.fetch_add(1, Ordering::Relaxed);
            let trace = trace.in_namespace(&format!("{namespace}-{n}"));
            handle.block_on(replay(store, &trace))
        })
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, trace)) => {
            panic!("{store} differs from the model: {reason}\nminimal trace: {trace:#?}")
        }
        Err(e) => panic!("{store}: differential test aborted: {e}"),
    }
}

async fn replay(store: &dyn Store, trace: &Trace) -> Result<(), TestCaseError> {
    let model = ModelStore::new();
    for (step, (now, op)) in trace.timed_steps().enumerate() {
        let at = EvalOptions::at(now);
        let fail = |what: &str, got: &dyn std::fmt::Debug, expected: &dyn std::fmt::Debug| {
            TestCaseError::fail(format!(
                "step {step} ({what} at {now}): store answered {got:?}, model {expected:?}"
            ))
        };
        let error =
            |e: limiter_core::Error| TestCaseError::fail(format!("step {step} at {now}: {e}"));
        match op {
            Op::Evaluate(batch) | Op::Peek(batch) => {
                let evaluate = matches!(op, Op::Evaluate(_));
                let options = if evaluate {
                    at.clone()
                } else {
                    EvalOptions::peek(now)
                };
                let got = store.evaluate(batch, &options).await;
                let expected = model.evaluate(batch, &options).await;
                let got = got.map_err(error)?;
                let expected = expected.map_err(error)?;
                if got != expected {
                    let what = if evaluate { "evaluate" } else { "peek" };
                    return Err(fail(what, &got, &expected));
                }
            }
            Op::Refund(batch) => {
                let refund = EvalOptions::refund(now, now);
                let got = store.evaluate(batch, &refund).await.map_err(error)?;
                let expected = model.evaluate(batch, &refund).await.map_err(error)?;
                if got != expected {
                    return Err(fail("refund", &got, &expected));
                }
            }
            Op::Reset(key) => {
                store.reset(key).await.map_err(error)?;
                model.reset(key).await.map_err(error)?;
            }
        }
    }
    Ok(())
}
