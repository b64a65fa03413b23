//! `/api/readiness`: whether the token's tenant is ready for more autonomy (the weighted
//! checklist, measured where kamachiq can measure, attested by people elsewhere), and
//! `/api/metrics`: the windowed numbers of its automated actions.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kamachiq_api::{
    AttestRequest, AttestationView, ChecklistView, LatestMetricsParams, MetricsView, Problem,
    RangeMetricsParams, ReadinessScoreView, ReadinessView, WindowMetricsView,
};
use kamachiq_domain::{TenantId, Timestamp};

use crate::auth::{Administer, Approve, Authorized, Read};
use crate::error::ApiError;
use crate::extract::{Json as JsonBody, Query};
use crate::routes::governance::text_field;
use crate::state::AppState;

/// The longest window metrics are computed over.
const MAX_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);
const HOUR: Duration = Duration::from_secs(60 * 60);
const WEEK: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The readiness score: `jq '.score'`, with the categories and blockers.
#[utoipa::path(get, path = "/api/readiness/score", tag = "governance", operation_id = "readiness_score",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The score now", body = ReadinessScoreView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn score(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<ReadinessScoreView>, ApiError> {
    let assessment = state.engine().readiness(&auth.caller.tenant).await?;
    Ok(Json(ReadinessScoreView::from(&assessment)))
}

/// The readiness assessment now: categories, every item with its evidence, and
/// `overall.blockers`.
#[utoipa::path(get, path = "/api/readiness/current", tag = "governance", operation_id = "readiness_current",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The assessment now", body = ReadinessView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn current(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<ReadinessView>, ApiError> {
    let assessment = state.engine().readiness(&auth.caller.tenant).await?;
    Ok(Json(ReadinessView::from(&assessment)))
}

/// The assessment of the latest governance cycle.
#[utoipa::path(get, path = "/api/readiness/latest", tag = "governance", operation_id = "readiness_latest",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The latest cycle's assessment", body = ReadinessView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No cycle ran yet", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn latest(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<ReadinessView>, ApiError> {
    let report = state
        .engine()
        .store()
        .reports(&auth.caller.tenant, 1)
        .await?
        .pop()
        .ok_or(ApiError::NotFound {
            what: "readiness assessment",
            id: "latest".to_owned(),
        })?;
    Ok(Json(ReadinessView::from(&report.report.readiness)))
}

/// The tenant's readiness checklist, in the form `PUT` takes back.
#[utoipa::path(get, path = "/api/readiness/checklist", tag = "governance", operation_id = "readiness_checklist",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The checklist", body = ChecklistView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn checklist(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<ChecklistView>, ApiError> {
    let checklist = state.engine().checklist(&auth.caller.tenant).await?;
    Ok(Json(ChecklistView::from(&checklist)))
}

/// Replaces the tenant's readiness checklist (the seed runbook's "adjust weights", without
/// SQL): checked whole first, so a bad item changes nothing. Audited.
#[utoipa::path(put, path = "/api/readiness/checklist", tag = "governance", operation_id = "set_readiness_checklist",
    security(("bearer" = [])),
    request_body = ChecklistView,
    responses(
        (status = 200, description = "The checklist now", body = ChecklistView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An item that is not acceptable, named, or a condition that does not compile", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_checklist(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ChecklistView>,
) -> Result<Json<ChecklistView>, ApiError> {
    let governed = state
        .engine()
        .set_checklist(&auth.caller.tenant, &request.into(), &auth.caller.name)
        .await?;
    Ok(Json(ChecklistView::from(&governed.checklist)))
}

/// Attests a readiness item kamachiq cannot measure, with evidence; the attester is the
/// token's identity. It counts for the current phase only. Audited.
#[utoipa::path(post, path = "/api/readiness/attest", tag = "governance",
    security(("bearer" = [])),
    request_body = AttestRequest,
    responses(
        (status = 201, description = "Recorded", body = AttestationView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no approver role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown or measured item, or no evidence", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn attest(
    auth: Authorized<Approve>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AttestRequest>,
) -> Result<(StatusCode, Json<AttestationView>), ApiError> {
    let evidence = text_field("evidence", Some(&request.evidence), true)?.unwrap_or_default();
    let attestation = state
        .engine()
        .attest(
            &auth.caller.tenant,
            request.item.trim(),
            &evidence,
            &auth.caller.name,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AttestationView {
            item: attestation.item,
            by: attestation.by,
            evidence: attestation.evidence,
            at: attestation.at,
        }),
    ))
}

