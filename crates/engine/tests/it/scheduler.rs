//! The scheduler of `kamachiq serve`: it drives runs submitted for it, up to `max_runs` at
//! once, leaves runs with a live driver alone, adopts runs whose driver vanished, does not lose
//! a resume asked for while it drives the run, and hands runs back on shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kamachiq_domain::DeliverableState::{Failed, Running, Skipped};
use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableId, EventKind, RunId, RunState, StepName};
use kamachiq_engine::{Clock, DrivenBy, Engine, Scheduler, SchedulerOptions, Submission};
use kamachiq_store::{Change, ClaimKind, EventFilter, Purpose, StepRef};
use serde_json::json;
use tokio::time::Instant;

use crate::support::{Behavior, Harness, ScriptedRunner, plan};

/// The longest a test waits for a run to get somewhere, on a slow, busy machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// A scheduler that looks at the store every 50 ms, so runs only polling finds are found fast.
fn options(max_runs: usize) -> SchedulerOptions {
    SchedulerOptions {
        max_runs,
        poll: Duration::from_millis(50),
        retry_after: Duration::from_millis(200),
    }
}

/// A plan of one deliverable `id` with one step `dev` that is not retried.
fn one_step(id: &str) -> String {
    format!("deliverables:\n  - {{id: {id}, steps: [{{name: dev, run: 'true', retries: 0}}]}}\n")
}

/// Submits `yaml` for whichever scheduler finds it first.
async fn submit(engine: &Engine, yaml: &str) -> RunId {
    engine
        .submit_run(Submission {
            plan: plan(yaml),
            target: None,
            concurrency: 1,
            submitted_by: None,
            driven_by: DrivenBy::Scheduler,
        })
        .await
        .unwrap()
}

/// Polls the store until `run` is in `state`; fails after `DEADLINE`, naming the state it is in.
async fn wait_for_state(h: &Harness, run: &RunId, state: RunState) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = h.store.run(run).await.unwrap().state;
        if now == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {run} is {now:?}, not {state:?}, after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The states of the attempts of `deliverable`'s step `dev`, in order.
async fn dev_attempts(h: &Harness, run: &RunId, deliverable: &str) -> Vec<StepState> {
    h.attempts(run)
        .await
        .into_iter()
        .filter(|a| a.deliverable.as_str() == deliverable && a.step == "dev")
        .map(|a| a.state)
        .collect()
}

/// The run's events of the kinds that mark its life as a whole, in order.
async fn run_events(h: &Harness, run: &RunId) -> Vec<EventKind> {
    let filter = EventFilter {
        run: Some(run.clone()),
        tenant: None,
    };
    h.store
        .events_after(0, &filter, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| {
            matches!(
                k,
                EventKind::RunStarted
                    | EventKind::RunResumed
                    | EventKind::RunReopened
                    | EventKind::RunFinished
            )
        })
        .collect()
}

#[tokio::test]
async fn runs_submitted_for_a_scheduler_succeed_one_at_a_time_with_max_runs_1() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    // Long enough that two runs driven together would overlap their steps.
    for i in 0..3 {
        runner.script(
            &format!("r{i}"),
            "dev",
            &[Behavior::Sleep(Duration::from_millis(100))],
        );
    }
    let engine = h.engine(Arc::new(runner.clone()), None);
    let scheduler = Scheduler::start(engine.clone(), options(1));
    let mut runs = Vec::new();
    for i in 0..3 {
        runs.push(submit(&engine, &one_step(&format!("r{i}"))).await);
    }
    for run in &runs {
        wait_for_state(&h, run, RunState::Succeeded).await;
    }
    assert!(scheduler.shutdown(DEADLINE).await);

    assert_eq!(
        runner.max_running.load(Ordering::SeqCst),
        1,
        "two runs were driven at once"
    );
    for i in 0..3 {
        assert_eq!(runner.calls_of(&format!("r{i}")), ["dev"]);
    }
    for run in &runs {
        assert_eq!(h.store.run(run).await.unwrap().driver, None);
    }
}

/// The counterpart of the test above: the limit is what keeps runs apart.
#[tokio::test]
async fn a_scheduler_drives_up_to_max_runs_runs_at_once() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    for i in 0..3 {
        runner.script(&format!("r{i}"), "dev", &[Behavior::Hang]);
    }
    let engine = h.engine(Arc::new(runner.clone()), None);
    let scheduler = Scheduler::start(engine.clone(), options(3));
    for i in 0..3 {
        submit(&engine, &one_step(&format!("r{i}"))).await;
    }
    // Every step hangs until stopped: all three started means all three runs are driven now.
    for i in 0..3 {
        runner.started(&format!("r{i}"), "dev").await;
    }
    assert_eq!(runner.max_running.load(Ordering::SeqCst), 3);
    assert!(scheduler.shutdown(DEADLINE).await);
}

#[tokio::test]
async fn a_run_its_submitter_holds_is_not_taken_while_the_lease_is_live() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    // A lease far longer than the test: only a scheduler ignoring it could take the run.
    let submitter = h.engine_with_lease(Arc::new(runner.clone()), None, Duration::from_secs(600));
    let run = submitter
        .submit(plan(&one_step("held")), None, 1)
        .await
        .unwrap();
    let lease = h.store.run(&run).await.unwrap().driver.unwrap();
    assert_eq!(lease.owner, submitter.owner().to_string());

    // Another process's scheduler on the same store.
    let other = h.engine(Arc::new(runner.clone()), None);
    assert_ne!(other.owner(), submitter.owner());
    let scheduler = Scheduler::start(other.clone(), options(4));
    // A run that only polling the store finds (its engine wakes no scheduler). Once it has been
    // driven, the scheduler has looked at the store with the held run in it.
    let third = h.engine(Arc::new(runner.clone()), None);
    let canary = submit(&third, &one_step("canary")).await;
    wait_for_state(&h, &canary, RunState::Succeeded).await;
    assert!(scheduler.shutdown(DEADLINE).await);

    let held = h.store.run(&run).await.unwrap();
    assert_eq!(held.state, RunState::Running);
    assert_eq!(
        held.driver,
        Some(lease),
        "the lease is still the submitter's"
    );
    assert_eq!(runner.calls_of("held"), Vec::<String>::new());
    assert_eq!(run_events(&h, &run).await, [EventKind::RunStarted]);
}

