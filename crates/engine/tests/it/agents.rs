//! Agent steps with fake agents: shell scripts that print what the real agents print, in
//! their documented stream formats (Claude Code's `stream-json`, Codex's `exec --json`), so
//! the parsers, the ledger, the budgets and the stall and loop guards meet real processes.
//! They are fakes, named as such; no real agent is called.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kamachiq_domain::run::StepState;
use kamachiq_domain::tenant::{Budgets, TenantSettings};
use kamachiq_domain::{DeliverableState, EventKind, ReasonCode, RunState, TenantId};
use kamachiq_engine::{Ending, Persona};
use kamachiq_store::{EventFilter, RequeueQuery, SpendBy, SpendQuery};
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, git, plan, repo};

/// Writes an executable fake agent named `name` into `dir`.
fn fake(dir: &Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// One `assistant` line of Claude Code's stream-json, with its usage.
fn claude_message(n: u32, tool: &str, input_tokens: u64, output_tokens: u64) -> String {
    format!(
        r#"{{"type":"assistant","message":{{"id":"msg_{n:04}","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{{"type":"tool_use","id":"toolu_{n}","name":"{tool}","input":{{"file_path":"src/f{n}.rs"}}}}],"usage":{{"input_tokens":{input_tokens},"output_tokens":{output_tokens}}}}},"session_id":"s1"}}"#
    )
}

const CLAUDE_INIT: &str = r#"{"type":"system","subtype":"init","session_id":"s1","model":"claude-sonnet-4-5","tools":["Edit","Bash"]}"#;

/// A fake Claude Code that records its argv and prompt, edits a file, reports three messages
/// of 1,200 tokens each and a successful result costing $0.03.
fn claude_that_works(dir: &Path) -> PathBuf {
    let mut lines = vec![CLAUDE_INIT.to_owned()];
    for n in 1..=3 {
        lines.push(claude_message(n, "Edit", 1000, 200));
    }
    lines.push(
        r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":900,"num_turns":3,"result":"Added the health route.","total_cost_usd":0.03,"usage":{"input_tokens":3000,"output_tokens":600}}"#
            .to_owned(),
    );
    let mut script = String::from(
        "printf '%s\\n' \"$@\" > \"$KAMACHIQ_WORKTREE/../argv-$KAMACHIQ_DELIVERABLE\"\n\
         echo 'pub fn health() {}' > health.rs\n",
    );
    for line in lines {
        script.push_str(&format!("echo '{line}'\nsleep 0.05\n"));
    }
    fake(dir, "claude", &script)
}

/// An engine whose `agent` is the fake at `program`, with `adjust` for anything else.
fn engine_with_agent(
    h: &Harness,
    agent: &str,
    program: &Path,
    adjust: impl FnOnce(&mut kamachiq_engine::EngineOptions),
) -> kamachiq_engine::Engine {
    h.engine_with(|o| {
        o.agents
            .programs
            .insert(agent.into(), program.to_string_lossy().into_owned());
        adjust(o);
    })
}

fn tenant() -> TenantId {
    TenantId::parse("tenant-a").unwrap()
}

const ONE_STEP: &str = "
tenant: tenant-a
deliverables:
  - id: health
    persona: developer_backend.v2
    acceptance_criteria: [GET /health answers 200]
    steps:
      - {name: dev, agent: claude, prompt: 'Add a /health route'}
";

#[tokio::test]
async fn a_claude_step_books_its_usage_and_its_work_is_merged() {
    let h = Harness::new().await;
    let bin = tempfile::tempdir().unwrap();
    let claude = claude_that_works(bin.path());
    let engine = engine_with_agent(&h, "claude", &claude, |_| {});
    let target = repo();
    let resolved = kamachiq_engine::Target::resolve(target.path(), Some("main"))
        .await
        .unwrap();
    let run = engine
        .submit(plan(ONE_STEP), Some(&resolved), 1)
        .await
        .unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_eq!(
        std::fs::read_to_string(target.path().join("health.rs")).unwrap(),
        "pub fn health() {}\n"
    );
    // The agent was asked for its stream, given the prompt with the acceptance criteria.
    let argv = std::fs::read_to_string(
        h.home
            .path()
            .join("worktrees")
            .join(run.as_str())
            .join("argv-health"),
    )
    .unwrap_or_default();
    // One argument per line; the prompt, last, spans several.
    assert!(
        argv.starts_with("-p\n--output-format\nstream-json\n--verbose\n--\n# health: health\n"),
        "{argv}"
    );
    assert!(argv.contains("## Task\n\nAdd a /health route"), "{argv}");
    assert!(argv.contains("- [ ] GET /health answers 200"), "{argv}");
    assert!(argv.contains("- persona: developer_backend.v2"), "{argv}");

    // 3 messages of 1,200 tokens; the result's total cost replaces any estimate.
    let attempts = h.attempts(&run).await;
    assert_eq!(attempts[0].state, StepState::Succeeded);
    let spend = h
        .store
        .spend(&SpendQuery {
            tenant: Some(tenant()),
            run: Some(run.clone()),
            since: None,
            by: SpendBy::Model,
        })
        .await
        .unwrap();
    assert_eq!(spend.len(), 1, "{spend:?}");
    assert_eq!(spend[0].key, "claude-sonnet-4-5");
    assert_eq!(spend[0].tokens, 3600);
    assert_eq!(spend[0].cost_micro_usd, 30_000);
    let events = h
        .store
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap();
    let finished = events
        .iter()
        .find(|e| e.kind == EventKind::StepFinished)
        .unwrap();
    assert_eq!(finished.data["tokens"], 3600);
    assert_eq!(finished.data["cost_micro_usd"], 30_000);
    assert!(
        events.iter().any(|e| e.kind == EventKind::StepProgress
            && e.data["text"].as_str().is_some_and(|t| t.contains("Edit"))),
        "a progress event names what the agent did"
    );
}

/// A fake Claude Code that would report 50 messages of 1,200 tokens and then leave a mark;
/// a budget of 5,000 tokens must stop it long before.
fn claude_that_overruns(dir: &Path) -> PathBuf {
    let message = claude_message(0, "Bash", 1000, 200).replace("msg_0000", "msg_$i");
    let script = format!(
        "echo '{CLAUDE_INIT}'\n\
         i=0\n\
         while [ $i -lt 50 ]; do\n\
           i=$((i+1))\n\
           echo '{message}' | sed \"s/msg_\\$i/msg_$i/\"\n\
           sleep 0.1\n\
         done\n\
         touch \"$KAMACHIQ_WORKTREE/../finished-$KAMACHIQ_DELIVERABLE\"\n"
    );
    fake(dir, "claude", &script)
}

#[tokio::test]
async fn an_agent_over_its_budget_is_stopped_mid_stream_and_nothing_is_promoted() {
    let h = Harness::new().await;
    let bin = tempfile::tempdir().unwrap();
    let claude = claude_that_overruns(bin.path());
    let engine = engine_with_agent(&h, "claude", &claude, |_| {});
    let target = repo();
    let before = git(target.path(), &["rev-parse", "main"]);
    let resolved = kamachiq_engine::Target::resolve(target.path(), Some("main"))
        .await
        .unwrap();
    let run = engine
        .submit(
            plan(
                "tenant: tenant-a\ndeliverables:\n  - id: api\n    steps:\n      - {name: dev, agent: claude, prompt: 'x', budget_tokens: 5000, retries: 2}\n",
            ),
            Some(&resolved),
            1,
        )
        .await
        .unwrap();
    let began = Instant::now();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Failed));
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "stopped early, not after 50 messages"
    );
    let api = &h.store.deliverables(&run).await.unwrap()[0];
    let reason = api.reason.clone().unwrap();
    assert_eq!(reason.code, ReasonCode::BudgetExhausted);
    assert!(
        reason.detail.contains("budget_exhausted"),
        "{}",
        reason.detail
    );
    assert!(
        reason.detail.contains("over its budget of 5000"),
        "{}",
        reason.detail
    );
    // Not retried, despite `retries: 2`: the budget would be spent again.
    let attempts = h.attempts(&run).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].state, StepState::Failed);
    assert_eq!(
        attempts[0].reason.as_ref().unwrap().code,
        ReasonCode::BudgetExhausted
    );
    // The fifth message crossed the cap: 6,000 tokens booked, then the process group was gone.
    let spend = h.store.run_spend(&run).await.unwrap();
    assert_eq!(spend.total.tokens, 6000);
    assert!(
        !h.home
            .path()
            .join("worktrees")
            .join(run.as_str())
            .join("finished-api")
            .exists()
    );
    assert_eq!(
        git(target.path(), &["rev-parse", "main"]),
        before,
        "nothing promoted"
    );
}

