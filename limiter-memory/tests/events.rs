//! The event log suite on the in-memory log.

use limiter_core::Calendar;
use limiter_memory::MemoryEventLog;

async fn new_log(calendar: Calendar) -> Option<(MemoryEventLog, ())> {
    Some((MemoryEventLog::new(calendar), ()))
}

limiter_testkit::event_log_suite!(new_log);