#[tokio::test]
async fn a_run_whose_driver_vanished_is_adopted_after_its_lease_expires() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let engine = h.engine(Arc::new(runner.clone()), None);
    let run = submit(&engine, &one_step("a")).await;
    // A driver on another host took the run and started its step, then vanished without
    // giving anything back.
    let ghost = "ghost:1:x";
    let now = h.clock.now();
    let expires_at = now.plus(Duration::from_millis(300));
    assert!(
        h.store
            .acquire_driver(&run, ghost, expires_at, now, None, Purpose::Driving)
            .await
            .unwrap()
    );
    h.store
        .apply(
            now,
            &[Change::Claim {
                run: run.clone(),
                deliverable: DeliverableId::parse("a").unwrap(),
                owner: ghost.into(),
                lease_until: expires_at,
                kind: ClaimKind::Ready,
                start: Some(StepRef {
                    index: 0,
                    name: StepName::parse("dev").unwrap(),
                }),
            }],
        )
        .await
        .unwrap();
    assert_eq!(dev_attempts(&h, &run, "a").await, [StepState::Running]);

    let scheduler = Scheduler::start(engine.clone(), options(4));
    wait_for_state(&h, &run, RunState::Succeeded).await;
    assert!(scheduler.shutdown(DEADLINE).await);

    assert_eq!(runner.calls_of("a"), ["dev"]);
    assert_eq!(
        dev_attempts(&h, &run, "a").await,
        [StepState::Interrupted, StepState::Succeeded],
        "the ghost's step was interrupted, and run again"
    );
    let a = h.store.deliverables(&run).await.unwrap().remove(0);
    assert_eq!(a.attempt, 2, "the adoption is a new attempt");
    let events = h
        .store
        .events_after(
            0,
            &EventFilter {
                run: Some(run.clone()),
                tenant: None,
            },
            1000,
        )
        .await
        .unwrap();
    let resumed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::RunResumed)
        .collect();
    assert_eq!(resumed.len(), 1, "{events:#?}");
    assert_eq!(
        resumed[0].data,
        json!({"driver": engine.owner().to_string()})
    );
    assert!(
        resumed[0].at >= expires_at,
        "adopted at {} before the ghost's lease expired at {expires_at}",
        resumed[0].at
    );
}

/// A retry asked for while the scheduler still drives the run (the drive is about to end
/// `failed`) waits for that drive to end, then reopens the run; it is not dropped.
#[tokio::test]
async fn a_resume_asked_for_while_the_run_is_driven_is_kept_until_the_drive_ends() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let gate = Arc::new(tokio::sync::Notify::new());
    // Fails the first time, when the gate opens; succeeds the second time.
    runner.script("a", "dev", &[Behavior::ExitWhen(gate.clone(), 1)]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let scheduler = Scheduler::start(engine.clone(), options(4));
    let run = submit(&engine, &one_step("a")).await;

    runner.started("a", "dev").await;
    scheduler
        .resume(run.clone(), vec![Failed, Skipped])
        .await
        .unwrap();
    gate.notify_one();
    wait_for_state(&h, &run, RunState::Succeeded).await;
    assert!(scheduler.shutdown(DEADLINE).await);

    assert_eq!(runner.calls_of("a"), ["dev", "dev"]);
    assert_eq!(
        dev_attempts(&h, &run, "a").await,
        [StepState::Failed, StepState::Succeeded]
    );
    assert_eq!(
        run_events(&h, &run).await,
        [
            EventKind::RunStarted,
            EventKind::RunFinished,
            EventKind::RunResumed,
            EventKind::RunReopened,
            EventKind::RunFinished
        ],
        "the run failed, then was reopened and driven again"
    );
}

#[tokio::test]
async fn shutdown_hands_a_running_step_back_and_a_new_scheduler_finishes_the_run() {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    runner.script("a", "dev", &[Behavior::Hang]);
    let engine = h.engine(Arc::new(runner.clone()), None);
    let scheduler = Scheduler::start(engine.clone(), options(4));
    let run = submit(&engine, &one_step("a")).await;
    runner.started("a", "dev").await;

    assert!(scheduler.shutdown(DEADLINE).await, "handed back in time");
    let stored = h.store.run(&run).await.unwrap();
    assert_eq!(stored.state, RunState::Running);
    assert_eq!(stored.driver, None, "the run's lease is given back");
    let a = h.store.deliverables(&run).await.unwrap().remove(0);
    assert_eq!(
        (a.state, a.next_step, a.lease),
        (Running, 0, None),
        "the deliverable is released, its step still to run"
    );
    assert_eq!(dev_attempts(&h, &run, "a").await, [StepState::Interrupted]);

    // As a restarted server would.
    let restarted = h.engine(Arc::new(runner.clone()), None);
    let next = Scheduler::start(restarted, options(4));
    wait_for_state(&h, &run, RunState::Succeeded).await;
    assert!(next.shutdown(DEADLINE).await);
    assert_eq!(runner.calls_of("a"), ["dev", "dev"]);
    assert_eq!(
        dev_attempts(&h, &run, "a").await,
        [StepState::Interrupted, StepState::Succeeded]
    );
}
