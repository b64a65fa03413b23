//! The safety guards kamachiq runs on a deliverable's diff before promoting (merging) it. This
//! first part reads the diff: [`Diff::parse`] turns the text `git diff` prints into files,
//! their status and the lines they add.
//!
//! This crate is pure: diff text in, values out. It must not depend on any other kamachiq
//! crate, nor do I/O, run git, read the environment or the clock, or be async; the engine runs
//! `git diff` and hands over the text.

mod diff;

pub use diff::{AddedLine, Diff, DiffStats, FileDiff, FileStatus};

/// Errors of the review crate.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// The diff text is not what `git diff` prints. `line` is 1-based; `found` quotes header
    /// lines but only describes content lines, which may hold secrets.
    #[error("diff line {line}: expected {expected}, found {found}")]
    Parse {
        line: u32,
        expected: &'static str,
        found: String,
    },
}
