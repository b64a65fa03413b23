//! Runs: creation, cancel, finish, reopen, the driver lease, listing, batches and events.

use std::time::Duration;

use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableState, EventKind, Reason, ReasonCode, RunId, RunState, TenantId};
use kamachiq_store::{Applied, Change, EventFilter, LeaseKey, Purpose, Rejected, RunQuery, Store};

use super::*;

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
        one(
            &store,
            3,
            Change::RequestCancel {
                run: run.clone(),
                by: Some("alice".into())
            }
        )
        .await,
        Ok(Applied::Done)
    );
    assert!(store.run(&run).await.unwrap().cancel_requested);
    let filter = EventFilter {
        run: Some(run.clone()),
        tenant: None,
    };
    let events = store.events_after(0, &filter, 100).await.unwrap();
    let requested = events
        .iter()
        .find(|e| e.kind == EventKind::CancelRequested)
        .unwrap();
    assert_eq!(requested.data["by"], "alice", "who asked is on the record");
    assert_eq!(
        one(
            &store,
            3,
            Change::RequestCancel {
                run: run.clone(),
                by: Some("alice".into())
            }
        )
        .await,
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
            .acquire_driver(&run, "p1", t(30), t(0), None, Purpose::Driving)
            .await
            .unwrap()
    );
    assert!(
        !store
            .acquire_driver(&run, "p2", t(30), t(0), None, Purpose::Driving)
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
            .acquire_driver(&run, "p2", t(90), t(61), Some("p1"), Purpose::Driving)
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

    let all = store.runs(&query(None, None, 10)).await.unwrap();
    let ids: Vec<&RunId> = all.iter().map(|r| &r.id).collect();
    assert_eq!(ids, [&second, &first]);
    assert_eq!(all[0].counts.total, 2);
    assert_eq!(all[0].counts.pending, 2);
    let b = TenantId::parse("tenant-b").unwrap();
    let only_b = store.runs(&query(Some(&b), None, 10)).await.unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].id, second);
    assert_eq!(store.runs(&query(None, None, 1)).await.unwrap().len(), 1);
    let next_page = store.runs(&query(None, Some(&second), 10)).await.unwrap();
    let ids: Vec<&RunId> = next_page.iter().map(|r| &r.id).collect();
    assert_eq!(ids, [&first]);
    assert!(
        store
            .runs(&query(None, Some(&first), 10))
            .await
            .unwrap()
            .is_empty()
    );
}

fn query(tenant: Option<&TenantId>, before: Option<&RunId>, limit: u32) -> RunQuery {
    RunQuery {
        tenant: tenant.cloned(),
        before: before.cloned(),
        limit,
    }
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

    let reopen = || Change::Reopen {
        run: run.clone(),
        states: vec![DeliverableState::Failed, DeliverableState::Skipped],
        driver: "p1".into(),
    };
    // Only the run's driver may reopen it, and only a driver that took the lease to reopen
    // may hold the lease of a finished run.
    assert_eq!(one(&store, 5, reopen()).await, Err(Rejected::NotApplicable));
    assert!(
        !store
            .acquire_driver(&run, "p1", t(60), t(5), None, Purpose::Driving)
            .await
            .unwrap()
    );
    assert!(
        store
            .acquire_driver(&run, "p1", t(60), t(5), None, Purpose::Reopening)
            .await
            .unwrap()
    );
    let reopened = one(&store, 5, reopen()).await.unwrap();
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
