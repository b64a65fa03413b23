//! `/v1/tenants`: the settings the built-in guards enforce for the caller's own tenant (allowed
//! regions, threshold, budgets, personas, tools). Reading needs any role; changing needs
//! `admin`. Every change is audited and re-evaluates the tenant's blocked deliverables.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kamachiq_api::{CreateTenantRequest, Problem, TenantView};
use kamachiq_domain::tenant::{TenantSettings, TenantUpdate};
use kamachiq_domain::{Tenant, TenantId};

use crate::auth::{Administer, Authorized, Caller, Read};
use crate::error::ApiError;
use crate::extract::Json as JsonBody;
use crate::state::AppState;

/// The tenant `id` when it is the caller's; another tenant is "not found".
fn own(caller: &Caller, id: &str) -> Result<TenantId, ApiError> {
    if id == caller.tenant.as_str() {
        Ok(caller.tenant.clone())
    } else {
        Err(ApiError::NotFound {
            what: "tenant",
            id: id.to_owned(),
        })
    }
}

/// The tenant's settings (the defaults, version 0, when it was never configured).
#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "policy",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant: the token's own")),
    responses(
        (status = 200, description = "The tenant's settings", body = TenantView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not the token's tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let id = own(&auth.caller, &id)?;
    let tenant = state.engine().store().tenant_or_default(&id).await?;
    Ok(Json(TenantView::from(&tenant)))
}

/// Configures the caller's tenant for the first time.
#[utoipa::path(post, path = "/v1/tenants", tag = "policy",
    security(("bearer" = [])),
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "The tenant as stored", body = TenantView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not the token's tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is already configured", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A setting is not acceptable, naming it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateTenantRequest>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let id = own(&auth.caller, &request.id)?;
    let settings = TenantSettings::default()
        .updated(&request.settings)
        .map_err(|e| invalid_setting(&e))?;
    let engine = state.engine();
    let tenant = engine
        .store()
        .create_tenant(&id, &settings, &auth.caller.name, engine.now())
        .await?;
    engine.policy_changed(&id).await?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&tenant))))
}

/// Changes some of the tenant's settings; fields left out keep their value.
#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "policy",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant: the token's own")),
    request_body = kamachiq_api::schema::TenantSettingsBody,
    responses(
        (status = 200, description = "The tenant as stored", body = TenantView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not the token's tenant, or not configured yet", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A setting is not acceptable, naming it", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(update): JsonBody<TenantUpdate>,
) -> Result<Json<TenantView>, ApiError> {
    let id = own(&auth.caller, &id)?;
    let engine = state.engine();
    let tenant: Tenant = engine
        .store()
        .update_tenant(&id, &update, &auth.caller.name, engine.now())
        .await?;
    engine.policy_changed(&id).await?;
    Ok(Json(TenantView::from(&tenant)))
}

fn invalid_setting(e: &kamachiq_domain::tenant::InvalidSetting) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_setting",
        field: Some(e.field.clone()),
        detail: e.to_string(),
    }
}
