//! Wire types of autonomy governance (`/api/governance`, `/api/circuit-breaker`,
//! `/api/readiness`, `/api/metrics`, `/api/approvals`). Field names are camelCase, the
//! governance crate's and the seed runbook's: scripts read `.currentPhase`,
//! `.commandWhitelist`, `.score`, `.overall.blockers`, `.errorRate` with `jq`.

use std::collections::BTreeMap;

use kamachiq_domain::{Role, Timestamp};
use kamachiq_governance::proposal::ProposalStatus;
use kamachiq_governance::readiness::Source;
use kamachiq_governance::{
    ApprovalMode, Assessment, BreakerAction, Category, Cause, ExpiryAction, Phase,
    RecommendationKind, Severity, Status, WindowMetrics,
};
use kamachiq_policy::{Action, Risk};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::PolicyReasonView;
use crate::schema;

/// A tenant's approval settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GovernanceSettingsView {
    /// Approve low-risk requests raised only because the action type is not whitelisted, at
    /// once, as `auto`.
    pub auto_approve_low_risk: bool,
    /// How long a request waits for a person (`24h`).
    pub approval_ttl: String,
    #[schema(value_type = schema::ExpiryAction)]
    pub on_expiry: ExpiryAction,
    /// In supervised mode, whitelisted actions at or above this risk wait for a person.
    #[schema(value_type = schema::Risk)]
    pub risk_threshold: Risk,
}

/// A tenant's governance (`GET /api/governance/state`). An ungoverned tenant shows
/// `governed: false` and the state it would start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GovernanceStateView {
    pub tenant: String,
    /// Whether an admin enabled governance for the tenant; without it, policy alone decides.
    pub governed: bool,
    #[schema(value_type = schema::Phase)]
    pub current_phase: Phase,
    #[schema(value_type = schema::Timestamp)]
    pub phase_started_at: Timestamp,
    /// When the phase's validation period ends (absent at L3).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Timestamp>)]
    pub validation_ends_at: Option<Timestamp>,
    /// The phase's validation period, in days (0 at L3).
    pub validation_period_days: u32,
    /// Whole days since the phase started.
    pub days_in_phase: u32,
    /// The action types that run without a person.
    #[schema(value_type = Vec<schema::Action>)]
    pub command_whitelist: Vec<Action>,
    /// The action types a breaker (or an operator) paused: policy denies them.
    #[schema(value_type = Vec<schema::Action>)]
    pub paused_actions: Vec<Action>,
    #[schema(value_type = schema::ApprovalMode)]
    pub approval_mode: ApprovalMode,
    pub settings: GovernanceSettingsView,
    /// Goes up with every change of the tenant's governance (0 while ungoverned).
    pub version: u32,
}

/// Starts governing the caller's tenant (`POST /api/governance/enable`); every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnableGovernanceRequest {
    /// The phase to start at (default `L3`).
    #[schema(value_type = Option<schema::Phase>)]
    pub phase: Option<Phase>,
    /// Default `supervised`.
    #[schema(value_type = Option<schema::ApprovalMode>)]
    pub mode: Option<ApprovalMode>,
    pub auto_approve_low_risk: Option<bool>,
    /// Default `24h`.
    pub approval_ttl: Option<String>,
    #[schema(value_type = Option<schema::ExpiryAction>)]
    pub on_expiry: Option<ExpiryAction>,
    #[schema(value_type = Option<schema::Risk>)]
    pub risk_threshold: Option<Risk>,
}

/// Changes the tenant's mode and approval settings (`PATCH /api/governance/settings`); an
/// absent field keeps its value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GovernanceSettingsRequest {
    #[schema(value_type = Option<schema::ApprovalMode>)]
    pub mode: Option<ApprovalMode>,
    pub auto_approve_low_risk: Option<bool>,
    pub approval_ttl: Option<String>,
    #[schema(value_type = Option<schema::ExpiryAction>)]
    pub on_expiry: Option<ExpiryAction>,
    #[schema(value_type = Option<schema::Risk>)]
    pub risk_threshold: Option<Risk>,
}

