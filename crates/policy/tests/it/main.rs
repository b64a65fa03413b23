//! kamachiq-policy from the outside: the example policies, the JSON forms, replay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bench_policy;
mod examples;
mod json;
mod replay;
mod support;
