//! What is known about a run while and after it runs: the records the store keeps and the engine,
//! CLI and server read. Plain data; the rules that change it live in [`crate::state`].

use serde::{Deserialize, Serialize};

use crate::id::{DeliverableId, RunId, TenantId};
use crate::names::named_enum;
use crate::plan::Plan;
use crate::reason::Reason;
use crate::state::{DeliverableState, RunState};
use crate::time::Timestamp;

/// A run as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: RunId,
    pub tenant: TenantId,
    pub region: String,
    pub title: Option<String>,
    /// Absolute path of the target repository; `None` for runs without git (benchmarks).
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub state: RunState,
    pub plan: Plan,
    pub concurrency: u32,
    pub cancel_requested: bool,
    /// The process that drives the run, while one holds its lease.
    pub driver: Option<Lease>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// A row of the run list: the run and how many of its deliverables are in each state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunSummary {
    pub id: RunId,
    pub tenant: TenantId,
    pub title: Option<String>,
    pub state: RunState,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub counts: StateCounts,
}

/// Deliverables of a run by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    pub total: u32,
    pub pending: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub skipped: u32,
    pub blocked: u32,
    pub cancelled: u32,
}

impl StateCounts {
    pub fn add(&mut self, state: DeliverableState, n: u32) {
        self.total += n;
        let slot = match state {
            DeliverableState::Pending => &mut self.pending,
            DeliverableState::Running => &mut self.running,
            DeliverableState::Succeeded => &mut self.succeeded,
            DeliverableState::Failed => &mut self.failed,
            DeliverableState::Skipped => &mut self.skipped,
            DeliverableState::Blocked => &mut self.blocked,
            DeliverableState::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }

    pub fn from_states(states: impl IntoIterator<Item = DeliverableState>) -> Self {
        let mut counts = Self::default();
        for state in states {
            counts.add(state, 1);
        }
        counts
    }
}

/// Who holds a lease and until when. The holder renews it with heartbeats; when it expires,
/// another driver may take the work over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at: Timestamp,
}

/// A deliverable of a run, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliverableStatus {
    pub run_id: RunId,
    pub id: DeliverableId,
    pub position: u32,
    pub state: DeliverableState,
    /// Dependencies that have not succeeded yet; the deliverable is ready at zero.
    pub waiting_on: u32,
    /// How many times a driver has claimed it; the fencing token of its current lease.
    pub attempt: u32,
    /// Index of the first step that has not succeeded yet.
    pub next_step: u32,
    pub current_step: Option<String>,
    pub lease: Option<Lease>,
    pub reason: Option<Reason>,
    pub merge_commit: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The requeue entry whose operator override lets it run although policy would hold it
    /// back (the emergency stop aside).
    pub policy_override: Option<String>,
    /// The actions a person approved for it through the approvals inbox (`merge`,
    /// `run_step:2`): each lets that one action through, and nothing else.
    pub approved_actions: Vec<String>,
}

named_enum! {
    /// How one attempt of one step ended, or that it is still running.
    pub enum StepState("step state") {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Its driver stopped (interrupt or crash) before it finished; it is run again.
        Interrupted = "interrupted",
        Cancelled = "cancelled",
    }
}

/// One attempt of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepAttempt {
    pub deliverable: DeliverableId,
    pub step_index: u32,
    pub step: String,
    /// 1-based, counting retries and re-runs after an interruption.
    pub attempt: u32,
    pub state: StepState,
    pub exit_code: Option<i32>,
    pub reason: Option<Reason>,
    pub output_bytes: u64,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// The target branch's commit before a deliverable was merged: where a rollback returns to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RollbackPoint {
    pub id: String,
    pub run_id: RunId,
    pub deliverable: DeliverableId,
    pub repo: String,
    pub branch: String,
    pub before_commit: String,
    pub merge_commit: String,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let counts = StateCounts::from_states([
            DeliverableState::Succeeded,
            DeliverableState::Succeeded,
            DeliverableState::Failed,
            DeliverableState::Running,
        ]);
        assert_eq!(counts.total, 4);
        assert_eq!(counts.succeeded, 2);
        assert_eq!(counts.failed, 1);
        assert_eq!(counts.running, 1);
    }

    #[test]
    fn step_states_round_trip() {
        for state in StepState::ALL {
            assert_eq!(state.as_str().parse::<StepState>().unwrap(), state);
        }
    }
}
