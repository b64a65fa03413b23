//! Engine tests: scheduling, retries, cancel, interrupt and crash recovery with a scripted
//! runner on paused time; merges, conflicts and timeouts with real git and real processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agents;
mod git;
mod governance;
mod policy;
mod recovery;
mod review;
mod rollback;
mod scheduler;
mod scheduling;
mod support;
