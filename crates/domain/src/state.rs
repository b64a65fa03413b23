//! States of runs and deliverables, and the transitions between them.
//!
//! The store enforces these transitions in SQL (`WHERE state = ...`); this module is the single
//! written statement of the rules, which the store's SQL and the engine follow and which the
//! tests below pin down.

use crate::names::named_enum;
use crate::run::StateCounts;

named_enum! {
    /// Where a deliverable is in its life.
    pub enum DeliverableState("deliverable state") {
        /// Waiting for its dependencies, or ready and waiting for a free slot.
        Pending = "pending",
        /// Claimed by a driver: its steps are running or it is being merged.
        Running = "running",
        /// All steps passed and its branch is merged into the target branch.
        Succeeded = "succeeded",
        /// A step failed after its retries, or the merge failed.
        Failed = "failed",
        /// Not run because a deliverable it depends on did not succeed.
        Skipped = "skipped",
        /// Held back by policy; waits for review in the requeue.
        Blocked = "blocked",
        /// Stopped by a cancel of its run.
        Cancelled = "cancelled",
    }
}

impl DeliverableState {
    /// A terminal deliverable will not change again unless an operator reopens its run.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }

    /// Whether `self -> to` is a legal transition.
    ///
    /// `Running -> Running` is a re-claim: the lease of a driver that died is taken over, with a
    /// new attempt number. `Running -> Blocked` is policy holding back a step or a merge of a
    /// deliverable already under way; when let through it is claimed again and goes on from
    /// its next step. `Failed`, `Skipped` and `Cancelled` go back to `Pending` only when an
    /// operator resumes the run and asks for them to be retried.
    pub fn can_become(self, to: Self) -> bool {
        use DeliverableState::*;
        matches!(
            (self, to),
            (Pending, Running | Skipped | Cancelled | Blocked)
                | (Running, Running | Succeeded | Failed | Cancelled | Blocked)
                | (Blocked, Pending | Cancelled | Skipped)
                | (Failed | Skipped | Cancelled, Pending)
        )
    }
}

named_enum! {
    /// Where a run is in its life.
    pub enum RunState("run state") {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl RunState {
    /// What resuming a run in this state does: the deliverable states put back to pending
    /// first (empty: just drive it on), or why there is nothing to resume. With
    /// `retry_failed`, failed and skipped work runs again.
    pub fn resume(self, retry_failed: bool) -> Result<Vec<DeliverableState>, NotResumable> {
        use DeliverableState as D;
        match (self, retry_failed) {
            (Self::Running, false) => Ok(Vec::new()),
            (Self::Running | Self::Failed, true) => Ok(vec![D::Failed, D::Skipped]),
            (Self::Cancelled, false) => Ok(vec![D::Cancelled]),
            (Self::Cancelled, true) => Ok(vec![D::Cancelled, D::Failed, D::Skipped]),
            (Self::Failed, false) => Err(NotResumable::FailedNeedsRetry),
            (Self::Succeeded, _) => Err(NotResumable::Succeeded),
        }
    }

    pub fn is_terminal(self) -> bool {
        self != Self::Running
    }

    /// The state a run ends in, from how many of its deliverables are in each state, or
    /// `None` while any deliverable can still change. A run that was cancelled ends
    /// `Cancelled` even when some deliverables had already failed: the operator's decision is
    /// what the run reports.
    pub fn settle(counts: &StateCounts, cancel_requested: bool) -> Option<Self> {
        if counts.pending + counts.running + counts.blocked > 0 {
            return None;
        }
        Some(if counts.succeeded == counts.total {
            Self::Succeeded
        } else if cancel_requested || counts.cancelled > 0 {
            Self::Cancelled
        } else {
            Self::Failed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::DeliverableState::*;
    use super::*;

    #[test]
    fn transition_table_is_exactly_the_documented_one() {
        let legal = [
            (Pending, Running),
            (Pending, Skipped),
            (Pending, Cancelled),
            (Pending, Blocked),
            (Running, Running),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Cancelled),
            (Running, Blocked),
            (Blocked, Pending),
            (Blocked, Cancelled),
            (Blocked, Skipped),
            (Failed, Pending),
            (Skipped, Pending),
            (Cancelled, Pending),
        ];
        for from in DeliverableState::ALL {
            for to in DeliverableState::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn succeeded_is_final() {
        for to in DeliverableState::ALL {
            assert!(!Succeeded.can_become(to), "succeeded -> {to}");
        }
    }

    #[test]
    fn state_names_round_trip() {
        for state in DeliverableState::ALL {
            assert_eq!(state.as_str().parse::<DeliverableState>().unwrap(), state);
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{state}\"")
            );
        }
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>().unwrap(), state);
        }
        assert!("done".parse::<DeliverableState>().is_err());
    }

    #[test]
    fn run_is_unsettled_while_anything_can_change() {
        assert_eq!(
            RunState::settle(&StateCounts::from_states([Succeeded, Running]), false),
            None
        );
        assert_eq!(
            RunState::settle(&StateCounts::from_states([Succeeded, Pending]), true),
            None
        );
        assert_eq!(
            RunState::settle(&StateCounts::from_states([Blocked]), false),
            None
        );
    }

    #[test]
    fn run_settles_by_its_deliverables() {
        assert_eq!(
            RunState::settle(&StateCounts::from_states([Succeeded, Succeeded]), false),
            Some(RunState::Succeeded)
        );
        assert_eq!(
            RunState::settle(
                &StateCounts::from_states([Succeeded, Failed, Skipped]),
                false
            ),
            Some(RunState::Failed)
        );
        assert_eq!(
            RunState::settle(&StateCounts::from_states([Succeeded, Cancelled]), false),
            Some(RunState::Cancelled)
        );
        assert_eq!(
            RunState::settle(&StateCounts::from_states([Failed, Skipped]), true),
            Some(RunState::Cancelled)
        );
        assert_eq!(
            RunState::settle(&StateCounts::from_states([]), false),
            Some(RunState::Succeeded)
        );
    }
}

/// Why a run cannot be resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotResumable {
    #[error("the run has failed; retry its failed deliverables to run them again")]
    FailedNeedsRetry,
    #[error("the run has already succeeded; nothing to resume")]
    Succeeded,
}
