//! The policy gate in the engine: what it holds back waits in the requeue, blocked; an
//! override lets it run; a changed policy lets it through on the retry loop's next pass.

use std::sync::Arc;
use std::time::Duration;

use kamachiq_domain::DeliverableState::*;
use kamachiq_domain::tenant::{TenantSettings, TenantUpdate};
use kamachiq_domain::{EventKind, ReasonCode, RunState, TenantId};
use kamachiq_engine::{Ending, Resolved, retry_loop};
use kamachiq_policy::{Action, Module, Verdict};
use kamachiq_store::{DecisionQuery, EventFilter, RequeueQuery, Resolution};
use tokio_util::sync::CancellationToken;

use crate::support::{Behavior, Harness, ScriptedRunner, git, pairs, plan, repo};

fn tenant() -> TenantId {
    TenantId::parse("tenant-a").unwrap()
}

async fn configure(h: &Harness, settings: TenantSettings) {
    h.store
        .create_tenant(&tenant(), &settings, "local:ops", h.clock_now())
        .await
        .unwrap();
}

fn eu_only() -> TenantSettings {
    TenantSettings {
        regions: vec!["eu-west-1".into()],
        ..TenantSettings::default()
    }
}

const US_PLAN: &str = "
tenant: tenant-a
region: us-east-1
deliverables:
  - {id: api-svc, steps: [{name: dev, run: 'true'}]}
  - {id: docs, dependencies: [api-svc], steps: [{name: docs, run: 'true'}]}
";

async fn open_entries(h: &Harness) -> Vec<kamachiq_store::RequeueEntry> {
    h.store
        .requeue(&RequeueQuery {
            open: true,
            limit: 100,
            ..RequeueQuery::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_residency_violation_blocks_the_deliverable_and_its_dependents_wait() {
    let h = Harness::new().await;
    configure(&h, eu_only()).await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine.submit(plan(US_PLAN), None, 4).await.unwrap();

    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Blocked { blocked: 1 });
    assert_eq!(
        h.states(&run).await,
        pairs(&[("api-svc", Blocked), ("docs", Pending)])
    );
    assert!(runner.calls_of("api-svc").is_empty(), "nothing ran");
    let api = &h.store.deliverables(&run).await.unwrap()[0];
    let reason = api.reason.clone().unwrap();
    assert_eq!(reason.code, ReasonCode::Residency);
    assert_eq!(
        reason.detail,
        "region us-east-1 is not in tenant tenant-a's allowed regions: eu-west-1"
    );
    // The run stays open, undriven, and no scheduler wants it until something is let through.
    let stored = h.store.run(&run).await.unwrap();
    assert_eq!((stored.state, stored.driver), (RunState::Running, None));
    assert!(
        h.store
            .runs_awaiting_driver(h.clock_now().plus(Duration::from_secs(60)), 10)
            .await
            .unwrap()
            .is_empty()
    );

    let entries = open_entries(&h).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].deliverable.as_str(), "api-svc");
    assert_eq!(entries[0].action, Action::Provision);
    assert_eq!(entries[0].verdict, Verdict::Deny);
    assert_eq!(entries[0].reasons[0].code, "residency");
    assert!(entries[0].next_retry_at.is_some());
    // The decision that held it back is recorded with its input.
    let decision = h
        .store
        .decision(&entries[0].decision_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decision.input.region, "us-east-1");
    assert_eq!(decision.decision.verdict, Verdict::Deny);
    assert_eq!(decision.decision.tenant_version, 1);
    let kinds: Vec<EventKind> = h
        .store
        .events_after(0, &EventFilter::default(), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventKind::DeliverableBlocked), "{kinds:?}");
    assert!(!kinds.contains(&EventKind::DeliverableStarted), "{kinds:?}");
}

