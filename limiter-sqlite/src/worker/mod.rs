//! The worker: a thread that owns the connection, drains the queue, and runs every queued call
//! in one `BEGIN IMMEDIATE` transaction (group commit).
//!
//! Taking the write lock before reading any state is what makes decisions exact across
//! processes: no other connection can read a key between our read and our write. One
//! transaction per group instead of per call shares the cost of the commit among the callers
//! that queued while the previous group ran, so throughput grows with concurrency.
//!
//! [`job`] says what the worker is asked and runs one job inside the open transaction,
//! [`serve`] is the thread that drains the queue, [`connection`] opens the database, and
//! [`checkpoint`] keeps WAL checkpoints on a thread of their own.

mod checkpoint;
mod connection;
mod job;
mod serve;

pub(crate) use connection::{Target, connect};
#[cfg(test)]
pub(crate) use job::test_hooks;
pub(crate) use job::{Call, Reply, Ticket};
pub(crate) use serve::spawn;
