//! Test kit (feature `testkit`): proptest strategies, the reference model store and the
//! conformance suite that every backend runs.