#[tokio::test]
async fn an_override_lets_the_deliverable_run_and_is_audited() {
    let h = Harness::new().await;
    configure(&h, eu_only()).await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine
        .submit(
            plan(
                "tenant: tenant-a\nregion: us-east-1\ndeliverables:\n  - {id: api-svc, steps: [{name: dev, run: 'true'}, {name: qa, run: 'true'}]}\n",
            ),
            None,
            4,
        )
        .await
        .unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    let entry = open_entries(&h).await.remove(0);

    // Asking policy again changes nothing: the region is still not allowed.
    let again = engine
        .reevaluate(&entry.id, Some("alice".into()))
        .await
        .unwrap();
    let Resolved::StillBlocked { decision } = again else {
        panic!("let through: {again:?}");
    };
    assert_eq!(decision.reasons[0].code, "residency");
    // An empty requeue id, or one resolved already, is refused.
    assert!(
        engine
            .override_block("rq-nope", "alice", "x")
            .await
            .is_err()
    );

    let resolved = engine
        .override_block(&entry.id, "alice", "legal approved us-east-1 for this run")
        .await
        .unwrap();
    assert!(matches!(
        resolved,
        Resolved::LetThrough {
            resolution: Resolution::Overridden,
            ..
        }
    ));
    assert!(matches!(
        engine.override_block(&entry.id, "bob", "again").await,
        Err(kamachiq_engine::Error::RequeueResolved { .. })
    ));
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_eq!(runner.calls_of("api-svc"), ["dev", "qa"]);

    let closed = h.store.requeue_entry(&entry.id).await.unwrap().unwrap();
    assert_eq!(closed.resolution, Some(Resolution::Overridden));
    assert_eq!(closed.resolved_by.as_deref(), Some("alice"));
    let trail = h.store.audit_records(None, 0, 100).await.unwrap();
    let override_record = trail
        .iter()
        .find(|r| r.action == "requeue_override")
        .unwrap();
    assert_eq!(override_record.actor, "alice");
    assert_eq!(override_record.subject, entry.id);
    assert_eq!(
        override_record.detail["justification"],
        "legal approved us-east-1 for this run"
    );
    // Policy still said no to every action; the override carried them, and the record shows it.
    let decisions = h
        .store
        .decisions(&DecisionQuery {
            limit: 100,
            ..DecisionQuery::default()
        })
        .await
        .unwrap();
    assert!(
        decisions
            .iter()
            .all(|d| d.decision.verdict == Verdict::Deny),
        "{decisions:?}"
    );
    assert!(
        decisions.len() >= 4,
        "provision, re-evaluation and both steps"
    );
}

