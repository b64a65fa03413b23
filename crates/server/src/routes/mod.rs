//! The routes, one module per resource. Paths are the ones the runbooks call.

pub mod analytics;
pub mod approvals;
pub mod breakers;
pub mod control;
pub mod cost;
pub mod events;
pub mod governance;
pub mod plans;
pub mod policies;
pub mod readiness;
pub mod requeue;
pub mod system;
pub mod tenants;
pub mod tokens;
pub mod workflows;

use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, patch, post};
use kamachiq_domain::run::Run;
use kamachiq_domain::{RunId, TenantId};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .route("/v1/openapi.json", get(system::openapi_json))
        .route("/v1/plans/execute", post(plans::execute))
        .route("/v1/workflows", get(workflows::list))
        .route("/v1/workflows/{id}", get(workflows::show))
        .route("/v1/workflows/{id}/cancel", post(workflows::cancel))
        .route("/v1/workflows/{id}/resume", post(workflows::resume))
        .route("/v1/workflows/{id}/pause", post(control::pause))
        .route("/v1/stop", get(control::status).post(control::stop))
        .route("/v1/resume-all", post(control::resume_all))
        .route("/v1/kamachiq/runs", get(analytics::runs))
        .route("/v1/kamachiq/summary", get(analytics::summary))
        .route("/v1/kamachiq/cost", get(cost::cost))
        .route("/v1/events", get(events::stream))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/evaluate", post(policies::evaluate))
        .route("/v1/policies", get(policies::current).put(policies::put))
        .route("/v1/policies/{version}", get(policies::version))
        .route("/v1/kamachiq/requeue", get(requeue::list))
        .route("/v1/kamachiq/requeue/{id}/resolve", post(requeue::resolve))
        .route("/v1/tenants", post(tenants::create))
        .route(
            "/v1/tenants/{id}",
            get(tenants::show).merge(patch(tenants::update)),
        )
        .route("/api/governance/state", get(governance::show))
        .route("/api/governance/enable", post(governance::enable))
        .route("/api/governance/settings", patch(governance::configure))
        .route("/api/governance/rollback", post(governance::rollback))
        .route("/api/governance/incidents", post(governance::incident))
        .route("/api/governance/run-cycle", post(governance::run_cycle))
        .route("/api/governance/reports", get(governance::reports))
        .route(
            "/api/governance/reports/latest",
            get(governance::latest_report),
        )
        .route("/api/governance/reports/{id}", get(governance::report))
        .route("/api/governance/proposals", get(governance::proposals))
        .route("/api/governance/proposals/{id}", get(governance::proposal))
        .route(
            "/api/governance/proposals/{id}/approve",
            post(governance::approve_proposal),
        )
        .route(
            "/api/governance/proposals/{id}/reject",
            post(governance::reject_proposal),
        )
        .route(
            "/api/circuit-breaker/rules",
            get(breakers::rules).post(breakers::create_rule),
        )
        .route(
            "/api/circuit-breaker/rules/enabled",
            get(breakers::enabled_rules),
        )
        .route(
            "/api/circuit-breaker/rules/{name}",
            patch(breakers::update_rule).delete(breakers::delete_rule),
        )
        .route("/api/circuit-breaker/events", get(breakers::events))
        .route(
            "/api/circuit-breaker/events/unresolved",
            get(breakers::unresolved_events),
        )
        .route(
            "/api/circuit-breaker/events/{id}/resolve",
            post(breakers::resolve_event),
        )
        .route("/api/readiness/score", get(readiness::score))
        .route("/api/readiness/current", get(readiness::current))
        .route("/api/readiness/latest", get(readiness::latest))
        .route("/api/readiness/attest", post(readiness::attest))
        .route(
            "/api/readiness/checklist",
            get(readiness::checklist).put(readiness::set_checklist),
        )
        .route("/api/metrics/latest", get(readiness::latest_metrics))
        .route("/api/metrics/current", get(readiness::range_metrics))
        .route("/api/metrics/weekly", get(readiness::weekly_metrics))
        .route("/api/approvals", get(approvals::list))
        .route("/api/approvals/{id}", get(approvals::show))
        .route("/api/approvals/{id}/approve", post(approvals::approve))
        .route("/api/approvals/{id}/deny", post(approvals::deny))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// The caller's run `id`. Another tenant's run is "not found", exactly like a run that does
/// not exist: a token cannot learn which ids other tenants use.
pub async fn own_run(state: &AppState, caller: &Caller, id: &str) -> Result<Run, ApiError> {
    let run_id = RunId::parse(id).map_err(|_| ApiError::run_not_found(id))?;
    let run = state.engine().store().run(&run_id).await?;
    if run.tenant != caller.tenant {
        return Err(ApiError::run_not_found(id));
    }
    Ok(run)
}

/// The tenant a request names in `tenant_id`, which must be the caller's (the default).
pub fn own_tenant(caller: &Caller, named: Option<&str>) -> Result<TenantId, ApiError> {
    match named {
        None => Ok(caller.tenant.clone()),
        Some(t) if t == caller.tenant.as_str() => Ok(caller.tenant.clone()),
        Some(t) => Err(ApiError::NotFound {
            what: "tenant",
            id: t.to_owned(),
        }),
    }
}

/// A `limit` query parameter: `default` when absent, else between 1 and `max`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid_query",
            Some("limit".to_owned()),
            format!("limit must be between 1 and {max} (got {n})"),
        )),
    }
}

/// A run id given as the query parameter `field`, if given.
pub fn run_param(field: &str, value: Option<&str>) -> Result<Option<RunId>, ApiError> {
    value
        .map(|id| {
            RunId::parse(id).map_err(|e| {
                ApiError::bad_request("invalid_query", Some(field.to_owned()), e.to_string())
            })
        })
        .transpose()
}
