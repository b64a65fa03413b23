//! Autonomy governance in the engine: action outcomes recorded with the changes that end them,
//! approvals that hold a deliverable (and no worker slot) until a person answers, expiry,
//! automatic approval of low risk, circuit breakers that react within a second, and paused
//! action types denied by policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kamachiq_domain::DeliverableState::*;
use kamachiq_domain::{EventKind, ReasonCode, RunState, TenantId};
use kamachiq_engine::{EnableOptions, Ending, Error, ProcessRunner, RollbackTarget, Target};
use kamachiq_governance::{ApprovalMode, Effect, ExpiryAction, Outcome, Phase, Settings};
use kamachiq_policy::{Action, Module, Risk, Verdict};
use kamachiq_store::{ApprovalStatus, EventFilter, RequeueQuery, StoredAction};
use tokio_util::sync::CancellationToken;

use crate::support::{Behavior, Harness, ManualClock, ScriptedRunner, pairs, plan, repo};

fn tenant() -> TenantId {
    TenantId::parse("tenant-a").unwrap()
}

async fn outcomes(h: &Harness) -> Vec<StoredAction> {
    h.store
        .actions(
            &tenant(),
            kamachiq_domain::Timestamp::from_millis(0),
            kamachiq_domain::Timestamp::from_millis(i64::MAX),
        )
        .await
        .unwrap()
}

fn kinds(actions: &[StoredAction]) -> Vec<(Action, Outcome)> {
    actions
        .iter()
        .map(|a| (a.record.action, a.record.outcome))
        .collect()
}

async fn govern(engine: &kamachiq_engine::Engine, options: EnableOptions) {
    engine
        .enable_governance(&tenant(), &options, "local:admin")
        .await
        .unwrap();
}

/// A policy that asks a person to approve every step of deliverable `a`.
async fn steps_of_a_need_a_person(h: &Harness) {
    let module = Module {
        name: "a.rego".into(),
        source: r#"package kamachiq

require_approval contains "steps of a are reviewed" if {
    input.action == "run_step"
    input.deliverable.id == "a"
}
"#
        .into(),
    };
    h.store
        .add_policy(&tenant(), &[module], "local:ops", h.clock_now())
        .await
        .unwrap();
}

