//! Agents confined by Landlock (`agents.sandbox = true`), with a fake agent: a shell script
//! printing Claude Code's stream-json, named as such, that tries to write outside its worktree.

use crate::support::{Workspace, stderr};

/// Whether this kernel enforces Landlock; when not, the test says so and checks that a
/// sandboxed run refuses to start the agent instead of running it unconfined.
fn landlock_enforced(ws: &Workspace) -> bool {
    let out = ws.run(&["sandbox", "--write", "/tmp", "--", "true"]);
    out.status.success()
}

#[test]
fn a_sandboxed_agent_writes_only_in_its_worktree() {
    let ws = Workspace::new();
    let outside = ws.path().join("outside.txt");
    let script = format!(
        "#!/bin/sh\n\
         echo 'pub fn health() {{}}' > health.rs\n\
         echo leaked > {outside} || echo 'write outside refused'\n\
         echo '{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\",\"total_cost_usd\":0.001,\"usage\":{{\"input_tokens\":10,\"output_tokens\":2}}}}'\n",
        outside = outside.display()
    );
    let fake = ws.write("bin/claude", &script);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    ws.write(
        "kamachiq.toml",
        &format!(
            "[agents]\nsandbox = true\nprograms = {{ claude = \"{}\" }}\n",
            fake.display()
        ),
    );
    let plan = ws.write(
        "plans/p.yaml",
        "repo: ../service\ndeliverables:\n  - id: health\n    steps:\n      - {name: dev, agent: claude, prompt: 'Add health'}\n",
    );
    let enforced = landlock_enforced(&ws);
    let out = ws.run(&["run", plan.to_str().unwrap()]);
    if !enforced {
        eprintln!(
            "Landlock is not enforced by this kernel: checking that the agent is refused instead"
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(!ws.repo().join("health.rs").exists());
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        ws.repo().join("health.rs").exists(),
        "the work in the worktree was merged"
    );
    assert!(
        !outside.exists(),
        "the write outside the worktree was refused"
    );
    let logs = ws.run(&["logs", "latest", "health"]);
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("write outside refused"),
        "{}",
        String::from_utf8_lossy(&logs.stdout)
    );
}
