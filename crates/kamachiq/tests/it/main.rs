//! End-to-end tests: the real `kamachiq` binary on real git repositories, with real processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod lifecycle;
mod rollback;
mod serve;
mod support;
