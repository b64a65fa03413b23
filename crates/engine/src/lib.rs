//! kamachiq's engine: it drives runs. For each run it holds a lease (so one driver at a time),
//! starts every deliverable whose dependencies are done, up to the run's concurrency, runs its
//! steps in the deliverable's git worktree with retries and timeouts, merges its branch into the
//! target branch one merge at a time, and records every transition through a group-commit writer.
//!
//! Before every action (provisioning a deliverable, each attempt of each step, the merge) the
//! engine asks the policy [`Gate`]; what it holds back waits blocked in the requeue, where an
//! operator or the retry loop lets it through. For a tenant under autonomy governance the gate
//! also asks governance whether a person must approve: such actions wait in the requeue with
//! an approval request, until a person approves exactly that action (or denies it, or it
//! expires). The outcome of every action is recorded with the change that ends it, and the
//! circuit breakers judge a governed tenant's outcomes as they commit.
//!
//! Governance operations (enabling it, settings, rules, events, readiness, the weekly cycle,
//! proposals, phase rollback, incidents) are the engine's too, with the math of the
//! governance crate.
//!
//! Everything the engine does is durable before it is acted on: a claim is committed before a
//! step starts, a step's changes are committed to its branch before its success is recorded,
//! and a merge is found again (not repeated) if the process dies before recording it. A driver
//! that dies is replaced by the next one: expired or dead leases are taken over, interrupted
//! steps re-run, finished ones do not.
//!
//! Depends on the domain, policy, governance and store crates; knows nothing of HTTP or the CLI. Time comes from an
//! injected [`Clock`], processes from an injected [`Runner`], and tests can stop the engine at
//! named [`probe::Point`]s.

mod agents;
mod approvals;
mod clock;
mod committer;
mod control;
mod disk;
mod drive;
mod engine;
mod gate;
mod git;
mod governance;
mod governor;
mod intake;
mod lease;
mod owner;
pub mod probe;
mod requeue;
mod rollback;
mod runner;
mod scheduler;
mod workspace;

use std::path::PathBuf;
use std::sync::Arc;

pub use agents::{AgentEnv, AgentOptions, Persona, Sandbox};
pub use approvals::EXPIRY;
pub use clock::{Clock, SystemClock, TokioClock};
pub use committer::{Committed, Committer};
pub use disk::{bytes as format_bytes, usage as disk_usage};
pub use engine::{CancelOutcome, DrivenBy, Ending, Engine, EngineOptions, Parts, Submission};
pub use gate::{AUTO_APPROVER, Gate, Judged, Need, Waiver};
pub use git::Identity;
pub use governance::{CycleOutcome, EnableOptions, GovernanceUpdate, ProposalDecision, RulePatch};
pub use owner::Owner;
pub use requeue::{RequeueOptions, Resolved, RetryPass, backoff as requeue_backoff, retry_loop};
pub use rollback::{RollbackDone, RollbackTarget};
pub use runner::{
    BoxFuture, Exit, Halt, Monitor, NoopRunner, ProcessRunner, Runner, StepOutcome, StepSpec,
    kill_all_steps, read_capped, reap_orphans, step_processes,
};
pub use scheduler::{Scheduler, SchedulerOptions};
pub use workspace::{MergeOutcome, Target};

