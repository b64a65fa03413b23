//! Events: the record of every state change, written in the same transaction as the change.
//!
//! The event table is the run's history: the progress display, `--json` output and (with the
//! server) the event stream all read these, so what a client sees is what was committed.

use serde::{Deserialize, Serialize};

use crate::id::{DeliverableId, RunId, TenantId};
use crate::names::named_enum;
use crate::time::Timestamp;

named_enum! {
    /// What happened. Stable snake_case names; new kinds may be added, existing ones never
    /// renamed.
    pub enum EventKind("event kind") {
        RunStarted = "run_started",
        RunResumed = "run_resumed",
        CancelRequested = "cancel_requested",
        RunFinished = "run_finished",
        DeliverableStarted = "deliverable_started",
        StepStarted = "step_started",
        StepFinished = "step_finished",
        DeliverableMerged = "deliverable_merged",
        DeliverableSucceeded = "deliverable_succeeded",
        DeliverableFailed = "deliverable_failed",
        DeliverableSkipped = "deliverable_skipped",
        DeliverableCancelled = "deliverable_cancelled",
        /// A driver gave a running deliverable back (interrupted); a later driver re-runs its
        /// unfinished step.
        DeliverableReleased = "deliverable_released",
        /// Failed, skipped or cancelled deliverables were put back to pending by a resume.
        DeliverableReopened = "deliverable_reopened",
        /// A finished run was reopened by a resume, to run some of its work again.
        RunReopened = "run_reopened",
        /// Policy held a deliverable back (denied, or an approval is required); it waits in
        /// the requeue for review.
        DeliverableBlocked = "deliverable_blocked",
        /// A blocked deliverable was let through: policy allowed it on re-evaluation, or an
        /// operator overrode the block.
        DeliverableUnblocked = "deliverable_unblocked",
        /// The requeue's retry loop re-evaluated a blocked deliverable, which stays blocked.
        RequeueRetried = "requeue_retried",
        /// An agent step's progress: what it is doing and what it spent so far (at most one
        /// such event every few seconds per step).
        StepProgress = "step_progress",
        /// An operator paused the run: its driver handed its work back, and nothing runs
        /// until it is resumed.
        RunPaused = "run_paused",
        /// A paused run was resumed.
        RunUnpaused = "run_unpaused",
        /// A tenant's spend of the day passed 90 % of its daily limit (tokens or dollars).
        BudgetWarning = "budget_warning",
        /// A merged deliverable was rolled back: a new commit on the target branch undoes its
        /// merge (history is kept), recorded with who asked and the audit trail.
        DeliverableRolledBack = "deliverable_rolled_back",
        /// An action of the deliverable waits for a person: an approval request was opened
        /// (its id, the action, the risk, when it expires), so someone can be notified.
        ApprovalRequested = "approval_requested",
        /// An approval request was decided: approved, denied, expired, escalated, approved
        /// at once by the tenant's low-risk auto-approval, or withdrawn when the deliverable
        /// was let through otherwise.
        ApprovalDecided = "approval_decided",
        /// A circuit breaker tripped on an outcome of this run: the tenant's phase was
        /// reverted to L3, an action type was paused, or an alert was raised.
        BreakerTripped = "breaker_tripped",
    }
}

/// A committed event. `seq` is assigned by the store and grows with commit order, so a reader
/// that remembers the last `seq` it saw can resume without gaps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub at: Timestamp,
    pub run_id: RunId,
    pub tenant: TenantId,
    pub kind: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliverable: Option<DeliverableId>,
    /// Kind-specific details (step name, exit code, reason, commit ids, ...).
    pub data: serde_json::Value,
}

/// An event before the store has given it a sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub deliverable: Option<DeliverableId>,
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn run(kind: EventKind, data: serde_json::Value) -> Self {
        Self {
            kind,
            deliverable: None,
            data,
        }
    }

    pub fn deliverable(
        kind: EventKind,
        deliverable: &DeliverableId,
        data: serde_json::Value,
    ) -> Self {
        Self {
            kind,
            deliverable: Some(deliverable.clone()),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
    }
}
