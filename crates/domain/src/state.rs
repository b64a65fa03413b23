//! States of runs and deliverables, and the transitions between them.
//!
//! The store enforces these transitions in SQL (`WHERE state = ...`); this module is the single
//! written statement of the rules, which the store's SQL and the engine follow and which the
//! tests below pin down.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::run::StateCounts;

/// Where a deliverable is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverableState {
    /// Waiting for its dependencies, or ready and waiting for a free slot.
    Pending,
    /// Claimed by a driver: its steps are running or it is being merged.
    Running,
    /// All steps passed and its branch is merged into the target branch.
    Succeeded,
    /// A step failed after its retries, or the merge failed.
    Failed,
    /// Not run because a deliverable it depends on did not succeed.
    Skipped,
    /// Held back by policy; waits for review in the requeue.
    Blocked,
    /// Stopped by a cancel of its run.
    Cancelled,
}

impl DeliverableState {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Skipped,
        Self::Blocked,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Blocked => "blocked",
            Self::Cancelled => "cancelled",
        }
    }

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
    /// new attempt number. `Failed`, `Skipped` and `Cancelled` go back to `Pending` only when an
    /// operator resumes the run and asks for them to be retried.
    pub fn can_become(self, to: Self) -> bool {
        use DeliverableState::*;
        matches!(
            (self, to),
            (Pending, Running | Skipped | Cancelled | Blocked)
                | (Running, Running | Succeeded | Failed | Cancelled)
                | (Blocked, Pending | Cancelled | Skipped)
                | (Failed | Skipped | Cancelled, Pending)
        )
    }
}

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub const ALL: [Self; 4] = [
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
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

macro_rules! str_enum_impls {
    ($ty:ty, $kind:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::ALL
                    .into_iter()
                    .find(|state| state.as_str() == s)
                    .ok_or_else(|| Error::UnknownState {
                        kind: $kind,
                        value: s.to_owned(),
                    })
            }
        }
    };
}

str_enum_impls!(DeliverableState, "deliverable");
str_enum_impls!(RunState, "run");

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
