//! Tenants and inputs shared by the integration tests.

use std::path::PathBuf;

use kamachiq_domain::tenant::{Budgets, TenantSettings};
use kamachiq_domain::{Tenant, TenantId, Timestamp};
use kamachiq_policy::{Action, Autonomy, DeliverableInput, Input, Reserve, RunInput, Spent};

/// `examples/policies` at the workspace root.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

/// A tenant restricted to one region, with budgets, personas and tools.
pub fn tenant() -> Tenant {
    let mut tenant = Tenant::unconfigured(TenantId::parse("tenant-a").unwrap());
    tenant.version = 3;
    tenant.settings = TenantSettings {
        regions: vec!["eu-west-1".into()],
        threshold: 0.5,
        budgets: Budgets {
            deliverable_tokens: Some(25_000),
            run_tokens: Some(100_000),
            day_tokens: Some(1_000_000),
            day_cost_micro_usd: Some(50_000_000),
        },
        personas: vec!["developer_backend.v2".into(), "sre.v1".into()],
        tools: vec!["github".into(), "plane".into()],
    };
    tenant
}

/// A merge of deliverable `api-svc` that nothing objects to.
pub fn merge() -> Input {
    Input {
        action: Action::Merge,
        tenant: "tenant-a".into(),
        region: "eu-west-1".into(),
        run: Some(RunInput {
            id: "run-1".into(),
            title: Some("billing export".into()),
        }),
        deliverable: Some(DeliverableInput {
            id: "api-svc".into(),
            persona: Some("developer_backend.v2".into()),
            tools: vec!["github".into()],
            budget_tokens: None,
        }),
        step: None,
        spent: Spent::default(),
        reserve: Reserve::default(),
        autonomy: Autonomy::default(),
        emergency_stop: false,
        diff: None,
        at: Timestamp::from_millis(1_795_000_000_000),
    }
}
