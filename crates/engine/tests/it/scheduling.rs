use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kamachiq_domain::DeliverableState::*;
use kamachiq_domain::run::StepState;
use kamachiq_domain::{EventKind, ReasonCode, RunState};
use kamachiq_engine::{CancelOutcome, Ending};
use kamachiq_store::{Change, EventFilter};
use tokio_util::sync::CancellationToken;

use crate::support::{Behavior, Harness, ScriptedRunner, pairs, plan};

const DIAMOND: &str = "
deliverables:
  - {id: root, steps: [{name: dev, run: 'true'}]}
  - {id: left, dependencies: [root], steps: [{name: dev, run: 'true'}, {name: qa, run: 'true'}]}
  - {id: right, dependencies: [root], steps: [{name: dev, run: 'true'}]}
  - {id: sink, dependencies: [left, right], steps: [{name: docs, run: 'true'}]}
";

#[tokio::test]
async fn a_diamond_runs_in_dependency_order_and_succeeds() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    let mut events = engine.subscribe();
    let run = engine.submit(plan(DIAMOND), None, 4).await.unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();

    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    let order = runner.order();
    assert_eq!(order.first().map(String::as_str), Some("root"));
    assert_eq!(order.last().map(String::as_str), Some("sink"));
    assert_eq!(runner.calls_of("left"), ["dev", "qa"]);
    assert_eq!(
        h.states(&run).await,
        pairs(&[
            ("root", Succeeded),
            ("left", Succeeded),
            ("right", Succeeded),
            ("sink", Succeeded)
        ])
    );
    let stored = h.store.run(&run).await.unwrap();
    assert_eq!(stored.state, RunState::Succeeded);
    assert_eq!(stored.driver, None, "a finished run has no driver");

    // Subscribers saw exactly the committed events, in order.
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let stored_events = h
        .store
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap();
    assert_eq!(seen, stored_events);
    assert_eq!(seen.first().unwrap().kind, EventKind::RunStarted);
    assert_eq!(seen.last().unwrap().kind, EventKind::RunFinished);
}

#[tokio::test]
async fn concurrency_limits_how_many_run_at_once() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let mut yaml = String::from("deliverables:\n");
    for i in 0..12 {
        yaml.push_str(&format!(
            "  - {{id: d{i}, steps: [{{name: s, run: 'true'}}]}}\n"
        ));
        runner.script(
            &format!("d{i}"),
            "s",
            &[Behavior::Sleep(Duration::from_millis(100))],
        );
    }
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine.submit(plan(&yaml), None, 3).await.unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(runner.max_running.load(Ordering::SeqCst), 3);
    assert_eq!(runner.calls.lock().unwrap().len(), 12);
}

#[tokio::test]
async fn a_failing_step_is_retried_with_growing_backoff_then_passes() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    runner.script("a", "qa", &[Behavior::Exit(1), Behavior::Exit(2)]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine
        .submit(
            plan("deliverables:\n  - {id: a, steps: [{name: dev, run: 'true'}, {name: qa, run: 'true', retries: 2, backoff: 200ms}]}\n"),
            None,
            1,
        )
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_eq!(
        runner.calls_of("a"),
        ["dev", "qa", "qa", "qa"],
        "dev is not re-run for qa's retries"
    );
    // Backoff 200ms, then 400ms.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    let qa: Vec<(u32, StepState, Option<i32>)> = h
        .attempts(&run)
        .await
        .into_iter()
        .filter(|a| a.step == "qa")
        .map(|a| (a.attempt, a.state, a.exit_code))
        .collect();
    assert_eq!(
        qa,
        [
            (1, StepState::Failed, Some(1)),
            (2, StepState::Failed, Some(2)),
            (3, StepState::Succeeded, Some(0))
        ]
    );
}

#[tokio::test]
async fn a_step_that_keeps_failing_fails_its_deliverable_and_skips_dependents_only() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    runner.script("left", "qa", &[Behavior::Exit(1), Behavior::Exit(1)]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let yaml = DIAMOND.replace(
        "{name: qa, run: 'true'}",
        "{name: qa, run: 'true', retries: 1}",
    );
    let run = engine.submit(plan(&yaml), None, 4).await.unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();

    assert_eq!(ending, Ending::Finished(RunState::Failed));
    assert_eq!(
        h.states(&run).await,
        pairs(&[
            ("root", Succeeded),
            ("left", Failed),
            ("right", Succeeded),
            ("sink", Skipped)
        ])
    );
    assert!(runner.calls_of("sink").is_empty());
    let left = h.store.deliverables(&run).await.unwrap().remove(1);
    let reason = left.reason.unwrap();
    assert_eq!(reason.code, ReasonCode::StepFailed);
    assert_eq!(
        reason.detail,
        "step `qa` exited with status 1 (after 2 attempts)"
    );
    let sink = h.store.deliverables(&run).await.unwrap().remove(3);
    assert_eq!(
        sink.reason.unwrap().detail,
        "depends on `left`, which failed"
    );
}

