//! kamachiq's HTTP server: the API the runbooks call with curl (`/v1/plans/execute`,
//! `/v1/workflows`, `/v1/kamachiq/*`, and autonomy governance under `/api/...` at seed 002's
//! paths), API tokens with roles and tenants, the event stream (Server-Sent Events,
//! resumable), Prometheus metrics and the OpenAPI document.
//!
//! [`app`] builds the whole router from an [`AppState`] without binding a socket, so tests call
//! it with `oneshot`. Handlers are short: extract, authorize (a typed extractor, so no handler
//! can forget), call the engine or the store, map to a view from the api crate. Errors become
//! `application/problem+json` in one place ([`error`]). Depends on the domain, store, engine and
//! api crates; the binary wires it to a listener and signals.

mod auth;
mod cache;
mod error;
mod extract;
mod feed;
mod metrics;
mod openapi;
mod routes;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use auth::{Caller, hash_secret, new_secret};
pub use error::ApiError;
pub use openapi::{openapi, openapi_json};
pub use routes::approvals::view as approval_view;
pub use routes::breakers::event_view as breaker_event_view;
pub use routes::control::view as stop_view;
pub use routes::cost::{spend_by, view as cost_view};
pub use routes::governance::{proposal_view, report_view, state_view};
pub use routes::policies::view as policy_view;
pub use routes::requeue::{check_justification, resolved_view, view as requeue_view};
pub use routes::tokens::{check_name as check_token_name, view as token_view};
pub use state::{AppState, ServerOptions};

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] kamachiq_store::Error),
    #[error(transparent)]
    Engine(#[from] kamachiq_engine::Error),
}

/// The whole HTTP API.
pub fn app(state: AppState) -> Router {
    let body_limit = state.options().body_limit;
    routes::router()
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
