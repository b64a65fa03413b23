//! The JSON forms other programs read and write: field names are part of the API.

use kamachiq_policy::{
    Action, Decision, DiffInput, Finding, Input, Recorded, Risk, StepInput, Verdict, decide,
};
use serde_json::json;

use crate::support::{merge, tenant};

fn full_input() -> Input {
    let mut input = merge();
    input.step = Some(StepInput {
        name: "implement".into(),
        agent: Some("claude".into()),
        model: None,
    });
    if let Some(d) = input.deliverable.as_mut() {
        d.budget_tokens = Some(20_000);
    }
    input.spent.deliverable_tokens = 1_500;
    input.spent.tenant_day_cost_usd = 1.25;
    input.reserve.tokens = 2_000;
    input.reserve.cost_usd = 0.5;
    input.autonomy.paused_actions = vec![Action::Rollback];
    input.diff = Some(DiffInput {
        files: 2,
        lines_added: 10,
        lines_removed: 1,
        findings: vec![Finding {
            guard: "secrets".into(),
            code: "secret_in_diff".into(),
            path: "a.env".into(),
            line: Some(3),
            message: "a token".into(),
        }],
    });
    input
}

#[test]
fn an_input_serialises_with_its_field_names() {
    let value = serde_json::to_value(full_input()).unwrap();
    assert_eq!(
        value,
        json!({
            "action": "merge",
            "tenant": "tenant-a",
            "region": "eu-west-1",
            "run": {"id": "run-1", "title": "billing export"},
            "deliverable": {
                "id": "api-svc",
                "persona": "developer_backend.v2",
                "tools": ["github"],
                "budget_tokens": 20000
            },
            "step": {"name": "implement", "agent": "claude"},
            "spent": {
                "deliverable_tokens": 1500,
                "run_tokens": 0,
                "tenant_day_tokens": 0,
                "tenant_day_cost_usd": 1.25
            },
            "reserve": {"tokens": 2000, "cost_usd": 0.5},
            "autonomy": {
                "phase": "L3",
                "approval_mode": "supervised",
                "paused_actions": ["rollback"]
            },
            "emergency_stop": false,
            "diff": {
                "files": 2,
                "lines_added": 10,
                "lines_removed": 1,
                "findings": [{
                    "guard": "secrets",
                    "code": "secret_in_diff",
                    "path": "a.env",
                    "line": 3,
                    "message": "a token"
                }]
            },
            "at": "2026-11-18T11:06:40.000Z"
        })
    );
}

#[test]
fn an_input_round_trips_through_json() {
    let input = full_input();
    let text = serde_json::to_string(&input).unwrap();
    assert_eq!(serde_json::from_str::<Input>(&text).unwrap(), input);
}

#[test]
fn absent_optional_parts_are_left_out() {
    let mut input = merge();
    input.run = None;
    input.deliverable = None;
    let value = serde_json::to_value(&input).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // serde_json's map is sorted by key.
    assert_eq!(
        keys,
        [
            "action",
            "at",
            "autonomy",
            "emergency_stop",
            "region",
            "reserve",
            "spent",
            "tenant"
        ]
    );
}

#[test]
fn an_input_with_an_unknown_action_is_refused_with_the_valid_ones() {
    let err = serde_json::from_str::<Input>(
        r#"{"action":"deploy","tenant":"t","region":"r","at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "unknown variant `deploy`, expected one of `provision`, `run_step`, `merge`, `rollback`"
        ),
        "{err}"
    );
}

#[test]
fn a_residency_denial_serialises_as_documented() {
    let mut input = merge();
    input.region = "us-east-1".into();
    let d = decide(&input, &tenant(), None);
    assert_eq!(
        serde_json::to_string(&d).unwrap(),
        r#"{"decision":"deny","score":0.0,"threshold":0.5,"risk":"critical","reasons":[{"code":"residency","message":"region us-east-1 is not in tenant tenant-a's allowed regions: eu-west-1","rule":"builtin.residency"}],"policy_version":null,"tenant_version":3}"#
    );
}

#[test]
fn a_decision_round_trips_through_json() {
    let d = Decision {
        verdict: Verdict::RequireApproval,
        score: 0.75,
        threshold: 0.6,
        risk: Risk::Medium,
        reasons: vec![kamachiq_policy::Reason {
            code: "large_change".into(),
            message: "big".into(),
            rule: "data.kamachiq.require_approval (kamachiq.rego)".into(),
        }],
        policy_version: Some(2),
        tenant_version: 9,
    };
    let value = serde_json::to_value(&d).unwrap();
    assert_eq!(value["decision"], "require_approval");
    assert_eq!(value["risk"], "medium");
    assert_eq!(value["policy_version"], 2);
    assert_eq!(serde_json::from_value::<Decision>(value).unwrap(), d);
}

#[test]
fn a_record_serialises_with_its_verdict() {
    let record = Recorded {
        id: "dec-1".into(),
        input: merge(),
        verdict: Verdict::Allow,
    };
    let value = serde_json::to_value(&record).unwrap();
    assert_eq!(value["id"], "dec-1");
    assert_eq!(value["verdict"], "allow");
    assert_eq!(serde_json::from_value::<Recorded>(value).unwrap(), record);
}
