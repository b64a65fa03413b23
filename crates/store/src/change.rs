//! Changes to runs and deliverables: what a driver (or an operator) asks the store to record,
//! and what the store answers. They are applied in batches by [`Store::apply`](crate::Store::apply).
//!
//! Some changes carry what follows them in the life of a deliverable (a claim starts its first
//! step; a step's end starts the next one or, with nothing to merge, completes the
//! deliverable), so a deliverable costs as few round trips to the writer as its durability
//! allows.

use std::collections::BTreeMap;
use std::time::Duration;

use kamachiq_domain::run::StepState;
use kamachiq_domain::{
    DeliverableId, DeliverableState, Event, Reason, RunId, RunState, StepName, Timestamp,
};

use crate::actions::NewAction;
use crate::approvals::{ApprovalStatus, NewApproval};
use crate::audit::AuditEntry;
use crate::requeue::{DecisionRecord, NewRequeue, Resolution};

/// A deliverable's current lease: the fencing token every write for a running deliverable
/// carries. A write whose attempt is not the deliverable's current one is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    pub run: RunId,
    pub deliverable: DeliverableId,
    pub attempt: u32,
}

/// A step of a deliverable, by position and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRef {
    pub index: u32,
    pub name: StepName,
}

/// A merge of a deliverable's branch into the target branch, recorded with its success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    /// Id of the rollback point recorded for this merge.
    pub rollback_id: String,
    pub repo: String,
    pub branch: String,
    /// The target branch's commit before the merge.
    pub before: String,
    /// The merge commit now at the tip of the target branch.
    pub commit: String,
}

/// What follows a step's end in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Then {
    /// Nothing: the step failed, or the deliverable merges before it completes.
    Stay,
    /// The next step starts.
    Start(StepRef),
    /// The deliverable succeeded (it has nothing to merge).
    Succeed,
}

/// How a step attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub struct StepEnd {
    pub lease: LeaseKey,
    pub index: u32,
    pub step: StepName,
    pub step_attempt: u32,
    pub state: StepState,
    pub exit_code: Option<i32>,
    pub reason: Option<Reason>,
    /// What the step printed, possibly shortened (see `output_bytes` for the full size).
    pub output: String,
    pub output_bytes: u64,
    /// Tokens and cost an agent step reported in all (0 for commands).
    pub tokens: u64,
    pub cost_micro_usd: i64,
    pub duration: Duration,
    /// Whether the deliverable moves on to its next step (true when the step succeeded).
    pub advance: bool,
    pub then: Then,
}

