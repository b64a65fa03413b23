//! Placeholder of the policy crate's types while it is written (replaced by the real crate).
#![allow(missing_docs)]
mod decision;
mod input;
mod rego;
pub use decision::{Decision, Reason, Risk, Verdict};
pub use input::{
    Action, Autonomy, DeliverableInput, DiffInput, Input, Module, Reserve, RunInput, Spent,
    StepInput,
};
pub use rego::{Error, PolicySet, decide};
