//! Integration tests of the domain crate: plans as users write them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod plan;