#[tokio::test]
async fn a_silent_agent_is_stopped_as_stalled() {
    let h = Harness::new().await;
    let bin = tempfile::tempdir().unwrap();
    let claude = fake(
        bin.path(),
        "claude",
        &format!("echo '{CLAUDE_INIT}'\nsleep 30\n"),
    );
    let engine = engine_with_agent(&h, "claude", &claude, |o| {
        o.agents.stall = Duration::from_millis(700);
    });
    let run = engine.submit(plan(ONE_STEP), None, 1).await.unwrap();
    let began = Instant::now();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert!(began.elapsed() < Duration::from_secs(10));
    let attempt = &h.attempts(&run).await[0];
    let reason = attempt.reason.as_ref().unwrap();
    assert_eq!(reason.code, ReasonCode::Stalled);
    assert!(
        reason.detail.contains("printed nothing for 700ms"),
        "{}",
        reason.detail
    );
}

#[tokio::test]
async fn an_agent_repeating_itself_is_stopped_as_looping() {
    let h = Harness::new().await;
    let bin = tempfile::tempdir().unwrap();
    let same = claude_message(1, "Bash", 10, 1).replace("\"msg_0001\"", "\"msg_$i\"");
    let claude = fake(
        bin.path(),
        "claude",
        &format!(
            "echo '{CLAUDE_INIT}'\ni=0\nwhile [ $i -lt 500 ]; do i=$((i+1)); echo '{same}' | sed \"s/msg_\\$i/m$i/\"; done\nsleep 5\n"
        ),
    );
    let engine = engine_with_agent(&h, "claude", &claude, |o| {
        o.agents.repeat_threshold = 10;
    });
    let run = engine.submit(plan(ONE_STEP), None, 1).await.unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    let attempt = &h.attempts(&run).await[0];
    assert_eq!(attempt.reason.as_ref().unwrap().code, ReasonCode::Looping);
}

