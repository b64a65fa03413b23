//! End-to-end tests: the real `kamachiq` binary on real git repositories, with real processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod doctor;
mod governance;
mod lifecycle;
mod policy;
mod rollback;
mod sandbox;
mod serve;
mod stop;
mod support;
mod workspaces;
