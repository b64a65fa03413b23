//! The policy gate over HTTP: `POST /v1/evaluate` (seed 001's policy-engine path) decides an
//! input without acting on it; `/v1/policies` reads and replaces the tenant's Rego policy set.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kamachiq_api::{DecisionView, PolicyModuleView, PolicySetView, Problem, PutPolicyRequest};
use kamachiq_policy::{Input, Module, PolicySet};
use kamachiq_store::StoredPolicy;

use crate::auth::{Administer, Authorized, Read};
use crate::error::ApiError;
use crate::extract::{Json as JsonBody, parse_json};
use crate::state::AppState;

/// Most modules in a policy set.
pub const MAX_MODULES: usize = 100;

pub fn view(p: &StoredPolicy) -> PolicySetView {
    PolicySetView {
        tenant: p.tenant.to_string(),
        version: p.version,
        digest: p.digest.clone(),
        created_by: p.created_by.clone(),
        created_at: p.created_at,
        modules: p
            .modules
            .iter()
            .map(|m| PolicyModuleView {
                name: m.name.clone(),
                source: m.source.clone(),
            })
            .collect(),
    }
}

/// Decides a policy input for the caller's tenant, with its settings and policy set in force,
/// without acting on it or recording it. `tenant` defaults to the token's (and may name no
/// other); `at` defaults to now.
#[utoipa::path(post, path = "/v1/evaluate", tag = "policy",
    security(("bearer" = [])),
    request_body(content = Object, description = "A policy input: `action` (provision, run_step, merge, rollback), `region`, and optionally `run`, `deliverable`, `step`, `spent`, `reserve`, `autonomy`, `emergency_stop`, `diff`, `tenant`, `at`"),
    responses(
        (status = 200, description = "The decision", body = DecisionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`tenant` is not the token's tenant", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The input does not fit, naming the field", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn evaluate(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Json<DecisionView>, ApiError> {
    let serde_json::Value::Object(mut fields) = body else {
        return Err(ApiError::Unprocessable {
            code: "invalid_body",
            field: None,
            detail: "the input must be a JSON object".to_owned(),
        });
    };
    let tenant = auth.caller.tenant.to_string();
    match fields.get("tenant") {
        None => {
            fields.insert("tenant".to_owned(), tenant.clone().into());
        }
        Some(serde_json::Value::String(named)) if *named == tenant => {}
        Some(other) => {
            return Err(ApiError::NotFound {
                what: "tenant",
                id: other.as_str().unwrap_or("?").to_owned(),
            });
        }
    }
    if !fields.contains_key("at") {
        let now = state.engine().now().to_string();
        fields.insert("at".to_owned(), now.into());
    }
    let bytes = serde_json::to_vec(&fields)
        .map_err(|e| ApiError::Internal(format!("cannot re-encode an input: {e}")))?;
    let input: Input = parse_json(&bytes)?;
    let judged = state
        .engine()
        .gate()
        .decide(&auth.caller.tenant, input)
        .await?;
    Ok(Json(DecisionView::from(&judged.decision)))
}

/// The tenant's policy set in force.
#[utoipa::path(get, path = "/v1/policies", tag = "policy",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The policy set in force", body = PolicySetView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The tenant has no policy set", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn current(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<PolicySetView>, ApiError> {
    let policy = state
        .engine()
        .store()
        .policy(&auth.caller.tenant)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            what: "policy set of tenant",
            id: auth.caller.tenant.to_string(),
        })?;
    Ok(Json(view(&policy)))
}

/// One version of the tenant's policy set.
#[utoipa::path(get, path = "/v1/policies/{version}", tag = "policy",
    security(("bearer" = [])),
    params(("version" = u32, Path, description = "The version")),
    responses(
        (status = 200, description = "That version", body = PolicySetView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn version(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<PolicySetView>, ApiError> {
    let not_found = || ApiError::NotFound {
        what: "policy version",
        id: version.clone(),
    };
    let number: u32 = version.parse().map_err(|_| not_found())?;
    let policy = state
        .engine()
        .store()
        .policy_version(&auth.caller.tenant, number)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(&policy)))
}

/// Replaces the tenant's policy set: the modules are compiled first (an error names the module,
/// line and column, and nothing changes), then stored as the next version. Blocked
/// deliverables of the tenant are re-evaluated at once.
#[utoipa::path(put, path = "/v1/policies", tag = "policy",
    security(("bearer" = [])),
    request_body = PutPolicyRequest,
    responses(
        (status = 201, description = "Stored as a new version", body = PolicySetView),
        (status = 200, description = "Identical to the version in force; nothing changed", body = PolicySetView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A module does not compile, or the set is empty", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<PutPolicyRequest>,
) -> Result<(StatusCode, Json<PolicySetView>), ApiError> {
    if request.modules.is_empty() || request.modules.len() > MAX_MODULES {
        return Err(ApiError::Unprocessable {
            code: "invalid_policy",
            field: Some("modules".to_owned()),
            detail: format!("a policy set has 1 to {MAX_MODULES} modules"),
        });
    }
    let modules: Vec<Module> = request
        .modules
        .into_iter()
        .map(|m| Module {
            name: m.name,
            source: m.source,
        })
        .collect();
    if let Err(e) = PolicySet::compile(0, modules.clone()) {
        return Err(ApiError::Unprocessable {
            code: "invalid_policy",
            field: Some("modules".to_owned()),
            detail: e.to_string(),
        });
    }
    let engine = state.engine();
    let (stored, added) = engine
        .store()
        .add_policy(
            &auth.caller.tenant,
            &modules,
            &auth.caller.name,
            engine.now(),
        )
        .await?;
    if added {
        engine.policy_changed(&auth.caller.tenant).await?;
    }
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&stored))))
}
