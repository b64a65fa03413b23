//! The twenty-rule policy the `decide` benchmark runs: it must compile and decide cleanly, or
//! the benchmark measures an error path.

use std::path::PathBuf;

use kamachiq_domain::Tenant;
use kamachiq_domain::TenantId;
use kamachiq_domain::Timestamp;
use kamachiq_policy::{
    Action, Decision, DiffInput, Finding, Input, PolicySet, StepInput, Verdict, decide, load_dir,
};

use crate::support::merge;

fn bench_policy() -> PolicySet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/policies");
    PolicySet::compile(1, load_dir(&dir).unwrap()).unwrap()
}

fn open_tenant() -> Tenant {
    Tenant::unconfigured(TenantId::parse("tenant-a").unwrap())
}

/// A merge of `id` at 10:00 UTC with a budget of 200,000 tokens.
fn input(id: &str) -> Input {
    let mut input = merge();
    input.at = Timestamp::from_millis(1_795_000_000_000 - 3_600_000);
    if let Some(d) = input.deliverable.as_mut() {
        d.id = id.into();
        d.tools = vec!["github".into(), "plane".into()];
        d.budget_tokens = Some(200_000);
    }
    input.spent.deliverable_tokens = 100_000;
    input.step = Some(StepInput {
        name: "implement".into(),
        agent: None,
        model: Some("opus".into()),
    });
    input
}

fn decide_bench(input: &Input) -> Decision {
    let d = decide(input, &open_tenant(), Some(&bench_policy()));
    assert!(d.reasons.iter().all(|r| r.code != "policy_error"), "{d:#?}");
    d
}

fn messages(d: &Decision) -> Vec<(&str, &str)> {
    d.reasons
        .iter()
        .map(|r| (r.code.as_str(), r.message.as_str()))
        .collect()
}

#[test]
fn an_ordinary_merge_is_allowed_with_a_computed_score() {
    let d = decide_bench(&input("api-svc"));
    assert_eq!(d.verdict, Verdict::Allow);
    // 1 - (0.03 + 0.02) - 0.02 - 0.2 * 0.5
    assert_eq!(d.score, 0.83);
}

#[test]
fn residency_follows_the_data_class() {
    let mut i = input("billing");
    i.region = "eu-central-1".into();
    let d = decide_bench(&i);
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(
        messages(&d),
        [(
            "data_class_residency",
            "pci data may not be processed in eu-central-1"
        )]
    );
    assert_eq!(d.risk, kamachiq_policy::Risk::Critical);
}

#[test]
fn a_merge_outside_working_hours_needs_approval() {
    let mut i = input("api-svc");
    i.at = Timestamp::from_millis(1_795_000_000_000 + 10 * 3_600_000);
    let d = decide_bench(&i);
    assert_eq!(d.verdict, Verdict::RequireApproval);
    assert_eq!(
        messages(&d),
        [(
            "outside_working_hours",
            "merge at 21:00 UTC, outside 07:00-19:00"
        )]
    );
}

#[test]
fn approval_rules_fire_together() {
    let mut i = input("billing");
    i.spent.deliverable_tokens = 190_000;
    i.autonomy.approval_mode = "manual".into();
    i.diff = Some(DiffInput {
        files: 40,
        lines_added: 1_400,
        lines_removed: 101,
        findings: vec![],
    });
    let d = decide_bench(&i);
    assert_eq!(d.verdict, Verdict::RequireApproval);
    assert_eq!(
        messages(&d),
        [
            ("policy_requires_approval", "manual approval mode"),
            (
                "budget_nearly_spent",
                "deliverable billing has used 95% of its budget"
            ),
            ("large_change", "the merge changes 1501 lines"),
            ("protected_deliverable", "deliverable billing is protected"),
        ]
    );
}

#[test]
fn deny_rules_fire() {
    let mut i = input("billing");
    i.autonomy.phase = "L1".into();
    if let Some(s) = i.step.as_mut() {
        s.model = Some("haiku".into());
    }
    i.diff = Some(DiffInput {
        files: 1,
        lines_added: 1,
        lines_removed: 0,
        findings: vec![Finding {
            guard: "secrets".into(),
            code: "secret_in_diff".into(),
            path: "a.env".into(),
            line: None,
            message: "a token".into(),
        }],
    });
    let d = decide_bench(&i);
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(
        messages(&d),
        [
            ("policy_deny", "merges are not automated in phase L1"),
            (
                "model_not_allowed",
                "persona developer_backend.v2 may not use model haiku"
            ),
            (
                "secret_in_protected",
                "1 secret findings in protected deliverable billing"
            ),
        ]
    );
    assert_eq!(i.action, Action::Merge);
}