#[tokio::test]
async fn an_agent_that_reports_an_error_fails_its_step_even_when_it_exits_0() {
    let h = Harness::new().await;
    let bin = tempfile::tempdir().unwrap();
    let claude = fake(
        bin.path(),
        "claude",
        &format!(
            "echo '{CLAUDE_INIT}'\necho '{}'\n",
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,"result":"reached the turn limit","total_cost_usd":0.01,"usage":{"input_tokens":10,"output_tokens":5}}"#
        ),
    );
    let engine = engine_with_agent(&h, "claude", &claude, |_| {});
    let run = engine.submit(plan(ONE_STEP), None, 1).await.unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    let attempt = &h.attempts(&run).await[0];
    let reason = attempt.reason.as_ref().unwrap();
    assert_eq!(reason.code, ReasonCode::AgentFailed);
    assert!(reason.detail.contains("turn limit"), "{}", reason.detail);
}

#[tokio::test]
async fn a_persona_names_the_agent_and_model_and_codex_usage_is_booked() {
    let h = Harness::new().await;
    let bin = tempfile::tempdir().unwrap();
    let codex = fake(
        bin.path(),
        "codex",
        &[
            r#"echo '{"type":"thread.started","thread_id":"t1"}'"#,
            r#"echo '{"type":"turn.started"}'"#,
            r#"echo '{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Done."}}'"#,
            r#"echo '{"type":"turn.completed","usage":{"input_tokens":2000,"cached_input_tokens":500,"output_tokens":300}}'"#,
        ]
        .join("\n"),
    );
    let engine = engine_with_agent(&h, "codex", &codex, |o| {
        o.agents.personas.insert(
            "developer_backend.v2".into(),
            Persona {
                agent: Some("codex".into()),
                model: Some("gpt-5-codex".into()),
                ..Persona::default()
            },
        );
    });
    let run = engine
        .submit(
            plan(
                "tenant: tenant-a\ndeliverables:\n  - id: api\n    persona: developer_backend.v2\n    steps:\n      - {name: dev, prompt: 'Do it'}\n",
            ),
            None,
            1,
        )
        .await
        .unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    let by_model = h
        .store
        .spend(&SpendQuery {
            tenant: None,
            run: Some(run.clone()),
            since: None,
            by: SpendBy::Model,
        })
        .await
        .unwrap();
    assert_eq!(by_model[0].key, "gpt-5-codex");
    assert_eq!(by_model[0].tokens, 2300);
}

