//! `POST /v1/plans/execute`: the planner's output in, a run out (seed 001).

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kamachiq_api::{ExecuteParams, Problem, RunAccepted, RunLinks};
use kamachiq_domain::plan::{Format, Source};
use kamachiq_domain::{Plan, RunState};
use kamachiq_engine::{DrivenBy, Submission, Target};

use crate::auth::{Authorized, Operate};
use crate::error::ApiError;
use crate::extract::{Query, body, parse_json};
use crate::state::AppState;

/// Most deliverables worked on at once in one run, however many a request asks for.
const MAX_CONCURRENCY: u32 = 1024;

/// Validates a plan and stores it as a new run; a scheduler drives it. The body is the plan
/// as JSON (`application/json`) or YAML (`application/yaml`). A plan that names no tenant is
/// the token's; a plan that names another is refused. Nothing is stored unless the plan is
/// valid.
#[utoipa::path(post, path = "/v1/plans/execute", tag = "runs",
    security(("bearer" = [])),
    params(ExecuteParams),
    request_body(description = "The plan: deliverables with their dependencies, steps and budgets",
        content(
            (Object = "application/json"),
            (String = "application/yaml"),
        )),
    responses(
        (status = 201, description = "The run is stored and scheduled", body = RunAccepted,
            headers(("Location" = String, description = "The run's URL"))),
        (status = 400, description = "Malformed JSON body or query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is neither JSON nor YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The plan or the target repository is not valid; `errors` lists every problem with its line and field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The server is shutting down", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn execute(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
    Query(params): Query<ExecuteParams>,
    request: Request,
) -> Result<Response, ApiError> {
    if state.stopping().is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let format = plan_format(&request)?;
    let bytes = body(request, &state).await?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::bad_request(
            "unreadable_body",
            None,
            format!("the body is not UTF-8: {e}"),
        )
    })?;
    if matches!(format, Format::Json) {
        // Not JSON at all is malformed (400), as on every JSON endpoint; JSON that is not a
        // valid plan is an invalid plan (422) with every problem located.
        parse_json::<serde::de::IgnoredAny>(&bytes)?;
    }
    let caller = auth.caller;
    let source = Source::new("request body", text, format).for_tenant(caller.tenant.clone());
    let plan = Plan::parse(&source).map_err(ApiError::InvalidPlan)?;

    let concurrency = match params.concurrency {
        None => state.options().default_concurrency,
        Some(n @ 1..=MAX_CONCURRENCY) => n,
        Some(n) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                Some("concurrency".to_owned()),
                format!("concurrency must be between 1 and {MAX_CONCURRENCY} (got {n})"),
            ));
        }
    };
    let target = target(&plan, &params, &state.options().repo_roots).await?;
    let deliverables = plan.deliverables.len();
    let run_id = state
        .engine()
        .submit_run(Submission {
            plan,
            target,
            concurrency,
            submitted_by: Some(caller.name.clone()),
            driven_by: DrivenBy::Scheduler,
        })
        .await?;
    let accepted = RunAccepted {
        run_id: run_id.to_string(),
        state: RunState::Running,
        tenant: caller.tenant.to_string(),
        deliverables,
        links: RunLinks::for_run(run_id.as_str()),
    };
    let mut response = (StatusCode::CREATED, axum::Json(accepted)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/workflows/{run_id}")) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

fn plan_format(request: &Request) -> Result<Format, ApiError> {
    let mime = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match mime.as_deref() {
        Some("application/json") => Ok(Format::Json),
        Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml") => {
            Ok(Format::Yaml)
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "send the plan as `Content-Type: application/json` or `application/yaml`".into(),
        )),
    }
}

/// The repository the run merges into: the query's, else the plan's. On a server it must be
/// an absolute path (there is no plan file to be relative to).
async fn target(
    plan: &Plan,
    params: &ExecuteParams,
    roots: &[std::path::PathBuf],
) -> Result<Option<Target>, ApiError> {
    let (repo, field) = match (&params.repo, &plan.repo) {
        (Some(repo), _) => (repo, "repo"),
        (None, Some(repo)) => (repo, "plan.repo"),
        (None, None) => return Ok(None),
    };
    let path = Path::new(repo);
    if !path.is_absolute() {
        return Err(ApiError::Unprocessable {
            code: "invalid_target",
            field: Some(field.to_owned()),
            detail: format!("the repository must be an absolute path on the server (got `{repo}`)"),
        });
    }
    if !roots.is_empty() {
        let inside = std::fs::canonicalize(path)
            .is_ok_and(|real| roots.iter().any(|root| real.starts_with(root)));
        if !inside {
            return Err(ApiError::Unprocessable {
                code: "repo_not_allowed",
                field: Some(field.to_owned()),
                detail: format!(
                    "`{repo}` is not inside a directory this server may merge into (server.repo_roots)"
                ),
            });
        }
    }
    let branch = params.branch.as_deref().or(plan.branch.as_deref());
    Target::resolve(path, branch)
        .await
        .map(Some)
        .map_err(|e| ApiError::Unprocessable {
            code: "invalid_target",
            field: Some(field.to_owned()),
            detail: e.to_string(),
        })
}
