//! `/api/governance`: a tenant's autonomy phase and approval mode, the weekly cycle, its
//! reports and proposals, the phase rollback and critical incidents (seed 002's runbook, on
//! the same paths). Every route acts on the token's tenant; an ungoverned tenant's state says
//! `governed: false`, and what needs a governed tenant answers 409 `not_governed`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kamachiq_api::{
    EnableGovernanceRequest, EventSummaryView, GovernanceSettingsRequest, GovernanceSettingsView,
    GovernanceStateView, IncidentRequest, IncidentView, LimitParams, Problem, ProposalApprovalView,
    ProposalDecisionView, ProposalView, ProposalsParams, ReadinessView, RecommendationView,
    RejectProposalRequest, RejectionView, ReportView, RollbackPhaseRequest, WindowMetricsView,
};
use kamachiq_domain::{RunId, TenantId, Timestamp};
use kamachiq_engine::{EnableOptions, GovernanceUpdate, ProposalDecision};
use kamachiq_governance::{GovernanceState, Settings};
use kamachiq_store::{Governed, StoredProposal, StoredReport};

use crate::auth::{Administer, Approve, Authorized, Govern, Operate, Read};
use crate::error::ApiError;
use crate::extract::{Json as JsonBody, OptionalJson, Query};
use crate::state::AppState;

/// Longest reason, comment, note or description kept.
pub const MAX_TEXT: usize = 2000;
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// `text` trimmed, or a 422 naming `field` when it is empty (and required) or too long.
pub fn text_field(
    field: &str,
    text: Option<&str>,
    required: bool,
) -> Result<Option<String>, ApiError> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    let invalid = |detail: String| ApiError::Unprocessable {
        code: "invalid_body",
        field: Some(field.to_owned()),
        detail,
    };
    match text {
        None if required => Err(invalid(format!("`{field}` must not be empty"))),
        Some(t) if t.chars().count() > MAX_TEXT => Err(invalid(format!(
            "`{field}` has at most {MAX_TEXT} characters"
        ))),
        t => Ok(t.map(str::to_owned)),
    }
}

/// A list limit, 1 to 500.
pub fn limit(asked: Option<u32>, default: u32) -> Result<u32, ApiError> {
    match asked {
        None => Ok(default),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid_query",
            Some("limit".to_owned()),
            format!("limit must be between 1 and {MAX_LIMIT} (got {n})"),
        )),
    }
}

/// A window or time to live (`24h`) from a body field, or a 422 naming it.
fn duration_field(field: &str, text: Option<&str>) -> Result<Option<Duration>, ApiError> {
    text.map(|t| {
        kamachiq_governance::window::parse(t).map_err(|e| ApiError::Unprocessable {
            code: "invalid_body",
            field: Some(field.to_owned()),
            detail: e.to_string(),
        })
    })
    .transpose()
}

fn settings_view(s: &Settings) -> GovernanceSettingsView {
    GovernanceSettingsView {
        auto_approve_low_risk: s.auto_approve_low_risk,
        approval_ttl: kamachiq_governance::window::format(s.approval_ttl),
        on_expiry: s.on_expiry,
        risk_threshold: s.risk_threshold,
    }
}

/// The state view of `tenant`: its governance, or (ungoverned) what it would start from.
pub fn state_view(
    tenant: &TenantId,
    governed: Option<&Governed>,
    now: Timestamp,
) -> GovernanceStateView {
    let initial;
    let (state, settings, version) = match governed {
        Some(g) => (&g.state, g.settings.clone(), g.version),
        None => {
            initial = GovernanceState::initial(now);
            (&initial, Settings::default(), 0)
        }
    };
    let days = now.since(state.phase_started_at).as_secs() / 86_400;
    GovernanceStateView {
        tenant: tenant.to_string(),
        governed: governed.is_some(),
        current_phase: state.current_phase,
        phase_started_at: state.phase_started_at,
        validation_ends_at: state.validation_ends_at,
        validation_period_days: state.current_phase.validation_days(),
        days_in_phase: u32::try_from(days).unwrap_or(u32::MAX),
        command_whitelist: state.command_whitelist.clone(),
        paused_actions: state.paused_actions.clone(),
        approval_mode: state.approval_mode,
        settings: settings_view(&settings),
        version,
    }
}