#[tokio::test]
async fn a_step_without_an_agent_fails_with_a_clear_reason() {
    let h = Harness::new().await;
    let engine = h.engine_with(|_| {});
    let run = engine
        .submit(
            plan("deliverables:\n  - id: api\n    steps:\n      - {name: dev, prompt: 'Do it'}\n"),
            None,
            1,
        )
        .await
        .unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    let api = &h.store.deliverables(&run).await.unwrap()[0];
    let reason = api.reason.clone().unwrap();
    assert_eq!(reason.code, ReasonCode::SpawnFailed);
    assert!(
        reason.detail.contains("has a prompt but no agent"),
        "{}",
        reason.detail
    );
}

#[tokio::test]
async fn a_tenant_over_its_daily_budget_has_its_agent_steps_held_back() {
    let h = Harness::new().await;
    h.store
        .create_tenant(
            &tenant(),
            &TenantSettings {
                budgets: Budgets {
                    day_tokens: Some(3000),
                    ..Budgets::default()
                },
                ..TenantSettings::default()
            },
            "local:ops",
            h.clock_now(),
        )
        .await
        .unwrap();
    let bin = tempfile::tempdir().unwrap();
    let claude = claude_that_works(bin.path());
    let engine = engine_with_agent(&h, "claude", &claude, |_| {});
    // The first run spends 3,600 tokens of a 3,000 day: its step is stopped at the cap.
    let first = engine.submit(plan(ONE_STEP), None, 1).await.unwrap();
    engine
        .drive(&first, CancellationToken::new())
        .await
        .unwrap();
    let reason = h.attempts(&first).await[0].reason.clone().unwrap();
    assert_eq!(reason.code, ReasonCode::BudgetExhausted);
    assert!(
        reason.detail.contains("daily budget of 3000"),
        "{}",
        reason.detail
    );
    // On the way, passing 90 % of the day's budget sent one warning.
    let warnings: Vec<String> = h
        .store
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::BudgetWarning)
        .map(|e| e.data["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("of its daily budget of 3000"),
        "{warnings:?}"
    );
    // The next one is refused before it starts: held back, waiting in the requeue.
    let second = engine.submit(plan(ONE_STEP), None, 1).await.unwrap();
    let ending = engine
        .drive(&second, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(ending, Ending::Blocked { blocked: 1 });
    let d = &h.store.deliverables(&second).await.unwrap()[0];
    assert_eq!(d.state, DeliverableState::Blocked);
    assert_eq!(d.reason.as_ref().unwrap().code, ReasonCode::BudgetExhausted);
    let entries = h
        .store
        .requeue(&RequeueQuery {
            open: true,
            limit: 10,
            ..RequeueQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(entries[0].reasons[0].code, "budget_exhausted");
}
