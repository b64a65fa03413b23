//! Real git repositories and real processes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kamachiq_domain::{DeliverableState, ReasonCode, RunState};
use kamachiq_engine::probe::Point;
use kamachiq_engine::{Ending, ProcessRunner, Target};
use tokio_util::sync::CancellationToken;

use crate::support::{CrashAt, Harness, LEASE_TTL, git, plan, repo};

fn runner() -> Arc<ProcessRunner> {
    Arc::new(ProcessRunner {
        kill_grace: Duration::from_secs(1),
        ..ProcessRunner::default()
    })
}

async fn run_plan(h: &Harness, repo: &Path, yaml: &str) -> (kamachiq_domain::RunId, Ending) {
    let engine = h.engine(runner(), None);
    let target = Target::resolve(repo, Some("main")).await.unwrap();
    let run = engine.submit(plan(yaml), Some(&target), 4).await.unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    (run, ending)
}

/// The documented contract example; its `repo:` is ignored here, the target is passed in.
const CONTRACT: &str = include_str!("../../../../examples/contract.yaml");

#[tokio::test]
async fn the_contract_plan_merges_into_the_users_checkout() {
    let h = Harness::new().await;
    let repo = repo();
    let initial = git(repo.path(), &["rev-parse", "HEAD"]);
    let (run, ending) = run_plan(&h, repo.path(), CONTRACT).await;
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));

    // The user's own checkout moved with the branch: files present, nothing stale or dirty.
    assert_eq!(
        std::fs::read_to_string(repo.path().join("api.rs")).unwrap(),
        "fn main() {}\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("API.md")).unwrap(),
        "# API\n"
    );
    assert_eq!(git(repo.path(), &["status", "--porcelain"]), "");
    let merges = git(repo.path(), &["log", "--merges", "--format=%s", "main"]);
    assert_eq!(
        merges.lines().collect::<Vec<_>>(),
        [
            format!("kamachiq: merge docs (run {run})"),
            format!("kamachiq: merge api-svc (run {run})")
        ]
    );

    let points = h.store.rollback_points(&run).await.unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].deliverable.as_str(), "api-svc");
    assert_eq!(
        points[0].before_commit, initial,
        "the rollback point is the commit before the merge"
    );
    assert_eq!(points[1].before_commit, points[0].merge_commit);
    assert_eq!(
        git(repo.path(), &["rev-parse", "main"]),
        points[1].merge_commit
    );

    // Merged branches and finished worktrees are cleaned up.
    assert_eq!(git(repo.path(), &["branch", "--list", "kamachiq/*"]), "");
    assert_eq!(git(repo.path(), &["worktree", "list"]).lines().count(), 1);
}

#[tokio::test]
async fn a_conflicting_deliverable_fails_with_merge_conflict_and_keeps_its_branch() {
    let h = Harness::new().await;
    let repo = repo();
    // Two independent deliverables write the same file: whichever merges second conflicts.
    let yaml = "
deliverables:
  - {id: one, steps: [{name: dev, run: 'echo one > shared.txt'}]}
  - {id: two, steps: [{name: dev, run: 'echo two > shared.txt'}]}
";
    let (run, ending) = run_plan(&h, repo.path(), yaml).await;
    assert_eq!(ending, Ending::Finished(RunState::Failed));
    let ds = h.store.deliverables(&run).await.unwrap();
    let (merged, conflicted) = match (ds[0].state, ds[1].state) {
        (DeliverableState::Succeeded, DeliverableState::Failed) => (&ds[0], &ds[1]),
        (DeliverableState::Failed, DeliverableState::Succeeded) => (&ds[1], &ds[0]),
        other => panic!("one should merge and one conflict, got {other:?}"),
    };
    let reason = conflicted.reason.clone().unwrap();
    assert_eq!(reason.code, ReasonCode::MergeConflict);
    assert!(reason.detail.contains("shared.txt"), "{}", reason.detail);
    let kept = git(
        repo.path(),
        &[
            "branch",
            "--list",
            "--format=%(refname:short)",
            "kamachiq/*",
        ],
    );
    assert_eq!(kept, format!("kamachiq/{run}/{}", conflicted.id));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("shared.txt")).unwrap(),
        format!("{}\n", merged.id)
    );
    assert_eq!(git(repo.path(), &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn local_changes_in_the_users_checkout_are_never_overwritten() {
    let h = Harness::new().await;
    let repo = repo();
    std::fs::write(repo.path().join("README.md"), "# my unsaved work\n").unwrap();
    std::fs::write(repo.path().join("notes.txt"), "untracked\n").unwrap();
    let yaml = "
deliverables:
  - {id: touches-readme, steps: [{name: dev, run: 'echo agent > README.md'}]}
";
    let (run, ending) = run_plan(&h, repo.path(), yaml).await;
    assert_eq!(ending, Ending::Finished(RunState::Failed));
    let reason = h.store.deliverables(&run).await.unwrap()[0]
        .reason
        .clone()
        .unwrap();
    assert_eq!(reason.code, ReasonCode::TargetCheckoutDirty);
    assert_eq!(
        std::fs::read_to_string(repo.path().join("README.md")).unwrap(),
        "# my unsaved work\n"
    );
    assert_eq!(
        git(repo.path(), &["log", "--format=%s", "-1"]),
        "initial",
        "main did not move"
    );

    // Unrelated local changes do not stand in the way, and survive the merge.
    let yaml = "
deliverables:
  - {id: elsewhere, steps: [{name: dev, run: 'echo new > new.txt'}]}
";
    let (_, ending) = run_plan(&h, repo.path(), yaml).await;
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("new.txt")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("README.md")).unwrap(),
        "# my unsaved work\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("notes.txt")).unwrap(),
        "untracked\n"
    );
}

