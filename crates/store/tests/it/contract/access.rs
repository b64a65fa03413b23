//! Tokens, the summary figures, the scheduler's queries and batched submission.

use kamachiq_domain::run::Lease;
use kamachiq_domain::{Reason, ReasonCode, Role, RunState, TenantId};
use kamachiq_store::{Change, NewRun, NewToken, Purpose, RunCounts, Store};

use super::*;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn new_token(id: &str, tenant_name: &str, name: &str, hash: &str) -> NewToken {
    NewToken {
        id: id.into(),
        tenant: tenant(tenant_name),
        name: name.into(),
        roles: vec![Role::Operator, Role::TechLead],
        hash: hash.into(),
        at: t(0),
    }
}

pub async fn tokens_are_found_by_hash_until_revoked(store: Store) {
    assert_eq!(store.live_token_count().await.unwrap(), 0);
    let created = store
        .create_token(&new_token("tok1", "tenant-a", "ci", "h1"))
        .await
        .unwrap();
    assert_eq!(created.roles, [Role::Operator, Role::TechLead]);
    store
        .create_token(&new_token("tok2", "tenant-b", "ci", "h2"))
        .await
        .unwrap();

    let found = store.live_token_by_hash("h1").await.unwrap().unwrap();
    assert_eq!(found, created);
    assert_eq!(store.live_token_by_hash("nope").await.unwrap(), None);
    assert_eq!(store.live_token_count().await.unwrap(), 2);

    // A live name is unique within its tenant.
    assert!(matches!(
        store
            .create_token(&new_token("tok3", "tenant-a", "ci", "h3"))
            .await,
        Err(kamachiq_store::Error::TokenNameTaken { .. })
    ));

    // Another tenant cannot revoke it.
    assert!(matches!(
        store
            .revoke_token("tok1", Some(&tenant("tenant-b")), t(1))
            .await,
        Err(kamachiq_store::Error::TokenNotFound(_))
    ));
    let revoked = store
        .revoke_token("tok1", Some(&tenant("tenant-a")), t(2))
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(t(2)));
    assert_eq!(store.live_token_by_hash("h1").await.unwrap(), None);
    assert!(matches!(
        store.revoke_token("tok1", None, t(3)).await,
        Err(kamachiq_store::Error::TokenNotFound(_))
    ));

    // The name is free again; listing shows revoked tokens too, per tenant.
    store
        .create_token(&new_token("tok4", "tenant-a", "ci", "h4"))
        .await
        .unwrap();
    let of_a: Vec<String> = store
        .tokens(Some(&tenant("tenant-a")))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(of_a, ["tok1", "tok4"]);
    assert_eq!(store.tokens(None).await.unwrap().len(), 3);
}

pub async fn summary_counts_one_tenants_runs(store: Store) {
    // Tenant a: one succeeded run of two deliverables, one failed run, one running run.
    let ok = create(&store, plan("tenant-a", &[("a", &[]), ("b", &["a"])])).await;
    complete(&store, &ok, "a").await;
    complete(&store, &ok, "b").await;
    finish(&store, &ok, 9, RunState::Succeeded).await;

    let bad = create(&store, plan("tenant-a", &[("a", &[])])).await;
    let lease = claim(&store, &bad, "a").await;
    one(
        &store,
        3,
        Change::Failed {
            lease,
            reason: Reason::new(ReasonCode::StepFailed, "exit 1"),
        },
    )
    .await
    .unwrap();
    finish(&store, &bad, 4, RunState::Failed).await;

    let _running = create(&store, plan("tenant-a", &[("a", &[]), ("b", &[])])).await;
    let other = create(&store, plan("tenant-b", &[("a", &[])])).await;
    complete(&store, &other, "a").await;

    let summary = store.summary(&tenant("tenant-a")).await.unwrap();
    assert_eq!(
        summary.runs,
        RunCounts {
            total: 3,
            running: 1,
            succeeded: 1,
            failed: 1,
            cancelled: 0,
        }
    );
    assert_eq!(summary.deliverables.total, 5);
    assert_eq!(summary.deliverables.succeeded, 2);
    assert_eq!(summary.deliverables.failed, 1);
    assert_eq!(summary.deliverables.pending, 2);
    // Runs are created at t(0): 9 s and 4 s of wall time.
    assert_eq!(summary.finished_run_millis, 13_000);
    assert_eq!(summary.handoffs_avoided, 2);
    assert_eq!((summary.tokens, summary.cost_micro_usd), (0, 0));

    // A deliverable that succeeds only after an operator reopened it was a handoff.
    assert!(
        store
            .acquire_driver(&bad, "p1", t(60), t(5), None, Purpose::Reopening)
            .await
            .unwrap()
    );
    one(
        &store,
        5,
        Change::Reopen {
            run: bad.clone(),
            states: vec![DeliverableState::Failed],
            driver: "p1".into(),
        },
    )
    .await
    .unwrap();
    complete(&store, &bad, "a").await;
    let summary = store.summary(&tenant("tenant-a")).await.unwrap();
    assert_eq!(summary.deliverables.succeeded, 3);
    assert_eq!(summary.handoffs_avoided, 2);

    let empty = store.summary(&tenant("tenant-z")).await.unwrap();
    assert_eq!(empty.runs.total, 0);
    assert_eq!(empty.deliverables.total, 0);
}

