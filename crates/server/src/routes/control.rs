//! The emergency stop over HTTP (seed 004's STOP, for every worker on the store) and pausing
//! one run. The stop acts on every tenant's runs: it is a kill switch, and any operator may
//! pull it; lifting it takes an admin.

use axum::Json;
use axum::extract::{Path, State};
use kamachiq_api::{PauseView, Problem, StopRequest, StopView};
use kamachiq_store::StopState;

use crate::auth::{Administer, Authorized, Operate, Read};
use crate::error::ApiError;
use crate::extract::OptionalJson;
use crate::routes::own_run;
use crate::state::AppState;

/// Longest reason kept with a stop.
pub const MAX_REASON: usize = 500;

pub fn view(state: Option<&StopState>, stopped: bool, changed: bool) -> StopView {
    StopView {
        stopped,
        by: state.map(|s| s.by.clone()),
        at: state.map(|s| s.at),
        reason: state.map(|s| s.reason.clone()),
        changed,
    }
}

/// Whether the emergency stop is on, and who turned it on.
#[utoipa::path(get, path = "/v1/stop", tag = "control",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The emergency stop's state", body = StopView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn status(
    _auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<StopView>, ApiError> {
    let stop = state.engine().emergency_stop().await?;
    Ok(Json(view(stop.as_ref(), stop.is_some(), false)))
}

/// Turns the emergency stop on: within a second no new action starts on any worker of this
/// store, every running step and agent is stopped with its state saved, and policy denies
/// everything until `POST /v1/resume-all`. Audited.
#[utoipa::path(post, path = "/v1/stop", tag = "control",
    security(("bearer" = [])),
    request_body(content = Option<StopRequest>, description = "Why (optional)"),
    responses(
        (status = 200, description = "The stop in force", body = StopView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The reason is too long", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stop(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
    OptionalJson(request): OptionalJson<StopRequest>,
) -> Result<Json<StopView>, ApiError> {
    let reason = request
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "emergency stop".to_owned());
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::Unprocessable {
            code: "invalid_body",
            field: Some("reason".to_owned()),
            detail: format!("a reason has at most {MAX_REASON} characters"),
        });
    }
    let by = format!("{} ({})", auth.caller.name, auth.caller.tenant);
    let (stop, changed) = state.engine().stop_all(&by, &reason).await?;
    Ok(Json(view(Some(&stop), true, changed)))
}

/// Lifts the emergency stop; runs are driven again. Audited.
#[utoipa::path(post, path = "/v1/resume-all", tag = "control",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stop that was lifted, if one was on", body = StopView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resume_all(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
) -> Result<Json<StopView>, ApiError> {
    let by = format!("{} ({})", auth.caller.name, auth.caller.tenant);
    let lifted = state.engine().resume_all(&by).await?;
    Ok(Json(view(lifted.as_ref(), false, lifted.is_some())))
}

/// Pauses a run: its steps are stopped and handed back with their state; nothing runs until
/// `POST /v1/workflows/{id}/resume`.
#[utoipa::path(post, path = "/v1/workflows/{id}/pause", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "Paused", body = PauseView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run has finished", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn pause(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PauseView>, ApiError> {
    let run = own_run(&state, &auth.caller, &id).await?;
    if run.state.is_terminal() {
        return Err(ApiError::Conflict {
            code: "run_finished",
            detail: format!("run {} has already {}", run.id, run.state),
        });
    }
    let changed = state.engine().pause(&run.id, &auth.caller.name).await?;
    Ok(Json(PauseView {
        run_id: run.id.to_string(),
        paused: true,
        changed,
    }))
}
