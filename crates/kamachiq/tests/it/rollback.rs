//! `kamachiq rollback` on a real repository: list, roll back the latest merge, the audit
//! record; refusals and their exit codes; cleanup.

use std::process::Output;

use crate::support::{Workspace, git, stderr, stdout};

const PLAN: &str = "repo: service
branch: main
deliverables:
  - {id: feature, steps: [{name: dev, run: 'echo one > feature.txt'}]}
";

/// `kamachiq ARGS` as user `alice`.
fn as_alice(ws: &Workspace, args: &[&str]) -> Output {
    ws.command(args).env("USER", "alice").output().unwrap()
}

/// Runs the plan; returns the run id.
fn run_plan(ws: &Workspace) -> String {
    ws.write("plan.yaml", PLAN);
    let out = ws.run(&["run", "plan.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    first["run_id"].as_str().unwrap().to_owned()
}

#[test]
fn the_latest_merge_is_rolled_back_with_a_new_commit_and_audited() {
    let ws = Workspace::new();
    let before = git(&ws.repo(), &["rev-parse", "main"]);
    let run = run_plan(&ws);
    let merge = git(&ws.repo(), &["rev-parse", "main"]);
    assert!(ws.repo().join("feature.txt").exists());

    let list = ws.json(&["rollback", "list", "--json"]);
    let points = list.as_array().unwrap();
    assert_eq!(points.len(), 1);
    let point = &points[0];
    let id = point["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rb-"), "{id}");
    assert_eq!(point["run"], run.as_str());
    assert_eq!(point["deliverable"], "feature");
    assert_eq!(point["branch"], "main");
    assert_eq!(point["merge_commit"], merge.as_str());
    assert_eq!(point["before_commit"], before.as_str());
    assert!(point["repo"].as_str().unwrap().ends_with("/service"));
    assert!(point["created_at"].is_string());
    assert!(point["rolled_back"].is_null());

    let out = as_alice(&ws, &["rollback", "--latest", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["rollback_point"], id.as_str());
    assert_eq!(done["by"], "local:alice");
    let revert = done["revert_commit"].as_str().unwrap();

    // The file the deliverable added is gone from the branch and the checkout; the history
    // shows the revert after the merge.
    assert!(!ws.repo().join("feature.txt").exists());
    assert_eq!(
        git(&ws.repo(), &["ls-tree", "--name-only", "main"]),
        "README.md"
    );
    assert_eq!(git(&ws.repo(), &["status", "--porcelain"]), "");
    assert_eq!(
        git(
            &ws.repo(),
            &["log", "--first-parent", "--format=%H %s", "-3", "main"]
        ),
        format!(
            "{revert} kamachiq: roll back feature (run {run})\n\
             {merge} kamachiq: merge feature (run {run})\n\
             {before} initial"
        )
    );

    let list = ws.json(&["rollback", "list", "--json"]);
    assert_eq!(list[0]["rolled_back"]["by"], "local:alice");
    assert_eq!(list[0]["rolled_back"]["revert_commit"], revert);

    let audit = ws.json(&["audit", "list", "--json"]);
    let records = audit.as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["action"], "rollback");
    assert_eq!(records[0]["actor"], "local:alice");
    assert_eq!(records[0]["subject"], id.as_str());
    assert_eq!(records[0]["detail"]["revert_commit"], revert);
}

#[test]
fn refusals_say_why_with_their_exit_codes_and_change_nothing() {
    let ws = Workspace::new();
    run_plan(&ws);
    let merge = git(&ws.repo(), &["rev-parse", "main"]);
    let short = &merge[..8];

    // Later work on the same lines: refused with the file named, exit 1.
    std::fs::write(ws.repo().join("feature.txt"), "two\n").unwrap();
    git(&ws.repo(), &["commit", "-q", "-am", "edit feature"]);
    let later = git(&ws.repo(), &["rev-parse", "main"]);
    let out = ws.run(&["rollback", "--commit", short]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("conflict with undoing its merge, in feature.txt"),
        "{}",
        stderr(&out)
    );
    assert_eq!(git(&ws.repo(), &["rev-parse", "main"]), later);

    // Unknown points and bad flags are input errors, exit 2.
    let out = ws.run(&["rollback", "rb-nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no rollback point `rb-nope`"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["rollback", "--deliverable", "feature", "--commit", short]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = ws.run(&["rollback", "cleanup", "--older-than", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Once the later edit is undone by hand, the rollback goes through; a second is refused.
    git(&ws.repo(), &["revert", "--no-edit", "HEAD"]);
    let out = ws.run(&["rollback", "--deliverable", "feature"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("rolled back rb-"),
        "{}",
        stdout(&out)
    );
    let tip = git(&ws.repo(), &["rev-parse", "main"]);
    let out = ws.run(&["rollback", "--commit", short]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was already rolled back at"),
        "{}",
        stderr(&out)
    );
    assert_eq!(git(&ws.repo(), &["rev-parse", "main"]), tip);

    // Cleanup forgets only what is old enough.
    let out = ws.run(&["rollback", "cleanup", "--older-than", "30d", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cleaned: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cleaned["forgotten"], 0);
    let out = ws.run(&["rollback", "cleanup", "--older-than", "0s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("forgot 1 rollback point(s)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        ws.json(&["rollback", "list", "--json"]),
        serde_json::json!([])
    );
}
