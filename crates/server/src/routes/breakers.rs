//! `/api/circuit-breaker`: the token's tenant's circuit-breaker rules (list, add, change,
//! delete: what the seed did with SQL for adding one) and the events they raised (list,
//! resolve). A condition that does not parse is refused at once with the parser's message.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kamachiq_api::{
    BreakerEventView, LimitParams, Problem, ResolveEventRequest, RulePatchRequest, RuleView,
    WindowMetricsView,
};
use kamachiq_engine::RulePatch;
use kamachiq_governance::Rule;
use kamachiq_store::BreakerEvent;

use crate::auth::{Authorized, Govern, Operate, Read};
use crate::error::ApiError;
use crate::extract::{Json as JsonBody, OptionalJson, Query};
use crate::routes::governance::{limit, text_field};
use crate::state::AppState;

pub fn event_view(e: &BreakerEvent) -> BreakerEventView {
    BreakerEventView {
        id: e.id.clone(),
        rule_name: e.rule.clone(),
        severity: e.severity,
        action: e.action,
        action_type: e.action_type,
        effect: serde_json::to_value(&e.effect).unwrap_or_default(),
        metrics: WindowMetricsView::from(&e.metrics),
        run_id: e.run.as_ref().map(ToString::to_string),
        timestamp: e.at,
        resolved: e.is_resolved(),
        resolved_at: e.resolved_at,
        resolved_by: e.resolved_by.clone(),
        note: e.note.clone(),
    }
}

async fn rules_of(state: &AppState, auth: &Authorized<Read>) -> Result<Vec<Rule>, ApiError> {
    Ok(state.engine().breaker_rules(&auth.caller.tenant).await?)
}

/// The tenant's rules, in order.
#[utoipa::path(get, path = "/api/circuit-breaker/rules", tag = "governance",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every rule", body = Vec<RuleView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rules(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    let rules = rules_of(&state, &auth).await?;
    Ok(Json(rules.iter().map(RuleView::from).collect()))
}

/// The tenant's enabled rules.
#[utoipa::path(get, path = "/api/circuit-breaker/rules/enabled", tag = "governance",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The enabled rules", body = Vec<RuleView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enabled_rules(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    let rules = rules_of(&state, &auth).await?;
    Ok(Json(
        rules
            .iter()
            .filter(|r| r.enabled)
            .map(RuleView::from)
            .collect(),
    ))
}

/// Adds a rule. Its condition is compiled first: CEL over the window's numbers (`total`,
/// `succeeded`, `failed`, `rolledBack`, `criticalIncidents`, `successRate`, `errorRate`,
/// `rollbackRate`, `costUsd`, `costRatePerHour`, `p50Ms`, `p95Ms`, `p99Ms`). Audited.
#[utoipa::path(post, path = "/api/circuit-breaker/rules", tag = "governance",
    security(("bearer" = [])),
    request_body = kamachiq_api::RuleRequest,
    responses(
        (status = 201, description = "The rule as stored", body = RuleView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` or `ops-lead` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not governed, or a rule of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A condition that does not parse (the parser's message in `detail`), a bad window, name, action or severity", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_rule(
    auth: Authorized<Govern>,
    State(state): State<AppState>,
    JsonBody(rule): JsonBody<Rule>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    state
        .engine()
        .add_rule(&auth.caller.tenant, &rule, &auth.caller.name)
        .await?;
    Ok((StatusCode::CREATED, Json(RuleView::from(&rule))))
}

/// Changes a rule (seed runbook: `condition`, `window`, `alertSeverity`, `enabled`); absent
/// fields keep their value. The result is checked like a new rule. Audited.
#[utoipa::path(patch, path = "/api/circuit-breaker/rules/{name}", tag = "governance",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The rule's name, URL-encoded (`High%20Error%20Rate`)")),
    request_body = RulePatchRequest,
    responses(
        (status = 200, description = "The rule as stored", body = RuleView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` or `ops-lead` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A condition that does not parse, or another bad field", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_rule(
    auth: Authorized<Govern>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<RulePatchRequest>,
) -> Result<Json<RuleView>, ApiError> {
    let window = request
        .window
        .as_deref()
        .map(|w| {
            kamachiq_governance::window::parse(w).map_err(|e| ApiError::Unprocessable {
                code: "invalid_rule",
                field: Some("window".to_owned()),
                detail: e.to_string(),
            })
        })
        .transpose()?;
    let patch = RulePatch {
        enabled: request.enabled,
        condition: request.condition,
        window,
        action: request.action,
        severity: request.alert_severity,
        action_type: request.action_type,
    };
    let rule = state
        .engine()
        .update_rule(&auth.caller.tenant, &name, &patch, &auth.caller.name)
        .await?;
    Ok(Json(RuleView::from(&rule)))
}

/// Deletes a rule. Audited.
#[utoipa::path(delete, path = "/api/circuit-breaker/rules/{name}", tag = "governance",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The rule's name, URL-encoded")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` or `ops-lead` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_rule(
    auth: Authorized<Govern>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .engine()
        .delete_rule(&auth.caller.tenant, &name, &auth.caller.name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn events_of(
    state: &AppState,
    auth: &Authorized<Read>,
    unresolved: bool,
    asked: Option<u32>,
) -> Result<Vec<BreakerEventView>, ApiError> {
    let events = state
        .engine()
        .store()
        .breaker_events(&auth.caller.tenant, unresolved, None, limit(asked, 100)?)
        .await?;
    Ok(events.iter().map(event_view).collect())
}

/// The tenant's breaker events, newest first.
#[utoipa::path(get, path = "/api/circuit-breaker/events", tag = "governance",
    security(("bearer" = [])),
    params(LimitParams),
    responses(
        (status = 200, description = "Events", body = Vec<BreakerEventView>),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn events(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<LimitParams>,
) -> Result<Json<Vec<BreakerEventView>>, ApiError> {
    Ok(Json(events_of(&state, &auth, false, params.limit).await?))
}

/// The tenant's unresolved breaker events (`[]`: all clear; `jq 'length'`).
#[utoipa::path(get, path = "/api/circuit-breaker/events/unresolved", tag = "governance",
    security(("bearer" = [])),
    params(LimitParams),
    responses(
        (status = 200, description = "Unresolved events", body = Vec<BreakerEventView>),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unresolved_events(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<LimitParams>,
) -> Result<Json<Vec<BreakerEventView>>, ApiError> {
    Ok(Json(events_of(&state, &auth, true, params.limit).await?))
}

/// Resolves a breaker event once its cause is found and fixed. An event that paused an action
/// type resumes it (unless another unresolved event keeps it paused); a revert to L3 stays
/// (moving up again takes a proposal). Audited.
#[utoipa::path(post, path = "/api/circuit-breaker/events/{id}/resolve", tag = "governance",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The event (`bke-...`)")),
    request_body(content = Option<ResolveEventRequest>, description = "An optional note"),
    responses(
        (status = 200, description = "The event, resolved", body = BreakerEventView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Resolved already, or the tenant is not governed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A note too long", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resolve_event(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(request): OptionalJson<ResolveEventRequest>,
) -> Result<Json<BreakerEventView>, ApiError> {
    let note = text_field("note", request.note.as_deref(), false)?;
    let event = state
        .engine()
        .resolve_breaker_event(&auth.caller.tenant, &id, note.as_deref(), &auth.caller.name)
        .await?;
    Ok(Json(event_view(&event)))
}
