//! Rolling back merges with real git: in the user's checkout and in a bare repository, around
//! later work, and every refusal leaving the branch, the files and the store as they were.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kamachiq_domain::run::RollbackPoint;
use kamachiq_domain::{DeliverableId, EventKind, RunId, RunState};
use kamachiq_engine::{Ending, Engine, Error, ProcessRunner, RollbackTarget, Target};
use kamachiq_store::EventFilter;
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, git, plan, repo};

const ALICE: &str = "local:alice";

fn engine(h: &Harness) -> Engine {
    h.engine(
        Arc::new(ProcessRunner {
            kill_grace: Duration::from_secs(1),
            ..ProcessRunner::default()
        }),
        None,
    )
}

/// Runs `yaml` into `main` of `repo`; it must succeed. Returns the run and its rollback
/// points in merge order.
async fn merged(h: &Harness, repo: &Path, yaml: &str) -> (RunId, Vec<RollbackPoint>) {
    let engine = engine(h);
    let target = Target::resolve(repo, Some("main")).await.unwrap();
    let run = engine.submit(plan(yaml), Some(&target), 4).await.unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    let points = h.store.rollback_points(&run).await.unwrap();
    (run, points)
}

/// One deliverable `a` that adds `a.txt`.
const ADDS_A: &str = "deliverables:\n  - {id: a, steps: [{name: dev, run: 'echo a > a.txt'}]}\n";

fn point(id: &str) -> RollbackTarget {
    RollbackTarget::Point(id.to_owned())
}

fn tree(repo: &Path, commit: &str) -> String {
    git(repo, &["rev-parse", &format!("{commit}^{{tree}}")])
}

/// Commits `text` to `file` in the user's checkout.
fn commit_file(repo: &Path, file: &str, text: &str) -> String {
    std::fs::write(repo.join(file), text).unwrap();
    git(repo, &["add", file]);
    git(repo, &["commit", "-q", "-m", &format!("change {file}")]);
    git(repo, &["rev-parse", "HEAD"])
}

#[tokio::test]
async fn a_merge_is_undone_by_a_new_commit_in_the_users_checkout() {
    let h = Harness::new().await;
    let repo = repo();
    let (run, points) = merged(&h, repo.path(), ADDS_A).await;
    let p = &points[0];
    assert!(repo.path().join("a.txt").exists());

    let engine = engine(&h);
    let done = engine.rollback(point(&p.id), ALICE).await.unwrap();
    assert_eq!(&done.point, p);

    // A new commit on top of the merge, whose tree is the one before the merge; the user's
    // checkout moved with it and is clean.
    assert_eq!(git(repo.path(), &["rev-parse", "main"]), done.revert_commit);
    assert_eq!(git(repo.path(), &["rev-parse", "main^"]), p.merge_commit);
    assert_eq!(
        tree(repo.path(), "main"),
        tree(repo.path(), &p.before_commit)
    );
    assert!(!repo.path().join("a.txt").exists());
    assert_eq!(git(repo.path(), &["status", "--porcelain"]), "");
    assert_eq!(
        git(repo.path(), &["log", "-1", "--format=%B", "main"]),
        format!(
            "kamachiq: roll back a (run {run})\n\n\
             Undoes merge {} on main: the changes it brought are reverted, later work is kept.\n\n\
             Rollback-Point: {}\nRun: {run}\nDeliverable: a\nRolled-back-by: {ALICE}",
            p.merge_commit, p.id
        )
    );

    // Recorded: the rollback, the audit record and the run's event.
    let entry = h.store.rollback_entry(&p.id).await.unwrap().unwrap();
    let rollback = entry.rollback.unwrap();
    assert_eq!(rollback.revert_commit, done.revert_commit);
    assert_eq!(rollback.by, ALICE);
    assert_eq!(rollback.at, done.at);
    let trail = h.store.audit_records(None, 0, 10).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(
        (
            trail[0].actor.as_str(),
            trail[0].action.as_str(),
            trail[0].subject.as_str()
        ),
        (ALICE, "rollback", p.id.as_str())
    );
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
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::DeliverableRolledBack);
    assert_eq!(last.data["revert_commit"], done.revert_commit.as_str());
}

#[tokio::test]
async fn a_bare_target_is_rolled_back_without_a_checkout() {
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
    let (_, points) = merged(&h, bare.path(), ADDS_A).await;
    let p = &points[0];
    assert_eq!(git(bare.path(), &["show", "main:a.txt"]), "a");

    let done = engine(&h)
        .rollback(
            RollbackTarget::Latest {
                repo: Some(bare.path().to_path_buf()),
            },
            ALICE,
        )
        .await
        .unwrap();
    assert_eq!(done.point.id, p.id);
    assert_eq!(git(bare.path(), &["rev-parse", "main"]), done.revert_commit);
    assert_eq!(git(bare.path(), &["rev-parse", "main^"]), p.merge_commit);
    assert_eq!(
        tree(bare.path(), "main"),
        tree(bare.path(), &p.before_commit)
    );
}

