//! A deliverable's transitions: claims, steps, successes, failures, releases, merges.

use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableState, EventKind, Reason, ReasonCode};
use kamachiq_store::{Applied, Change, EventFilter, LeaseKey, Merge, Rejected, Store, Then};

use super::*;

pub async fn only_ready_deliverables_can_be_claimed(store: Store) {
    let run = create(&store, plan("t", &[("a", &[]), ("b", &["a"])])).await;
    assert_eq!(
        one(&store, 1, claim_change(&run, "b", false)).await,
        Err(Rejected::NotApplicable)
    );
    assert_eq!(
        one(&store, 1, claim_change(&run, "a", false)).await,
        Ok(Applied::Claimed {
            attempt: 1,
            next_step: 0,
            step_attempt: None
        })
    );
    // A running deliverable is not claimed again without a takeover.
    assert_eq!(
        one(&store, 1, claim_change(&run, "a", false)).await,
        Err(Rejected::NotApplicable)
    );
    let a = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(a.state, DeliverableState::Running);
    assert_eq!(a.lease.as_ref().unwrap().owner, OWNER);
    assert_eq!(a.started_at, Some(t(1)));
}

pub async fn success_releases_dependents_exactly_when_all_dependencies_succeed(store: Store) {
    let run = create(
        &store,
        plan(
            "t",
            &[("a", &[]), ("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])],
        ),
    )
    .await;
    assert_eq!(complete(&store, &run, "a").await, ["b", "c"]);
    assert!(
        complete(&store, &run, "b").await.is_empty(),
        "d still waits for c"
    );
    assert_eq!(complete(&store, &run, "c").await, ["d"]);
    assert!(complete(&store, &run, "d").await.is_empty());
    assert!(
        states(&store, &run)
            .await
            .iter()
            .all(|(_, s)| *s == DeliverableState::Succeeded)
    );
}

pub async fn writes_from_a_lost_lease_are_rejected(store: Store) {
    let run = create(&store, plan("t", &[("a", &[])])).await;
    let old = claim(&store, &run, "a").await;
    let taken = one(&store, 5, claim_change(&run, "a", true)).await;
    assert_eq!(
        taken,
        Ok(Applied::Claimed {
            attempt: 2,
            next_step: 0,
            step_attempt: None
        })
    );
    let new = LeaseKey {
        attempt: 2,
        ..old.clone()
    };

    for change in [
        Change::StepStarted {
            lease: old.clone(),
            step: step(0, "dev"),
        },
        step_end(&old, 0, 1, StepState::Succeeded, ""),
        Change::Succeeded {
            lease: old.clone(),
            merge: None,
        },
        Change::Failed {
            lease: old.clone(),
            reason: Reason::new(ReasonCode::StepFailed, "x"),
        },
        Change::Released { lease: old.clone() },
    ] {
        assert_eq!(
            one(&store, 6, change.clone()).await,
            Err(Rejected::NotApplicable),
            "{change:?}"
        );
    }
    assert_eq!(
        states(&store, &run).await,
        [("a".to_owned(), DeliverableState::Running)]
    );
    assert_eq!(
        one(
            &store,
            7,
            Change::Succeeded {
                lease: new,
                merge: None
            }
        )
        .await,
        Ok(Applied::Succeeded)
    );
}

pub async fn failure_skips_every_transitive_dependent_and_nothing_else(store: Store) {
    let run = create(
        &store,
        plan(
            "t",
            &[
                ("a", &[]),
                ("b", &["a"]),
                ("c", &["b"]),
                ("x", &[]),
                ("y", &["x", "c"]),
            ],
        ),
    )
    .await;
    let lease = claim(&store, &run, "a").await;
    let failed = one(
        &store,
        3,
        Change::Failed {
            lease,
            reason: Reason::new(ReasonCode::StepFailed, "qa exited with 1"),
        },
    )
    .await
    .unwrap();
    let Applied::Failed { mut skipped } = failed else {
        panic!("{failed:?}")
    };
    skipped.sort();
    assert_eq!(skipped, [did("b"), did("c"), did("y")]);
    assert_eq!(
        states(&store, &run).await,
        [
            ("a".to_owned(), DeliverableState::Failed),
            ("b".to_owned(), DeliverableState::Skipped),
            ("c".to_owned(), DeliverableState::Skipped),
            ("x".to_owned(), DeliverableState::Pending),
            ("y".to_owned(), DeliverableState::Skipped),
        ]
    );
    let ds = store.deliverables(&run).await.unwrap();
    assert_eq!(
        ds[0].reason,
        Some(Reason::new(ReasonCode::StepFailed, "qa exited with 1"))
    );
    assert_eq!(ds[0].finished_at, Some(t(3)));
    let skip_reason = ds[2].reason.clone().unwrap();
    assert_eq!(skip_reason.code, ReasonCode::DependencyFailed);
    assert_eq!(skip_reason.detail, "depends on `a`, which failed");
    // x is independent and still runs.
    assert!(complete(&store, &run, "x").await.is_empty());
}

pub async fn step_attempts_are_numbered_and_keep_their_output(store: Store) {
    let run = create(&store, plan("t", &[("a", &[])])).await;
    let lease = claim(&store, &run, "a").await;
    let dev = || Change::StepStarted {
        lease: lease.clone(),
        step: step(0, "dev"),
    };

    assert_eq!(
        one(&store, 2, dev()).await,
        Ok(Applied::StepStarted { step_attempt: 1 })
    );
    let status = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(status.current_step.as_deref(), Some("dev"));
    assert_eq!(
        one(
            &store,
            3,
            step_end(&lease, 0, 1, StepState::Failed, "boom\n")
        )
        .await,
        Ok(Applied::Done)
    );
    assert_eq!(
        store.deliverables(&run).await.unwrap()[0].next_step,
        0,
        "a failed step does not advance"
    );

    assert_eq!(
        one(&store, 4, dev()).await,
        Ok(Applied::StepStarted { step_attempt: 2 })
    );
    assert_eq!(
        one(
            &store,
            5,
            step_end(&lease, 0, 2, StepState::Succeeded, "ok\n")
        )
        .await,
        Ok(Applied::Done)
    );
    let status = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(status.next_step, 1);
    assert_eq!(status.current_step, None);

    let attempts = store.step_attempts(&run, Some(&did("a"))).await.unwrap();
    let seen: Vec<(u32, u32, StepState, Option<i32>, u64)> = attempts
        .iter()
        .map(|a| {
            (
                a.step_index,
                a.attempt,
                a.state,
                a.exit_code,
                a.output_bytes,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, 1, StepState::Failed, Some(1), 5),
            (0, 2, StepState::Succeeded, Some(0), 3)
        ]
    );
    assert_eq!(
        attempts[0].reason.as_ref().unwrap().code,
        ReasonCode::StepFailed
    );
    assert_eq!(attempts[0].started_at, t(2));
    assert_eq!(attempts[0].finished_at, Some(t(3)));
    assert_eq!(
        store
            .step_output(&run, &did("a"), 0, 1)
            .await
            .unwrap()
            .as_deref(),
        Some("boom\n")
    );
    assert_eq!(
        store
            .step_output(&run, &did("a"), 0, 2)
            .await
            .unwrap()
            .as_deref(),
        Some("ok\n")
    );
    assert_eq!(
        store.step_output(&run, &did("a"), 0, 3).await.unwrap(),
        None
    );

    let events = store
        .events_after(
            0,
            &EventFilter {
                run: Some(run.clone()),
                tenant: None,
            },
            100,
        )
        .await
        .unwrap();
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::StepFinished)
        .collect();
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0].data["output_tail"], "boom");
    assert_eq!(finished[0].data["duration_ms"], 1500);
    assert_eq!(finished[0].data["reason"]["code"], "step_failed");
}

