//! Wire types of the policy gate: decisions, the requeue of blocked deliverables, tenants and
//! their policy sets.

use kamachiq_domain::Timestamp;
use kamachiq_domain::tenant::{Budgets, Tenant};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::schema;

/// Why policy decided as it did: a stable code, a sentence, and the rule that said so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyReasonView {
    /// `residency`, `budget_exhausted`, `emergency_stop`, `persona_not_allowed`,
    /// `tool_not_allowed`, `score_below_threshold`, `policy_error`, or a code of the tenant's
    /// own Rego policies.
    pub code: String,
    pub message: String,
    /// `builtin.residency`, `data.kamachiq.deny (residency.rego)`, ...
    pub rule: String,
}

impl From<&kamachiq_policy::Reason> for PolicyReasonView {
    fn from(r: &kamachiq_policy::Reason) -> Self {
        Self {
            code: r.code.clone(),
            message: r.message.clone(),
            rule: r.rule.clone(),
        }
    }
}

/// A decision of the policy gate (`POST /v1/evaluate`, `kamachiq policy eval --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    /// `allow`, `require_approval` or `deny`.
    #[schema(value_type = schema::Verdict)]
    pub decision: kamachiq_policy::Verdict,
    /// In [0, 1]; 0 when anything denies.
    pub score: f64,
    /// The tenant's threshold: a lower score is a deny.
    pub threshold: f64,
    /// `low`, `medium`, `high` or `critical`.
    #[schema(value_type = schema::Risk)]
    pub risk: kamachiq_policy::Risk,
    pub reasons: Vec<PolicyReasonView>,
    /// Version of the tenant's policy set that decided; absent without one.
    pub policy_version: Option<u32>,
    /// Version of the tenant's settings that decided (0: never configured).
    pub tenant_version: u32,
}

impl From<&kamachiq_policy::Decision> for DecisionView {
    fn from(d: &kamachiq_policy::Decision) -> Self {
        Self {
            decision: d.verdict,
            score: d.score,
            threshold: d.threshold,
            risk: d.risk,
            reasons: d.reasons.iter().map(PolicyReasonView::from).collect(),
            policy_version: d.policy_version,
            tenant_version: d.tenant_version,
        }
    }
}

/// A deliverable held back by policy (`GET /v1/kamachiq/requeue`, `kamachiq requeue list
/// --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequeueEntryView {
    /// The entry's id (`rq-...`), for `resolve`.
    pub id: String,
    pub deliverable: String,
    pub run: String,
    pub tenant: String,
    /// What policy held back: `provision`, `run_step` or `merge`.
    pub action: String,
    /// The latest decision about it: `deny` or `require_approval`.
    #[schema(value_type = schema::Verdict)]
    pub decision: kamachiq_policy::Verdict,
    pub decision_id: String,
    pub reasons: Vec<PolicyReasonView>,
    /// Automatic re-evaluations so far.
    pub attempts: u32,
    /// When the retry loop looks at it next; null once it gave up (an operator decides).
    #[schema(value_type = Option<schema::Timestamp>)]
    pub next_retry_at: Option<Timestamp>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub resolved_at: Option<Timestamp>,
    /// `allowed` (policy let it through), `overridden` or `cancelled`; null while it waits.
    pub resolution: Option<String>,
    pub resolved_by: Option<String>,
    pub justification: Option<String>,
}

/// A page of requeue entries, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequeuePage {
    pub items: Vec<RequeueEntryView>,
}

/// Which requeue entries to list.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RequeueParams {
    /// Also list resolved entries (default: only those still waiting).
    pub all: Option<bool>,
    /// Only this run's entries.
    pub run: Option<String>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<u32>,
    /// Must be the token's tenant when given.
    pub tenant_id: Option<String>,
}

/// How to resolve a requeue entry: re-evaluate with the policy in force (the default), or
/// override (`allow: true`) with a justification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    #[serde(default)]
    pub allow: bool,
    /// Why the override is right; required with `allow`, recorded in the audit trail.
    pub justification: Option<String>,
}

/// What resolving did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResolveView {
    pub id: String,
    /// `let_through` (the deliverable is pending and will run) or `still_blocked`.
    pub outcome: String,
    /// How it was let through: `allowed` or `overridden`.
    pub resolution: Option<String>,
    /// The new decision, when policy was asked again and still holds it back.
    pub decision: Option<DecisionView>,
    pub run: String,
    pub deliverable: String,
}

/// A tenant's settings (`kamachiq tenant show --json`, `GET /v1/tenants/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    /// Regions the tenant's runs may use; empty: any.
    pub regions: Vec<String>,
    pub threshold: f64,
    #[schema(value_type = schema::Budgets)]
    pub budgets: Budgets,
    /// Personas allowed; empty: any.
    pub personas: Vec<String>,
    /// Tools allowed; empty: any.
    pub tools: Vec<String>,
    /// 0 for a tenant never configured (the defaults apply).
    pub version: u32,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub created_at: Option<Timestamp>,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub updated_at: Option<Timestamp>,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        let configured = t.version > 0;
        Self {
            id: t.id.to_string(),
            regions: t.settings.regions.clone(),
            threshold: t.settings.threshold,
            budgets: t.settings.budgets,
            personas: t.settings.personas.clone(),
            tools: t.settings.tools.clone(),
            version: t.version,
            created_at: configured.then_some(t.created_at),
            updated_at: configured.then_some(t.updated_at),
        }
    }
}

/// One file of a policy set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyModuleView {
    /// The file's path in the policy directory (`residency.rego`).
    pub name: String,
    /// Rego source.
    pub source: String,
}

/// A version of a tenant's policy set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicySetView {
    pub tenant: String,
    pub version: u32,
    /// SHA-256 of the modules.
    pub digest: String,
    pub created_by: String,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: Timestamp,
    pub modules: Vec<PolicyModuleView>,
}

/// A new version of the tenant's policy set (`PUT /v1/policies`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicyRequest {
    pub modules: Vec<PolicyModuleView>,
}

/// A tenant to configure (`POST /v1/tenants`): its id (the token's own tenant) and settings.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    pub id: String,
    #[serde(default)]
    #[schema(value_type = schema::TenantSettingsBody)]
    pub settings: kamachiq_domain::tenant::TenantUpdate,
}

/// Spend from the usage ledger (`GET /v1/kamachiq/cost`, `kamachiq metrics cost --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CostView {
    /// What the rows are grouped by: `run`, `deliverable`, `model`, `day` or `tenant`.
    pub by: String,
    /// Largest cost first.
    pub rows: Vec<CostRowView>,
    pub total_tokens: u64,
    pub total_cost_usd: f64,
}

/// One group of the ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CostRowView {
    /// The run id, `run/deliverable`, the model, the day (`2026-11-30`) or the tenant.
    pub key: String,
    pub tokens: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Agent step attempts that reported usage.
    pub steps: u64,
}

/// Which part of the ledger to sum.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// `run`, `deliverable`, `model` (the default), `day`.
    pub by: Option<String>,
    /// Only this run.
    pub run: Option<String>,
    /// Only usage since this time (RFC 3339).
    pub since: Option<String>,
    /// Must be the token's tenant when given.
    pub tenant_id: Option<String>,
}