pub fn proposal_view(p: &StoredProposal) -> ProposalView {
    ProposalView {
        id: p.id.clone(),
        tenant: p.tenant.to_string(),
        report_id: p.report_id.clone(),
        status: p.status,
        from_phase: p.draft.from_phase,
        target_phase: p.draft.target_phase,
        whitelist_add: p.draft.whitelist_add.clone(),
        risk: p.draft.risk,
        validation_days: p.draft.validation_days,
        required_approvers: p.draft.required_approvers.clone(),
        remaining_approvers: p.approvals.remaining(),
        requested_by: p.approvals.requested_by.clone(),
        approvals: p
            .approvals
            .approvals
            .iter()
            .map(|a| ProposalApprovalView {
                role: a.role,
                by: a.by.clone(),
                at: a.at,
                comment: a.comment.clone(),
            })
            .collect(),
        rejection: p.approvals.rejection.as_ref().map(|r| RejectionView {
            role: r.role,
            by: r.by.clone(),
            reason: r.reason.clone(),
            at: r.at,
        }),
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

pub fn report_view(r: &StoredReport, proposal: Option<&StoredProposal>) -> ReportView {
    let report = &r.report;
    ReportView {
        id: r.id.clone(),
        tenant: r.tenant.to_string(),
        generated_at: r.at,
        requested_by: r.requested_by.clone(),
        phase: report.phase,
        from: report.from,
        to: report.to,
        metrics: WindowMetricsView::from(&report.metrics),
        readiness: ReadinessView::from(&report.readiness),
        recommendation: RecommendationView {
            kind: report.recommendation.kind,
            reasons: report.recommendation.reasons.clone(),
        },
        circuit_breaker_events: report
            .circuit_breaker_events
            .iter()
            .map(|e| EventSummaryView {
                id: e.id.clone(),
                rule_name: e.rule.clone(),
                severity: e.severity,
                action: e.action,
                action_type: e.action_type,
                timestamp: e.at,
                resolved: e.resolved,
            })
            .collect(),
        proposal: proposal.map(proposal_view),
    }
}

/// The report with its proposal, as stored now.
async fn with_proposal(state: &AppState, report: &StoredReport) -> Result<ReportView, ApiError> {
    let proposal = match &report.report.proposal_id {
        Some(id) => state.engine().store().proposal(id).await?,
        None => None,
    };
    Ok(report_view(report, proposal.as_ref()))
}

async fn current_state(
    state: &AppState,
    tenant: &TenantId,
) -> Result<GovernanceStateView, ApiError> {
    let engine = state.engine();
    let governed = engine.governance(tenant).await?;
    Ok(state_view(tenant, governed.as_ref(), engine.now()))
}

/// The tenant's autonomy governance: `jq '.currentPhase'`, `jq '.commandWhitelist'`.
#[utoipa::path(get, path = "/api/governance/state", tag = "governance", operation_id = "governance_state",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's phase, whitelist, mode and settings", body = GovernanceStateView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<GovernanceStateView>, ApiError> {
    Ok(Json(current_state(&state, &auth.caller.tenant).await?))
}

/// Starts governing the token's tenant: its phase (L3 unless said), mode, settings, the
/// default circuit-breaker rules and readiness checklist. Audited.
#[utoipa::path(post, path = "/api/governance/enable", tag = "governance",
    security(("bearer" = [])),
    request_body(content = Option<EnableGovernanceRequest>, description = "Omit for L3, supervised, the default settings"),
    responses(
        (status = 201, description = "The tenant is governed", body = GovernanceStateView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is governed already", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A phase, mode or setting that is not acceptable, named", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enable(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
    OptionalJson(request): OptionalJson<EnableGovernanceRequest>,
) -> Result<(StatusCode, Json<GovernanceStateView>), ApiError> {
    let defaults = Settings::default();
    let settings = Settings {
        auto_approve_low_risk: request
            .auto_approve_low_risk
            .unwrap_or(defaults.auto_approve_low_risk),
        approval_ttl: duration_field("approvalTtl", request.approval_ttl.as_deref())?
            .unwrap_or(defaults.approval_ttl),
        on_expiry: request.on_expiry.unwrap_or(defaults.on_expiry),
        risk_threshold: request.risk_threshold.unwrap_or(defaults.risk_threshold),
    };
    let options = EnableOptions {
        phase: request.phase.unwrap_or(kamachiq_governance::Phase::L3),
        mode: request
            .mode
            .unwrap_or(kamachiq_governance::ApprovalMode::Supervised),
        settings,
    };
    let engine = state.engine();
    let governed = engine
        .enable_governance(&auth.caller.tenant, &options, &auth.caller.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(state_view(
            &auth.caller.tenant,
            Some(&governed),
            engine.now(),
        )),
    ))
}

/// Changes the tenant's approval mode and settings; absent fields keep their value. Audited.
#[utoipa::path(patch, path = "/api/governance/settings", tag = "governance",
    security(("bearer" = [])),
    request_body = GovernanceSettingsRequest,
    responses(
        (status = 200, description = "The tenant's governance after the change", body = GovernanceStateView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A setting that is not acceptable, named", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn configure(
    auth: Authorized<Administer>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<GovernanceSettingsRequest>,
) -> Result<Json<GovernanceStateView>, ApiError> {
    let update = GovernanceUpdate {
        mode: request.mode,
        auto_approve_low_risk: request.auto_approve_low_risk,
        approval_ttl: duration_field("approvalTtl", request.approval_ttl.as_deref())?,
        on_expiry: request.on_expiry,
        risk_threshold: request.risk_threshold,
    };
    let engine = state.engine();
    let governed = engine
        .configure_governance(&auth.caller.tenant, &update, &auth.caller.name)
        .await?;
    Ok(Json(state_view(
        &auth.caller.tenant,
        Some(&governed),
        engine.now(),
    )))
}

/// Rolls the tenant's phase back to `targetPhase` (the current one restarts it): what the
/// seed did with hand-edited SQL, audited with the reason.
#[utoipa::path(post, path = "/api/governance/rollback", tag = "governance",
    security(("bearer" = [])),
    request_body = RollbackPhaseRequest,
    responses(
        (status = 200, description = "The tenant's governance after the rollback", body = GovernanceStateView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` or `ops-lead` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not governed, or the target is above the current phase", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown phase, or no reason", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rollback(
    auth: Authorized<Govern>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RollbackPhaseRequest>,
) -> Result<Json<GovernanceStateView>, ApiError> {
    let reason = text_field("reason", Some(&request.reason), true)?.unwrap_or_default();
    let engine = state.engine();
    let governed = engine
        .rollback_phase(
            &auth.caller.tenant,
            request.target_phase,
            &reason,
            &auth.caller.name,
        )
        .await?;
    Ok(Json(state_view(
        &auth.caller.tenant,
        Some(&governed),
        engine.now(),
    )))
}

/// Records a critical incident attributed to an action type; circuit breakers judge it at
/// once (the default "Critical Incident" rule reverts to L3). Audited.
#[utoipa::path(post, path = "/api/governance/incidents", tag = "governance",
    security(("bearer" = [])),
    request_body = IncidentRequest,
    responses(
        (status = 201, description = "Recorded", body = IncidentView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`runId` is not a run of the tenant", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown action type, or no description", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn incident(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<IncidentRequest>,
) -> Result<(StatusCode, Json<IncidentView>), ApiError> {
    let description =
        text_field("description", Some(&request.description), true)?.unwrap_or_default();
    let run: Option<RunId> = match &request.run_id {
        Some(id) => Some(crate::routes::own_run(&state, &auth.caller, id).await?.id),
        None => None,
    };
    let tenant = &auth.caller.tenant;
    state
        .engine()
        .record_incident(
            tenant,
            request.action_type,
            &description,
            run,
            &auth.caller.name,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IncidentView {
            recorded: true,
            state: current_state(&state, tenant).await?,
        }),
    ))
}

/// Runs the weekly governance cycle: the week's metrics, readiness, breaker events and the
/// recommendation, with a proposal when expanding is recommended. The caller may not approve
/// that proposal (four eyes). Stored and audited.
#[utoipa::path(post, path = "/api/governance/run-cycle", tag = "governance",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The report", body = ReportView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `operator` role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant is not governed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn run_cycle(
    auth: Authorized<Operate>,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<ReportView>), ApiError> {
    let outcome = state
        .engine()
        .run_cycle(&auth.caller.tenant, &auth.caller.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(report_view(&outcome.report, outcome.proposal.as_ref())),
    ))
}

/// The tenant's governance reports, newest first.
#[utoipa::path(get, path = "/api/governance/reports", tag = "governance",
    security(("bearer" = [])),
    params(LimitParams),
    responses(
        (status = 200, description = "Reports", body = Vec<ReportView>),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reports(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<LimitParams>,
) -> Result<Json<Vec<ReportView>>, ApiError> {
    let limit = limit(params.limit, DEFAULT_LIMIT)?;
    let reports = state
        .engine()
        .store()
        .reports(&auth.caller.tenant, limit)
        .await?;
    let mut views = Vec::with_capacity(reports.len());
    for r in &reports {
        views.push(with_proposal(&state, r).await?);
    }
    Ok(Json(views))
}

/// The latest governance report.
#[utoipa::path(get, path = "/api/governance/reports/latest", tag = "governance",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The latest report", body = ReportView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No cycle ran yet", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn latest_report(
    auth: Authorized<Read>,
    State(state): State<AppState>,
) -> Result<Json<ReportView>, ApiError> {
    let report = state
        .engine()
        .store()
        .reports(&auth.caller.tenant, 1)
        .await?
        .pop()
        .ok_or(ApiError::NotFound {
            what: "governance report",
            id: "latest".to_owned(),
        })?;
    Ok(Json(with_proposal(&state, &report).await?))
}

/// One governance report.
#[utoipa::path(get, path = "/api/governance/reports/{id}", tag = "governance",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The report (`grp-...`)")),
    responses(
        (status = 200, description = "The report", body = ReportView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such report for this tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn report(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReportView>, ApiError> {
    let report = state
        .engine()
        .store()
        .report(&id)
        .await?
        .filter(|r| r.tenant == auth.caller.tenant)
        .ok_or(ApiError::NotFound {
            what: "governance report",
            id,
        })?;
    Ok(Json(with_proposal(&state, &report).await?))
}

/// The tenant's proposals, newest first: the pending ones, or all with `all=true`.
#[utoipa::path(get, path = "/api/governance/proposals", tag = "governance",
    security(("bearer" = [])),
    params(ProposalsParams),
    responses(
        (status = 200, description = "Proposals", body = Vec<ProposalView>),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn proposals(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<ProposalsParams>,
) -> Result<Json<Vec<ProposalView>>, ApiError> {
    let pending = !params.all.unwrap_or(false);
    let proposals = state
        .engine()
        .store()
        .proposals(&auth.caller.tenant, pending, MAX_LIMIT)
        .await?;
    Ok(Json(proposals.iter().map(proposal_view).collect()))
}

/// One proposal.
#[utoipa::path(get, path = "/api/governance/proposals/{id}", tag = "governance",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The proposal (`prp-...`)")),
    responses(
        (status = 200, description = "The proposal", body = ProposalView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such proposal for this tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn proposal(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProposalView>, ApiError> {
    let proposal = state.engine().proposal(&auth.caller.tenant, &id).await?;
    Ok(Json(proposal_view(&proposal)))
}

async fn decision_view(
    state: &AppState,
    tenant: &TenantId,
    decision: &ProposalDecision,
) -> Result<ProposalDecisionView, ApiError> {
    Ok(ProposalDecisionView {
        proposal: proposal_view(&decision.proposal),
        phase_advanced: decision.advanced.is_some(),
        state: current_state(state, tenant).await?,
    })
}

/// Approves a proposal as the token's identity, for one of the roles it names that the token
/// holds and nobody approved yet. The requester cannot approve, nor can one person approve
/// twice; refused while readiness is below 95%, a required item fails, or a breaker event is
/// unresolved. The last approval advances the phase. Audited.
#[utoipa::path(post, path = "/api/governance/proposals/{id}/approve", tag = "governance",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The proposal (`prp-...`)")),
    request_body(content = Option<kamachiq_api::ApproveProposalRequest>, description = "An optional comment"),
    responses(
        (status = 200, description = "Recorded; `phaseAdvanced` when it completed the proposal", body = ProposalDecisionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No approver role, or refused: the requester, a second approval by one person, a role the proposal does not need or already has", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such proposal for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Decided already, the tenant is not ready, or the phase moved", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A free-text approver, or a comment too long", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve_proposal(
    auth: Authorized<Approve>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(request): OptionalJson<kamachiq_api::ApproveProposalRequest>,
) -> Result<Json<ProposalDecisionView>, ApiError> {
    if request.approved_by.is_some() {
        return Err(ApiError::Unprocessable {
            code: "invalid_body",
            field: Some("approvedBy".to_owned()),
            detail: format!(
                "kamachiq takes the approver from the token (here `{}`); leave `approvedBy` out",
                auth.caller.name
            ),
        });
    }
    let comment = text_field("comment", request.comment.as_deref(), false)?;
    let tenant = &auth.caller.tenant;
    let decision = state
        .engine()
        .approve_proposal(
            tenant,
            &id,
            &auth.caller.name,
            &auth.caller.roles,
            comment.as_deref(),
        )
        .await?;
    Ok(Json(decision_view(&state, tenant, &decision).await?))
}

/// Rejects a proposal, as a holder of one of the roles it names. Audited.
#[utoipa::path(post, path = "/api/governance/proposals/{id}/reject", tag = "governance",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The proposal (`prp-...`)")),
    request_body = RejectProposalRequest,
    responses(
        (status = 200, description = "Rejected", body = ProposalDecisionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No approver role, or none of the roles the proposal names", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such proposal for this tenant", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Decided already", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reject_proposal(
    auth: Authorized<Approve>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<RejectProposalRequest>,
) -> Result<Json<ProposalDecisionView>, ApiError> {
    let reason = text_field("reason", Some(&request.reason), true)?.unwrap_or_default();
    let tenant = &auth.caller.tenant;
    let decision = state
        .engine()
        .reject_proposal(tenant, &id, &auth.caller.name, &auth.caller.roles, &reason)
        .await?;
    Ok(Json(decision_view(&state, tenant, &decision).await?))
}