fn before(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(
        t.as_millis()
            .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    )
}

async fn metrics_view(
    state: &AppState,
    tenant: &TenantId,
    from: Timestamp,
    to: Timestamp,
) -> Result<MetricsView, ApiError> {
    let metrics = state.engine().action_metrics(tenant, from, to).await?;
    Ok(MetricsView {
        tenant: tenant.to_string(),
        from,
        to,
        window: kamachiq_governance::window::format(to.since(from)),
        metrics: WindowMetricsView::from(&metrics),
    })
}

fn bad_query(field: &str, detail: String) -> ApiError {
    ApiError::bad_request("invalid_query", Some(field.to_owned()), detail)
}

fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|e| bad_query(field, format!("`{text}` is not an RFC 3339 time: {e}")))
}

/// The action metrics of the window that ends now (default the last hour): counts, success,
/// error and rollback rates, cost rate and latency percentiles, overall and per action type.
#[utoipa::path(get, path = "/api/metrics/latest", tag = "governance",
    security(("bearer" = [])),
    params(LatestMetricsParams),
    responses(
        (status = 200, description = "The window's numbers", body = MetricsView),
        (status = 400, description = "A window that does not parse or is over 30 days", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn latest_metrics(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<LatestMetricsParams>,
) -> Result<Json<MetricsView>, ApiError> {
    let window = match params.window.as_deref() {
        None => HOUR,
        Some(text) => kamachiq_governance::window::parse(text)
            .map_err(|e| bad_query("window", e.to_string()))?,
    };
    if window.is_zero() || window > MAX_WINDOW {
        return Err(bad_query(
            "window",
            "the window is between 1s and 30d".to_owned(),
        ));
    }
    let now = state.engine().now();
    Ok(Json(
        metrics_view(&state, &auth.caller.tenant, before(now, window), now).await?,
    ))
}

/// The action metrics between `start` and `end` (RFC 3339; defaults: the hour before now).
#[utoipa::path(get, path = "/api/metrics/current", tag = "governance",
    security(("bearer" = [])),
    params(RangeMetricsParams),
    responses(
        (status = 200, description = "The window's numbers", body = MetricsView),
        (status = 400, description = "A time that does not parse, an end before the start, or over 30 days", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn range_metrics(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<RangeMetricsParams>,
) -> Result<Json<MetricsView>, ApiError> {
    let end = match params.end.as_deref() {
        Some(text) => parse_time("end", text)?,
        None => state.engine().now(),
    };
    let start = match params.start.as_deref() {
        Some(text) => parse_time("start", text)?,
        None => before(end, HOUR),
    };
    if start >= end {
        return Err(bad_query(
            "start",
            "`start` must be before `end`".to_owned(),
        ));
    }
    if end.since(start) > MAX_WINDOW {
        return Err(bad_query(
            "start",
            "the range is at most 30 days".to_owned(),
        ));
    }
    Ok(Json(
        metrics_view(&state, &auth.caller.tenant, start, end).await?,
    ))
}

/// The action metrics of the last seven days.
#[utoipa::path(get, path = "/api/metrics/weekly", tag = "governance",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The week's numbers", body = MetricsView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn weekly_metrics(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<MetricsView>, ApiError> {
    let now = state.engine().now();
    Ok(Json(
        metrics_view(&state, &auth.caller.tenant, before(now, WEEK), now).await?,
    ))
}