#[tokio::test]
async fn a_timeout_is_reported_as_such() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    runner.script("a", "dev", &[Behavior::TimeOut]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine
        .submit(
            plan("deliverables:\n  - {id: a, steps: [{name: dev, run: 'true', timeout: 10m}]}\n"),
            None,
            1,
        )
        .await
        .unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    let a = h.store.deliverables(&run).await.unwrap().remove(0);
    let reason = a.reason.unwrap();
    assert_eq!(reason.code, ReasonCode::Timeout);
    assert_eq!(
        reason.detail,
        "step `dev` ran longer than its timeout of 10m; its process group was killed"
    );
}

#[tokio::test]
async fn a_cancel_from_elsewhere_stops_running_steps_and_cancels_the_rest() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    runner.script("root", "dev", &[Behavior::Hang]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine.submit(plan(DIAMOND), None, 4).await.unwrap();

    let store = h.store.clone();
    let clock = h.clock.clone();
    let run2 = run.clone();
    let watcher = runner.clone();
    let canceller = tokio::spawn(async move {
        watcher.started("root", "dev").await;
        // As `kamachiq cancel` does from another process: only the store is shared.
        use kamachiq_engine::Clock;
        store
            .apply(
                clock.now(),
                &[Change::RequestCancel {
                    run: run2,
                    by: None,
                }],
            )
            .await
            .unwrap();
    });
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    canceller.await.unwrap();

    assert_eq!(ending, Ending::Finished(RunState::Cancelled));
    assert_eq!(
        h.states(&run).await,
        pairs(&[
            ("root", Cancelled),
            ("left", Cancelled),
            ("right", Cancelled),
            ("sink", Cancelled)
        ])
    );
    assert_eq!(h.attempts(&run).await[0].state, StepState::Cancelled);
}

#[tokio::test]
async fn cancel_of_a_run_nobody_drives_cancels_it_directly() {
    let h = Harness::new().await;
    let engine = h.engine(Arc::new(ScriptedRunner::default()), None);
    let run = engine.submit(plan(DIAMOND), None, 4).await.unwrap();
    assert_eq!(engine.cancel(&run).await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(h.store.run(&run).await.unwrap().state, RunState::Cancelled);
    assert!(h.states(&run).await.iter().all(|(_, s)| *s == Cancelled));
    assert_eq!(
        engine.cancel(&run).await.unwrap(),
        CancelOutcome::AlreadyFinished(RunState::Cancelled)
    );
}

#[tokio::test]
async fn an_interrupted_drive_hands_work_back_and_a_later_drive_finishes_it() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    runner.script("left", "qa", &[Behavior::Hang]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine.submit(plan(DIAMOND), None, 4).await.unwrap();

    let stop = CancellationToken::new();
    let stopper = stop.clone();
    let watcher = runner.clone();
    tokio::spawn(async move {
        watcher.started("left", "qa").await;
        stopper.cancel();
    });
    assert_eq!(engine.drive(&run, stop).await.unwrap(), Ending::Interrupted);
    assert_eq!(
        h.store.run(&run).await.unwrap().driver,
        None,
        "the lease is given back"
    );
    let left = h.store.deliverables(&run).await.unwrap().remove(1);
    assert_eq!((left.state, left.next_step, left.lease), (Running, 1, None));

    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_eq!(
        runner.calls_of("left"),
        ["dev", "qa", "qa"],
        "only the interrupted step runs again"
    );
    let qa: Vec<StepState> = h
        .attempts(&run)
        .await
        .into_iter()
        .filter(|a| a.deliverable.as_str() == "left" && a.step == "qa")
        .map(|a| a.state)
        .collect();
    assert_eq!(qa, [StepState::Interrupted, StepState::Succeeded]);
    let kinds: Vec<EventKind> = h
        .store
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventKind::DeliverableReleased));
    assert!(kinds.contains(&EventKind::RunResumed));
}

#[tokio::test]
async fn a_finished_run_cannot_be_driven_again() {
    let h = Harness::new().await;
    let engine = h.engine(Arc::new(ScriptedRunner::default()), None);
    let run = engine.submit(plan(DIAMOND), None, 4).await.unwrap();
    engine.drive(&run, CancellationToken::new()).await.unwrap();
    let err = engine
        .drive(&run, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), format!("run {run} has already succeeded"));
}