pub async fn load_counts_work_in_flight(store: Store) {
    let run = create(&store, plan("t", &[("a", &[]), ("b", &["a"]), ("c", &[])])).await;
    claim(&store, &run, "a").await;
    let done = create(&store, plan("t", &[("a", &[])])).await;
    complete(&store, &done, "a").await;
    finish(&store, &done, 3, RunState::Succeeded).await;

    let load = store.load().await.unwrap();
    assert_eq!(load.deliverables.total, 3);
    assert_eq!(load.deliverables.running, 1);
    assert_eq!(load.deliverables.pending, 2);
    // `c` is ready; `b` waits on `a`.
    assert_eq!(load.queue_depth, 1);
}

pub async fn runs_awaiting_a_driver_skip_live_leases(store: Store) {
    let free = create(&store, plan("t", &[("a", &[])])).await;
    let leased = run_id();
    store
        .create_run(&NewRun {
            id: leased.clone(),
            plan: plan("t", &[("a", &[])]),
            repo: None,
            branch: None,
            concurrency: 1,
            at: t(1),
            driver: Some(Lease {
                owner: OWNER.into(),
                expires_at: t(30),
            }),
            submitted_by: Some("ci".into()),
        })
        .await
        .unwrap();
    let finished = create(&store, plan("t", &[("a", &[])])).await;
    complete(&store, &finished, "a").await;
    finish(&store, &finished, 2, RunState::Succeeded).await;

    assert_eq!(
        store.runs_awaiting_driver(t(10), 10).await.unwrap(),
        std::slice::from_ref(&free)
    );
    // Born leased: the submitter drives it, so it is nobody else's until the lease expires.
    let control = store.run_control(&leased).await.unwrap();
    assert_eq!(control.driver.unwrap().owner, OWNER);
    let mut later = store.runs_awaiting_driver(t(31), 10).await.unwrap();
    later.sort();
    let mut expected = vec![free.clone(), leased.clone()];
    expected.sort();
    assert_eq!(later, expected);
    assert_eq!(store.runs_awaiting_driver(t(31), 1).await.unwrap().len(), 1);

    // The submitter takes its own lease without a fight.
    assert!(
        store
            .acquire_driver(&leased, OWNER, t(40), t(5), Some(OWNER), Purpose::Driving)
            .await
            .unwrap()
    );
}

pub async fn runs_submitted_together_are_stored_together(store: Store) {
    let runs: Vec<NewRun> = (0..50)
        .map(|i| NewRun {
            id: run_id(),
            plan: plan(&format!("tenant-{}", i % 2), &[("a", &[]), ("b", &["a"])]),
            repo: None,
            branch: None,
            concurrency: 2,
            at: t(i),
            driver: None,
            submitted_by: Some("loader".into()),
        })
        .collect();
    let events = store.create_runs(&runs).await.unwrap();
    assert_eq!(events.len(), 50);
    for (new, event) in runs.iter().zip(&events) {
        assert_eq!(event.run_id, new.id);
        assert_eq!(event.kind, kamachiq_domain::EventKind::RunStarted);
        assert_eq!(event.data["submitted_by"], "loader");
        assert_eq!(event.tenant, new.plan.tenant);
    }
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let counts = store.counts(&runs[49].id).await.unwrap();
    assert_eq!(counts.total, 2);
    let deliverables = store.deliverables(&runs[49].id).await.unwrap();
    assert_eq!(deliverables[1].waiting_on, 1);
}

async fn finish(store: &Store, run: &RunId, at: i64, state: RunState) {
    one(
        store,
        at,
        Change::FinishRun {
            run: run.clone(),
            state,
        },
    )
    .await
    .unwrap();
}

pub async fn a_page_cursor_from_another_tenant_finds_nothing(store: Store) {
    let _a1 = create_at(&store, "tenant-a", 1).await;
    let b1 = create_at(&store, "tenant-b", 2).await;
    let a2 = create_at(&store, "tenant-a", 3).await;
    let b2 = create_at(&store, "tenant-b", 4).await;
    let query = |before: &RunId| kamachiq_store::RunQuery {
        tenant: Some(tenant("tenant-b")),
        before: Some(before.clone()),
        limit: 10,
    };
    // Tenant b paging from tenant a's run learns nothing about it: an unknown cursor.
    assert!(store.runs(&query(&a2)).await.unwrap().is_empty());
    let ids: Vec<RunId> = store
        .runs(&query(&b2))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [b1]);
}

async fn create_at(store: &Store, tenant_name: &str, at: i64) -> RunId {
    let id = run_id();
    store
        .create_run(&NewRun {
            id: id.clone(),
            plan: plan(tenant_name, &[("a", &[])]),
            repo: None,
            branch: None,
            concurrency: 1,
            at: t(at),
            driver: None,
            submitted_by: None,
        })
        .await
        .unwrap();
    id
}
