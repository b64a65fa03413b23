//! The policy gate from the command line: tenants, the requeue, overrides, the audit trail and
//! `policy test|eval|load|replay`, on the real binary.

use crate::support::{Workspace, stderr, stdout};

const CONTRACT: &str = include_str!("../../../../examples/contract.yaml");
const STARTER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policies");

/// The contract plan, moved to a region tenant-a may not use.
fn us_plan(ws: &Workspace) -> String {
    ws.write(
        "plans/plan.yaml",
        &CONTRACT.replace("region: eu-west-1", "region: us-east-1"),
    )
    .to_str()
    .unwrap()
    .to_owned()
}

#[test]
fn a_residency_block_waits_in_the_requeue_until_an_operator_overrides_it() {
    let ws = Workspace::new();
    let out = ws.run(&["tenant", "create", "tenant-a", "--region", "eu-west-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan = us_plan(&ws);

    let out = ws.run(&["run", &plan]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("kamachiq requeue list"),
        "{}",
        stderr(&out)
    );
    let status = ws.json(&["status", "latest", "--json"]);
    assert_eq!(status["state"], "running");
    let api = &status["deliverables"][0];
    assert_eq!(api["state"], "blocked");
    assert_eq!(api["reason"]["code"], "residency");
    assert_eq!(status["deliverables"][1]["state"], "pending");

    let listed = ws.json(&["requeue", "list", "--json"]);
    let items = listed.as_array().unwrap();
    assert_eq!(items.len(), 1);
    let entry = &items[0];
    assert_eq!(entry["deliverable"], "api-svc");
    assert_eq!(entry["run"], status["id"]);
    assert_eq!(entry["reasons"][0]["code"], "residency");
    let id = entry["id"].as_str().unwrap().to_owned();

    // An override needs a justification.
    let out = ws.run(&["requeue", "resolve", &id, "--allow"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = ws.run(&["requeue", "resolve", &id, "--allow", "--justification", " "]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Re-evaluating alone leaves it blocked (exit 5).
    let out = ws.run(&["requeue", "resolve", &id]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));

    // The override runs api-svc; docs, in the same region, is held back in its turn.
    let out = ws
        .command(&[
            "requeue",
            "resolve",
            &id,
            "--allow",
            "--justification",
            "legal approved US processing",
        ])
        .env("USER", "alice")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("let through (overridden)"),
        "{}",
        stdout(&out)
    );
    let status = ws.json(&["status", "latest", "--json"]);
    assert_eq!(status["deliverables"][0]["state"], "succeeded");
    assert_eq!(status["deliverables"][1]["state"], "blocked");
    assert!(ws.repo().join("api.rs").exists(), "api-svc was merged");

    let trail = ws.json(&["audit", "list", "--json"]);
    let record = trail
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "requeue_override")
        .unwrap();
    assert_eq!(record["actor"], "local:alice");
    assert_eq!(record["subject"], id.as_str());
    assert_eq!(
        record["detail"]["justification"],
        "legal approved US processing"
    );
    let out = ws.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Resolving it again is refused and changes nothing.
    let out = ws.run(&["requeue", "resolve", &id, "--allow", "--justification", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already resolved"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn allowing_the_region_lets_the_run_finish() {
    let ws = Workspace::new();
    ws.run(&["tenant", "create", "tenant-a", "--region", "eu-west-1"]);
    let plan = us_plan(&ws);
    assert_eq!(ws.run(&["run", &plan]).status.code(), Some(5));
    let out = ws.run(&[
        "tenant",
        "update",
        "tenant-a",
        "--region",
        "eu-west-1",
        "--region",
        "us-east-1",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tenant: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        tenant["regions"],
        serde_json::json!(["eu-west-1", "us-east-1"])
    );
    assert_eq!(tenant["version"], 2);
    let id = ws.json(&["requeue", "list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Re-evaluated under the new settings, it is let through and the run finishes.
    let out = ws.run(&["requeue", "resolve", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = ws.json(&["status", "latest", "--json"]);
    assert_eq!(status["state"], "succeeded");
    assert_eq!(
        ws.json(&["requeue", "list", "--json"]),
        serde_json::json!([])
    );
}

#[test]
fn bad_tenant_settings_name_the_flag_and_change_nothing() {
    let ws = Workspace::new();
    let out = ws.run(&["tenant", "create", "tenant-a", "--threshold", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--threshold"), "{}", stderr(&out));
    let out = ws.run(&["tenant", "create", "tenant-a", "--region", "eu west"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--region"), "{}", stderr(&out));
    let shown = ws.json(&["tenant", "show", "tenant-a", "--json"]);
    assert_eq!(shown["version"], 0, "nothing was stored");
    let out = ws.run(&["tenant", "update", "tenant-a", "--threshold", "0.7"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("kamachiq tenant create"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn policy_eval_shows_the_decision_and_why() {
    let ws = Workspace::new();
    ws.run(&["tenant", "create", "tenant-a", "--region", "eu-west-1"]);
    let input = ws.write(
        "input.json",
        r#"{"action": "provision", "tenant": "tenant-a", "region": "us-east-1",
            "deliverable": {"id": "api-svc", "persona": "developer_backend.v2", "tools": ["github"]}}"#,
    );
    let input = input.to_str().unwrap();
    let decision = ws.json(&["policy", "eval", "--input", input, "--json"]);
    assert_eq!(decision["decision"], "deny");
    assert_eq!(decision["score"], 0.0);
    assert_eq!(decision["reasons"][0]["code"], "residency");
    let out = ws.run(&["policy", "eval", "--input", input]);
    assert!(
        stdout(&out).starts_with("deny (score 0.00"),
        "{}",
        stdout(&out)
    );

    let bad = ws.write(
        "bad.json",
        r#"{"action": "launch", "tenant": "tenant-a", "region": "x"}"#,
    );
    let out = ws.run(&["policy", "eval", "--input", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.json"), "{}", stderr(&out));
}

#[test]
fn policies_are_tested_loaded_and_replayed_against_past_decisions() {
    let ws = Workspace::new();
    let out = ws.run(&["policy", "test", STARTER_DIR]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains(" 0 failed"), "{}", stdout(&out));

    let failing = ws.write(
        "failing/p.rego",
        "package kamachiq\n\ntest_never if { false }\n",
    );
    let dir = failing.parent().unwrap().to_str().unwrap().to_owned();
    let out = ws.run(&["policy", "test", &dir]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = ws.run(&["policy", "load", &dir, "--tenant", "tenant-a"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a set whose tests fail is not stored"
    );

    // A run under the built-in guards only: everything allowed and recorded.
    let plan = ws.write("plans/plan.yaml", CONTRACT);
    let out = ws.run(&["run", plan.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A candidate that holds back every merge would have changed exactly the merge decisions.
    let candidate = ws.write(
        "candidate/merges.rego",
        "package kamachiq\n\nrequire_approval contains \"merges need a person\" if input.action == \"merge\"\n",
    );
    let candidate = candidate.parent().unwrap().to_str().unwrap().to_owned();
    let report = ws.json(&["policy", "replay", "--policy", &candidate, "--json"]);
    let changed = report["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 2, "{report:#}");
    assert!(changed.iter().all(|c| c["action"] == "merge"
        && c["before"] == "allow"
        && c["after"]["decision"] == "require_approval"));
    assert!(report["replayed"].as_u64().unwrap() >= 7, "{report:#}");
    assert_eq!(report["under_other_settings"], 0, "{report:#}");
    assert!(changed.iter().all(|c| c["settings_changed"] == false));

    // Once the tenant's settings change, the same replay says which decisions were made under
    // others, and marks them.
    let out = ws.run(&["tenant", "create", "tenant-a", "--region", "eu-west-1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let again = ws.json(&["policy", "replay", "--policy", &candidate, "--json"]);
    assert_eq!(
        again["under_other_settings"], again["replayed"],
        "{again:#}"
    );
    assert_eq!(again["changed"].as_array().unwrap().len(), 2, "{again:#}");
    assert!(
        again["changed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["settings_changed"] == true),
        "{again:#}"
    );
    let out = ws.run(&["policy", "replay", "--policy", &candidate]);
    assert!(
        stdout(&out).contains("made under tenant settings since changed"),
        "{}",
        stdout(&out)
    );
    let marked = again["changed"][0]["decision_id"].as_str().unwrap();
    assert!(
        stdout(&out).contains(&format!("{marked}*")),
        "{}",
        stdout(&out)
    );
    let none = ws.json(&[
        "policy", "replay", "--policy", &candidate, "--since", "1h", "--tenant", "tenant-b",
        "--json",
    ]);
    assert_eq!(none["replayed"], 0);

    let out = ws.run(&["policy", "load", &candidate, "--tenant", "tenant-a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("policy v1 in force"),
        "{}",
        stdout(&out)
    );
    let shown = ws.json(&["policy", "show", "--tenant", "tenant-a", "--json"]);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["modules"][0]["name"], "merges.rego");
}
