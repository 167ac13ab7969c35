//! A warm `Limiter::check` of the default decision on the memory store allocates nothing.
//!
//! A counting global allocator counts the allocations of the calling thread only, so the test
//! harness's own threads cannot disturb the figure.

// A `GlobalAlloc` impl is unsafe by definition; this one only forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use limiter_core::{Limiter, ManualClock, PolicySet, Request};
use limiter_memory::MemoryStore;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Polls a future that never waits (the memory store's) to completion, with no runtime.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Allocations per call of `check` for `request`, over `calls` warm calls (time advances three
/// minutes between calls, so every one is admitted and charges its `limits` limits).
fn per_check(request: &Request, limits: usize, calls: u64) -> u64 {
    let clock = ManualClock::new(1_795_651_200_000_000);
    let store = Arc::new(MemoryStore::default());
    let limiter = Limiter::builder(PolicySet::default(), Arc::clone(&store))
        .clock(clock.clone())
        .build();
    // Warm: the keys exist and every lazily built part of the path has been built.
    for _ in 0..3 {
        let decision = ready(limiter.check(request)).expect("decided");
        assert!(decision.is_allowed(), "{decision:?}");
        clock.advance(Duration::from_secs(180));
    }
    let before = allocations();
    for _ in 0..calls {
        let decision = ready(limiter.check(request)).expect("decided");
        assert!(decision.is_allowed(), "{decision:?}");
        assert_eq!(decision.statuses().len(), limits, "{decision:?}");
        clock.advance(Duration::from_secs(180));
    }
    allocations() - before
}

#[test]
fn a_warm_default_decision_allocates_nothing() {
    let request = Request::new()
        .tenant("acme")
        .plan("professional")
        .user("alice")
        .role("admin")
        .ip(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
    assert_eq!(per_check(&request, 5, 100), 0);
}

#[test]
fn a_warm_anonymous_ipv6_decision_allocates_nothing() {
    let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xaaaa, 0xbbbb, 1, 2, 3, 4));
    let request = Request::new().ip(ip);
    assert_eq!(per_check(&request, 2, 100), 0);
}

#[test]
fn the_counter_sees_allocations() {
    // The check above cannot pass by counting nothing.
    let before = allocations();
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(8));
    drop(v);
    assert_eq!(allocations() - before, 1);
}