#[tokio::test]
async fn a_bare_repository_is_merged_into_without_a_checkout() {
    let h = Harness::new().await;
    let origin = repo();
    let bare = tempfile::tempdir().unwrap();
    git(
        bare.path(),
        &[
            "clone",
            "-q",
            "--bare",
            origin.path().to_str().unwrap(),
            ".",
        ],
    );
    let (_, ending) = run_plan(
        &h,
        bare.path(),
        "deliverables:\n  - {id: a, steps: [{name: dev, run: 'echo x > x.txt'}]}\n",
    )
    .await;
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert_eq!(git(bare.path(), &["show", "main:x.txt"]), "x");
}

#[tokio::test]
async fn a_crash_after_merging_does_not_merge_twice() {
    let h = Harness::new().await;
    let repo = repo();
    let target = Target::resolve(repo.path(), None).await.unwrap();
    let crashing = h.engine(
        runner(),
        Some(Arc::new(CrashAt::new("api-svc", Point::AfterMerge))),
    );
    let run = crashing
        .submit(plan(CONTRACT), Some(&target), 4)
        .await
        .unwrap();
    assert!(
        crashing
            .drive(&run, CancellationToken::new())
            .await
            .is_err()
    );
    drop(crashing);
    let merged = git(repo.path(), &["rev-parse", "main"]);

    // Take over from the "dead" driver once its lease has expired.
    let next = h.engine(runner(), None);
    tokio::time::sleep(LEASE_TTL + Duration::from_millis(100)).await;
    let ending = next.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));

    let merges = git(repo.path(), &["log", "--merges", "--format=%s", "main"]);
    assert_eq!(
        merges.lines().count(),
        2,
        "one merge per deliverable:\n{merges}"
    );
    let points = h.store.rollback_points(&run).await.unwrap();
    let api = points
        .iter()
        .find(|p| p.deliverable.as_str() == "api-svc")
        .unwrap();
    assert_eq!(
        api.merge_commit, merged,
        "the earlier merge was found and recorded"
    );
}

#[tokio::test]
async fn a_timeout_kills_the_steps_whole_process_group() {
    let h = Harness::new().await;
    let repo = repo();
    let yaml = "
deliverables:
  - id: slow
    steps:
      - {name: dev, run: 'sleep 60 & sleep 60 & wait', timeout: 1s}
";
    let started = Instant::now();
    let (run, ending) = run_plan(&h, repo.path(), yaml).await;
    assert_eq!(ending, Ending::Finished(RunState::Failed));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let reason = h.store.deliverables(&run).await.unwrap()[0]
        .reason
        .clone()
        .unwrap();
    assert_eq!(reason.code, ReasonCode::Timeout);
    assert_eq!(
        kamachiq_engine::reap_orphans(run.as_str(), None),
        0,
        "no process of the step survives"
    );
}

#[tokio::test]
async fn steps_run_in_their_workdir_and_their_output_is_kept() {
    let h = Harness::new().await;
    let repo = repo();
    std::fs::create_dir(repo.path().join("web")).unwrap();
    std::fs::write(repo.path().join("web/.keep"), "").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "web"]);
    let yaml = r#"
deliverables:
  - id: ui
    steps:
      - name: dev
        workdir: web
        env: {GREETING: hello}
        run: 'echo "$GREETING from $(basename $PWD)"; echo oops >&2; touch built.txt'
"#;
    let (run, ending) = run_plan(&h, repo.path(), yaml).await;
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert!(repo.path().join("web/built.txt").exists());
    let id = kamachiq_domain::DeliverableId::parse("ui").unwrap();
    let output = h.store.step_output(&run, &id, 0, 1).await.unwrap().unwrap();
    assert_eq!(output, "hello from web\noops\n");
}

#[tokio::test]
async fn a_missing_command_fails_with_spawn_failed() {
    let h = Harness::new().await;
    let repo = repo();
    let yaml = "deliverables:\n  - {id: a, steps: [{name: dev, run: [no-such-program-kq]}]}\n";
    let (run, _) = run_plan(&h, repo.path(), yaml).await;
    let reason = h.store.deliverables(&run).await.unwrap()[0]
        .reason
        .clone()
        .unwrap();
    assert_eq!(reason.code, ReasonCode::SpawnFailed);
    assert!(
        reason.detail.contains("cannot start `no-such-program-kq`"),
        "{}",
        reason.detail
    );
}

#[tokio::test]
async fn targets_are_checked_before_anything_runs() {
    let repo = repo();
    let err = Target::resolve(repo.path(), Some("nope"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("branch `nope` does not exist in"),
        "{err}"
    );
    let not_repo = tempfile::tempdir().unwrap();
    let err = Target::resolve(not_repo.path(), None).await.unwrap_err();
    assert!(err.to_string().contains("is not a git repository"), "{err}");
    let target = Target::resolve(&repo.path().join("."), None).await.unwrap();
    assert_eq!(target.branch, "main");
}
