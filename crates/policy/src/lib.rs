//! The policy gate: before every automated action (provisioning, running a step, merging,
//! rolling back) kamachiq calls [`decide`] and gets a [`Decision`]: allow, require approval or
//! deny, with a score in [0, 1], a risk level and the reasons, each naming the rule that gave it.
//!
//! Two layers decide together:
//!
//! - **Built-in guards** ([`guard`]), always on, enforce what the tenant's settings say: the
//!   emergency stop, data residency, allowed personas and tools, token and cost budgets, paused
//!   actions, and the findings of the diff guards (which ask for a review).
//! - **Operator policies** in Rego ([`PolicySet`]), evaluated by regorus's bytecode VM. They live
//!   in package `kamachiq`, read the [`Input`] as `input`, and may define:
//!   - `deny`: a set of strings or `{"code": ..., "message": ...}` objects, each a deny reason
//!     (code `policy_deny` when only a string is given);
//!   - `require_approval`: the same shape, each a reason to ask a person first (code
//!     `policy_requires_approval` by default);
//!   - `score`: a number in [0, 1] (1.0 when undefined); anything else is a `policy_error`;
//!   - `risk`: `"low"`, `"medium"`, `"high"` or `"critical"`.
//!
//!   Modules are Rego v1 (OPA 1.0: `deny contains msg if { ... }`); a module that only parses as
//!   Rego v0 (`deny[msg] { ... }`) is accepted as v0. Rules named `test_*` in any package are
//!   the policy's own tests ([`PolicySet::run_tests`]). A set without a `kamachiq` package is
//!   valid: it only holds tests or helpers. Errors fail closed: a result of the wrong shape,
//!   conflicting `score` values or a limit reached while evaluating becomes a `policy_error`
//!   deny reason; otherwise the VM follows OPA's defaults (a builtin given bad arguments is
//!   undefined), as [`rego`] details. `POLICIES.md` beside this crate is the operator's guide.
//!
//! Combining: the score is the policy's (1.0 by default), forced to 0.0 by any deny reason. Any
//! deny reason denies; otherwise a score below the tenant's threshold denies
//! (`score_below_threshold`); otherwise any approval reason requires approval; otherwise the
//! action is allowed. The risk is the policy's when it gives one, else derived from the score;
//! a denial is never below `high`. A decision's reasons are those that support its verdict.
//!
//! This crate is pure: no I/O except [`load_dir`] reading `.rego` files, no async, no clock, no
//! database. It depends on `kamachiq-domain`, regorus, serde and thiserror only, and must never
//! depend on the store, the engine or the server: they call it, not the other way round.

pub mod decision;
pub mod guard;
pub mod input;
pub mod rego;
pub mod replay;

use std::path::PathBuf;

pub use decision::{Decision, Reason, Risk, Verdict, decide};
pub use input::{
    Action, Autonomy, DeliverableInput, DiffInput, Finding, Input, Reserve, RunInput, Spent,
    StepInput,
};
pub use rego::{Module, PolicySet, TestReport, TestResult, load_dir};
pub use replay::{Change, Recorded, replay};

/// Errors of the policy crate: policies that cannot be loaded or compiled, and names that are
/// not kamachiq's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `load_dir` found no `.rego` file.
    #[error("no .rego files under {}", dir.display())]
    NoModules { dir: PathBuf },
    /// A directory or policy file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A policy file is not UTF-8 text.
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    /// Two modules of one set have the same name.
    #[error("policy module `{name}` is given twice")]
    DuplicateModule { name: String },
    /// A module does not parse, or the set does not compile. `module`, `line` and `column`
    /// say where, when regorus tells.
    #[error("{}{message}", location(module, *line, *column))]
    Compile {
        module: Option<String>,
        line: Option<u32>,
        column: Option<u32>,
        message: String,
    },
    /// An action name that kamachiq does not know.
    #[error("unknown action `{value}`; expected one of: provision, run_step, merge, rollback")]
    UnknownAction { value: String },
}

/// `module:line:column: ` as far as it is known, or nothing.
fn location(module: &Option<String>, line: Option<u32>, column: Option<u32>) -> String {
    match (module, line, column) {
        (Some(m), Some(l), Some(c)) => format!("{m}:{l}:{c}: "),
        (Some(m), Some(l), None) => format!("{m}:{l}: "),
        (Some(m), None, _) => format!("{m}: "),
        (None, _, _) => String::new(),
    }
}
