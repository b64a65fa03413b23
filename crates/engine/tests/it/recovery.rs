//! A driver stopped dead (as by `kill -9`) at every named point; the next driver finishes the
//! run without redoing finished work.

use std::sync::Arc;
use std::time::Duration;

use kamachiq_domain::RunState;
use kamachiq_engine::probe::Point;
use kamachiq_engine::{Ending, Error};
use tokio_util::sync::CancellationToken;

use crate::support::{CrashAt, Harness, LEASE_TTL, ScriptedRunner, plan};

const PLAN: &str = "
deliverables:
  - {id: a, steps: [{name: dev, run: 'true'}, {name: qa, run: 'true'}]}
  - {id: b, dependencies: [a], steps: [{name: dev, run: 'true'}]}
";

async fn crash_then_resume(point: Point) -> (ScriptedRunner, Harness, kamachiq_domain::RunId) {
    let h = Harness::new().await;
    let runner = ScriptedRunner::default();
    let crashing = h.engine(
        Arc::new(runner.clone()),
        Some(Arc::new(CrashAt::new("a", point.clone()))),
    );
    // Merge points exist only where there is something to merge into: a real repository.
    let repo = matches!(point, Point::BeforeMerge | Point::AfterMerge).then(crate::support::repo);
    let target = match &repo {
        Some(dir) => Some(
            kamachiq_engine::Target::resolve(dir.path(), Some("main"))
                .await
                .unwrap(),
        ),
        None => None,
    };
    let run = crashing
        .submit(plan(PLAN), target.as_ref(), 2)
        .await
        .unwrap();
    let err = crashing
        .drive(&run, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Crashed), "{point:?}: {err}");
    drop(crashing);

    let next = h.engine(Arc::new(runner.clone()), None);
    // The dead driver's lease has not expired yet: nobody may take over.
    let busy = next
        .drive(&run, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(busy, Error::RunBusy { .. }), "{point:?}: {busy}");
    tokio::time::sleep(LEASE_TTL + Duration::from_millis(100)).await;
    let ending = next.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded), "{point:?}");
    (runner, h, run)
}

#[tokio::test]
async fn crash_after_claim() {
    let (runner, h, run) = crash_then_resume(Point::Claimed).await;
    assert_eq!(runner.calls_of("a"), ["dev", "qa"]);
    let a = h.store.deliverables(&run).await.unwrap().remove(0);
    assert_eq!(a.attempt, 2, "the takeover is a new attempt");
}

#[tokio::test]
async fn crash_before_a_step_starts() {
    let (runner, _, _) = crash_then_resume(Point::StepStarting { index: 1 }).await;
    assert_eq!(
        runner.calls_of("a"),
        ["dev", "qa"],
        "dev finished before the crash and is not re-run"
    );
}

#[tokio::test]
async fn crash_after_a_step_ended_but_before_it_was_recorded() {
    let (runner, h, run) = crash_then_resume(Point::StepEnded { index: 0 }).await;
    assert_eq!(
        runner.calls_of("a"),
        ["dev", "dev", "qa"],
        "an unrecorded step runs again"
    );
    let states: Vec<_> = h
        .attempts(&run)
        .await
        .into_iter()
        .filter(|a| a.deliverable.as_str() == "a" && a.step == "dev")
        .map(|a| a.state)
        .collect();
    use kamachiq_domain::run::StepState::*;
    assert_eq!(states, [Interrupted, Succeeded]);
}

#[tokio::test]
async fn crash_before_merge() {
    let (runner, _, _) = crash_then_resume(Point::BeforeMerge).await;
    assert_eq!(runner.calls_of("a"), ["dev", "qa"]);
    assert_eq!(runner.calls_of("b"), ["dev"]);
}

#[tokio::test]
async fn crash_after_merge() {
    let (runner, _, _) = crash_then_resume(Point::AfterMerge).await;
    assert_eq!(runner.calls_of("a"), ["dev", "qa"]);
}