#[tokio::test]
async fn steps_merges_and_rollbacks_are_recorded_as_outcomes_with_their_changes() {
    let h = Harness::new().await;
    let repo = repo();
    let engine = h.engine(
        Arc::new(ProcessRunner {
            kill_grace: Duration::from_secs(1),
            ..ProcessRunner::default()
        }),
        None,
    );
    let target = Target::resolve(repo.path(), Some("main")).await.unwrap();
    // `dev` fails once then passes (its marker outside the worktree, which a retry resets);
    // `one` and `two` write the same file, so the second merge conflicts.
    let marker = h.home.path().join("once");
    let yaml = format!(
        "
tenant: tenant-a
deliverables:
  - id: one
    steps:
      - {{name: dev, run: \"sleep 0.05; test -f {m} || {{ touch {m}; exit 1; }}; echo one > shared.txt\", retries: 1, backoff: 10ms}}
  - {{id: two, steps: [{{name: dev, run: 'sleep 0.3; echo two > shared.txt'}}]}}
",
        m = marker.display()
    );
    let run = engine.submit(plan(&yaml), Some(&target), 2).await.unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Failed));
    let recorded = outcomes(&h).await;
    assert_eq!(
        kinds(&recorded),
        [
            (Action::RunStep, Outcome::Failed),
            (Action::RunStep, Outcome::Succeeded),
            (Action::Merge, Outcome::Succeeded),
            (Action::RunStep, Outcome::Succeeded),
            (Action::Merge, Outcome::Failed),
        ]
    );
    for a in &recorded {
        assert_eq!(a.run.as_ref(), Some(&run));
        assert_eq!(
            (a.record.tokens, a.record.cost_micro_usd, a.record.critical),
            (0, 0, false)
        );
    }
    let deliverables: Vec<&str> = recorded
        .iter()
        .map(|a| a.deliverable.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(deliverables, ["one", "one", "one", "two", "two"]);
    assert!(recorded[0].record.duration_ms >= 50, "{:?}", recorded[0]);
    assert!(recorded[1].record.duration_ms >= 50, "{:?}", recorded[1]);
    // Each outcome was committed with the change that ended its action.
    let events = h
        .store
        .events_after(0, &EventFilter::default(), 100)
        .await
        .unwrap();
    let failed_step = events
        .iter()
        .find(|e| e.kind == EventKind::StepFinished && e.data["state"] == "failed")
        .unwrap();
    assert_eq!(recorded[0].record.at, failed_step.at);
    let merged = events
        .iter()
        .find(|e| e.kind == EventKind::DeliverableMerged)
        .unwrap();
    assert_eq!(recorded[2].record.at, merged.at);

    let done = engine
        .rollback(
            RollbackTarget::Latest {
                repo: Some(repo.path().to_path_buf()),
            },
            "local:alice",
        )
        .await
        .unwrap();
    let recorded = outcomes(&h).await;
    assert_eq!(recorded.len(), 6);
    let rollback = &recorded[5];
    assert_eq!(
        (
            rollback.record.action,
            rollback.record.outcome,
            rollback.record.at
        ),
        (Action::Rollback, Outcome::RolledBack, done.at)
    );
    assert_eq!(rollback.deliverable.as_ref().unwrap().as_str(), "one");
    // Recorded for an ungoverned tenant too: the metrics are there before governance is.
    assert_eq!(h.store.governance(&tenant()).await.unwrap(), None);
}

#[tokio::test]
async fn a_step_waiting_for_approval_holds_no_slot_and_approval_lets_exactly_it_through() {
    let h = Harness::new().await;
    steps_of_a_need_a_person(&h).await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    govern(
        &engine,
        EnableOptions {
            phase: Phase::L4,
            mode: ApprovalMode::Supervised,
            settings: Settings {
                risk_threshold: Risk::Critical,
                ..Settings::default()
            },
        },
    )
    .await;
    let yaml = "
tenant: tenant-a
deliverables:
  - {id: a, steps: [{name: dev, run: 'true'}, {name: qa, run: 'true'}]}
  - {id: b, steps: [{name: dev, run: 'true'}]}
";
    // One worker slot: `b` runs while `a` waits for a person.
    let run = engine.submit(plan(yaml), None, 1).await.unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Blocked { blocked: 1 });
    assert_eq!(
        h.states(&run).await,
        pairs(&[("a", Blocked), ("b", Succeeded)])
    );
    assert!(runner.calls_of("a").is_empty());
    assert_eq!(runner.calls_of("b"), ["dev"]);
    let waiting = h.store.approvals(&tenant(), true, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    let first = &waiting[0];
    assert_eq!(
        (
            first.action,
            first.step.as_deref(),
            first.status,
            first.risk,
            first.cause
        ),
        (
            Action::RunStep,
            Some("dev"),
            ApprovalStatus::Pending,
            Risk::Low,
            Some(kamachiq_governance::Cause::Policy)
        )
    );
    assert_eq!(first.evidence.reasons[0].message, "steps of a are reviewed");
    assert_eq!(
        first.expires_at,
        first.requested_at.plus(Duration::from_secs(86_400))
    );
    let entry = h
        .store
        .requeue_entry(first.requeue_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (entry.verdict, entry.action),
        (Verdict::RequireApproval, Action::RunStep)
    );
    let a = &h.store.deliverables(&run).await.unwrap()[0];
    assert_eq!(
        a.reason.as_ref().unwrap().code,
        ReasonCode::ApprovalRequired
    );

    // Approved by a person: `dev` runs, `qa` is decided afresh and waits for its own approval.
    let approved = engine
        .approve(&first.id, "lead.ana", Some("reviewed"))
        .await
        .unwrap();
    assert_eq!(
        (approved.status, approved.decided_by.as_deref()),
        (ApprovalStatus::Approved, Some("lead.ana"))
    );
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Blocked { blocked: 1 });
    assert_eq!(runner.calls_of("a"), ["dev"]);
    let a = &h.store.deliverables(&run).await.unwrap()[0];
    assert_eq!((a.state, a.next_step), (Blocked, 1));
    assert_eq!(a.approved_actions, ["run_step:0"]);
    let second = h
        .store
        .approvals(&tenant(), true, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.step.as_deref(), Some("qa"));
    assert_eq!(second.evidence.steps.len(), 1);
    assert_eq!(
        (
            second.evidence.steps[0].step.as_str(),
            second.evidence.steps[0].state.as_str()
        ),
        ("dev", "succeeded")
    );
    // A decided request takes no more decisions.
    assert!(matches!(
        engine.deny(&first.id, "bo", "late").await,
        Err(Error::ApprovalClosed {
            status: ApprovalStatus::Approved,
            ..
        })
    ));

    // Denied: blocked it stays, and nothing retries it on its own.
    engine
        .deny(&second.id, "lead.ana", "qa must wait for the release")
        .await
        .unwrap();
    let entry = h
        .store
        .requeue_entry(second.requeue_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((entry.resolution, entry.next_retry_at), (None, None));
    assert_eq!(
        entry.reasons.last().unwrap().message,
        "lead.ana denied the approval: qa must wait for the release"
    );
    assert_eq!(engine.retry_due().await.unwrap().let_through, 0);
    assert_eq!(
        h.states(&run).await,
        pairs(&[("a", Blocked), ("b", Succeeded)])
    );
    let decided: Vec<String> = h
        .store
        .events_after(0, &EventFilter::default(), 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::ApprovalDecided)
        .map(|e| e.data["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(decided, ["approved", "denied"]);
    let trail: Vec<(String, String)> = h
        .store
        .audit_records(Some(&tenant()), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.actor))
        .collect();
    assert!(
        trail.contains(&("approval_approved".into(), "lead.ana".into())),
        "{trail:?}"
    );
    assert!(
        trail.contains(&("approval_denied".into(), "lead.ana".into())),
        "{trail:?}"
    );
}

#[tokio::test]
async fn in_supervised_mode_an_action_off_the_whitelist_waits_for_a_person() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    // L3+: provisioning runs unattended, steps do not.
    govern(
        &engine,
        EnableOptions {
            phase: Phase::L3Plus,
            ..EnableOptions::default()
        },
    )
    .await;
    let run = engine
        .submit(
            plan("tenant: tenant-a\ndeliverables:\n  - {id: api, steps: [{name: dev, run: 'true'}]}\n"),
            None,
            4,
        )
        .await
        .unwrap();
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Blocked { blocked: 1 }
    );
    let request = h
        .store
        .approvals(&tenant(), true, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (request.action, request.cause),
        (
            Action::RunStep,
            Some(kamachiq_governance::Cause::NotWhitelisted)
        )
    );
    assert_eq!(
        request.evidence.reasons[0].message,
        "run_step is not on the whitelist of phase L3+"
    );
    // The decision was made on the real phase and mode.
    let entry = h
        .store
        .requeue_entry(request.requeue_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    let held = h.store.decision(&entry.decision_id).await.unwrap().unwrap();
    assert_eq!(held.input.autonomy.phase, "L3+");
    assert_eq!(held.input.autonomy.approval_mode, "supervised");
    assert_eq!(
        held.decision.verdict,
        Verdict::Allow,
        "policy allowed it; governance asks"
    );
    // The retry loop does not let it through while the whitelist says no.
    h.store
        .requeue_due_now(&tenant(), h.clock_now())
        .await
        .unwrap();
    assert_eq!(engine.retry_due().await.unwrap().let_through, 0);

    engine.approve(&request.id, "lead.ana", None).await.unwrap();
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Finished(RunState::Succeeded)
    );
    assert_eq!(runner.calls_of("api"), ["dev"]);
}

