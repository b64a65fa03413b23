//! The worktrees' disk: listed, bounded by `engine.max_workspace_disk`, and pruned.

use crate::support::{Workspace, stderr};

const FAILING: &str = "repo: ../service\ndeliverables:\n  - {id: broken, steps: [{name: dev, run: 'head -c 4096 /dev/zero > blob; false'}]}\n";
const FINE: &str = "repo: ../service\ndeliverables:\n  - {id: fine, steps: [{name: dev, run: 'echo ok > ok.txt'}]}\n";

#[test]
fn worktrees_are_listed_bounded_and_pruned() {
    let ws = Workspace::new();
    let failing = ws.write("plans/failing.yaml", FAILING);
    assert_eq!(
        ws.run(&["run", failing.to_str().unwrap()]).status.code(),
        Some(1)
    );
    let run = ws.json(&["status", "latest", "--json"])["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The failed deliverable keeps its worktree, for inspection.
    let listing = ws.json(&["workspaces", "list", "--json"]);
    assert_eq!(listing["runs"][0]["run"], run.as_str());
    assert_eq!(listing["runs"][0]["state"], "failed");
    assert_eq!(listing["runs"][0]["worktrees"], 1);
    assert!(listing["total_bytes"].as_u64().unwrap() > 0);

    // Over the limit, no new worktree is made: the deliverable fails, saying why.
    ws.write("kamachiq.toml", "[engine]\nmax_workspace_disk = \"1KiB\"\n");
    let fine = ws.write("plans/fine.yaml", FINE);
    let out = ws.run(&["run", fine.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let status = ws.json(&["status", "latest", "--json"]);
    let reason = &status["deliverables"][0]["reason"];
    assert_eq!(reason["code"], "workspace_error");
    assert!(
        reason["detail"]
            .as_str()
            .unwrap()
            .contains("engine.max_workspace_disk"),
        "{reason}"
    );

    // Pruning frees the finished runs' worktrees; then the run goes through.
    let pruned = ws.json(&["workspaces", "prune", "--json"]);
    // Only the first run had a worktree: the second was refused one.
    assert_eq!(pruned["pruned"], serde_json::json!([run]), "{pruned}");
    assert_eq!(ws.json(&["workspaces", "list", "--json"])["total_bytes"], 0);
    std::fs::remove_file(ws.path().join("kamachiq.toml")).unwrap();
    let out = ws.run(&["resume", "latest", "--retry-failed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(ws.repo().join("ok.txt").exists());
}