#[tokio::test]
async fn later_changes_to_the_same_lines_refuse_the_rollback_and_change_nothing() {
    let h = Harness::new().await;
    let repo = repo();
    let (_, points) = merged(
        &h,
        repo.path(),
        "deliverables:\n  - {id: a, steps: [{name: dev, run: 'echo one > shared.txt'}]}\n",
    )
    .await;
    let later = commit_file(repo.path(), "shared.txt", "two\n");

    let err = engine(&h)
        .rollback(point(&points[0].id), ALICE)
        .await
        .unwrap_err();
    match &err {
        Error::RollbackConflict { files, branch, .. } => {
            assert_eq!(files, &["shared.txt"]);
            assert_eq!(branch, "main");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("in shared.txt; nothing was changed"),
        "{err}"
    );
    assert_eq!(git(repo.path(), &["rev-parse", "main"]), later);
    assert_eq!(git(repo.path(), &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("shared.txt")).unwrap(),
        "two\n"
    );
    let entry = h
        .store
        .rollback_entry(&points[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.rollback, None);
    assert!(h.store.audit_records(None, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn later_changes_to_other_files_are_kept() {
    let h = Harness::new().await;
    let repo = repo();
    let (_, points) = merged(&h, repo.path(), ADDS_A).await;
    let later = commit_file(repo.path(), "b.txt", "mine\n");

    let done = engine(&h)
        .rollback(point(&points[0].id), ALICE)
        .await
        .unwrap();
    assert_eq!(git(repo.path(), &["rev-parse", "main^"]), later);
    assert_eq!(git(repo.path(), &["rev-parse", "main"]), done.revert_commit);
    assert!(!repo.path().join("a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(repo.path().join("b.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        git(repo.path(), &["ls-tree", "--name-only", "main"]),
        "README.md\nb.txt"
    );
}

#[tokio::test]
async fn rolling_back_twice_is_refused() {
    let h = Harness::new().await;
    let repo = repo();
    let (_, points) = merged(&h, repo.path(), ADDS_A).await;
    let p = &points[0];
    let engine = engine(&h);
    let done = engine.rollback(point(&p.id), ALICE).await.unwrap();

    for again in [point(&p.id), RollbackTarget::Commit(p.merge_commit.clone())] {
        match engine.rollback(again, "local:bob").await.unwrap_err() {
            Error::AlreadyRolledBack {
                point,
                at,
                revert_commit,
            } => {
                assert_eq!(point, p.id);
                assert_eq!(at, done.at);
                assert_eq!(revert_commit, done.revert_commit);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let err = engine
        .rollback(point(&p.id), "local:bob")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "rollback point {} was already rolled back at {}, revert commit {}",
            p.id, done.at, done.revert_commit
        )
    );
    assert_eq!(git(repo.path(), &["rev-parse", "main"]), done.revert_commit);
    assert_eq!(h.store.audit_records(None, 0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn latest_takes_the_newest_merge_not_rolled_back() {
    let h = Harness::new().await;
    let repo = repo();
    let (_, points) = merged(
        &h,
        repo.path(),
        "deliverables:
  - {id: a, steps: [{name: dev, run: 'echo a > a.txt'}]}
  - {id: b, dependencies: [a], steps: [{name: dev, run: 'echo b > b.txt'}]}
",
    )
    .await;
    let engine = engine(&h);
    let latest = || RollbackTarget::Latest { repo: None };

    let first = engine.rollback(latest(), ALICE).await.unwrap();
    assert_eq!(first.point.deliverable.as_str(), "b");
    assert!(repo.path().join("a.txt").exists() && !repo.path().join("b.txt").exists());
    let second = engine
        .rollback(
            RollbackTarget::Latest {
                repo: Some(repo.path().join(".")),
            },
            ALICE,
        )
        .await
        .unwrap();
    assert_eq!(second.point.id, points[0].id);
    assert!(!repo.path().join("a.txt").exists());
    assert_eq!(
        tree(repo.path(), "main"),
        tree(repo.path(), &points[0].before_commit)
    );

    let err = engine.rollback(latest(), ALICE).await.unwrap_err();
    assert!(
        matches!(&err, Error::NoRollbackPoint(m) if m.starts_with("nothing to roll back")),
        "{err:?}"
    );
}

#[tokio::test]
async fn local_changes_the_rollback_would_overwrite_are_kept_and_it_is_refused() {
    let h = Harness::new().await;
    let repo = repo();
    let (_, points) = merged(&h, repo.path(), ADDS_A).await;
    let merge = git(repo.path(), &["rev-parse", "main"]);
    std::fs::write(repo.path().join("a.txt"), "my unsaved work\n").unwrap();

    let err = engine(&h)
        .rollback(point(&points[0].id), ALICE)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RollbackTargetDirty { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("with local changes the rollback would overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("a.txt")).unwrap(),
        "my unsaved work\n"
    );
    assert_eq!(git(repo.path(), &["rev-parse", "main"]), merge);
    let entry = h
        .store
        .rollback_entry(&points[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.rollback, None);
}

#[tokio::test]
async fn unrelated_local_changes_survive_a_rollback() {
    let h = Harness::new().await;
    let repo = repo();
    let (_, points) = merged(&h, repo.path(), ADDS_A).await;
    std::fs::write(repo.path().join("README.md"), "# my unsaved work\n").unwrap();
    std::fs::write(repo.path().join("notes.txt"), "untracked\n").unwrap();

    engine(&h)
        .rollback(point(&points[0].id), ALICE)
        .await
        .unwrap();
    assert!(!repo.path().join("a.txt").exists());
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
async fn a_merge_no_longer_on_the_branch_is_refused() {
    let h = Harness::new().await;
    let repo = repo();
    let (_, points) = merged(&h, repo.path(), ADDS_A).await;
    git(
        repo.path(),
        &["reset", "-q", "--hard", &points[0].before_commit],
    );

    let err = engine(&h)
        .rollback(point(&points[0].id), ALICE)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MergeNotOnBranch { .. }), "{err:?}");
    assert!(
        err.to_string().contains("is no longer on branch `main`"),
        "{err}"
    );
    assert_eq!(
        git(repo.path(), &["rev-parse", "main"]),
        points[0].before_commit
    );
}

#[tokio::test]
async fn deliverables_and_commits_name_their_rollback_point() {
    let h = Harness::new().await;
    let repo = repo();
    // Two runs merge a deliverable `a`, each writing its own run id.
    let yaml =
        "deliverables:\n  - {id: a, steps: [{name: dev, run: 'echo $KAMACHIQ_RUN_ID > a.txt'}]}\n";
    let (first, first_points) = merged(&h, repo.path(), yaml).await;
    let (second, second_points) = merged(&h, repo.path(), yaml).await;
    let a = DeliverableId::parse("a").unwrap();
    let engine = engine(&h);

    let err = engine
        .rollback(
            RollbackTarget::Deliverable {
                run: None,
                deliverable: a.clone(),
            },
            ALICE,
        )
        .await
        .unwrap_err();
    match &err {
        Error::AmbiguousRollbackPoint { matches, .. } => assert_eq!(matches.len(), 2),
        other => panic!("expected ambiguity, got {other:?}"),
    }
    assert!(err.to_string().contains("--run"), "{err}");

    let done = engine
        .rollback(
            RollbackTarget::Deliverable {
                run: Some(second.clone()),
                deliverable: a.clone(),
            },
            ALICE,
        )
        .await
        .unwrap();
    assert_eq!(done.point.id, second_points[0].id);
    assert_eq!(
        std::fs::read_to_string(repo.path().join("a.txt")).unwrap(),
        format!("{first}\n"),
        "the second run's change is undone, the first's kept"
    );

    let abbreviated = first_points[0].merge_commit[..8].to_uppercase();
    let done = engine
        .rollback(RollbackTarget::Commit(abbreviated), ALICE)
        .await
        .unwrap();
    assert_eq!(done.point.id, first_points[0].id);
    assert!(!repo.path().join("a.txt").exists());

    for unknown in [
        RollbackTarget::Commit("0000000".into()),
        RollbackTarget::Commit("not-a-hash".into()),
        RollbackTarget::Point("rb-nope".into()),
        RollbackTarget::Deliverable {
            run: Some(first),
            deliverable: DeliverableId::parse("zz").unwrap(),
        },
    ] {
        let err = engine.rollback(unknown, ALICE).await.unwrap_err();
        assert!(matches!(err, Error::NoRollbackPoint(_)), "{err:?}");
    }
}

#[tokio::test]
async fn a_revert_made_but_not_recorded_is_found_not_made_twice() {
    let h = Harness::new().await;
    let repo = repo();
    let (run, points) = merged(&h, repo.path(), ADDS_A).await;
    let p = &points[0];
    // What a process that died between moving the branch and recording would have left.
    git(
        repo.path(),
        &["revert", "--no-commit", "-m", "1", &p.merge_commit],
    );
    let message = format!(
        "kamachiq: roll back a (run {run})\n\nRollback-Point: {}\nRun: {run}\n",
        p.id
    );
    git(repo.path(), &["commit", "-q", "-m", &message]);
    let revert = git(repo.path(), &["rev-parse", "HEAD"]);

    let done = engine(&h).rollback(point(&p.id), ALICE).await.unwrap();
    assert_eq!(done.revert_commit, revert);
    assert_eq!(
        git(repo.path(), &["rev-parse", "main"]),
        revert,
        "no second revert"
    );
    let entry = h.store.rollback_entry(&p.id).await.unwrap().unwrap();
    assert_eq!(entry.rollback.unwrap().revert_commit, revert);
}
