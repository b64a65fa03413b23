//! The command line's contract: JSON shapes, exit codes, messages, and no change on bad input.

use crate::support::{Workspace, git, redact, stderr, stdout};

/// The documented contract example. Its `repo: ../service` is relative to the plan file, so
/// the plan is written to `plans/`, next to the workspace's `service/` repository.
const CONTRACT: &str = include_str!("../../../../examples/contract.yaml");

#[test]
fn the_contract_plan_runs_and_reports_in_the_documented_shapes() {
    let ws = Workspace::new();
    let plan = ws.write("plans/plan.yaml", CONTRACT);
    let out = ws.run(&["run", plan.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    assert_eq!(events[0]["kind"], "run_started");
    assert!(events.iter().all(|e| e["run_id"] == run.as_str()));
    assert_eq!(events.last().unwrap()["kind"], "run_finished");
    assert_eq!(events.last().unwrap()["data"]["state"], "succeeded");

    let status = ws.json(&["status", &run, "--json"]);
    assert_eq!(status["id"], run.as_str());
    assert_eq!(status["state"], "succeeded");
    let ds = status["deliverables"].as_array().unwrap();
    assert_eq!(ds.len(), 2);
    for (d, id) in ds.iter().zip(["api-svc", "docs"]) {
        assert_eq!(d["id"], id);
        assert_eq!(d["state"], "succeeded");
        assert_eq!(d["attempts"], 1);
        assert!(d["started_at"].is_string() && d["finished_at"].is_string());
    }
    insta::assert_json_snapshot!("status_of_the_contract_run", redact(status, &run));

    let runs = ws.json(&["runs", "--json"]);
    assert_eq!(runs[0]["id"], run.as_str());
    assert_eq!(runs[0]["state"], "succeeded");

    // The user's checkout has both deliverables, merged, and nothing dirty.
    assert!(ws.repo().join("api.rs").exists() && ws.repo().join("API.md").exists());
    assert_eq!(git(&ws.repo(), &["status", "--porcelain"]), "");
}

#[test]
fn plan_validate_lists_every_problem_with_exit_code_2() {
    let ws = Workspace::new();
    ws.write(
        "bad.yaml",
        "deliverables:\n  - id: a\n    dependencies: [b]\n    steps: [{name: s, run: ''}]\n  - id: a\n    budget_tokens: -1\n    steps: [{name: s, run: 'true'}]\n",
    );
    let out = ws.run(&["plan", "validate", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("plan_validate_problems", stdout(&out));

    let out = ws.run(&["plan", "validate", "bad.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["valid"], false);
    assert_eq!(view["problems"].as_array().unwrap().len(), 4);
    assert_eq!(view["problems"][0]["line"], 3);
    assert_eq!(view["problems"][0]["deliverable"], "a");

    let good = ws.write("good.yaml", CONTRACT);
    let out = ws.run(&["plan", "validate", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).ends_with("valid: 2 deliverables, 1 dependencies, 3 steps\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_invalid_plan_is_refused_before_anything_is_stored() {
    let ws = Workspace::new();
    ws.write(
        "bad.yaml",
        "deliverables:\n  - id: a\n    steps: [{name: s, run: 'true', timeout: forever}]\n",
    );
    let out = ws.run(&["run", "bad.yaml", "--repo", "service"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.yaml:3: deliverable `a`: invalid timeout `forever`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ws.json(&["runs", "--json"]), serde_json::json!([]));
}

#[test]
fn a_missing_target_is_explained() {
    let ws = Workspace::new();
    ws.write(
        "p.yaml",
        "deliverables:\n  - {id: a, steps: [{name: s, run: 'true'}]}\n",
    );
    let out = ws.run(&["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no target repository: pass --repo DIR or set `repo:` in the plan"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["run", "p.yaml", "--repo", "service", "--branch", "develop"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("branch `develop` does not exist"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["run", "missing.yaml", "--repo", "service"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the plan missing.yaml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failing_step_exits_1_skips_dependents_and_keeps_its_output() {
    let ws = Workspace::new();
    ws.write(
        "p.yaml",
        "repo: service\ndeliverables:\n  - {id: api, steps: [{name: dev, run: 'echo building; echo broken >&2; exit 3'}]}\n  - {id: docs, dependencies: [api], steps: [{name: docs, run: 'true'}]}\n  - {id: other, steps: [{name: dev, run: 'true'}]}\n",
    );
    let out = ws.run(&["run", "p.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("run ") && stdout(&out).contains("failed"),
        "{}",
        stdout(&out)
    );

    let status = ws.json(&["status", "latest", "--json"]);
    let states: Vec<&str> = status["deliverables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failed", "skipped", "succeeded"]);
    assert_eq!(status["deliverables"][0]["reason"]["code"], "step_failed");
    assert_eq!(
        status["deliverables"][0]["reason"]["detail"],
        "step `dev` exited with status 3"
    );
    assert_eq!(
        status["deliverables"][1]["reason"]["code"],
        "dependency_failed"
    );

    let logs = ws.run(&["logs", "latest", "api", "dev"]);
    assert_eq!(logs.status.code(), Some(0));
    assert_eq!(
        stdout(&logs),
        "── dev · attempt 1 · failed, exit 3 ──\nbuilding\nbroken\n"
    );
    let bad = ws.run(&["logs", "latest", "api", "deploy"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("deliverable `api` has no step `deploy` (its steps: dev)"),
        "{}",
        stderr(&bad)
    );

    // The failed deliverable keeps its branch for inspection.
    let branches = git(
        &ws.repo(),
        &[
            "branch",
            "--list",
            "--format=%(refname:short)",
            "kamachiq/*",
        ],
    );
    assert!(branches.ends_with("/api"), "{branches}");
}

#[test]
fn resume_retry_failed_runs_failed_work_again() {
    let ws = Workspace::new();
    ws.write(
        "p.yaml",
        "repo: service\ndeliverables:\n  - {id: api, steps: [{name: dev, run: 'test -e ../../flag || exit 1; echo ok > api.txt'}]}\n  - {id: docs, dependencies: [api], steps: [{name: docs, run: 'true'}]}\n",
    );
    // The flag lives outside the worktree (worktrees are under .kamachiq/worktrees/RUN/ID).
    let out = ws.run(&["run", "p.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let refused = ws.run(&["resume", "latest"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("--retry-failed"),
        "{}",
        stderr(&refused)
    );

    std::fs::write(ws.path().join(".kamachiq/worktrees/flag"), "").unwrap();
    let out = ws.run(&["resume", "latest", "--retry-failed"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let status = ws.json(&["status", "latest", "--json"]);
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["deliverables"][0]["attempts"], 2);
    assert!(ws.repo().join("api.txt").exists());
}

#[test]
fn unknown_runs_and_bad_configuration_are_input_errors() {
    let ws = Workspace::new();
    let out = ws.run(&["status", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "error: no run `nope`\n");

    let out = ws
        .command(&["runs"])
        .env("KAMACHIQ_CONCURRENCY", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: KAMACHIQ_CONCURRENCY: expected a whole number, got `lots`\n"
    );

    ws.write("kamachiq.toml", "concurency = 3\n");
    let out = ws.run(&["config", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("kamachiq.toml:1: unknown field `concurency`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_home_ignores_itself_in_git() {
    let ws = Workspace::new();
    // A home inside the repository (the default when run from a checkout) never shows up as
    // untracked files there.
    ws.write(
        "service/p.yaml",
        "deliverables:\n  - {id: a, steps: [{name: s, run: 'echo a > a.txt'}]}\n",
    );
    let out = ws
        .command(&["run", "p.yaml", "--repo", "."])
        .current_dir(ws.repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(git(&ws.repo(), &["status", "--porcelain"]), "?? p.yaml");
}

#[test]
fn help_lists_every_command_and_the_exit_codes() {
    let out = std::process::Command::new(crate::support::BIN)
        .arg("--help")
        .output()
        .unwrap();
    insta::assert_snapshot!("help", stdout(&out));
}
