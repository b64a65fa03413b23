//! Placeholder of the policy crate's types while it is written (replaced by the real crate).
#![allow(missing_docs)]
mod decision;
mod input;
pub use decision::{Decision, Reason, Risk, Verdict};
pub use input::{Action, DeliverableInput, DiffInput, Input, Module, RunInput, Spent, StepInput};