use kamachiq_domain::{RunId, RunState, Timestamp};

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(Arc<kamachiq_store::Error>),
    #[error("git {command} failed in {dir} (exit {status:?}): {stderr}")]
    Git {
        dir: PathBuf,
        command: String,
        status: Option<i32>,
        stderr: String,
    },
    #[error("cannot run git: {0}")]
    GitUnavailable(String),
    #[error(
        "kamachiq needs git 2.38 or newer for merges that never touch a checkout; found {found}"
    )]
    GitTooOld { found: String },
    #[error("{} is not a git repository: {detail}", path.display())]
    NotARepository { path: PathBuf, detail: String },
    #[error("{} has a detached HEAD; name the target branch (`branch:` in the plan, or --branch)", repo.display())]
    DetachedHead { repo: PathBuf },
    #[error("branch `{branch}` does not exist in {} (or has no commits yet)", repo.display())]
    NoSuchBranch { repo: PathBuf, branch: String },
    #[error("branch `{branch}` kept moving while kamachiq tried to merge into it; try again")]
    TargetKeepsMoving { branch: String },
    #[error("{0}")]
    Io(String),
    #[error("run {run} is being driven by {owner} (lease until {expires_at}); it continues there")]
    RunBusy {
        run: RunId,
        owner: String,
        expires_at: Timestamp,
    },
    #[error("run {run} has already {state}")]
    RunFinished { run: RunId, state: RunState },
    #[error("run {run} was taken over by another driver; this one stopped")]
    LostLease { run: RunId },
    #[error("the engine is shutting down")]
    EngineStopped,
    #[error("stopped at a probe point")]
    Crashed,
    #[error("no requeue entry `{0}`")]
    RequeueNotFound(String),
    #[error("requeue entry `{id}` was already resolved ({}) at {at}", resolution.as_str())]
    RequeueResolved {
        id: String,
        resolution: kamachiq_store::Resolution,
        at: Timestamp,
    },
    /// No rollback point matches (the message says what was looked for).
    #[error("{0}")]
    NoRollbackPoint(String),
    #[error(
        "tenant `{0}` is not governed; an admin enables it with `kamachiq governance enable --tenant {0}`"
    )]
    NotGoverned(String),
    #[error(transparent)]
    Governance(#[from] kamachiq_governance::Error),
    #[error(
        "cannot roll back from {current} to {target}: a rollback goes down (or restarts the phase); moving up takes a proposal"
    )]
    PhaseNotLower {
        current: kamachiq_governance::Phase,
        target: kamachiq_governance::Phase,
    },
    #[error("the governance of tenant `{0}` kept changing while this change was made; try again")]
    GovernanceBusy(String),
    #[error("no readiness item `{item}` to attest; the attested items are: {}", known.join(", "))]
    UnknownItem { item: String, known: Vec<String> },
    #[error("readiness item `{item}` is measured by kamachiq, not attested")]
    ItemMeasured { item: String },
    #[error("no proposal `{0}`")]
    ProposalNotFound(String),
    #[error("proposal `{id}` is {} already; it takes no more decisions", status.as_str())]
    ProposalClosed {
        id: String,
        status: kamachiq_governance::proposal::ProposalStatus,
    },
    #[error("{0}")]
    ProposalRefused(kamachiq_governance::ApprovalRefused),
    #[error("the proposal cannot be approved while the tenant is not ready: {}", reasons.join("; "))]
    ProposalBlocked { reasons: Vec<String> },
    #[error("the proposal no longer fits the tenant's phase: {0}")]
    ProposalStale(kamachiq_governance::Error),
    #[error("no approval request `{0}`")]
    ApprovalNotFound(String),
    #[error("approval request `{id}` is {} already; it takes no more decisions", status.as_str())]
    ApprovalClosed {
        id: String,
        status: kamachiq_store::ApprovalStatus,
    },
    #[error("approval request `{id}` expired at {at}; it is being closed as the tenant says")]
    ApprovalExpired { id: String, at: Timestamp },
    #[error("{what} matches more than one rollback point: {}; {hint}", matches.join(", "))]
    AmbiguousRollbackPoint {
        what: String,
        matches: Vec<String>,
        hint: String,
    },
    #[error(
        "rollback point {point} was already rolled back at {at}, revert commit {revert_commit}"
    )]
    AlreadyRolledBack {
        point: String,
        at: Timestamp,
        revert_commit: String,
    },
    #[error(
        "merge commit {commit} of rollback point {point} is no longer on branch `{branch}` (was \
         the branch reset or rewritten?); there is nothing to roll back"
    )]
    MergeNotOnBranch {
        point: String,
        commit: String,
        branch: String,
    },
    #[error(
        "the changes of rollback point {point} are no longer on branch `{branch}`: later commits \
         undid them already; nothing was changed"
    )]
    NothingToRevert { point: String, branch: String },
    #[error(
        "cannot roll back {point}: later changes on `{branch}` conflict with undoing its merge, in \
         {}; nothing was changed", files.join(", ")
    )]
    RollbackConflict {
        point: String,
        branch: String,
        files: Vec<String>,
    },
    #[error(
        "cannot roll back {point}: branch `{branch}` is checked out in {} with local changes the \
         rollback would overwrite; commit or stash them and try again ({detail})",
        checkout.display()
    )]
    RollbackTargetDirty {
        point: String,
        branch: String,
        checkout: PathBuf,
        detail: String,
    },
}

impl From<kamachiq_store::Error> for Error {
    fn from(e: kamachiq_store::Error) -> Self {
        Self::Store(Arc::new(e))
    }
}
