use std::time::Duration;

use kamachiq_domain::plan::{Format, Source};
use kamachiq_domain::run::StepState;
use kamachiq_domain::{
    DeliverableId, DeliverableState, EventKind, Plan, Reason, ReasonCode, RunId, RunState,
    StepName, TenantId, Timestamp,
};
use kamachiq_store::{
    Applied, Change, EventFilter, LeaseKey, Merge, NewRun, Rejected, StepEnd, StepRef, Store, Then,
};

const OWNER: &str = "host-a:100:x";

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + seconds * 1000)
}

fn did(id: &str) -> DeliverableId {
    DeliverableId::parse(id).unwrap()
}

fn run_id() -> RunId {
    RunId::parse(ulid::Ulid::generate().to_string().to_lowercase()).unwrap()
}

/// A plan from `(id, [dependencies])`, each deliverable with steps `dev` and `qa`.
fn plan(tenant: &str, nodes: &[(&str, &[&str])]) -> Plan {
    let mut yaml = format!("tenant: {tenant}\ndeliverables:\n");
    for (id, deps) in nodes {
        yaml.push_str(&format!(
            "  - id: {id}\n    dependencies: [{}]\n    steps:\n      - {{name: dev, run: 'true'}}\n      - {{name: qa, run: 'true'}}\n",
            deps.join(", ")
        ));
    }
    Plan::parse(&Source::new("test.yaml", yaml, Format::Yaml)).unwrap()
}

async fn create(store: &Store, plan: Plan) -> RunId {
    let id = run_id();
    store
        .create_run(&NewRun {
            id: id.clone(),
            plan,
            repo: Some("/srv/repo".into()),
            branch: Some("main".into()),
            concurrency: 4,
            at: t(0),
        })
        .await
        .unwrap();
    id
}

async fn one(store: &Store, at: i64, change: Change) -> Result<Applied, Rejected> {
    let mut outcome = store.apply(t(at), &[change]).await.unwrap();
    outcome.results.remove(0)
}

fn claim_change(run: &RunId, id: &str, takeover: bool) -> Change {
    Change::Claim {
        run: run.clone(),
        deliverable: did(id),
        owner: OWNER.into(),
        lease_until: t(30),
        takeover,
        start: None,
    }
}

fn claim_starting(run: &RunId, id: &str, first: StepRef) -> Change {
    match claim_change(run, id, false) {
        Change::Claim {
            run,
            deliverable,
            owner,
            lease_until,
            takeover,
            ..
        } => Change::Claim {
            run,
            deliverable,
            owner,
            lease_until,
            takeover,
            start: Some(first),
        },
        other => other,
    }
}

fn step(index: u32, name: &str) -> StepRef {
    StepRef {
        index,
        name: StepName::parse(name).unwrap(),
    }
}

async fn claim(store: &Store, run: &RunId, id: &str) -> LeaseKey {
    match one(store, 1, claim_change(run, id, false)).await {
        Ok(Applied::Claimed { attempt, .. }) => LeaseKey {
            run: run.clone(),
            deliverable: did(id),
            attempt,
        },
        other => panic!("claim of {id}: {other:?}"),
    }
}

/// Claims and succeeds `id`; returns the deliverables that became ready.
async fn complete(store: &Store, run: &RunId, id: &str) -> Vec<String> {
    let lease = claim(store, run, id).await;
    let outcome = store
        .apply(t(2), &[Change::Succeeded { lease, merge: None }])
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Succeeded)], "success of {id}");
    let mut ready: Vec<String> = outcome.ready.iter().map(|(_, d)| d.to_string()).collect();
    ready.sort();
    ready
}

async fn states(store: &Store, run: &RunId) -> Vec<(String, DeliverableState)> {
    store
        .deliverables(run)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id.to_string(), d.state))
        .collect()
}

fn step_end(lease: &LeaseKey, index: u32, attempt: u32, state: StepState, output: &str) -> Change {
    Change::StepFinished(Box::new(StepEnd {
        lease: lease.clone(),
        index,
        step: StepName::parse(if index == 0 { "dev" } else { "qa" }).unwrap(),
        step_attempt: attempt,
        state,
        exit_code: Some(if state == StepState::Succeeded { 0 } else { 1 }),
        reason: (state == StepState::Failed).then(|| Reason::new(ReasonCode::StepFailed, "exit 1")),
        output: output.into(),
        output_bytes: output.len() as u64,
        duration: Duration::from_millis(1500),
        advance: state == StepState::Succeeded,
        then: Then::Stay,
    }))
}

