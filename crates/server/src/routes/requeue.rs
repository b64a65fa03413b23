//! `/v1/kamachiq/requeue`: deliverables held back by policy (seed 001), and their resolution:
//! re-evaluation with the policy in force, or an operator's override with a justification.

use axum::Json;
use axum::extract::{Path, State};
use kamachiq_api::{
    DecisionView, PolicyReasonView, Problem, RequeueEntryView, RequeuePage, RequeueParams,
    ResolveRequest, ResolveView,
};
use kamachiq_engine::Resolved;
use kamachiq_store::{RequeueEntry, RequeueQuery};

use crate::auth::{Authorized, Operate, Read};
use crate::error::ApiError;
use crate::extract::{OptionalJson, Query};
use crate::routes::{own_tenant, page_limit, run_param};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;
/// Longest justification kept with an override.
pub const MAX_JUSTIFICATION: usize = 2000;

pub fn view(e: &RequeueEntry) -> RequeueEntryView {
    RequeueEntryView {
        id: e.id.clone(),
        deliverable: e.deliverable.to_string(),
        run: e.run.to_string(),
        tenant: e.tenant.to_string(),
        action: e.action.as_str().to_owned(),
        decision: e.verdict,
        decision_id: e.decision_id.clone(),
        reasons: e.reasons.iter().map(PolicyReasonView::from).collect(),
        attempts: e.attempts,
        next_retry_at: e.next_retry_at,
        created_at: e.created_at,
        resolved_at: e.resolved_at,
        resolution: e.resolution.map(|r| r.as_str().to_owned()),
        resolved_by: e.resolved_by.clone(),
        justification: e.justification.clone(),
    }
}

/// What resolving did, as the API and `kamachiq requeue resolve --json` show it.
pub fn resolved_view(id: &str, resolved: &Resolved, entry: &RequeueEntry) -> ResolveView {
    match resolved {
        Resolved::LetThrough {
            run,
            deliverable,
            resolution,
        } => ResolveView {
            id: id.to_owned(),
            outcome: "let_through".to_owned(),
            resolution: Some(resolution.as_str().to_owned()),
            decision: None,
            run: run.to_string(),
            deliverable: deliverable.to_string(),
        },
        Resolved::StillBlocked { decision } => ResolveView {
            id: id.to_owned(),
            outcome: "still_blocked".to_owned(),
            resolution: None,
            decision: Some(DecisionView::from(decision)),
            run: entry.run.to_string(),
            deliverable: entry.deliverable.to_string(),
        },
    }
}

/// A justification as given, or why it is not acceptable.
pub fn check_justification(text: Option<&str>) -> Result<&str, String> {
    let text = text.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(
            "an override needs a justification: say why it is right to let this through".into(),
        );
    }
    if text.chars().count() > MAX_JUSTIFICATION {
        return Err(format!(
            "a justification has at most {MAX_JUSTIFICATION} characters"
        ));
    }
    Ok(text)
}

/// Deliverables held back by policy, newest first: those still waiting, or all with `all=true`.
#[utoipa::path(get, path = "/v1/kamachiq/requeue", tag = "policy",
    security(("bearer" = [])),
    params(RequeueParams),
    responses(
        (status = 200, description = "Requeue entries", body = RequeuePage),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`tenant_id` is not the token's tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<RequeueParams>,
) -> Result<Json<RequeuePage>, ApiError> {
    let tenant = own_tenant(&auth.caller, params.tenant_id.as_deref())?;
    let limit = page_limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let run = run_param("run", params.run.as_deref())?;
    let entries = state
        .engine()
        .store()
        .requeue(&RequeueQuery {
            tenant: Some(tenant),
            run,
            open: !params.all.unwrap_or(false),
            limit,
        })
        .await?;
    Ok(Json(RequeuePage {
        items: entries.iter().map(view).collect(),
    }))
}

/// Resolves a blocked deliverable: without a body (or with `allow: false`), policy is asked
/// again and lets it through if it now allows it; with `allow: true` and a justification, an
/// operator overrides the block (audited: who, why, when) and the deliverable runs.
#[utoipa::path(post, path = "/v1/kamachiq/requeue/{id}/resolve", tag = "policy",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The requeue entry (`rq-...`)")),
    request_body(content = Option<ResolveRequest>, description = "Omit to re-evaluate"),
    responses(
        (status = 200, description = "Let through, or still blocked (with the new decision)", body = ResolveView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such entry for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The entry was already resolved", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An override without a justification", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resolve(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(request): OptionalJson<ResolveRequest>,
) -> Result<Json<ResolveView>, ApiError> {
    let engine = state.engine();
    let not_found = || ApiError::NotFound {
        what: "requeue entry",
        id: id.clone(),
    };
    let entry = engine.requeue_entry(&id).await?.ok_or_else(not_found)?;
    if entry.tenant != auth.caller.tenant {
        return Err(not_found());
    }
    let resolved = if request.allow {
        let justification =
            check_justification(request.justification.as_deref()).map_err(|detail| {
                ApiError::Unprocessable {
                    code: "justification_required",
                    field: Some("justification".to_owned()),
                    detail,
                }
            })?;
        engine
            .override_block(&id, &auth.caller.name, justification)
            .await?
    } else {
        engine
            .reevaluate(&id, Some(auth.caller.name.clone()))
            .await?
    };
    Ok(Json(resolved_view(&id, &resolved, &entry)))
}
