//! kamachiq's domain model: identifiers, roles and permissions, the plan of deliverables (parsing and validation), the
//! states of runs and deliverables with their legal transitions, failure reasons and events.
//!
//! This crate is pure: no I/O, no async, no clock, no database. Everything here is a value or a
//! function over values, so every rule can be tested exhaustively without a fixture. Every other
//! kamachiq crate depends on it; it depends on none of them.

pub mod access;
pub mod event;
pub mod id;
mod names;
pub mod plan;
pub mod reason;
pub mod run;
pub mod state;
pub mod tenant;
pub mod time;

pub use access::{Permission, Role};
pub use event::{Event, EventKind};
pub use id::{DeliverableId, RunId, StepName, TenantId};
pub use plan::Plan;
pub use reason::{Reason, ReasonCode};
pub use state::{DeliverableState, NotResumable, RunState};
pub use tenant::{Tenant, TenantSettings};
pub use time::Timestamp;

/// Errors of the domain crate: values that do not satisfy the model's rules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plan failed to parse or validate; every problem found is listed.
    #[error("{0}")]
    InvalidPlan(plan::Problems),
    /// An identifier does not have the required form.
    #[error("invalid {kind} `{value}`: {why}")]
    InvalidId {
        kind: &'static str,
        value: String,
        why: &'static str,
    },
    /// A name (of a state, reason code, event kind) that kamachiq does not know, read from
    /// storage or input.
    #[error("unknown {kind} `{value}`")]
    UnknownName { kind: &'static str, value: String },
}
