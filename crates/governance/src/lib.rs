//! Autonomy governance as pure functions over values: how far kamachiq may act without a person,
//! and the arithmetic that widens or narrows that.
//!
//! - [`phase`]: the autonomy phases L3, L3+, L4, L4+, L5, their validation periods, who approves
//!   a move into each, and which action types run without a person at each by default.
//! - [`metrics`]: the outcome of every automated action as an [`ActionRecord`], and the numbers
//!   of a time window over them ([`WindowMetrics`]), kept for the last hours in [`Recent`].
//! - [`breaker`]: circuit-breaker [`Rule`]s, conditions in CEL over a window's numbers, that
//!   revert the phase to L3, pause an action type or raise an alert.
//! - [`state`]: a tenant's [`GovernanceState`] and how it changes.
//! - [`approval`]: the approval modes (manual, supervised, autonomous) and whether an action
//!   needs a person.
//! - [`settings`]: a tenant's approval settings: auto-approval of low risk, how long a request
//!   waits, what becomes of one nobody answered, the supervised risk threshold.
//! - [`readiness`]: the weighted readiness checklist, backed by measured facts where kamachiq
//!   can measure them and by attestations where only a person can say.
//! - [`cycle`]: the weekly governance cycle: recommend expanding, maintaining or investigating,
//!   and draft the expansion proposal when every condition holds.
//! - [`proposal`]: the approvals a proposal gathers, by role, with four eyes.
//! - [`window`]: rule windows as operators write them, `30s`, `5m`, `1h`, `7d`.
//!
//! Nothing here reads a clock, a file, the network or a database: callers pass `now` and the
//! records in, and store what comes out. The engine and the server do that; this crate depends
//! on `kamachiq-domain` and `kamachiq-policy` (for [`Action`](kamachiq_policy::Action),
//! [`Risk`](kamachiq_policy::Risk) and [`Verdict`](kamachiq_policy::Verdict)), serde and the
//! `cel` interpreter, and must never depend on the store, the engine or the server.
//!
//! Wire form: every type serialises with camelCase field names (`currentPhase`,
//! `commandWhitelist`, `errorRate`, `overall.blockers`, ...), as the governance service of the
//! seed runbook printed them and operators' `jq` scripts read them; each type says which of its
//! names are such a contract. Enum values are snake_case (`revert_to_l3`, `needs_work`), phases
//! are written `L3`, `L3+`, `L4`, `L4+`, `L5`.

pub mod approval;
pub mod breaker;
mod condition;
pub mod cycle;
pub mod metrics;
pub mod phase;
pub mod proposal;
pub mod readiness;
pub mod settings;
pub mod state;
pub mod window;

use std::fmt;
use std::time::Duration;

pub use approval::{ApprovalMode, Cause, ExpiryAction, Requirement, Subject, needs_approval};
pub use breaker::{
    BreakerAction, Breakers, Effect, Evaluation, Rule, Severity, Trip, default_rules, effect,
};
pub use cycle::{Recommendation, RecommendationKind, Report, Snapshot, propose, recommend};
pub use metrics::{ActionRecord, Outcome, Recent, WindowMetrics};
pub use phase::Phase;
pub use proposal::{ApprovalOutcome, ApprovalRefused, ProposalApprovals, ProposalDraft};
pub use readiness::{
    Assessment, Attestation, Category, Check, Checklist, Item, ReadinessFacts, Status, assess,
    default_checklist,
};
pub use settings::Settings;
pub use state::GovernanceState;

/// What a CEL condition belongs to, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A circuit-breaker rule, by name.
    Rule(String),
    /// A readiness checklist item, by id.
    Item(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Rule(name) => write!(f, "circuit breaker rule `{name}`"),
            Owner::Item(id) => write!(f, "readiness item `{id}`"),
        }
    }
}

/// Errors of the governance crate: names, rules, checklists and transitions that are not
/// acceptable. Each says what was wrong and where; nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A phase name that is not one of kamachiq's.
    #[error("unknown phase `{value}`: expected one of L3, L3+, L4, L4+, L5")]
    UnknownPhase { value: String },
    /// A window such as `5m` that does not parse.
    #[error("invalid window `{value}`: {why}")]
    InvalidWindow { value: String, why: &'static str },
    /// A rule name that is empty or too long.
    #[error("circuit breaker rule name `{name}`: {why}")]
    RuleName { name: String, why: &'static str },
    /// A rule window outside what kamachiq accepts.
    #[error("circuit breaker rule `{rule}`: window {} {why}", window::format(*window))]
    RuleWindow {
        rule: String,
        window: Duration,
        why: &'static str,
    },
    /// A condition that is not valid CEL; `message` is the parser's.
    #[error("{owner}: condition `{condition}` does not parse: {message}")]
    ConditionSyntax {
        owner: Owner,
        condition: String,
        message: String,
    },
    /// A condition that names variables that do not exist.
    #[error(
        "{owner}: condition `{condition}` uses unknown variable(s) {}; known: {}",
        names.join(", "),
        known.join(", ")
    )]
    UnknownVariables {
        owner: Owner,
        condition: String,
        names: Vec<String>,
        known: Vec<&'static str>,
    },
    /// A condition whose value is not a bool.
    #[error("{owner}: condition `{condition}` gave {got}, not a bool")]
    ConditionNotBool {
        owner: Owner,
        condition: String,
        got: String,
    },
    /// A condition that failed while it was evaluated (an unknown function, a type mismatch, a
    /// division by zero); `message` is the interpreter's.
    #[error("{owner}: condition `{condition}` failed: {message}")]
    ConditionFailed {
        owner: Owner,
        condition: String,
        message: String,
    },
    /// A readiness checklist with no items, or too many.
    #[error(
        "a readiness checklist has between 1 and {} items, not {items}",
        readiness::MAX_ITEMS
    )]
    ChecklistSize { items: usize },
    /// A readiness checklist item that is not acceptable.
    #[error("readiness item `{id}`: {why}")]
    InvalidItem { id: String, why: &'static str },
    /// A proposal whose target is not the phase after the current one.
    #[error("cannot move from {current} to {target}: the next phase after {current} is {}",
        current.next().map_or("none".to_owned(), |p| p.to_string()))]
    NotNextPhase { current: Phase, target: Phase },
}
