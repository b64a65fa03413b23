//! Requests and responses of the HTTP API that are not views of a stored record.

use kamachiq_domain::{DeliverableState, Event, EventKind, Role, RunState, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{ProblemView, RunSummaryView, schema};

/// Options of `POST /v1/plans/execute`; the body is the plan itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExecuteParams {
    /// Absolute path, on the server, of the repository deliverables merge into. Overrides the
    /// plan's `repo`. Without either, steps run in a scratch directory and nothing is merged.
    pub repo: Option<String>,
    /// Target branch; the repository's current branch when absent.
    pub branch: Option<String>,
    /// Most deliverables of the run worked on at once (default 4).
    #[param(minimum = 1, maximum = 1024)]
    pub concurrency: Option<u32>,
}

/// A run was accepted: it is stored and a scheduler will drive it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunAccepted {
    pub run_id: String,
    #[schema(value_type = schema::RunState)]
    pub state: RunState,
    pub tenant: String,
    pub deliverables: usize,
    /// Where to follow the run: its view, and its events.
    pub links: RunLinks,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunLinks {
    pub workflow: String,
    pub events: String,
}

impl RunLinks {
    pub fn for_run(run_id: &str) -> Self {
        Self {
            workflow: format!("/v1/workflows/{run_id}"),
            events: format!("/v1/events?run_id={run_id}"),
        }
    }
}

/// Which runs to list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsParams {
    /// The tenant whose runs to list; must be the token's own (the default).
    pub tenant_id: Option<String>,
    /// Most runs in the page (default 50, at most 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only runs older than this run id: the `next_before` of the previous page.
    pub before: Option<String>,
}

/// A page of runs, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<RunSummaryView>,
    /// Pass as `before` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

/// A tenant's runs in figures (`GET /v1/kamachiq/summary`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SummaryView {
    pub tenant: String,
    pub runs: RunCountsView,
    /// Succeeded runs over finished runs; absent until a run has finished.
    pub success_rate: Option<f64>,
    /// Mean wall time of finished runs; absent until a run has finished.
    pub mean_run_duration_seconds: Option<f64>,
    #[schema(value_type = schema::StateCounts)]
    pub deliverables: kamachiq_domain::run::StateCounts,
    /// Deliverables a policy decision holds back.
    pub blocked_deliverables: u32,
    /// Tokens agent steps reported (plain command steps use none).
    pub tokens_used: u64,
    /// Cost agent steps reported, in US dollars.
    pub cost_usd: f64,
    /// Deliverables that succeeded with nobody stepping in (no operator retry).
    pub handoffs_avoided: u32,
}

/// Runs counted by state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunCountsView {
    pub total: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
}

/// What a cancel did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CancelView {
    pub run_id: String,
    /// `requested`: the run's driver was asked and stops within a moment; `cancelled`: nobody
    /// drove it, so it was cancelled at once; `already_finished`: nothing to do.
    pub outcome: CancelOutcomeView,
    /// The process that drives the run, when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The run's state, when it had already finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::RunState>)]
    pub state: Option<RunState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcomeView {
    Requested,
    Cancelled,
    AlreadyFinished,
}

/// Body of `POST /v1/workflows/{id}/resume`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    /// Also run failed, skipped and cancelled deliverables again (steps that passed are kept).
    #[serde(default)]
    pub retry_failed: bool,
}

/// A resume was accepted: a scheduler drives the run next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResumeView {
    pub run_id: String,
    /// Deliverable states put back to pending before driving.
    #[schema(value_type = Vec<schema::DeliverableState>)]
    pub reopen: Vec<DeliverableState>,
    /// The run's last event before the resume: follow `/v1/events` after it to see what the
    /// resume does.
    pub since: i64,
    pub links: RunLinks,
}

/// An API token, never with its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    #[schema(value_type = Vec<schema::Role>)]
    pub roles: Vec<Role>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub revoked_at: Option<Timestamp>,
}

/// Body of `POST /v1/tokens`: a token for the caller's tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Unique among the tenant's live tokens: who or what uses it (`ci`, `alice`).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[schema(value_type = Vec<schema::Role>, min_items = 1)]
    pub roles: Vec<Role>,
}

/// A new token. The secret is shown once; only its hash is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenView,
    pub secret: String,
}

/// `GET /health`: the process is up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    pub status: String,
    pub version: String,
}

/// `GET /ready`: whether the server can do its work (its store answers, it is not stopping).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadyView {
    pub ready: bool,
    pub database: String,
    /// Why it is not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An error, as `application/problem+json` (RFC 9457).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:kamachiq:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Stable snake_case code, for programs.
    pub code: String,
    /// What went wrong, for people.
    pub detail: String,
    /// The input field that is wrong, for bad input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every problem found, for a plan that failed validation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemView>,
    /// The role the operation needs, when the token lacks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_role: Option<String>,
}

/// An event, as the event stream sends it (`data:` of each SSE message; `id:` is `seq`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// Grows with commit order; resume a stream after it with `Last-Event-ID`.
    pub seq: i64,
    #[schema(value_type = schema::Timestamp)]
    pub at: Timestamp,
    pub run_id: String,
    pub tenant: String,
    #[schema(value_type = schema::EventKind)]
    pub kind: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliverable: Option<String>,
    /// Kind-specific details (step name, exit code, reason, commit ids, ...).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            run_id: e.run_id.to_string(),
            tenant: e.tenant.to_string(),
            kind: e.kind,
            deliverable: e.deliverable.as_ref().map(ToString::to_string),
            data: e.data.clone(),
        }
    }
}

/// Which events to stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Only this run's events.
    pub run_id: Option<String>,
    /// Start after this sequence number (the `Last-Event-ID` header wins when both are given).
    #[param(minimum = 0)]
    pub after: Option<i64>,
}