/// Rolls the phase back (`POST /api/governance/rollback`), what the seed did with SQL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackPhaseRequest {
    #[schema(value_type = schema::Phase)]
    pub target_phase: Phase,
    /// For the audit trail: the incident, the decision maker.
    pub reason: String,
}

/// A critical incident attributed to an action type (`POST /api/governance/incidents`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IncidentRequest {
    #[schema(value_type = schema::Action)]
    pub action_type: Action,
    pub description: String,
    /// The run it happened in, when known.
    pub run_id: Option<String>,
}

/// What recording an incident did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncidentView {
    pub recorded: bool,
    /// The tenant's governance right after (a breaker may have reverted it already).
    pub state: GovernanceStateView,
}

/// A circuit-breaker rule, as stored and as sent to create one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    /// Unique per tenant.
    pub name: String,
    pub enabled: bool,
    /// CEL over the window's numbers (`errorRate > 0.08 && total >= 20`).
    pub condition: String,
    /// `5m`, `1h`, `7d`.
    pub window: String,
    #[schema(value_type = schema::BreakerAction)]
    pub action: BreakerAction,
    #[schema(value_type = schema::Severity)]
    pub alert_severity: Severity,
    /// The action type it watches; absent: every type.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Action>)]
    pub action_type: Option<Action>,
}

impl From<&kamachiq_governance::Rule> for RuleView {
    fn from(r: &kamachiq_governance::Rule) -> Self {
        Self {
            name: r.name.clone(),
            enabled: r.enabled,
            condition: r.condition.clone(),
            window: kamachiq_governance::window::format(r.window),
            action: r.action,
            alert_severity: r.severity,
            action_type: r.action_type,
        }
    }
}

/// A new rule (`POST /api/circuit-breaker/rules`): `enabled` defaults to true, `severity` is
/// read as `alertSeverity` too.
#[derive(Debug, ToSchema)]
#[schema(as = RuleRequest)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct RuleRequest {
    name: String,
    enabled: Option<bool>,
    condition: String,
    window: String,
    #[schema(value_type = schema::BreakerAction)]
    action: String,
    #[schema(value_type = schema::Severity)]
    alert_severity: String,
    #[schema(value_type = Option<schema::Action>)]
    action_type: Option<String>,
}

/// A change of a rule (`PATCH /api/circuit-breaker/rules/{name}`); an absent field keeps its
/// value, `actionType: null` watches every type again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RulePatchRequest {
    pub enabled: Option<bool>,
    pub condition: Option<String>,
    pub window: Option<String>,
    #[schema(value_type = Option<schema::BreakerAction>)]
    pub action: Option<BreakerAction>,
    #[serde(alias = "severity")]
    #[schema(value_type = Option<schema::Severity>)]
    pub alert_severity: Option<Severity>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<schema::Action>)]
    pub action_type: Option<Option<Action>>,
}

/// `Option<Option<T>>` from JSON: absent is `None`, `null` is `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(inner) => inner.serialize(s),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// The numbers of one action type in a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionMetricsView {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub critical_incidents: u64,
    pub success_rate: f64,
    pub error_rate: f64,
    pub rollback_rate: f64,
    pub cost_usd: f64,
    pub cost_rate_per_hour: f64,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
}

impl From<&WindowMetrics> for ActionMetricsView {
    fn from(m: &WindowMetrics) -> Self {
        Self {
            total: m.total,
            succeeded: m.succeeded,
            failed: m.failed,
            rolled_back: m.rolled_back,
            critical_incidents: m.critical_incidents,
            success_rate: m.success_rate,
            error_rate: m.error_rate,
            rollback_rate: m.rollback_rate,
            cost_usd: m.cost_usd,
            cost_rate_per_hour: m.cost_rate_per_hour,
            p50_ms: m.p50_ms,
            p95_ms: m.p95_ms,
            p99_ms: m.p99_ms,
        }
    }
}

