//! Integration tests of the review crate: diffs as git prints them, checked as the engine
//! checks a deliverable before promoting it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixtures;
mod git;
mod self_scan;
mod serde;
mod support;
