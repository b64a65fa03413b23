//! `/v1/kamachiq/*`: run history and the KPI summary of seed 001 (runs, success rate, tokens,
//! cost, blocked deliverables, handoffs avoided).

use axum::Json;
use axum::extract::State;
use kamachiq_api::{Problem, RunCountsView, RunPage, RunsParams, SummaryView};
use kamachiq_domain::TenantId;
use kamachiq_store::Summary;
use serde::Deserialize;

use crate::auth::{Authorized, Read};
use crate::error::ApiError;
use crate::extract::Query;
use crate::routes::own_tenant;
use crate::routes::workflows::page;
use crate::state::AppState;

/// The tenant's run history (the analytics path of the runbook; same as `/v1/workflows`).
#[utoipa::path(get, path = "/v1/kamachiq/runs", tag = "analytics",
    security(("bearer" = [])),
    params(RunsParams),
    responses(
        (status = 200, description = "A page of runs, newest first", body = RunPage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`tenant_id` is not the token's tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn runs(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<RunsParams>,
) -> Result<Json<RunPage>, ApiError> {
    page(&state, &auth.caller, &params).await.map(Json)
}

/// Parameters of the summary.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// Must be the token's tenant (the default).
    pub tenant_id: Option<String>,
}

/// The tenant's runs in figures.
#[utoipa::path(get, path = "/v1/kamachiq/summary", tag = "analytics",
    security(("bearer" = [])),
    params(SummaryParams),
    responses(
        (status = 200, description = "The summary", body = SummaryView),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`tenant_id` is not the token's tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn summary(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<SummaryParams>,
) -> Result<Json<SummaryView>, ApiError> {
    let tenant = own_tenant(&auth.caller, params.tenant_id.as_deref())?;
    let summary = state
        .summaries()
        .get(state.engine().store(), &tenant)
        .await?;
    Ok(Json(view(&tenant, &summary)))
}

fn view(tenant: &TenantId, s: &Summary) -> SummaryView {
    let finished = s.runs.finished();
    #[allow(clippy::cast_precision_loss)]
    let (success_rate, mean) = if finished == 0 {
        (None, None)
    } else {
        (
            Some(f64::from(s.runs.succeeded) / f64::from(finished)),
            Some(s.finished_run_millis as f64 / 1000.0 / f64::from(finished)),
        )
    };
    #[allow(clippy::cast_precision_loss)]
    let cost_usd = s.cost_micro_usd as f64 / 1_000_000.0;
    SummaryView {
        tenant: tenant.to_string(),
        runs: RunCountsView {
            total: s.runs.total,
            running: s.runs.running,
            succeeded: s.runs.succeeded,
            failed: s.runs.failed,
            cancelled: s.runs.cancelled,
        },
        success_rate,
        mean_run_duration_seconds: mean,
        deliverables: s.deliverables,
        blocked_deliverables: s.deliverables.blocked,
        tokens_used: s.tokens,
        cost_usd,
        handoffs_avoided: s.handoffs_avoided,
    }
}
