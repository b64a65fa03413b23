//! `/api/approvals`: the approvals inbox (seed 003). What waits for a person, with its risk,
//! its evidence and its deadline; approving or denying it takes an approver role, and the
//! approver is the token's identity.

use axum::Json;
use axum::extract::{Path, State};
use kamachiq_api::{
    ApprovalView, ApprovalsParams, ApproveRequest, DenyRequest, DiffEvidenceView, EvidenceView,
    PolicyReasonView, Problem, StepEvidenceView,
};
use kamachiq_store::Approval;

use crate::auth::{Approve, Authorized, Caller, Read};
use crate::error::ApiError;
use crate::extract::{Json as JsonBody, OptionalJson, Query};
use crate::routes::governance::{limit, text_field};
use crate::state::AppState;

/// The operation a request is for, as people read it: `merge of api`, `run_step dev of api`.
pub fn operation(a: &Approval) -> String {
    match &a.step {
        Some(step) => format!("{} {step} of {}", a.action, a.deliverable),
        None => format!("{} of {}", a.action, a.deliverable),
    }
}

pub fn view(a: &Approval) -> ApprovalView {
    ApprovalView {
        id: a.id.clone(),
        operation: operation(a),
        action: a.action,
        step: a.step.clone(),
        run_id: a.run.to_string(),
        deliverable: a.deliverable.to_string(),
        tenant: a.tenant.to_string(),
        requeue_id: a.requeue_id.clone(),
        risk: a.risk,
        cause: a.cause,
        evidence: EvidenceView {
            reasons: a
                .evidence
                .reasons
                .iter()
                .map(PolicyReasonView::from)
                .collect(),
            diff: a.evidence.diff.as_ref().map(|d| DiffEvidenceView {
                files: d.files,
                lines_added: d.lines_added,
                lines_removed: d.lines_removed,
                findings: d
                    .findings
                    .iter()
                    .map(|f| match f.line {
                        Some(line) => format!("{}: {}:{line}: {}", f.guard, f.path, f.message),
                        None => format!("{}: {}: {}", f.guard, f.path, f.message),
                    })
                    .collect(),
            }),
            steps: a
                .evidence
                .steps
                .iter()
                .map(|s| StepEvidenceView {
                    step: s.step.clone(),
                    attempt: s.attempt,
                    state: s.state.clone(),
                    exit_code: s.exit_code,
                    reason: s.reason.clone(),
                })
                .collect(),
        },
        requested_at: a.requested_at,
        expires_at: a.expires_at,
        status: a.status.as_str().to_owned(),
        decided_by: a.decided_by.clone(),
        decided_at: a.decided_at,
        comment: a.comment.clone(),
    }
}

/// The caller's approval request `id` ("not found" for another tenant's).
async fn own(state: &AppState, caller: &Caller, id: &str) -> Result<Approval, ApiError> {
    state
        .engine()
        .approval(id)
        .await?
        .filter(|a| a.tenant == caller.tenant)
        .ok_or_else(|| ApiError::NotFound {
            what: "approval request",
            id: id.to_owned(),
        })
}

/// The tenant's approval requests, newest first: those waiting (pending or escalated), or
/// all with `all=true`.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals", operation_id = "list_approvals",
    security(("bearer" = [])),
    params(ApprovalsParams),
    responses(
        (status = 200, description = "Approval requests", body = Vec<ApprovalView>),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<ApprovalsParams>,
) -> Result<Json<Vec<ApprovalView>>, ApiError> {
    let approvals = state
        .engine()
        .store()
        .approvals(
            &auth.caller.tenant,
            !params.all.unwrap_or(false),
            limit(params.limit, 100)?,
        )
        .await?;
    Ok(Json(approvals.iter().map(view).collect()))
}

/// One approval request, with its evidence.
#[utoipa::path(get, path = "/api/approvals/{id}", tag = "approvals", operation_id = "show_approval",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`apr-...`)")),
    responses(
        (status = 200, description = "The request", body = ApprovalView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request for this tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    Ok(Json(view(&own(&state, &auth.caller, &id).await?)))
}

/// Approves a request as the token's identity: the deliverable runs that one action (a later
/// action is decided afresh). Audited, with an `approval_decided` event.
#[utoipa::path(post, path = "/api/approvals/{id}/approve", tag = "approvals", operation_id = "approve_approval",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`apr-...`)")),
    request_body(content = Option<ApproveRequest>, description = "An optional comment"),
    responses(
        (status = 200, description = "Approved", body = ApprovalView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no approver role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Decided already, or expired", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A comment too long", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve(
    auth: Authorized<Approve>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(request): OptionalJson<ApproveRequest>,
) -> Result<Json<ApprovalView>, ApiError> {
    own(&state, &auth.caller, &id).await?;
    let comment = text_field("comment", request.comment.as_deref(), false)?;
    let approved = state
        .engine()
        .approve(&id, &auth.caller.name, comment.as_deref())
        .await?;
    Ok(Json(view(&approved)))
}

/// Denies a request as the token's identity, for a reason: the deliverable stays in the
/// requeue, and nothing retries it on its own. Audited, with an `approval_decided` event.
#[utoipa::path(post, path = "/api/approvals/{id}/deny", tag = "approvals", operation_id = "deny_approval",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request (`apr-...`)")),
    request_body = DenyRequest,
    responses(
        (status = 200, description = "Denied", body = ApprovalView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no approver role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such request for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Decided already, or expired", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deny(
    auth: Authorized<Approve>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<DenyRequest>,
) -> Result<Json<ApprovalView>, ApiError> {
    own(&state, &auth.caller, &id).await?;
    let reason = text_field("reason", Some(&request.reason), true)?.unwrap_or_default();
    let denied = state.engine().deny(&id, &auth.caller.name, &reason).await?;
    Ok(Json(view(&denied)))
}
