//! The event log suite against the reference log itself: the contracts hold of the log every
//! backend is compared with.

use limiter_core::Calendar;
use limiter_testkit::ReferenceEventLog;

async fn new_log(calendar: Calendar) -> Option<(ReferenceEventLog, ())> {
    Some((ReferenceEventLog::with_calendar(calendar), ()))
}

limiter_testkit::event_log_suite!(new_log);
