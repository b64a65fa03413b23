//! `/v1/workflows`: the tenant's runs, one run in full, cancel and resume (seed 000).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kamachiq_api::{
    CancelOutcomeView, CancelView, Problem, ResumeRequest, ResumeView, RunLinks, RunPage,
    RunSummaryView, RunView, RunsParams,
};
use kamachiq_domain::{NotResumable, RunId, RunState};
use kamachiq_engine::CancelOutcome;
use kamachiq_store::RunQuery;

use crate::auth::{Authorized, Operate, Read};
use crate::error::ApiError;
use crate::extract::{OptionalJson, Query};
use crate::routes::{own_run, own_tenant, page_limit, run_param};
use crate::state::AppState;

/// Runs listed per page when the request names no limit.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// The tenant's runs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/workflows", tag = "runs",
    security(("bearer" = [])),
    params(RunsParams),
    responses(
        (status = 200, description = "A page of runs", body = RunPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`tenant_id` is not the token's tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<RunsParams>,
) -> Result<Json<RunPage>, ApiError> {
    page(&state, &auth.caller, &params).await.map(Json)
}

/// One page of the caller's runs.
pub async fn page(
    state: &AppState,
    caller: &crate::auth::Caller,
    params: &RunsParams,
) -> Result<RunPage, ApiError> {
    let tenant = own_tenant(caller, params.tenant_id.as_deref())?;
    let limit = page_limit(params.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = run_param("before", params.before.as_deref())?;
    let runs = state
        .engine()
        .store()
        .runs(&RunQuery {
            tenant: Some(tenant),
            before,
            limit,
        })
        .await?;
    let next_before = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(RunPage {
        runs: runs.iter().map(RunSummaryView::from).collect(),
        next_before,
    })
}

/// A run with its deliverables and their step attempts.
#[utoipa::path(get, path = "/v1/workflows/{id}", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run for this tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run_id = RunId::parse(id.as_str()).map_err(|_| ApiError::run_not_found(&id))?;
    let store = state.engine().store();
    // A finished run is answered from memory when it has not changed since it was kept.
    let stamp = store.run_stamp(&run_id).await?;
    if stamp.tenant != auth.caller.tenant {
        return Err(ApiError::run_not_found(&id));
    }
    if stamp.state.is_terminal()
        && let Some(body) = state.runs().get(&run_id, stamp.updated_at)
    {
        return Ok(json_response(body));
    }
    let run = own_run(&state, &auth.caller, &id).await?;
    let (deliverables, attempts) = tokio::try_join!(
        store.deliverables(&run.id),
        store.step_attempts(&run.id, None)
    )?;
    let view = RunView::new(&run, &deliverables, &attempts);
    let body = Bytes::from(
        serde_json::to_vec(&view).map_err(|e| ApiError::Internal(format!("run view: {e}")))?,
    );
    if run.state.is_terminal() {
        state.runs().put(run.id, run.updated_at, body.clone());
    }
    Ok(json_response(body))
}

fn json_response(body: Bytes) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Cancels a run: its driver stops every step and marks the unfinished work cancelled.
#[utoipa::path(post, path = "/v1/workflows/{id}/cancel", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 202, description = "The run's driver was asked to cancel it", body = CancelView),
        (status = 200, description = "Cancelled here, or already finished", body = CancelView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run for this tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CancelView>), ApiError> {
    let run = own_run(&state, &auth.caller, &id).await?;
    tracing::info!(run = %run.id, by = %auth.caller.name, "cancel requested");
    let outcome = state
        .engine()
        .cancel_by(&run.id, Some(auth.caller.name.clone()))
        .await?;
    let run_id = run.id.to_string();
    Ok(match outcome {
        CancelOutcome::Requested { driver } => (
            StatusCode::ACCEPTED,
            Json(CancelView {
                run_id,
                outcome: CancelOutcomeView::Requested,
                driver: Some(driver),
                state: None,
            }),
        ),
        CancelOutcome::Cancelled => (
            StatusCode::OK,
            Json(CancelView {
                run_id,
                outcome: CancelOutcomeView::Cancelled,
                driver: None,
                state: Some(RunState::Cancelled),
            }),
        ),
        CancelOutcome::AlreadyFinished(state) => (
            StatusCode::OK,
            Json(CancelView {
                run_id,
                outcome: CancelOutcomeView::AlreadyFinished,
                driver: None,
                state: Some(state),
            }),
        ),
    })
}

/// Resumes a run: an interrupted run is driven on; with `retry_failed`, failed and skipped
/// deliverables run again (steps that passed are kept); a cancelled run's cancelled work runs
/// again.
#[utoipa::path(post, path = "/v1/workflows/{id}/resume", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    request_body(content = Option<ResumeRequest>, content_type = "application/json"),
    responses(
        (status = 202, description = "A scheduler drives the run next", body = ResumeView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The run is driven by a live process, or has nothing to resume", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad body", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resume(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(request): OptionalJson<ResumeRequest>,
) -> Result<(StatusCode, Json<ResumeView>), ApiError> {
    let run = own_run(&state, &auth.caller, &id).await?;
    let reopen = run.state.resume(request.retry_failed).map_err(|e| {
        let code = match e {
            NotResumable::FailedNeedsRetry => "run_failed",
            NotResumable::Succeeded => "run_succeeded",
        };
        ApiError::Conflict {
            code,
            detail: match e {
                NotResumable::FailedNeedsRetry => format!(
                    "run {} has failed; send {{\"retry_failed\": true}} to run its failed deliverables again",
                    run.id
                ),
                NotResumable::Succeeded => e.to_string(),
            },
        }
    })?;
    if let Some(driver) = &run.driver
        && state.engine().lease_is_live(&run.id, driver)
    {
        return Err(ApiError::Conflict {
            code: "run_busy",
            detail: format!(
                "run {} is being driven by {} (lease until {}); it continues there",
                run.id, driver.owner, driver.expires_at
            ),
        });
    }
    let since = state.engine().store().last_event_seq(&run.id).await?;
    // Resuming a paused run lifts its pause first.
    state.engine().unpause(&run.id, &auth.caller.name).await?;
    tracing::info!(run = %run.id, by = %auth.caller.name, ?reopen, "resume requested");
    state
        .scheduler()
        .resume(run.id.clone(), reopen.clone())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ResumeView {
            run_id: run.id.to_string(),
            reopen,
            since,
            links: RunLinks::for_run(run.id.as_str()),
        }),
    ))
}