pub async fn create_run_stores_plan_deliverables_and_first_event(store: Store) {
    let p = plan("tenant-a", &[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])]);
    let run = create(&store, p.clone()).await;

    let stored = store.run(&run).await.unwrap();
    assert_eq!(stored.plan, p);
    assert_eq!(stored.state, RunState::Running);
    assert_eq!(stored.tenant.as_str(), "tenant-a");
    assert_eq!(stored.repo.as_deref(), Some("/srv/repo"));
    assert_eq!(stored.concurrency, 4);
    assert!(!stored.cancel_requested);
    assert_eq!(stored.created_at, t(0));

    let ds = store.deliverables(&run).await.unwrap();
    let summary: Vec<(&str, DeliverableState, u32, u32)> = ds
        .iter()
        .map(|d| (d.id.as_str(), d.state, d.waiting_on, d.position))
        .collect();
    assert_eq!(
        summary,
        [
            ("a", DeliverableState::Pending, 0, 0),
            ("b", DeliverableState::Pending, 1, 1),
            ("c", DeliverableState::Pending, 2, 2),
        ]
    );

    let events = store
        .events_after(
            0,
            &EventFilter {
                run: Some(run.clone()),
                tenant: None,
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::RunStarted);
    assert_eq!(events[0].tenant.as_str(), "tenant-a");
    assert_eq!(events[0].data["deliverables"], 3);
}

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

pub async fn cancel_requests_and_cancels_waiting_and_orphaned_work(store: Store) {
    let run = create(&store, plan("t", &[("a", &[]), ("b", &["a"]), ("c", &[])])).await;
    let lease = claim(&store, &run, "a").await;
    one(
        &store,
        2,
        Change::StepStarted {
            lease,
            step: step(0, "dev"),
        },
    )
    .await
    .unwrap();

    assert_eq!(
        one(&store, 3, Change::RequestCancel { run: run.clone() }).await,
        Ok(Applied::Done)
    );
    assert!(store.run(&run).await.unwrap().cancel_requested);
    assert_eq!(
        one(&store, 3, Change::RequestCancel { run: run.clone() }).await,
        Err(Rejected::NotApplicable),
        "a second request changes nothing"
    );

    let waiting = one(&store, 4, Change::CancelWaiting { run: run.clone() })
        .await
        .unwrap();
    assert_eq!(
        waiting,
        Applied::Cancelled {
            deliverables: vec![did("b"), did("c")]
        }
    );
    let orphans = one(&store, 4, Change::CancelOrphans { run: run.clone() })
        .await
        .unwrap();
    assert_eq!(
        orphans,
        Applied::Cancelled {
            deliverables: vec![did("a")]
        }
    );
    assert!(
        states(&store, &run)
            .await
            .iter()
            .all(|(_, s)| *s == DeliverableState::Cancelled)
    );
    assert_eq!(
        store.step_attempts(&run, None).await.unwrap()[0].state,
        StepState::Cancelled
    );
    let ds = store.deliverables(&run).await.unwrap();
    assert_eq!(ds[1].reason.as_ref().unwrap().code, ReasonCode::Cancelled);
}

pub async fn run_finishes_once_and_events_are_ordered(store: Store) {
    let run = create(&store, plan("t", &[("a", &[])])).await;
    complete(&store, &run, "a").await;
    let finish = || Change::FinishRun {
        run: run.clone(),
        state: RunState::Succeeded,
    };
    assert_eq!(one(&store, 9, finish()).await, Ok(Applied::Done));
    assert_eq!(one(&store, 9, finish()).await, Err(Rejected::NotApplicable));
    let stored = store.run(&run).await.unwrap();
    assert_eq!(stored.state, RunState::Succeeded);
    assert_eq!(stored.finished_at, Some(t(9)));

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
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::RunStarted,
            EventKind::DeliverableStarted,
            EventKind::DeliverableSucceeded,
            EventKind::RunFinished
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let after = store
        .events_after(
            events[1].seq,
            &EventFilter {
                run: Some(run.clone()),
                tenant: None,
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].seq, events[2].seq);
}

pub async fn driver_lease_is_exclusive_and_renewable(store: Store) {
    let run = create(&store, plan("t", &[("a", &[])])).await;
    assert!(
        store
            .acquire_driver(&run, "p1", t(30), t(0), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_driver(&run, "p2", t(30), t(0), None)
            .await
            .unwrap()
    );
    assert!(store.renew_leases(&run, "p1", t(60)).await.unwrap());
    assert!(!store.renew_leases(&run, "p2", t(60)).await.unwrap());
    let driver = store.run(&run).await.unwrap().driver.unwrap();
    assert_eq!((driver.owner.as_str(), driver.expires_at), ("p1", t(60)));

    // p2 judged p1 gone and replaces it; p1's renewal then fails.
    assert!(
        store
            .acquire_driver(&run, "p2", t(90), t(61), Some("p1"))
            .await
            .unwrap()
    );
    assert!(!store.renew_leases(&run, "p1", t(100)).await.unwrap());
    store.release_driver(&run, "p2").await.unwrap();
    assert_eq!(store.run(&run).await.unwrap().driver, None);
}

pub async fn runs_resolve_by_prefix_and_list_newest_first(store: Store) {
    let first = create(&store, plan("tenant-a", &[("a", &[])])).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let second = create(&store, plan("tenant-b", &[("a", &[]), ("b", &[])])).await;

    assert_eq!(store.resolve_run(first.as_str()).await.unwrap(), first);
    assert_eq!(
        store.resolve_run(&first.as_str()[..20]).await.unwrap(),
        first
    );
    assert!(matches!(
        store.resolve_run(&first.as_str()[..1]).await,
        Err(kamachiq_store::Error::AmbiguousRun { .. })
    ));
    assert!(matches!(
        store.resolve_run("zzzz").await,
        Err(kamachiq_store::Error::RunNotFound(_))
    ));
    assert!(matches!(
        store.resolve_run("a%").await,
        Err(kamachiq_store::Error::RunNotFound(_))
    ));

    let all = store.runs(None, 10).await.unwrap();
    let ids: Vec<&RunId> = all.iter().map(|r| &r.id).collect();
    assert_eq!(ids, [&second, &first]);
    assert_eq!(all[0].counts.total, 2);
    assert_eq!(all[0].counts.pending, 2);
    let b = TenantId::parse("tenant-b").unwrap();
    let only_b = store.runs(Some(&b), 10).await.unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].id, second);
    assert_eq!(store.runs(None, 1).await.unwrap().len(), 1);
}

