//! kamachiq's wire types: what `--json` prints and what the HTTP API sends and accepts, with
//! their OpenAPI schemas. Views are built
//! from domain records and never expose storage details (lease owners are shown, SQL never is).
//!
//! Field names are a contract: scripts read them. Add fields freely; never rename or remove one.
//! Depends on the domain, policy and governance crates only.

use kamachiq_domain::plan::Plan;
use kamachiq_domain::run::{DeliverableStatus, Run, RunSummary, StateCounts, StepAttempt};
use kamachiq_domain::{DeliverableState, Reason, RunState, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod checklist;
mod control;
mod governance;
mod http;
mod policy;
pub mod schema;

pub use checklist::*;
pub use control::*;
pub use governance::*;
pub use http::*;
pub use policy::*;

/// A run with its deliverables (`kamachiq status RUN --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    pub id: String,
    #[schema(value_type = schema::RunState)]
    pub state: RunState,
    pub tenant: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub concurrency: u32,
    pub cancel_requested: bool,
    /// The process driving the run, while one does.
    pub driver: Option<DriverView>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub finished_at: Option<Timestamp>,
    #[schema(value_type = schema::StateCounts)]
    pub counts: StateCounts,
    pub deliverables: Vec<DeliverableView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriverView {
    pub owner: String,
    #[schema(value_type = schema::Timestamp)]
    pub lease_expires_at: Timestamp,
}

/// A deliverable of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliverableView {
    pub id: String,
    pub title: String,
    #[schema(value_type = schema::DeliverableState)]
    pub state: DeliverableState,
    /// How many times a driver started it (more than 1 after a takeover or a retry of the run).
    pub attempts: u32,
    pub dependencies: Vec<String>,
    /// Dependencies that have not succeeded yet.
    pub waiting_on: u32,
    pub current_step: Option<String>,
    pub steps_done: u32,
    pub steps_total: u32,
    #[schema(value_type = Option<schema::Reason>)]
    pub reason: Option<Reason>,
    /// The deliverable's branch while it exists (failed deliverables keep theirs).
    pub branch: Option<String>,
    pub merge_commit: Option<String>,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub finished_at: Option<Timestamp>,
    pub steps: Vec<StepAttemptView>,
}

/// One attempt of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepAttemptView {
    pub step: String,
    pub index: u32,
    pub attempt: u32,
    #[schema(value_type = schema::StepState)]
    pub state: kamachiq_domain::run::StepState,
    pub exit_code: Option<i32>,
    #[schema(value_type = Option<schema::Reason>)]
    pub reason: Option<Reason>,
    pub output_bytes: u64,
    #[schema(value_type = schema::Timestamp)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub finished_at: Option<Timestamp>,
}

/// A row of `kamachiq runs --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunSummaryView {
    pub id: String,
    #[schema(value_type = schema::RunState)]
    pub state: RunState,
    pub tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub finished_at: Option<Timestamp>,
    #[schema(value_type = schema::StateCounts)]
    pub counts: StateCounts,
}

/// The result of `kamachiq plan validate --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValidationView {
    pub valid: bool,
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliverables: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<usize>,
    pub problems: Vec<ProblemView>,
}

/// One problem in a plan, located.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemView {
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub deliverable: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl From<&kamachiq_domain::plan::Problem> for ProblemView {
    fn from(p: &kamachiq_domain::plan::Problem) -> Self {
        Self {
            file: p.file.clone(),
            line: p.line,
            column: p.column,
            deliverable: p.deliverable.clone(),
            field: p.field.clone(),
            message: p.kind.to_string(),
        }
    }
}

impl ValidationView {
    pub fn valid(file: &str, plan: &Plan) -> Self {
        Self {
            valid: true,
            file: file.to_owned(),
            deliverables: Some(plan.deliverables.len()),
            steps: Some(plan.deliverables.iter().map(|d| d.steps.len()).sum()),
            dependencies: Some(plan.deliverables.iter().map(|d| d.dependencies.len()).sum()),
            problems: Vec::new(),
        }
    }

    pub fn invalid<'a>(
        file: &str,
        problems: impl IntoIterator<Item = &'a kamachiq_domain::plan::Problem>,
    ) -> Self {
        Self {
            valid: false,
            file: file.to_owned(),
            deliverables: None,
            steps: None,
            dependencies: None,
            problems: problems.into_iter().map(ProblemView::from).collect(),
        }
    }
}

impl From<&RunSummary> for RunSummaryView {
    fn from(r: &RunSummary) -> Self {
        Self {
            id: r.id.to_string(),
            state: r.state,
            tenant: r.tenant.to_string(),
            title: r.title.clone(),
            created_at: r.created_at,
            finished_at: r.finished_at,
            counts: r.counts,
        }
    }
}

impl RunView {
    /// Builds the view of `run` from its deliverables and step attempts (in store order).
    pub fn new(run: &Run, deliverables: &[DeliverableStatus], attempts: &[StepAttempt]) -> Self {
        let views = deliverables
            .iter()
            .map(|d| {
                let planned = run.plan.deliverable(d.id.as_str());
                let steps_total =
                    planned.map_or(0, |p| u32::try_from(p.steps.len()).unwrap_or(u32::MAX));
                let keeps_branch = matches!(
                    d.state,
                    DeliverableState::Running
                        | DeliverableState::Failed
                        | DeliverableState::Cancelled
                ) && d.attempt > 0;
                DeliverableView {
                    id: d.id.to_string(),
                    title: planned.map_or_else(|| d.id.to_string(), |p| p.title.clone()),
                    state: d.state,
                    attempts: d.attempt,
                    dependencies: planned
                        .map(|p| p.dependencies.iter().map(ToString::to_string).collect())
                        .unwrap_or_default(),
                    waiting_on: d.waiting_on,
                    current_step: d.current_step.clone(),
                    steps_done: d.next_step.min(steps_total),
                    steps_total,
                    reason: d.reason.clone(),
                    branch: (keeps_branch && run.repo.is_some())
                        .then(|| format!("kamachiq/{}/{}", run.id, d.id)),
                    merge_commit: d.merge_commit.clone(),
                    started_at: d.started_at,
                    finished_at: d.finished_at,
                    steps: attempts
                        .iter()
                        .filter(|a| a.deliverable == d.id)
                        .map(StepAttemptView::from)
                        .collect(),
                }
            })
            .collect();
        Self {
            id: run.id.to_string(),
            state: run.state,
            tenant: run.tenant.to_string(),
            region: run.region.clone(),
            title: run.title.clone(),
            repo: run.repo.clone(),
            branch: run.branch.clone(),
            concurrency: run.concurrency,
            cancel_requested: run.cancel_requested,
            driver: run.driver.as_ref().map(|l| DriverView {
                owner: l.owner.clone(),
                lease_expires_at: l.expires_at,
            }),
            created_at: run.created_at,
            finished_at: run.finished_at,
            counts: StateCounts::from_states(deliverables.iter().map(|d| d.state)),
            deliverables: views,
        }
    }
}

impl From<&StepAttempt> for StepAttemptView {
    fn from(a: &StepAttempt) -> Self {
        Self {
            step: a.step.clone(),
            index: a.step_index,
            attempt: a.attempt,
            state: a.state,
            exit_code: a.exit_code,
            reason: a.reason.clone(),
            output_bytes: a.output_bytes,
            started_at: a.started_at,
            finished_at: a.finished_at,
        }
    }
}