pub async fn release_interrupts_the_running_step_and_takeover_resumes_it(store: Store) {
    let run = create(&store, plan("t", &[("a", &[])])).await;
    let lease = claim(&store, &run, "a").await;
    one(
        &store,
        2,
        Change::StepStarted {
            lease: lease.clone(),
            step: step(0, "dev"),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        one(
            &store,
            3,
            Change::Released {
                lease: lease.clone()
            }
        )
        .await,
        Ok(Applied::Done)
    );
    let status = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(
        status.state,
        DeliverableState::Running,
        "released work stays running, unleased"
    );
    assert_eq!(status.lease, None);
    let attempts = store.step_attempts(&run, None).await.unwrap();
    assert_eq!(attempts[0].state, StepState::Interrupted);

    assert_eq!(
        one(&store, 4, claim_change(&run, "a", true)).await,
        Ok(Applied::Claimed {
            attempt: 2,
            next_step: 0,
            step_attempt: None
        })
    );
    let lease2 = LeaseKey {
        attempt: 2,
        ..lease
    };
    assert_eq!(
        one(
            &store,
            5,
            Change::StepStarted {
                lease: lease2,
                step: step(0, "dev")
            }
        )
        .await,
        Ok(Applied::StepStarted { step_attempt: 2 })
    );
}

pub async fn merges_record_rollback_points(store: Store) {
    let run = create(&store, plan("t", &[("a", &[])])).await;
    let lease = claim(&store, &run, "a").await;
    let merge = Merge {
        rollback_id: format!("rb-{run}-a"),
        repo: "/srv/repo".into(),
        branch: "main".into(),
        before: "1111111".into(),
        commit: "2222222".into(),
    };
    one(
        &store,
        3,
        Change::Succeeded {
            lease,
            merge: Some(merge.clone()),
        },
    )
    .await
    .unwrap();
    let points = store.rollback_points(&run).await.unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].id, merge.rollback_id);
    assert_eq!(points[0].before_commit, "1111111");
    assert_eq!(points[0].merge_commit, "2222222");
    assert_eq!(points[0].deliverable, did("a"));
    assert_eq!(
        store.deliverables(&run).await.unwrap()[0]
            .merge_commit
            .as_deref(),
        Some("2222222")
    );
    let events = store
        .events_after(
            0,
            &EventFilter {
                run: Some(run),
                tenant: None,
            },
            100,
        )
        .await
        .unwrap();
    let merged = events
        .iter()
        .find(|e| e.kind == EventKind::DeliverableMerged)
        .unwrap();
    assert_eq!(merged.data["before"], "1111111");
}