#[tokio::test]
async fn unanswered_requests_expire_denied_or_escalated_as_the_tenant_says() {
    let h = Harness::new().await;
    let clock = Arc::new(ManualClock::at(h.clock_now()));
    let runner = ScriptedRunner::default();
    let engine = h.engine_on(Arc::new(runner.clone()), clock.clone());
    govern(
        &engine,
        EnableOptions {
            settings: Settings {
                approval_ttl: Duration::from_secs(3_600),
                ..Settings::default()
            },
            ..EnableOptions::default()
        },
    )
    .await;
    let run = engine
        .submit(
            plan("tenant: tenant-a\ndeliverables:\n  - {id: api, steps: [{name: dev, run: 'true'}]}\n  - {id: web, steps: [{name: dev, run: 'true'}]}\n"),
            None,
            4,
        )
        .await
        .unwrap();
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Blocked { blocked: 2 }
    );
    let requests = h.store.approvals(&tenant(), true, 10).await.unwrap();
    assert_eq!(requests.len(), 2, "at L3 even provisioning waits");
    assert!(requests.iter().all(|r| r.action == Action::Provision));
    let api = requests
        .iter()
        .find(|r| r.deliverable.as_str() == "api")
        .unwrap();

    clock.advance(Duration::from_secs(3_599));
    assert_eq!(engine.expire_approvals().await.unwrap(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(engine.expire_approvals().await.unwrap(), 2);
    let expired = h.store.approval(&api.id).await.unwrap().unwrap();
    assert_eq!(
        (expired.status, expired.decided_by.as_deref()),
        (ApprovalStatus::Expired, Some("expiry"))
    );
    assert!(matches!(
        engine.approve(&api.id, "lead.ana", None).await,
        Err(Error::ApprovalClosed {
            status: ApprovalStatus::Expired,
            ..
        })
    ));
    let entry = h
        .store
        .requeue_entry(api.requeue_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((entry.resolution, entry.next_retry_at), (None, None));
    assert_eq!(entry.reasons.last().unwrap().code, "approval_expired");
    assert_eq!(
        h.states(&run).await,
        pairs(&[("api", Blocked), ("web", Blocked)])
    );

    // A tenant that escalates: the request waits on, without a deadline, for a person.
    engine
        .configure_governance(
            &tenant(),
            &kamachiq_engine::GovernanceUpdate {
                on_expiry: Some(ExpiryAction::Escalate),
                ..Default::default()
            },
            "local:admin",
        )
        .await
        .unwrap();
    let again = engine
        .reevaluate(api.requeue_id.as_deref().unwrap(), Some("local:ops".into()))
        .await
        .unwrap();
    assert!(matches!(
        again,
        kamachiq_engine::Resolved::StillBlocked { .. }
    ));
    let fresh = h
        .store
        .approvals(&tenant(), true, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        fresh.deliverable.as_str(),
        "api",
        "a person asked again: a new request"
    );
    clock.advance(Duration::from_secs(3_600));
    assert_eq!(engine.expire_approvals().await.unwrap(), 1);
    let escalated = h.store.approval(&fresh.id).await.unwrap().unwrap();
    assert_eq!(escalated.status, ApprovalStatus::Escalated);
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(engine.expire_approvals().await.unwrap(), 0);
    engine.approve(&fresh.id, "ops.lead", None).await.unwrap();
    assert_eq!(h.store.deliverables(&run).await.unwrap()[0].state, Pending);
}

#[tokio::test]
async fn low_risk_requests_are_approved_at_once_when_the_tenant_allows_it() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    govern(
        &engine,
        EnableOptions {
            settings: Settings {
                auto_approve_low_risk: true,
                ..Settings::default()
            },
            ..EnableOptions::default()
        },
    )
    .await;
    let run = engine
        .submit(
            plan("tenant: tenant-a\ndeliverables:\n  - {id: api, steps: [{name: dev, run: 'true'}, {name: qa, run: 'true'}]}\n"),
            None,
            4,
        )
        .await
        .unwrap();
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Finished(RunState::Succeeded)
    );
    assert_eq!(runner.calls_of("api"), ["dev", "qa"]);
    let approvals = h.store.approvals(&tenant(), false, 10).await.unwrap();
    let mut seen: Vec<(Action, Option<String>, ApprovalStatus, Option<String>)> = approvals
        .into_iter()
        .map(|a| (a.action, a.step, a.status, a.decided_by))
        .collect();
    seen.sort_by_key(|s| format!("{:?}{:?}", s.0, s.1));
    let auto = Some("auto".to_owned());
    assert_eq!(
        seen,
        [
            (
                Action::Provision,
                None,
                ApprovalStatus::Approved,
                auto.clone()
            ),
            (
                Action::RunStep,
                Some("dev".into()),
                ApprovalStatus::Approved,
                auto.clone()
            ),
            (
                Action::RunStep,
                Some("qa".into()),
                ApprovalStatus::Approved,
                auto
            ),
        ]
    );
    assert!(
        h.store
            .requeue(&RequeueQuery {
                limit: 10,
                ..RequeueQuery::default()
            })
            .await
            .unwrap()
            .is_empty(),
        "nothing waited"
    );
}

