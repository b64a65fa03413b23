//! The review before promotion, with real git: a deliverable whose diff plants a secret,
//! touches a protected path or is too large is held back at its merge, with the findings as
//! reasons, and nothing reaches the target branch until someone lets it through.

use kamachiq_domain::{DeliverableState, ReasonCode, RunState};
use kamachiq_engine::{Ending, Target};
use kamachiq_policy::{Action, Verdict};
use kamachiq_store::RequeueQuery;
use tokio_util::sync::CancellationToken;

use crate::support::{Harness, git, plan, repo};

/// Runs a one-deliverable plan whose step is `script`, merging into a fresh repository.
async fn run_step(
    h: &Harness,
    script: &str,
    adjust: impl FnOnce(&mut kamachiq_engine::EngineOptions),
) -> (
    kamachiq_domain::RunId,
    tempfile::TempDir,
    String,
    kamachiq_engine::Engine,
) {
    let engine = h.engine_with(adjust);
    let target = repo();
    let before = git(target.path(), &["rev-parse", "main"]);
    let resolved = Target::resolve(target.path(), Some("main")).await.unwrap();
    let yaml = format!(
        "deliverables:\n  - id: api\n    steps:\n      - name: dev\n        run: {}\n",
        serde_json::to_string(script).unwrap()
    );
    let run = engine
        .submit(plan(&yaml), Some(&resolved), 1)
        .await
        .unwrap();
    (run, target, before, engine)
}

async fn held_back(h: &Harness) -> kamachiq_store::RequeueEntry {
    let mut entries = h
        .store
        .requeue(&RequeueQuery {
            open: true,
            limit: 10,
            ..RequeueQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.remove(0)
}

#[tokio::test]
async fn a_planted_secret_holds_the_merge_back_without_repeating_the_secret() {
    let h = Harness::new().await;
    // The key is put together by the shell, so no key-shaped text sits in this file.
    let (run, target, before, engine) = run_step(
        &h,
        "a=AKIA; b=Z7QW3RT5YU9PLM2N; printf 'region = \"eu\"\\naws_key = \"%s%s\"\\n' $a $b > settings.py",
        |_| {},
    )
    .await;
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Blocked { blocked: 1 });
    assert_eq!(
        git(target.path(), &["rev-parse", "main"]),
        before,
        "not merged"
    );
    let entry = held_back(&h).await;
    assert_eq!(
        (entry.action, entry.verdict),
        (Action::Merge, Verdict::RequireApproval)
    );
    let secret = entry
        .reasons
        .iter()
        .find(|r| r.code == "secret")
        .unwrap_or_else(|| panic!("{:?}", entry.reasons));
    assert!(
        secret.message.contains("settings.py:2"),
        "{}",
        secret.message
    );
    assert!(
        !secret.message.contains("Z7QW3RT5YU9PLM2N"),
        "{}",
        secret.message
    );
    let d = &h.store.deliverables(&run).await.unwrap()[0];
    assert_eq!(d.state, DeliverableState::Blocked);
    assert_eq!(
        d.reason.as_ref().unwrap().code,
        ReasonCode::ApprovalRequired
    );
    // The decision recorded the diff it was made on.
    let decision = h.store.decision(&entry.decision_id).await.unwrap().unwrap();
    let diff = decision.input.diff.unwrap();
    assert_eq!((diff.files, diff.lines_added), (1, 2));

    // A person who looked lets it through; it merges.
    engine
        .override_block(&entry.id, "alice", "test key, revoked")
        .await
        .unwrap();
    let ending = engine.drive(&run, CancellationToken::new()).await.unwrap();
    assert_eq!(ending, Ending::Finished(RunState::Succeeded));
    assert!(target.path().join("settings.py").exists());
}

#[tokio::test]
async fn a_protected_path_holds_the_merge_back() {
    let h = Harness::new().await;
    let (run, target, before, engine) = run_step(
        &h,
        "mkdir -p .github/workflows && echo 'on: push' > .github/workflows/ci.yml && echo x > notes.md",
        |_| {},
    )
    .await;
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Blocked { blocked: 1 }
    );
    assert_eq!(git(target.path(), &["rev-parse", "main"]), before);
    let entry = held_back(&h).await;
    let codes: Vec<&str> = entry.reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["protected_path"], "{:?}", entry.reasons);
    assert!(
        entry.reasons[0]
            .message
            .contains(".github/workflows/ci.yml")
    );
}

#[tokio::test]
async fn a_diff_over_the_limits_holds_the_merge_back_and_clean_work_merges() {
    let h = Harness::new().await;
    let (run, _target, _, engine) =
        run_step(&h, "echo a > a.txt; echo b > b.txt; echo c > c.txt", |o| {
            o.review.max_files = Some(2);
        })
        .await;
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Blocked { blocked: 1 }
    );
    let entry = held_back(&h).await;
    assert_eq!(entry.reasons[0].code, "too_many_files");
    assert!(
        entry.reasons[0].message.contains('3'),
        "{}",
        entry.reasons[0].message
    );

    // Within the limits, nothing is found and the merge goes ahead.
    let h = Harness::new().await;
    let (run, target, _, engine) = run_step(&h, "echo a > a.txt; echo b > b.txt", |o| {
        o.review.max_files = Some(2);
    })
    .await;
    assert_eq!(
        engine.drive(&run, CancellationToken::new()).await.unwrap(),
        Ending::Finished(RunState::Succeeded)
    );
    assert!(target.path().join("b.txt").exists());
}
