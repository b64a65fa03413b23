//! `/v1/tokens`: an admin manages the tokens of their own tenant. (The first admin token is
//! made with `kamachiq token create` on the server's machine.)

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kamachiq_api::{CreateTokenRequest, CreatedToken, Problem, TokenView};
use kamachiq_store::{NewToken, Token};

use crate::auth::{Administer, Authorized, new_secret};
use crate::error::ApiError;
use crate::extract::Json as JsonBody;
use crate::state::AppState;

/// Most characters in a token's name.
pub const MAX_NAME: usize = 64;

pub fn view(t: &Token) -> TokenView {
    TokenView {
        id: t.id.clone(),
        tenant: t.tenant.to_string(),
        name: t.name.clone(),
        roles: t.roles.clone(),
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

/// Checks a token name: 1 to 64 printable characters, no spaces at either end.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(format!("a token name has 1 to {MAX_NAME} characters"));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err("a token name has no control characters and no spaces at either end".into());
    }
    Ok(())
}

/// The tenant's tokens, revoked ones included.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's tokens", body = Vec<TokenView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state
        .engine()
        .store()
        .tokens(Some(&auth.caller.tenant))
        .await?;
    Ok(Json(tokens.iter().map(view).collect()))
}

/// Creates a token in the caller's tenant. The secret is in this response only.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens",
    security(("bearer" = [])),
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "The token and its secret, shown this once", body = CreatedToken),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A live token of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad name or roles", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateTokenRequest>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    check_name(&request.name).map_err(|detail| ApiError::Unprocessable {
        code: "invalid_token_name",
        field: Some("name".into()),
        detail,
    })?;
    if request.roles.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "no_roles",
            field: Some("roles".into()),
            detail: "a token needs at least one role".into(),
        });
    }
    let secret = new_secret().map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    let mut roles = request.roles;
    roles.sort_by_key(|r| r.as_str());
    roles.dedup();
    let token = state
        .engine()
        .store()
        .create_token(&NewToken {
            id: ulid::Ulid::generate().to_string().to_lowercase(),
            tenant: auth.caller.tenant.clone(),
            name: request.name,
            roles,
            hash: crate::auth::hash_secret(&secret),
            at: state.engine().now(),
        })
        .await?;
    tracing::info!(token = %token.id, name = %token.name, by = %auth.caller.name, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: view(&token),
            secret,
        }),
    ))
}

/// Revokes one of the tenant's tokens at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The token id")),
    responses(
        (status = 200, description = "The revoked token", body = TokenView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No live token with that id in this tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    let token = state
        .engine()
        .store()
        .revoke_token(&id, Some(&auth.caller.tenant), state.engine().now())
        .await?;
    state.tokens().forget(&token.id);
    tracing::info!(token = %token.id, by = %auth.caller.name, "token revoked");
    Ok(Json(view(&token)))
}