#[tokio::test]
async fn a_burst_of_failures_reverts_the_phase_to_l3_within_a_second() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    govern(
        &engine,
        EnableOptions {
            phase: Phase::L4Plus,
            mode: ApprovalMode::Autonomous,
            settings: Settings::default(),
        },
    )
    .await;
    let mut events = engine.subscribe();
    // Healthy work first: nine deliverables pass, then the tenth fails.
    let mut yaml = "tenant: tenant-a\ndeliverables:\n".to_owned();
    for i in 0..10 {
        let deps = if i == 9 { "[d8]" } else { "[]" };
        yaml.push_str(&format!(
            "  - {{id: d{i}, dependencies: {deps}, steps: [{{name: dev, run: 'true'}}]}}\n"
        ));
    }
    runner.script("d9", "dev", &[Behavior::Exit(1)]);
    let run = engine.submit(plan(&yaml), None, 2).await.unwrap();
    let driving = tokio::spawn({
        let engine = engine.clone();
        let run = run.clone();
        async move { engine.drive(&run, CancellationToken::new()).await }
    });
    // From the commit of the breaching outcome (its event is broadcast after the commit) to
    // the reverted state being visible in the store.
    let committed = loop {
        let event = events.recv().await.unwrap();
        if event.kind == EventKind::StepFinished && event.data["state"] == "failed" {
            break Instant::now();
        }
    };
    let reverted = loop {
        let state = h.store.governance(&tenant()).await.unwrap().unwrap().state;
        if state.current_phase == Phase::L3 {
            break committed.elapsed();
        }
        assert!(
            committed.elapsed() < Duration::from_secs(5),
            "never reverted"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    println!("breaker reaction: outcome committed -> L3 in the store in {reverted:?}");
    assert!(reverted < Duration::from_secs(1), "{reverted:?}");
    driving.await.unwrap().unwrap();

    let governed = h.store.governance(&tenant()).await.unwrap().unwrap();
    assert_eq!(governed.state.current_phase, Phase::L3);
    assert_eq!(governed.state.command_whitelist, []);
    let open = h
        .store
        .breaker_events(&tenant(), true, None, 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    let event = &open[0];
    assert_eq!(event.rule, "High Error Rate");
    assert_eq!(event.run.as_ref(), Some(&run));
    assert_eq!(
        event.effect,
        Effect::RevertToL3 {
            from: Phase::L4Plus,
            cleared: vec![Action::Provision, Action::RunStep, Action::Merge],
        }
    );
    assert_eq!((event.metrics.total, event.metrics.failed), (10, 1));
    assert_eq!(event.metrics.error_rate, 0.1);
    let tripped: Vec<_> = h
        .store
        .events_after(0, &EventFilter::default(), 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::BreakerTripped)
        .collect();
    assert_eq!(tripped.len(), 1);
    assert_eq!(tripped[0].run_id, run);
    let audit = h
        .store
        .audit_records(Some(&tenant()), 0, 100)
        .await
        .unwrap();
    let record = audit
        .iter()
        .find(|r| r.action == "breaker_tripped")
        .unwrap();
    assert_eq!(record.actor, "breaker:High Error Rate");

    // At L3 with an empty whitelist, the next run's work waits for people.
    let next = engine
        .submit(
            plan("tenant: tenant-a\ndeliverables:\n  - {id: after, steps: [{name: dev, run: 'true'}]}\n"),
            None,
            2,
        )
        .await
        .unwrap();
    assert_eq!(
        engine.drive(&next, CancellationToken::new()).await.unwrap(),
        Ending::Blocked { blocked: 1 }
    );
    assert!(runner.calls_of("after").is_empty());

    // Resolving the event re-arms the rule; the phase stays L3 (moving up takes a proposal).
    let resolved = engine
        .resolve_breaker_event(&tenant(), &event.id, Some("flaky test fixed"), "local:ops")
        .await
        .unwrap();
    assert_eq!(resolved.resolved_by.as_deref(), Some("local:ops"));
    assert_eq!(
        h.store
            .governance(&tenant())
            .await
            .unwrap()
            .unwrap()
            .state
            .current_phase,
        Phase::L3
    );
}

#[tokio::test]
async fn repeated_failures_of_one_type_pause_it_and_policy_denies_it_until_resolved() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    govern(
        &engine,
        EnableOptions {
            phase: Phase::L4,
            mode: ApprovalMode::Autonomous,
            settings: Settings::default(),
        },
    )
    .await;
    // Only the pausing rule is left on, so the revert does not hide the pause.
    engine
        .update_rule(
            &tenant(),
            "High Error Rate",
            &kamachiq_engine::RulePatch {
                enabled: Some(false),
                ..Default::default()
            },
            "local:admin",
        )
        .await
        .unwrap();
    runner.script(
        "flaky",
        "dev",
        &[Behavior::Exit(1), Behavior::Exit(1), Behavior::Exit(1)],
    );
    let run = engine
        .submit(
            plan("tenant: tenant-a\ndeliverables:\n  - {id: flaky, steps: [{name: dev, run: 'true', retries: 2, backoff: 10ms}]}\n"),
            None,
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Finished(RunState::Failed)
    );
    // Once the breakers have judged every outcome committed so far, the pause is there.
    engine.breakers_settled(Duration::from_secs(5)).await;
    let paused = h.store.governance(&tenant()).await.unwrap().unwrap().state;
    assert_eq!(paused.paused_actions, [Action::RunStep]);
    assert_eq!(paused.current_phase, Phase::L4, "a pause reverts nothing");

    let next = engine
        .submit(
            plan("tenant: tenant-a\ndeliverables:\n  - {id: api, steps: [{name: dev, run: 'true'}]}\n"),
            None,
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        engine.drive(&next, CancellationToken::new()).await.unwrap(),
        Ending::Blocked { blocked: 1 }
    );
    let entry = h
        .store
        .requeue(&RequeueQuery {
            run: Some(next.clone()),
            open: true,
            limit: 10,
            ..RequeueQuery::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (entry.action, entry.verdict),
        (Action::RunStep, Verdict::Deny)
    );
    assert_eq!(entry.reasons[0].code, "action_paused");
    assert_eq!(
        entry.reasons[0].message,
        "run_step actions are paused for tenant tenant-a"
    );
    assert!(
        h.store
            .approvals(&tenant(), true, 10)
            .await
            .unwrap()
            .is_empty(),
        "a denial is no approval request"
    );

    // Resolving the pause's event resumes the type; the retry loop lets the work through.
    let event = h
        .store
        .breaker_events(&tenant(), true, None, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(event.rule, "Repeated Command Failures");
    engine
        .resolve_breaker_event(&tenant(), &event.id, None, "local:ops")
        .await
        .unwrap();
    let state = h.store.governance(&tenant()).await.unwrap().unwrap().state;
    assert_eq!(state.paused_actions, []);
    assert_eq!(engine.retry_due().await.unwrap().let_through, 1);
    assert_eq!(
        engine.drive(&next, CancellationToken::new()).await.unwrap(),
        Ending::Finished(RunState::Succeeded)
    );
}

#[tokio::test]
async fn a_merge_off_the_whitelist_waits_without_a_slot_and_approval_merges_only_it() {
    let h = Harness::new().await;
    let repo = repo();
    let engine = h.engine(
        Arc::new(ProcessRunner {
            kill_grace: Duration::from_secs(1),
            ..ProcessRunner::default()
        }),
        None,
    );
    // L4: provisioning and steps run unattended, merges wait for a person.
    govern(
        &engine,
        EnableOptions {
            phase: Phase::L4,
            ..EnableOptions::default()
        },
    )
    .await;
    let target = Target::resolve(repo.path(), Some("main")).await.unwrap();
    let before = crate::support::git(repo.path(), &["rev-parse", "main"]);
    let yaml = "
tenant: tenant-a
deliverables:
  - {id: a, steps: [{name: dev, run: 'echo a > a.txt'}]}
  - {id: b, steps: [{name: dev, run: 'echo b > b.txt'}]}
";
    // One worker slot: `b` runs its step while `a`'s merge waits for a person.
    let run = engine.submit(plan(yaml), Some(&target), 1).await.unwrap();
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Blocked { blocked: 2 }
    );
    assert_eq!(
        h.states(&run).await,
        pairs(&[("a", Blocked), ("b", Blocked)])
    );
    assert_eq!(
        crate::support::git(repo.path(), &["rev-parse", "main"]),
        before
    );
    let waiting = h.store.approvals(&tenant(), true, 10).await.unwrap();
    assert_eq!(waiting.len(), 2);
    assert!(waiting.iter().all(|a| a.action == Action::Merge
        && a.cause == Some(kamachiq_governance::Cause::NotWhitelisted)));
    let of_a = waiting
        .iter()
        .find(|w| w.deliverable.as_str() == "a")
        .unwrap();
    let diff = of_a.evidence.diff.as_ref().unwrap();
    assert_eq!(
        (diff.files, diff.lines_added, diff.lines_removed),
        (1, 1, 0)
    );
    assert_eq!(of_a.evidence.steps[0].state, "succeeded");

    engine.approve(&of_a.id, "lead.ana", None).await.unwrap();
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Blocked { blocked: 1 }
    );
    assert_eq!(
        h.states(&run).await,
        pairs(&[("a", Succeeded), ("b", Blocked)])
    );
    assert!(repo.path().join("a.txt").exists());
    assert!(!repo.path().join("b.txt").exists(), "b's merge still waits");
    let a = &h.store.deliverables(&run).await.unwrap()[0];
    assert_eq!(a.approved_actions, ["merge"]);
    let merges: Vec<Outcome> = outcomes(&h)
        .await
        .into_iter()
        .filter(|o| o.record.action == Action::Merge)
        .map(|o| o.record.outcome)
        .collect();
    assert_eq!(merges, [Outcome::Succeeded]);
}
