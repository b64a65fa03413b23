//! Probes, metrics and the API's own description.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kamachiq_api::{HealthView, Problem, ReadyView};

use crate::auth::{Authorized, ReadMetrics};
use crate::error::ApiError;
use crate::state::AppState;

/// The process is up. Needs no token: it says nothing about any tenant.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "The server is up", body = HealthView)))]
pub async fn health() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Whether the server can take work: its store answers and it is not stopping. Needs no
/// token. Answers 503 when not ready, so a load balancer stops sending requests.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses(
        (status = 200, description = "Ready", body = ReadyView),
        (status = 503, description = "Not ready: the store does not answer, or the server is stopping", body = ReadyView),
    ))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyView>) {
    let database = state.engine().store().backend().name().to_owned();
    let detail = if state.stopping().is_cancelled() {
        Some("the server is shutting down".to_owned())
    } else {
        match state.engine().store().latest_event_seq().await {
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("readiness: the store does not answer: {e}");
                Some("the store does not answer".to_owned())
            }
        }
    };
    let status = if detail.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadyView {
            ready: detail.is_none(),
            database,
            detail,
        }),
    )
}

/// Prometheus metrics. OpenMetrics when the scraper asks for it, the Prometheus text format
/// otherwise.
#[utoipa::path(get, path = "/metrics", tag = "system",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain", body = String),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `metrics` or `admin` role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics(
    _auth: Authorized<ReadMetrics>,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let load = state.engine().store().load().await?;
    state.metrics().set_load(&load);
    crate::metrics::scrape_governance(&state).await?;
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    let mut response = state.metrics().render(openmetrics).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document of this API", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::openapi())
}
