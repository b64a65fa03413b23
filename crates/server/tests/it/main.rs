//! Server tests: the whole HTTP API called with `oneshot` (no socket), on a SQLite store in a
//! temporary home, with a scheduler that drives runs of real (short) processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod checklist;
mod control;
mod errors;
mod events;
mod governance;
mod metrics;
mod openapi;
mod policy;
mod readiness;
mod runs;
mod summary;
mod support;
mod tenants;
mod tokens;
