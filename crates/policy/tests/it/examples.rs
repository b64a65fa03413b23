//! The example policies in `examples/policies`: they load, compile, pass their own tests and
//! decide as their comments say.

use std::thread;

use kamachiq_domain::{Tenant, TenantId};
use kamachiq_policy::{Decision, DiffInput, PolicySet, Reason, Risk, Verdict, decide, load_dir};

use crate::support::{examples_dir, merge, tenant};

fn examples() -> PolicySet {
    PolicySet::compile(12, load_dir(&examples_dir()).unwrap()).unwrap()
}

fn codes(d: &Decision) -> Vec<&str> {
    d.reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn the_examples_load_sorted_by_name() {
    let modules = load_dir(&examples_dir()).unwrap();
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["kamachiq.rego", "kamachiq_test.rego"]);
    let set = examples();
    assert_eq!(set.version(), 12);
    assert_eq!(set.modules(), modules.as_slice());
}

#[test]
fn the_examples_pass_their_own_tests() {
    let report = examples().run_tests();
    let failures: Vec<_> = report.results.iter().filter(|r| !r.passed).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(report.results.len(), 10);
    assert_eq!(report.passed_count(), 10);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.package == "data.kamachiq_test" && r.name.starts_with("test_"))
    );
    assert_eq!(
        report.results[0].name,
        "test_a_trusted_persona_merges_without_review"
    );
}

#[test]
fn a_trusted_merge_is_allowed() {
    let d = decide(&merge(), &tenant(), Some(&examples()));
    assert_eq!(
        d,
        Decision {
            verdict: Verdict::Allow,
            score: 1.0,
            threshold: 0.5,
            risk: Risk::Low,
            reasons: vec![],
            policy_version: Some(12),
            tenant_version: 3,
        }
    );
}

#[test]
fn a_merge_by_an_untrusted_persona_needs_approval() {
    let mut input = merge();
    if let Some(d) = input.deliverable.as_mut() {
        d.persona = Some("sre.v1".into());
    }
    let d = decide(&input, &tenant(), Some(&examples()));
    assert_eq!(d.verdict, Verdict::RequireApproval);
    assert_eq!(
        d.reasons,
        [Reason {
            code: "untrusted_persona_merge".into(),
            message: "deliverable api-svc was written by persona sre.v1, whose merges need a \
                      review"
                .into(),
            rule: "data.kamachiq.require_approval (kamachiq.rego)".into(),
        }]
    );
}

#[test]
fn a_merge_of_a_protected_deliverable_needs_approval_at_high_risk() {
    let mut input = merge();
    if let Some(d) = input.deliverable.as_mut() {
        d.id = "billing".into();
    }
    let d = decide(&input, &tenant(), Some(&examples()));
    assert_eq!(d.verdict, Verdict::RequireApproval);
    assert_eq!(codes(&d), ["protected_deliverable"]);
    assert_eq!(d.risk, Risk::High);
    assert_eq!(d.score, 1.0);
}

#[test]
fn a_large_merge_needs_approval_and_scores_lower() {
    let mut input = merge();
    input.diff = Some(DiffInput {
        files: 80,
        lines_added: 1_800,
        lines_removed: 201,
        findings: vec![],
    });
    let d = decide(&input, &tenant(), Some(&examples()));
    assert_eq!(d.verdict, Verdict::RequireApproval);
    assert_eq!(codes(&d), ["large_change"]);
    assert_eq!(
        d.reasons[0].message,
        "the merge changes 2001 lines (more than 2000)"
    );
    assert_eq!(d.score, 0.9);
    assert_eq!(d.risk, Risk::Low);
}

#[test]
fn the_score_drops_with_tools_but_not_below_the_threshold() {
    let open = Tenant::unconfigured(TenantId::parse("tenant-a").unwrap());
    let mut input = merge();
    for (tools, score, risk) in [
        (3, 1.0, Risk::Low),
        (5, 0.9, Risk::Low),
        (8, 0.75, Risk::Medium),
        (40, 0.5, Risk::High),
    ] {
        if let Some(d) = input.deliverable.as_mut() {
            d.tools = (0..tools).map(|i| format!("tool-{i}")).collect();
        }
        let d = decide(&input, &open, Some(&examples()));
        assert_eq!(d.verdict, Verdict::Allow, "{tools} tools");
        assert_eq!(d.score, score, "{tools} tools");
        assert_eq!(d.risk, risk, "{tools} tools");
    }
}

#[test]
fn the_built_in_guards_still_apply_and_win() {
    let mut input = merge();
    input.region = "us-east-1".into();
    if let Some(d) = input.deliverable.as_mut() {
        d.id = "billing".into();
    }
    let d = decide(&input, &tenant(), Some(&examples()));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(codes(&d), ["residency"]);
    assert_eq!(d.score, 0.0);
    assert_eq!(
        d.risk,
        Risk::High,
        "the policy's risk, raised to high at least"
    );
}

#[test]
fn one_policy_set_serves_many_threads() {
    let set = examples();
    let tenant = tenant();
    let mut untrusted = merge();
    if let Some(d) = untrusted.deliverable.as_mut() {
        d.persona = Some("sre.v1".into());
    }
    let expected = [
        decide(&merge(), &tenant, Some(&set)),
        decide(&untrusted, &tenant, Some(&set)),
    ];
    assert_ne!(expected[0].verdict, expected[1].verdict);
    thread::scope(|s| {
        for t in 0..4 {
            let (set, tenant, expected) = (&set, &tenant, &expected);
            let inputs = [merge(), untrusted.clone()];
            s.spawn(move || {
                for i in 0..500 {
                    let k = (i + t) % 2;
                    assert_eq!(decide(&inputs[k], tenant, Some(set)), expected[k]);
                }
            });
        }
    });
}