pub async fn a_claim_starts_the_expected_step_with_it(store: Store) {
    let run = create(&store, plan("t", &[("a", &[]), ("b", &[])])).await;
    let with = |id: &str, index: u32| {
        claim_starting(&run, id, step(index, if index == 0 { "dev" } else { "qa" }))
    };
    let outcome = store
        .apply(t(1), &[with("a", 0), with("b", 1)])
        .await
        .unwrap();
    assert_eq!(
        outcome.results,
        [
            Ok(Applied::Claimed {
                attempt: 1,
                next_step: 0,
                step_attempt: Some(1)
            }),
            // b's next step is 0, not 1: it is claimed, and the caller starts the right step.
            Ok(Applied::Claimed {
                attempt: 1,
                next_step: 0,
                step_attempt: None
            }),
        ]
    );
    let ds = store.deliverables(&run).await.unwrap();
    assert_eq!(ds[0].current_step.as_deref(), Some("dev"));
    assert_eq!(ds[1].current_step, None);
    let kinds: Vec<(String, EventKind)> = outcome
        .events
        .iter()
        .map(|e| (e.deliverable.as_ref().unwrap().to_string(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("a".to_owned(), EventKind::DeliverableStarted),
            ("a".to_owned(), EventKind::StepStarted),
            ("b".to_owned(), EventKind::DeliverableStarted),
        ]
    );
    assert_eq!(store.step_attempts(&run, None).await.unwrap().len(), 1);
}

pub async fn a_step_end_starts_the_next_step_or_completes_the_deliverable(store: Store) {
    let run = create(&store, plan("t", &[("a", &[]), ("b", &["a"])])).await;
    let lease = claim(&store, &run, "a").await;
    one(
        &store,
        2,
        Change::StepStarted {
            lease: lease.clone(),
            step: step(0, "dev"),
        },
    )
    .await
    .unwrap();

    let mut end = step_end(&lease, 0, 1, StepState::Succeeded, "built\n");
    if let Change::StepFinished(e) = &mut end {
        e.then = Then::Start(step(1, "qa"));
    }
    assert_eq!(
        one(&store, 3, end).await,
        Ok(Applied::StepStarted { step_attempt: 1 })
    );
    let a = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!((a.next_step, a.current_step.as_deref()), (1, Some("qa")));

    let mut last = step_end(&lease, 1, 1, StepState::Succeeded, "tested\n");
    if let Change::StepFinished(e) = &mut last {
        e.then = Then::Succeed;
    }
    let outcome = store.apply(t(4), &[last]).await.unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Succeeded)]);
    assert_eq!(outcome.ready, [(run.clone(), did("b"))]);
    let kinds: Vec<EventKind> = outcome.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::StepFinished, EventKind::DeliverableSucceeded]
    );
    let a = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(
        (a.state, a.next_step, a.current_step.as_deref()),
        (DeliverableState::Succeeded, 2, None)
    );
    let attempts: Vec<(String, StepState)> = store
        .step_attempts(&run, None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.step, s.state))
        .collect();
    assert_eq!(
        attempts,
        [
            ("dev".to_owned(), StepState::Succeeded),
            ("qa".to_owned(), StepState::Succeeded)
        ]
    );
}

pub async fn a_failure_closes_a_step_that_never_ran(store: Store) {
    let run = create(&store, plan("t", &[("a", &[])])).await;
    let claimed = one(&store, 1, claim_starting(&run, "a", step(0, "dev")))
        .await
        .unwrap();
    assert!(matches!(
        claimed,
        Applied::Claimed {
            step_attempt: Some(1),
            ..
        }
    ));
    let lease = LeaseKey {
        run: run.clone(),
        deliverable: did("a"),
        attempt: 1,
    };
    one(
        &store,
        2,
        Change::Failed {
            lease,
            reason: Reason::new(ReasonCode::WorkspaceError, "no disk"),
        },
    )
    .await
    .unwrap();
    let attempt = store.step_attempts(&run, None).await.unwrap().remove(0);
    assert_eq!(attempt.state, StepState::Failed);
}

pub async fn a_step_end_applied_twice_is_refused_the_second_time(store: Store) {
    // A writer that cannot tell whether its commit landed must not be able to skip a step by
    // writing the same end again.
    let run = create(&store, plan("t", &[("a", &[])])).await;
    let lease = claim(&store, &run, "a").await;
    one(
        &store,
        2,
        Change::StepStarted {
            lease: lease.clone(),
            step: step(0, "dev"),
        },
    )
    .await
    .unwrap();
    let end = step_end(&lease, 0, 1, StepState::Succeeded, "once\n");
    assert_eq!(one(&store, 3, end.clone()).await, Ok(Applied::Done));
    assert_eq!(one(&store, 4, end).await, Err(Rejected::NotApplicable));
    let a = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(
        a.next_step, 1,
        "the second write did not move the deliverable on"
    );
}
