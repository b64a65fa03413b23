//! Why a deliverable or step ended the way it did: a stable machine-readable code, which scripts
//! and tests match on, and a human sentence with the particulars.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::named_enum;

named_enum! {
    /// Stable codes. Renaming one breaks users' scripts; add new ones instead.
    pub enum ReasonCode("reason code") {
        /// A step's command exited with a non-zero status after all its retries.
        StepFailed = "step_failed",
        /// A step ran longer than its timeout; its whole process group was killed.
        Timeout = "timeout",
        /// A step's command could not be started (not found, not executable, bad directory).
        SpawnFailed = "spawn_failed",
        /// The deliverable's branch does not merge cleanly into the target branch.
        MergeConflict = "merge_conflict",
        /// The target branch is checked out with local changes that the merge would overwrite.
        TargetCheckoutDirty = "target_checkout_dirty",
        /// The deliverable's git workspace could not be prepared or committed.
        WorkspaceError = "workspace_error",
        /// A deliverable this one depends on did not succeed.
        DependencyFailed = "dependency_failed",
        /// The run was cancelled by an operator.
        Cancelled = "cancelled",
        /// Policy: the run's region is not one the tenant's data may live in.
        Residency = "residency",
        /// A budget (deliverable, run, or the tenant's day) cannot cover the work.
        BudgetExhausted = "budget_exhausted",
        /// The emergency stop is on.
        EmergencyStop = "emergency_stop",
        /// Policy denied the action for another reason (the detail lists them).
        PolicyDenied = "policy_denied",
        /// Policy requires a person to approve the action first.
        ApprovalRequired = "approval_required",
        /// An agent step printed nothing for longer than its stall limit and was stopped.
        Stalled = "stalled",
        /// An agent step kept printing the same thing and was stopped as stuck in a loop.
        Looping = "looping",
        /// The agent reported an error, or its output could not be used.
        AgentFailed = "agent_failed",
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