/// The numbers of a window, overall and per action type (`byAction`, keyed `run_step`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowMetricsView {
    #[serde(flatten)]
    pub overall: ActionMetricsView,
    pub by_action: BTreeMap<String, ActionMetricsView>,
}

impl From<&WindowMetrics> for WindowMetricsView {
    fn from(m: &WindowMetrics) -> Self {
        Self {
            overall: ActionMetricsView::from(m),
            by_action: m
                .by_action
                .iter()
                .map(|(k, v)| (k.clone(), ActionMetricsView::from(v)))
                .collect(),
        }
    }
}

/// Action metrics of the caller's tenant over a window (`/api/metrics/latest`, `/current`,
/// `/weekly`): `jq '.errorRate'`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsView {
    pub tenant: String,
    /// The window is `(from, to]`.
    #[schema(value_type = schema::Timestamp)]
    pub from: Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub to: Timestamp,
    /// Its length (`1h`).
    pub window: String,
    #[serde(flatten)]
    pub metrics: WindowMetricsView,
}

/// `GET /api/metrics/latest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LatestMetricsParams {
    /// The window ending now: `5m`, `1h` (default), `24h`, up to `30d`.
    pub window: Option<String>,
}

/// `GET /api/metrics/current`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeMetricsParams {
    /// Start (RFC 3339; default: an hour before `end`).
    pub start: Option<String>,
    /// End (RFC 3339; default: now).
    pub end: Option<String>,
}

/// A breaker event (`GET /api/circuit-breaker/events`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerEventView {
    pub id: String,
    /// The rule's name.
    pub rule_name: String,
    #[schema(value_type = schema::Severity)]
    pub severity: Severity,
    #[schema(value_type = schema::BreakerAction)]
    pub action: BreakerAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Action>)]
    pub action_type: Option<Action>,
    /// What the trip did: `{"kind": "revert_to_l3", "from": "L4", "cleared": [...]}`,
    /// `{"kind": "pause", "action": "merge", "alreadyPaused": false}` or `{"kind": "alert"}`.
    #[schema(value_type = Object)]
    pub effect: serde_json::Value,
    /// The numbers the condition held over.
    pub metrics: WindowMetricsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[schema(value_type = schema::Timestamp)]
    pub timestamp: Timestamp,
    pub resolved: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Timestamp>)]
    pub resolved_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Resolves a breaker event; the note is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveEventRequest {
    /// What was found and fixed.
    pub note: Option<String>,
}

/// A readiness category's points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryScoreView {
    #[schema(value_type = schema::Category)]
    pub name: Category,
    pub points: u32,
    pub max_points: u32,
    pub score: f64,
}

/// One readiness item's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemResultView {
    pub id: String,
    pub title: String,
    #[schema(value_type = schema::Category)]
    pub category: Category,
    pub weight: u32,
    pub required: bool,
    pub passed: bool,
    #[schema(value_type = schema::ItemSource)]
    pub source: Source,
    /// The values a condition read, or the attestation.
    pub evidence: String,
}

/// The overall result: `.overall.blockers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverallView {
    pub score: f64,
    /// One sentence for each required item that did not pass.
    pub blockers: Vec<String>,
}

/// A readiness assessment (`GET /api/readiness/current`, `/latest`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessView {
    #[schema(value_type = schema::Phase)]
    pub phase: Phase,
    #[schema(value_type = schema::Timestamp)]
    pub assessed_at: Timestamp,
    /// Points over the maximum, in [0, 1].
    pub score: f64,
    pub points: u32,
    pub max_points: u32,
    #[schema(value_type = schema::ReadinessStatus)]
    pub status: Status,
    pub categories: Vec<CategoryScoreView>,
    pub items: Vec<ItemResultView>,
    pub overall: OverallView,
}