#[tokio::test]
async fn a_run_with_a_live_driver_is_not_driven_twice() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    runner.script("root", "dev", &[Behavior::Sleep(Duration::from_secs(2))]);
    let first = h.engine(Arc::new(runner.clone()), None);
    let second = h.engine(Arc::new(runner.clone()), None);
    let run = first.submit(plan(DIAMOND), None, 4).await.unwrap();
    let run2 = run.clone();
    let driving = tokio::spawn(async move { first.drive(&run2, CancellationToken::new()).await });
    runner.started("root", "dev").await;
    let err = second
        .drive(&run, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is being driven by"), "{err}");
    assert_eq!(
        driving.await.unwrap().unwrap(),
        Ending::Finished(RunState::Succeeded)
    );
}

#[tokio::test]
async fn reopening_a_failed_run_retries_its_failed_work() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    runner.script("left", "qa", &[Behavior::Exit(1)]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine.submit(plan(DIAMOND), None, 4).await.unwrap();
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Finished(RunState::Failed)
    );
    assert_eq!(
        engine
            .resume(&run, vec![Failed, Skipped], CancellationToken::new())
            .await
            .unwrap(),
        Ending::Finished(RunState::Succeeded)
    );
    let kinds: Vec<EventKind> = h
        .store
        .events_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EventKind::RunReopened));
    assert_eq!(
        runner.calls_of("left"),
        ["dev", "qa", "qa"],
        "dev passed before and is kept"
    );
}

/// A claim and a success of one run in the same batch: the deliverables the success made
/// ready reach the success's waiter, not the claim's (which would drop them).
#[tokio::test]
async fn ready_deliverables_reach_the_success_that_freed_them() {
    use kamachiq_engine::{Clock, Committer};
    use kamachiq_store::{Applied, LeaseKey};

    let h = Harness::new().await;
    let events = tokio::sync::broadcast::channel(16).0;
    let (committer, _done) = Committer::start(h.store.clone(), h.clock.clone(), events).unwrap();
    let engine = h.engine(Arc::new(ScriptedRunner::default()), None);
    let run = engine
        .submit(plan("deliverables:\n  - {id: a, steps: [{name: s, run: 'true'}]}\n  - {id: b, dependencies: [a], steps: [{name: s, run: 'true'}]}\n  - {id: c, steps: [{name: s, run: 'true'}]}\n"), None, 4)
        .await
        .unwrap();
    let id = |s: &str| kamachiq_domain::DeliverableId::parse(s).unwrap();
    let claim = |d: &str| Change::Claim {
        run: run.clone(),
        deliverable: id(d),
        owner: "test".into(),
        lease_until: h.clock.now().plus(Duration::from_secs(30)),
        kind: kamachiq_store::ClaimKind::Ready,
        start: None,
    };
    let claimed = committer.commit(claim("a")).await.unwrap();
    assert_eq!(
        claimed.result,
        Ok(Applied::Claimed {
            attempt: 1,
            next_step: 0,
            step_attempt: None
        })
    );

    // Committed together: one batch, the claim first.
    let success = Change::Succeeded {
        lease: LeaseKey {
            run: run.clone(),
            deliverable: id("a"),
            attempt: 1,
        },
        merge: None,
    };
    let mut committed = committer
        .commit_many(vec![claim("c"), success])
        .await
        .unwrap();
    let succeed_a = committed.pop().unwrap();
    let claim_c = committed.pop().unwrap();
    assert_eq!(claim_c.ready, Vec::<kamachiq_domain::DeliverableId>::new());
    assert_eq!(succeed_a.ready, vec![id("b")]);
}

#[tokio::test]
async fn a_wide_lattice_under_heavy_batching_runs_every_deliverable() {
    // Many deliverables finishing at once put claims, steps and successes of one run into the
    // same write batches; every deliverable made ready by a batch must still be started.
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let width = 12;
    let mut yaml = String::from("deliverables:\n");
    for i in 0..width * 6 {
        let deps = if i < width {
            String::new()
        } else {
            let above = (i / width - 1) * width;
            format!("d{}, d{}", above + i % width, above + (i + 1) % width)
        };
        yaml.push_str(&format!(
            "  - {{id: d{i}, dependencies: [{deps}], steps: [{{name: s, run: 'true'}}]}}\n"
        ));
    }
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = engine.submit(plan(&yaml), None, 64).await.unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_eq!(runner.calls.lock().unwrap().len(), width * 6);
}