#[tokio::test]
async fn a_changed_tenant_setting_lets_blocked_work_through_on_the_retry_loop() {
    let h = Harness::new().await;
    configure(
        &h,
        TenantSettings {
            personas: vec!["developer.v1".into()],
            ..TenantSettings::default()
        },
    )
    .await;
    let runner = ScriptedRunner::default();
    let gate = Arc::new(tokio::sync::Notify::new());
    runner.script("slow", "dev", &[Behavior::ExitWhen(gate.clone(), 0)]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine
        .submit(
            plan(
                "
tenant: tenant-a
deliverables:
  - {id: slow, persona: developer.v1, steps: [{name: dev, run: 'true'}]}
  - {id: api, persona: rogue.v1, steps: [{name: dev, run: 'true'}]}
",
            ),
            None,
            4,
        )
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let retries = tokio::spawn(retry_loop(engine.clone(), stop.clone()));
    let driving = tokio::spawn({
        let engine = engine.clone();
        let run = run.clone();
        async move { engine.drive(&run, CancellationToken::new()).await }
    });
    runner.started("slow", "dev").await;
    // `api` is held back while `slow` runs.
    let blocked = loop {
        let entries = open_entries(&h).await;
        if let Some(entry) = entries.into_iter().next() {
            break entry;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(blocked.reasons[0].code, "persona_not_allowed");

    h.store
        .update_tenant(
            &tenant(),
            &TenantUpdate {
                personas: Some(vec!["developer.v1".into(), "rogue.v1".into()]),
                ..TenantUpdate::default()
            },
            "local:ops",
            h.clock_now(),
        )
        .await
        .unwrap();
    assert_eq!(engine.policy_changed(&tenant()).await.unwrap(), 1);
    // The loop lets it through and the live driver picks it up while `slow` still runs.
    runner.started("api", "dev").await;
    gate.notify_one();
    let ending = driving.await.unwrap().unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    stop.cancel();
    retries.await.unwrap();
    let entry = h.store.requeue_entry(&blocked.id).await.unwrap().unwrap();
    assert_eq!(entry.resolution, Some(Resolution::Allowed));
    let unblocked = h
        .store
        .events_after(0, &EventFilter::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == EventKind::DeliverableUnblocked)
        .unwrap();
    assert_eq!(unblocked.data["resolution"], "allowed");
}

#[tokio::test]
async fn the_retry_loop_gives_up_after_its_attempts_and_records_each() {
    let h = Harness::new().await;
    configure(&h, eu_only()).await;
    let engine = h.engine(Arc::new(ScriptedRunner::default()), None);
    let run = engine.submit(plan(US_PLAN), None, 4).await.unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    let max = 8;
    for attempt in 1..=max {
        // Each retry is scheduled with a growing backoff; make it due now.
        h.store
            .requeue_due_now(&tenant(), h.clock_now())
            .await
            .unwrap();
        let pass = engine.retry_due().await.unwrap();
        assert_eq!((pass.let_through, pass.still_blocked), (0, 1));
        let entry = open_entries(&h).await.remove(0);
        assert_eq!(entry.attempts, attempt);
        assert_eq!(entry.next_retry_at.is_none(), attempt == max, "{attempt}");
    }
    let retried = h
        .store
        .events_after(0, &EventFilter::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::RequeueRetried)
        .count();
    assert_eq!(retried, max as usize);
}

#[tokio::test]
async fn a_step_held_back_mid_deliverable_resumes_at_that_step() {
    let h = Harness::new().await;
    let deny_deploy = Module {
        name: "deploy.rego".into(),
        source: r#"package kamachiq

deny contains {"code": "no_deploys", "message": "deploy steps need a person"} if {
    input.action == "run_step"
    input.step.name == "deploy"
}
"#
        .into(),
    };
    h.store
        .add_policy(&tenant(), &[deny_deploy], "local:ops", h.clock_now())
        .await
        .unwrap();
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine
        .submit(
            plan(
                "tenant: tenant-a\ndeliverables:\n  - {id: api, steps: [{name: dev, run: 'true'}, {name: deploy, run: 'true'}]}\n",
            ),
            None,
            4,
        )
        .await
        .unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Blocked { blocked: 1 });
    assert_eq!(runner.calls_of("api"), ["dev"]);
    let api = &h.store.deliverables(&run).await.unwrap()[0];
    assert_eq!(
        (api.state, api.next_step, api.lease.clone()),
        (Blocked, 1, None)
    );
    assert_eq!(api.reason.as_ref().unwrap().code, ReasonCode::PolicyDenied);
    let entry = open_entries(&h).await.remove(0);
    assert_eq!(entry.action, Action::RunStep);
    assert_eq!(entry.reasons[0].code, "no_deploys");
    let held = h.store.decision(&entry.decision_id).await.unwrap().unwrap();
    assert_eq!(held.decision.policy_version, Some(1));

    engine
        .override_block(&entry.id, "alice", "deploy reviewed")
        .await
        .unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_eq!(
        runner.calls_of("api"),
        ["dev", "deploy"],
        "dev is not run again"
    );
}

#[tokio::test]
async fn a_merge_held_back_keeps_the_target_branch_unchanged() {
    let h = Harness::new().await;
    let no_merges = Module {
        name: "merge.rego".into(),
        source: r#"package kamachiq

require_approval contains "merges are reviewed by a person" if input.action == "merge"
"#
        .into(),
    };
    h.store
        .add_policy(&tenant(), &[no_merges], "local:ops", h.clock_now())
        .await
        .unwrap();
    let target = repo();
    let before = git(target.path(), &["rev-parse", "main"]);
    let engine = h.engine(Arc::new(kamachiq_engine::ProcessRunner::default()), None);
    let resolved = kamachiq_engine::Target::resolve(target.path(), Some("main"))
        .await
        .unwrap();
    let run = engine
        .submit(
            plan(
                "tenant: tenant-a\ndeliverables:\n  - {id: api, steps: [{name: dev, run: 'echo fn > api.rs'}]}\n",
            ),
            Some(&resolved),
            1,
        )
        .await
        .unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Blocked { blocked: 1 });
    assert_eq!(git(target.path(), &["rev-parse", "main"]), before);
    let entry = open_entries(&h).await.remove(0);
    assert_eq!(
        (entry.action, entry.verdict),
        (Action::Merge, Verdict::RequireApproval)
    );
    let api = &h.store.deliverables(&run).await.unwrap()[0];
    assert_eq!(
        api.reason.as_ref().unwrap().code,
        ReasonCode::ApprovalRequired
    );

    engine
        .override_block(&entry.id, "alice", "diff reviewed")
        .await
        .unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_ne!(git(target.path(), &["rev-parse", "main"]), before);
    assert_eq!(
        std::fs::read_to_string(target.path().join("api.rs")).unwrap(),
        "fn\n"
    );
}

#[tokio::test]
async fn cancelling_a_run_with_blocked_work_closes_its_requeue_entries() {
    let h = Harness::new().await;
    configure(&h, eu_only()).await;
    let engine = h.engine(Arc::new(ScriptedRunner::default()), None);
    let run = engine.submit(plan(US_PLAN), None, 4).await.unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    let entry = open_entries(&h).await.remove(0);
    engine.cancel(&run).await.unwrap();
    assert_eq!(h.store.run(&run).await.unwrap().state, RunState::Cancelled);
    let closed = h.store.requeue_entry(&entry.id).await.unwrap().unwrap();
    assert_eq!(closed.resolution, Some(Resolution::Cancelled));
    assert!(open_entries(&h).await.is_empty());
}
