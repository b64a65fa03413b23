//! Why a deliverable or step ended the way it did: a stable machine-readable code, which scripts
//! and tests match on, and a human sentence with the particulars.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Stable codes. Renaming one breaks users' scripts; add new ones instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// A step's command exited with a non-zero status after all its retries.
    StepFailed,
    /// A step ran longer than its timeout; its whole process group was killed.
    Timeout,
    /// A step's command could not be started (not found, not executable, bad directory).
    SpawnFailed,
    /// The deliverable's branch does not merge cleanly into the target branch.
    MergeConflict,
    /// The target branch is checked out with local changes that the merge would overwrite.
    TargetCheckoutDirty,
    /// The deliverable's git workspace could not be prepared or committed.
    WorkspaceError,
    /// A deliverable this one depends on did not succeed.
    DependencyFailed,
    /// The run was cancelled by an operator.
    Cancelled,
}

impl ReasonCode {
    pub const ALL: [Self; 8] = [
        Self::StepFailed,
        Self::Timeout,
        Self::SpawnFailed,
        Self::MergeConflict,
        Self::TargetCheckoutDirty,
        Self::WorkspaceError,
        Self::DependencyFailed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StepFailed => "step_failed",
            Self::Timeout => "timeout",
            Self::SpawnFailed => "spawn_failed",
            Self::MergeConflict => "merge_conflict",
            Self::TargetCheckoutDirty => "target_checkout_dirty",
            Self::WorkspaceError => "workspace_error",
            Self::DependencyFailed => "dependency_failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReasonCode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| Error::UnknownReason(s.to_owned()))
    }
}

/// A reason: the stable code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub detail: String,
}

impl Reason {
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_text_and_serde() {
        for code in ReasonCode::ALL {
            assert_eq!(code.as_str().parse::<ReasonCode>().unwrap(), code);
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{code}\""));
        }
        assert!("oops".parse::<ReasonCode>().is_err());
    }

    #[test]
    fn display_leads_with_the_code() {
        let reason = Reason::new(ReasonCode::MergeConflict, "conflict in api.rs");
        assert_eq!(reason.to_string(), "merge_conflict: conflict in api.rs");
    }
}
