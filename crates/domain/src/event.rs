//! Events: the record of every state change, written in the same transaction as the change.
//!
//! The event table is the run's history: the progress display, `--json` output and (with the
//! server) the event stream all read these, so what a client sees is what was committed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::id::{DeliverableId, RunId, TenantId};
use crate::time::Timestamp;

/// What happened. Stable snake_case names; new kinds may be added, existing ones never renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    RunResumed,
    CancelRequested,
    RunFinished,
    DeliverableStarted,
    StepStarted,
    StepFinished,
    DeliverableMerged,
    DeliverableSucceeded,
    DeliverableFailed,
    DeliverableSkipped,
    DeliverableCancelled,
    /// A driver gave a running deliverable back (interrupted); a later driver re-runs its
    /// unfinished step.
    DeliverableReleased,
    /// Failed, skipped or cancelled deliverables were put back to pending by a resume.
    DeliverableReopened,
}

impl EventKind {
    pub const ALL: [Self; 14] = [
        Self::RunStarted,
        Self::RunResumed,
        Self::CancelRequested,
        Self::RunFinished,
        Self::DeliverableStarted,
        Self::StepStarted,
        Self::StepFinished,
        Self::DeliverableMerged,
        Self::DeliverableSucceeded,
        Self::DeliverableFailed,
        Self::DeliverableSkipped,
        Self::DeliverableCancelled,
        Self::DeliverableReleased,
        Self::DeliverableReopened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunStarted => "run_started",
            Self::RunResumed => "run_resumed",
            Self::CancelRequested => "cancel_requested",
            Self::RunFinished => "run_finished",
            Self::DeliverableStarted => "deliverable_started",
            Self::StepStarted => "step_started",
            Self::StepFinished => "step_finished",
            Self::DeliverableMerged => "deliverable_merged",
            Self::DeliverableSucceeded => "deliverable_succeeded",
            Self::DeliverableFailed => "deliverable_failed",
            Self::DeliverableSkipped => "deliverable_skipped",
            Self::DeliverableCancelled => "deliverable_cancelled",
            Self::DeliverableReleased => "deliverable_released",
            Self::DeliverableReopened => "deliverable_reopened",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| Error::UnknownEventKind(s.to_owned()))
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