impl From<&Assessment> for ReadinessView {
    fn from(a: &Assessment) -> Self {
        Self {
            phase: a.phase,
            assessed_at: a.assessed_at,
            score: a.score,
            points: a.points,
            max_points: a.max_points,
            status: a.status,
            categories: a
                .categories
                .iter()
                .map(|c| CategoryScoreView {
                    name: c.name,
                    points: c.points,
                    max_points: c.max_points,
                    score: c.score,
                })
                .collect(),
            items: a
                .items
                .iter()
                .map(|i| ItemResultView {
                    id: i.id.clone(),
                    title: i.title.clone(),
                    category: i.category,
                    weight: i.weight,
                    required: i.required,
                    passed: i.passed,
                    source: i.source,
                    evidence: i.evidence.clone(),
                })
                .collect(),
            overall: OverallView {
                score: a.overall.score,
                blockers: a.overall.blockers.clone(),
            },
        }
    }
}

/// The readiness score (`GET /api/readiness/score`): `jq '.score'`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessScoreView {
    #[schema(value_type = schema::Phase)]
    pub phase: Phase,
    #[schema(value_type = schema::Timestamp)]
    pub assessed_at: Timestamp,
    pub score: f64,
    pub points: u32,
    pub max_points: u32,
    #[schema(value_type = schema::ReadinessStatus)]
    pub status: Status,
    pub categories: Vec<CategoryScoreView>,
    pub blockers: Vec<String>,
}

impl From<&Assessment> for ReadinessScoreView {
    fn from(a: &Assessment) -> Self {
        let full = ReadinessView::from(a);
        Self {
            phase: full.phase,
            assessed_at: full.assessed_at,
            score: full.score,
            points: full.points,
            max_points: full.max_points,
            status: full.status,
            categories: full.categories,
            blockers: full.overall.blockers,
        }
    }
}

/// Attests a readiness item (`POST /api/readiness/attest`); the attester is the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestRequest {
    /// The item's id (`org.on_call`).
    pub item: String,
    /// What shows it: a link, a document, a sentence.
    pub evidence: String,
}

/// An attestation as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationView {
    pub item: String,
    pub by: String,
    pub evidence: String,
    #[schema(value_type = schema::Timestamp)]
    pub at: Timestamp,
}

/// The cycle's recommendation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationView {
    #[schema(value_type = schema::RecommendationKind)]
    pub kind: RecommendationKind,
    pub reasons: Vec<String>,
}

/// A breaker event as a report keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSummaryView {
    pub id: String,
    pub rule_name: String,
    #[schema(value_type = schema::Severity)]
    pub severity: Severity,
    #[schema(value_type = schema::BreakerAction)]
    pub action: BreakerAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Action>)]
    pub action_type: Option<Action>,
    #[schema(value_type = schema::Timestamp)]
    pub timestamp: Timestamp,
    pub resolved: bool,
}

/// One approval of a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalApprovalView {
    #[schema(value_type = schema::Role)]
    pub role: Role,
    /// The approver's identity (a token's name).
    pub by: String,
    #[schema(value_type = schema::Timestamp)]
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A proposal's rejection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectionView {
    #[schema(value_type = schema::Role)]
    pub role: Role,
    pub by: String,
    pub reason: String,
    #[schema(value_type = schema::Timestamp)]
    pub at: Timestamp,
}

/// An expansion proposal (`GET /api/governance/proposals`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalView {
    pub id: String,
    pub tenant: String,
    /// The report of the cycle that drafted it.
    pub report_id: String,
    #[schema(value_type = schema::ProposalStatus)]
    pub status: ProposalStatus,
    #[schema(value_type = schema::Phase)]
    pub from_phase: Phase,
    #[schema(value_type = schema::Phase)]
    pub target_phase: Phase,
    /// Action types the target phase adds to the whitelist.
    #[schema(value_type = Vec<schema::Action>)]
    pub whitelist_add: Vec<Action>,
    #[schema(value_type = schema::Risk)]
    pub risk: Risk,
    pub validation_days: u32,
    /// One approval per role, each from a different person who is not the requester.
    #[schema(value_type = Vec<schema::Role>)]
    pub required_approvers: Vec<Role>,
    /// The roles still without an approval.
    #[schema(value_type = Vec<schema::Role>)]
    pub remaining_approvers: Vec<Role>,
    /// Who ran the cycle that drafted it.
    pub requested_by: String,
    pub approvals: Vec<ProposalApprovalView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<RejectionView>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: Timestamp,
}