/// One change. Deliverable changes in one batch must concern distinct deliverables.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Start a ready deliverable, or take over a running one whose driver is gone. Its attempt number goes up by one and becomes the new fencing token.
    /// `start` is the step the claimer expects to run first; it starts with the claim when
    /// the deliverable's next step is indeed that one.
    Claim {
        run: RunId,
        deliverable: DeliverableId,
        owner: String,
        lease_until: Timestamp,
        kind: ClaimKind,
        start: Option<StepRef>,
    },
    StepStarted {
        lease: LeaseKey,
        step: StepRef,
    },
    StepFinished(Box<StepEnd>),
    Succeeded {
        lease: LeaseKey,
        merge: Option<Merge>,
    },
    /// The deliverable failed; everything that depends on it is skipped.
    Failed {
        lease: LeaseKey,
        reason: Reason,
    },
    /// A running deliverable was stopped by a cancel of its run.
    Cancelled {
        lease: LeaseKey,
    },
    /// The driver gives a running deliverable back unfinished (it is shutting down); the next
    /// driver re-runs its interrupted step.
    Released {
        lease: LeaseKey,
    },
    /// Ask the run's driver to cancel it. `by` names who asked (a token's name), for the
    /// record in the `cancel_requested` event.
    RequestCancel {
        run: RunId,
        by: Option<String>,
    },
    /// Cancel every deliverable of the run that has not started.
    CancelWaiting {
        run: RunId,
    },
    /// Cancel running deliverables that no live driver holds (used when nobody drives the run).
    CancelOrphans {
        run: RunId,
    },
    /// Put deliverables in the given states back to pending and reopen the run. Only the
    /// run's current driver may: it is done after the lease is taken, never before.
    Reopen {
        run: RunId,
        states: Vec<DeliverableState>,
        driver: String,
    },
    /// A driver took the run over (an event only).
    Resumed {
        run: RunId,
        driver: String,
    },
    FinishRun {
        run: RunId,
        state: RunState,
    },
    /// Record a policy decision (with the change it causes, in the same batch).
    Decided(Box<DecisionRecord>),
    /// Policy held a deliverable back: it becomes `blocked` and enters the requeue. With
    /// `attempt`, a running deliverable held at that attempt (a step or a merge was held
    /// back; its lease is given up); without, a ready pending one.
    Block {
        run: RunId,
        deliverable: DeliverableId,
        attempt: Option<u32>,
        /// The reason the deliverable shows while blocked.
        reason: Reason,
        entry: Box<NewRequeue>,
        /// The approval request opened with the block, when a person must approve the
        /// action (its `requeue_id` is the entry's).
        approval: Option<Box<NewApproval>>,
    },
    /// Let a blocked deliverable through: it is pending (and ready) again and its requeue
    /// entry is closed. `audit` is written when the change is accepted (an override).
    Unblock {
        requeue_id: String,
        resolution: Resolution,
        by: Option<String>,
        justification: Option<String>,
        /// The decision that let it through, when policy did.
        decision_id: Option<String>,
        audit: Option<Box<AuditEntry>>,
    },
    /// The retry loop re-evaluated a blocked deliverable, which stays blocked.
    Retried {
        requeue_id: String,
        attempts: u32,
        next_retry_at: Option<Timestamp>,
        decision_id: String,
        verdict: kamachiq_policy::Verdict,
        reasons: Vec<kamachiq_policy::Reason>,
        /// An approval request opened now: the re-evaluation found that a person must approve
        /// the action, and none was waiting.
        approval: Option<Box<NewApproval>>,
    },
    /// An approval recorded on its own: one the tenant's low-risk auto-approval granted at
    /// once, committed with the decision that lets the action through.
    Approval(Box<NewApproval>),
    /// A person (or expiry) decides an approval request. Approving lets the blocked
    /// deliverable through for that one action (its scope is added to the deliverable's
    /// approved actions, its requeue entry is resolved `approved`); denying or expiring keeps
    /// it in the requeue, where nothing retries it on its own; escalating leaves it waiting
    /// without a deadline. Audited, with an `approval_decided` event.
    DecideApproval {
        id: String,
        status: ApprovalStatus,
        by: String,
        /// The approver's comment, or the reason of a denial.
        comment: Option<String>,
    },
    /// The outcome of an automated action, for the metrics circuit breakers watch; committed
    /// with the change that ended the action.
    Acted(Box<NewAction>),
    /// An audit record on its own (an operator action that changes no deliverable).
    Audit(Box<AuditEntry>),
    /// A tenant's day spend passed 90 % of a daily limit: a `budget_warning` event on the run
    /// whose usage passed it.
    Warn {
        run: RunId,
        detail: String,
    },
    /// Usage an agent reported, into the ledger; with `progress`, a `step_progress` event on
    /// the deliverable (what the agent is doing, and what its step spent so far).
    Usage {
        records: Vec<crate::usage::UsageRecord>,
        progress: Option<Box<Progress>>,
    },
}

/// What an agent step is doing, for people watching: a `step_progress` event.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub run: RunId,
    pub deliverable: DeliverableId,
    pub step: String,
    pub step_attempt: u32,
    /// The latest thing the agent did (`Edit src/api.rs`, `Bash: cargo test`), if any.
    pub text: Option<String>,
    /// What the step spent so far.
    pub tokens: u64,
    pub cost_micro_usd: i64,
}

/// What a claim may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimKind {
    /// A pending deliverable whose dependencies have all succeeded.
    Ready,
    /// A running deliverable whose driver is gone (the claimer holds the run's lease).
    Takeover,
}

/// What an accepted change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Claimed at `attempt`; `step_attempt` when the expected first step started with it.
    Claimed {
        attempt: u32,
        next_step: u32,
        step_attempt: Option<u32>,
    },
    /// A step started (on its own, or after the previous step's end).
    StepStarted {
        step_attempt: u32,
    },
    /// The deliverable succeeded (on its own, or with its last step's end).
    Succeeded,
    Done,
    Failed {
        skipped: Vec<DeliverableId>,
    },
    Cancelled {
        deliverables: Vec<DeliverableId>,
    },
    Reopened {
        deliverables: Vec<DeliverableId>,
    },
}

/// Why a change was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The deliverable is not in a state that allows the change, or the lease is no longer
    /// held at that attempt: another driver took it over, or it already moved on.
    #[error(
        "the deliverable is no longer held at this attempt, or is not in a state that allows the change"
    )]
    NotApplicable,
}

/// The result of a batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// One result per change, in order.
    pub results: Vec<Result<Applied, Rejected>>,
    /// Deliverables that became ready (pending, no dependency left) through this batch.
    pub ready: Vec<(RunId, DeliverableId)>,
    /// The committed events, in sequence order.
    pub events: Vec<Event>,
}

/// Groups deliverables by run, for callers that route results per run.
pub fn by_run(pairs: &[(RunId, DeliverableId)]) -> BTreeMap<RunId, Vec<DeliverableId>> {
    let mut map: BTreeMap<RunId, Vec<DeliverableId>> = BTreeMap::new();
    for (run, id) in pairs {
        map.entry(run.clone()).or_default().push(id.clone());
    }
    map
}