pub async fn reopen_puts_failed_work_back_with_fresh_counters(store: Store) {
    let run = create(&store, plan("t", &[("a", &[]), ("b", &["a"]), ("c", &[])])).await;
    complete(&store, &run, "c").await;
    let lease = claim(&store, &run, "a").await;
    one(
        &store,
        3,
        Change::Failed {
            lease,
            reason: Reason::new(ReasonCode::StepFailed, "x"),
        },
    )
    .await
    .unwrap();
    one(
        &store,
        4,
        Change::FinishRun {
            run: run.clone(),
            state: RunState::Failed,
        },
    )
    .await
    .unwrap();

    let reopened = one(
        &store,
        5,
        Change::Reopen {
            run: run.clone(),
            states: vec![DeliverableState::Failed, DeliverableState::Skipped],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        reopened,
        Applied::Reopened {
            deliverables: vec![did("a"), did("b")]
        }
    );
    let stored = store.run(&run).await.unwrap();
    assert_eq!(
        (stored.state, stored.finished_at),
        (RunState::Running, None)
    );
    let ds = store.deliverables(&run).await.unwrap();
    let view: Vec<(&str, DeliverableState, u32)> = ds
        .iter()
        .map(|d| (d.id.as_str(), d.state, d.waiting_on))
        .collect();
    assert_eq!(
        view,
        [
            ("a", DeliverableState::Pending, 0),
            ("b", DeliverableState::Pending, 1),
            ("c", DeliverableState::Succeeded, 0)
        ]
    );
    assert_eq!(ds[0].reason, None);
}

pub async fn large_batches_apply_every_change(store: Store) {
    let n = 600;
    let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let mut nodes: Vec<(&str, &[&str])> = ids.iter().map(|id| (id.as_str(), &[][..])).collect();
    let deps = ids.iter().map(String::as_str).collect::<Vec<_>>();
    nodes.push(("sink", &deps));
    let run = create(&store, plan("t", &nodes)).await;

    let claims: Vec<Change> = ids.iter().map(|id| claim_change(&run, id, false)).collect();
    let outcome = store.apply(t(1), &claims).await.unwrap();
    assert!(outcome.results.iter().all(|r| *r
        == Ok(Applied::Claimed {
            attempt: 1,
            next_step: 0,
            step_attempt: None
        })));
    assert_eq!(outcome.events.len(), n);

    let successes: Vec<Change> = ids
        .iter()
        .map(|id| Change::Succeeded {
            lease: LeaseKey {
                run: run.clone(),
                deliverable: did(id),
                attempt: 1,
            },
            merge: None,
        })
        .collect();
    let outcome = store.apply(t(2), &successes).await.unwrap();
    assert!(outcome.results.iter().all(|r| *r == Ok(Applied::Succeeded)));
    assert_eq!(outcome.ready, [(run.clone(), did("sink"))]);
    let sink = store.deliverables(&run).await.unwrap().pop().unwrap();
    assert_eq!((sink.id.as_str(), sink.waiting_on), ("sink", 0));
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

pub async fn events_filter_by_tenant_and_run(store: Store) {
    let a = create(&store, plan("tenant-a", &[("x", &[])])).await;
    let b = create(&store, plan("tenant-b", &[("x", &[])])).await;
    complete(&store, &a, "x").await;
    complete(&store, &b, "x").await;
    let tenant_a = EventFilter {
        run: None,
        tenant: Some(TenantId::parse("tenant-a").unwrap()),
    };
    let events = store.events_after(0, &tenant_a, 100).await.unwrap();
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e.run_id == a && e.tenant.as_str() == "tenant-a")
    );
    let limited = store
        .events_after(0, &EventFilter::default(), 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
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
