//! OpenAPI schemas for the domain types the views carry. The domain crate knows nothing of
//! OpenAPI, so each gets a schema-only marker here, built from the type's own list of names:
//! a state or code added to the domain shows up in the spec without anyone remembering to.

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

macro_rules! name_schema {
    ($(#[doc = $doc:literal])* $marker:ident for $ty:ty) => {
        $(#[doc = $doc])*
        #[derive(Debug)]
        pub struct $marker;

        impl utoipa::PartialSchema for $marker {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(concat!($($doc),*).trim()))
                    .enum_values(Some(<$ty>::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $marker {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($marker))
            }
        }
    };
}

name_schema!(
    /// The state of a run.
    RunState for kamachiq_domain::RunState
);
name_schema!(
    /// The state of a deliverable.
    DeliverableState for kamachiq_domain::DeliverableState
);
name_schema!(
    /// How one attempt of a step ended, or that it is still running.
    StepState for kamachiq_domain::run::StepState
);
name_schema!(
    /// Why a deliverable or step did not succeed.
    ReasonCode for kamachiq_domain::ReasonCode
);
name_schema!(
    /// What an event records.
    EventKind for kamachiq_domain::EventKind
);
name_schema!(
    /// A role an API token holds.
    Role for kamachiq_domain::Role
);

/// A UTC time, RFC 3339 with milliseconds.
#[derive(Debug)]
pub struct Timestamp;

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("A UTC time, RFC 3339."))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }
}

/// Why a deliverable or step did not succeed.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = Reason)]
#[allow(dead_code)]
pub struct Reason {
    #[schema(value_type = ReasonCode)]
    code: String,
    /// What happened, for people.
    detail: String,
}

/// Deliverables counted by state.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = StateCounts)]
#[allow(dead_code)]
pub struct StateCounts {
    total: u32,
    pending: u32,
    running: u32,
    succeeded: u32,
    failed: u32,
    skipped: u32,
    blocked: u32,
    cancelled: u32,
}

/// What the policy gate decided.
#[derive(Debug)]
pub struct Verdict;

impl utoipa::PartialSchema for Verdict {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("What the policy gate decided."))
            .enum_values(Some(["allow", "require_approval", "deny"]))
            .into()
    }
}

impl utoipa::ToSchema for Verdict {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Verdict")
    }
}

/// How risky an action is judged.
#[derive(Debug)]
pub struct Risk;

impl utoipa::PartialSchema for Risk {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("How risky an action is judged."))
            .enum_values(Some(["low", "medium", "high", "critical"]))
            .into()
    }
}

impl utoipa::ToSchema for Risk {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Risk")
    }
}

/// A tenant's spending caps; an absent field is no cap.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = Budgets)]
#[allow(dead_code)]
pub struct Budgets {
    /// Most tokens one deliverable may use.
    deliverable_tokens: Option<u64>,
    /// Most tokens one run may use.
    run_tokens: Option<u64>,
    /// Most tokens the tenant may use per UTC day.
    day_tokens: Option<u64>,
    /// Most the tenant may spend per UTC day, in micro-dollars.
    day_cost_micro_usd: Option<u64>,
}

/// Tenant settings to set; every field optional, an absent field keeps its value. A budget
/// field set to null removes that cap.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = TenantSettingsBody)]
#[allow(dead_code)]
pub struct TenantSettingsBody {
    /// Regions the tenant's runs may use; empty: any.
    regions: Option<Vec<String>>,
    /// Lowest score an action may have and still run without review, in [0, 1] (default 0.5).
    threshold: Option<f64>,
    deliverable_tokens: Option<u64>,
    run_tokens: Option<u64>,
    day_tokens: Option<u64>,
    /// Micro-dollars (1 USD = 1,000,000).
    day_cost_micro_usd: Option<u64>,
    /// Personas allowed; empty: any.
    personas: Option<Vec<String>>,
    /// Tools allowed; empty: any.
    tools: Option<Vec<String>>,
}

/// A schema-only marker for a string that takes one of a fixed list of values.
macro_rules! value_schema {
    ($(#[doc = $doc:literal])* $marker:ident: [$($value:literal),+ $(,)?]) => {
        $(#[doc = $doc])*
        #[derive(Debug)]
        pub struct $marker;

        impl utoipa::PartialSchema for $marker {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(concat!($($doc),*).trim()))
                    .enum_values(Some([$($value),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $marker {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($marker))
            }
        }
    };
}

value_schema!(
    /// An autonomy phase, from least to most autonomous.
    Phase: ["L3", "L3+", "L4", "L4+", "L5"]
);
value_schema!(
    /// A kind of automated action.
    Action: ["provision", "run_step", "merge", "rollback"]
);
value_schema!(
    /// How approvals are asked: a person for everything, for what is outside the whitelist or
    /// at or above the risk threshold, or only for what policy asks.
    ApprovalMode: ["manual", "supervised", "autonomous"]
);
value_schema!(
    /// What becomes of an approval request nobody answered in time.
    ExpiryAction: ["deny", "escalate"]
);
value_schema!(
    /// What a tripped circuit breaker does.
    BreakerAction: ["revert_to_l3", "pause_command_type", "alert_only"]
);
value_schema!(
    /// How urgently a person must respond to a breaker event.
    Severity: ["low", "medium", "high", "critical"]
);
value_schema!(
    /// A readiness checklist category.
    Category: ["technical", "process", "organizational"]
);
value_schema!(
    /// The readiness status: ready at 95% with every required item passed, almost ready at
    /// 90-94% without blockers, needs work otherwise.
    ReadinessStatus: ["ready", "almost_ready", "needs_work"]
);
value_schema!(
    /// What decided a readiness item.
    ItemSource: ["metric", "attested", "missing"]
);
value_schema!(
    /// What the weekly cycle recommends.
    RecommendationKind: ["expand", "maintain", "investigate"]
);
value_schema!(
    /// Where a proposal stands.
    ProposalStatus: ["pending", "approved", "rejected", "withdrawn"]
);
value_schema!(
    /// Where an approval request stands.
    ApprovalStatus: ["pending", "approved", "denied", "expired", "escalated", "withdrawn"]
);
value_schema!(
    /// Why governance asks a person to approve an action.
    Cause: ["paused", "manual_mode", "policy", "not_whitelisted", "risk"]
);