/// A governance report (`POST /api/governance/run-cycle`, `GET /api/governance/reports`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportView {
    pub id: String,
    pub tenant: String,
    #[schema(value_type = schema::Timestamp)]
    pub generated_at: Timestamp,
    pub requested_by: String,
    #[schema(value_type = schema::Phase)]
    pub phase: Phase,
    /// The week looked at: `(from, to]`.
    #[schema(value_type = schema::Timestamp)]
    pub from: Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub to: Timestamp,
    pub metrics: WindowMetricsView,
    pub readiness: ReadinessView,
    pub recommendation: RecommendationView,
    pub circuit_breaker_events: Vec<EventSummaryView>,
    /// The proposal drafted, when expanding is recommended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<ProposalView>,
}

/// `GET /api/governance/proposals`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProposalsParams {
    /// Decided proposals too (default: only pending ones).
    pub all: Option<bool>,
}

/// `GET /api/governance/reports`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitParams {
    /// At most this many, newest first (1 to 500; default 50).
    pub limit: Option<u32>,
}

/// Approves a proposal; the approver is the token (a free-text `approvedBy`, as the seed sent
/// it, is refused).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveProposalRequest {
    pub comment: Option<String>,
    /// Refused: kamachiq takes the approver from the token.
    pub approved_by: Option<String>,
}

/// Rejects a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectProposalRequest {
    pub reason: String,
}

/// What a decision on a proposal did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalDecisionView {
    pub proposal: ProposalView,
    /// Whether this decision completed the proposal and advanced the phase.
    pub phase_advanced: bool,
    /// The tenant's governance after the decision.
    pub state: GovernanceStateView,
}

/// The statistics of a diff, with what the review guards found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiffEvidenceView {
    pub files: u32,
    pub lines_added: u32,
    pub lines_removed: u32,
    /// Each finding as `guard: path:line: message`.
    pub findings: Vec<String>,
}

/// How a step of the deliverable went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepEvidenceView {
    pub step: String,
    pub attempt: u32,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a person sees to decide.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceView {
    pub reasons: Vec<PolicyReasonView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<DiffEvidenceView>,
    pub steps: Vec<StepEvidenceView>,
}

/// An approval request (`GET /api/approvals`, `kamachiq approvals view --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalView {
    /// `apr-...`
    pub id: String,
    /// The operation waiting: `merge of api-svc`, `run_step dev of api-svc`.
    pub operation: String,
    #[schema(value_type = schema::Action)]
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub run_id: String,
    pub deliverable: String,
    pub tenant: String,
    /// The blocked deliverable's requeue entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeue_id: Option<String>,
    #[schema(value_type = schema::Risk)]
    pub risk: Risk,
    /// Why governance asks (absent when only the policy gate did).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Cause>)]
    pub cause: Option<Cause>,
    pub evidence: EvidenceView,
    #[schema(value_type = schema::Timestamp)]
    pub requested_at: Timestamp,
    #[schema(value_type = schema::Timestamp)]
    pub expires_at: Timestamp,
    #[schema(value_type = schema::ApprovalStatus)]
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<schema::Timestamp>)]
    pub decided_at: Option<Timestamp>,
    /// The approver's comment, or why it was denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `GET /api/approvals`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApprovalsParams {
    /// Decided requests too (default: only those waiting: pending or escalated).
    pub all: Option<bool>,
    /// At most this many, newest first (1 to 500; default 100).
    pub limit: Option<u32>,
}

/// Approves a request; the approver is the token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveRequest {
    pub comment: Option<String>,
}

/// Denies a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DenyRequest {
    pub reason: String,
}
