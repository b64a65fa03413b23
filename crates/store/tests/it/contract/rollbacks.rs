//! Rollback points and their rollbacks: listing, recording (once, audited, with its event),
//! and cleanup.

use kamachiq_domain::EventKind;
use kamachiq_domain::run::RollbackPoint;
use kamachiq_store::{
    Applied, Change, Error, EventFilter, Merge, NewRollback, Rollback, RollbackQuery, Store,
};

use super::*;

/// Claims `id` and records its success with a merge at `t(at)`; returns the rollback point.
async fn merged(store: &Store, run: &RunId, id: &str, merge: &str, at: i64) -> RollbackPoint {
    let lease = claim(store, run, id).await;
    let merge = Merge {
        rollback_id: format!("rb-{run}-{id}"),
        repo: "/srv/repo".into(),
        branch: "main".into(),
        before: format!("{merge}-before"),
        commit: merge.into(),
    };
    let rollback_id = merge.rollback_id.clone();
    assert_eq!(
        one(
            store,
            at,
            Change::Succeeded {
                lease,
                merge: Some(merge)
            }
        )
        .await,
        Ok(Applied::Succeeded)
    );
    store
        .rollback_entry(&rollback_id)
        .await
        .unwrap()
        .unwrap()
        .point
}

fn ids(entries: &[kamachiq_store::RollbackEntry]) -> Vec<String> {
    entries.iter().map(|e| e.point.id.clone()).collect()
}

fn query() -> RollbackQuery {
    RollbackQuery {
        limit: 100,
        ..RollbackQuery::default()
    }
}

pub async fn rollback_points_list_newest_first_and_filter(store: Store) {
    let run = create(&store, plan("t", &[("a", &[]), ("b", &[]), ("c", &[])])).await;
    let a = merged(&store, &run, "a", "abc111", 3).await;
    let b = merged(&store, &run, "b", "abc222", 4).await;
    let c = merged(&store, &run, "c", "def333", 5).await;
    let other = create(&store, plan("t", &[("a", &[])])).await;
    let other_a = merged(&store, &other, "a", "fed444", 6).await;

    assert_eq!(
        ids(&store.rollback_entries(&query()).await.unwrap()),
        [
            other_a.id.as_str(),
            c.id.as_str(),
            b.id.as_str(),
            a.id.as_str()
        ]
    );
    assert_eq!(a.created_at, t(3));
    assert_eq!(a.before_commit, "abc111-before");
    let of_run = RollbackQuery {
        run: Some(run.clone()),
        ..query()
    };
    assert_eq!(
        ids(&store.rollback_entries(&of_run).await.unwrap()),
        [c.id.as_str(), b.id.as_str(), a.id.as_str()]
    );
    let of_a = RollbackQuery {
        deliverable: Some(did("a")),
        ..query()
    };
    assert_eq!(
        ids(&store.rollback_entries(&of_a).await.unwrap()),
        [other_a.id.as_str(), a.id.as_str()]
    );
    let by_prefix = |prefix: &str| RollbackQuery {
        merge_commit_prefix: Some(prefix.into()),
        ..query()
    };
    assert_eq!(
        ids(&store.rollback_entries(&by_prefix("abc")).await.unwrap()),
        [b.id.as_str(), a.id.as_str()],
        "an abbreviation shared by two merges finds both"
    );
    assert_eq!(
        ids(&store.rollback_entries(&by_prefix("abc2")).await.unwrap()),
        [b.id.as_str()]
    );
    assert!(
        store
            .rollback_entries(&by_prefix("0000"))
            .await
            .unwrap()
            .is_empty()
    );
    let elsewhere = RollbackQuery {
        repo: Some("/srv/other".into()),
        ..query()
    };
    assert!(store.rollback_entries(&elsewhere).await.unwrap().is_empty());
    let limited = RollbackQuery {
        limit: 1,
        ..query()
    };
    assert_eq!(
        ids(&store.rollback_entries(&limited).await.unwrap()),
        [other_a.id.as_str()]
    );
    assert!(store.rollback_entry("rb-nope").await.unwrap().is_none());
}

pub async fn a_rollback_is_recorded_once_with_its_audit_record_and_event(store: Store) {
    let run = create(&store, plan("tenant-a", &[("a", &[]), ("b", &[])])).await;
    let a = merged(&store, &run, "a", "aaa111", 3).await;
    let b = merged(&store, &run, "b", "bbb222", 4).await;
    let new = NewRollback {
        point: a.clone(),
        revert_commit: "ccc333".into(),
        by: "local:alice".into(),
        at: t(10),
        duration_ms: 250,
    };
    let event = store.record_rollback(&new).await.unwrap();
    assert_eq!(event.kind, EventKind::DeliverableRolledBack);
    // The rollback is an action outcome too, of the run's tenant, written with it.
    let outcomes = store.actions(&event.tenant, t(0), t(100)).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    let outcome = &outcomes[0];
    assert_eq!(
        (
            outcome.record.action,
            outcome.record.outcome,
            outcome.record.duration_ms,
            outcome.record.at
        ),
        (
            kamachiq_policy::Action::Rollback,
            kamachiq_governance::Outcome::RolledBack,
            250,
            t(10)
        )
    );
    assert_eq!(
        (outcome.run.as_ref(), outcome.deliverable.as_ref()),
        (Some(&run), Some(&did("a")))
    );
    assert_eq!(event.run_id, run);
    assert_eq!(event.deliverable, Some(did("a")));
    assert_eq!(event.at, t(10));
    assert_eq!(event.data["rollback_point"], a.id.as_str());
    assert_eq!(event.data["revert_commit"], "ccc333");
    assert_eq!(event.data["merge_commit"], "aaa111");
    assert_eq!(event.data["by"], "local:alice");
    let logged = store
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
    assert_eq!(logged.last(), Some(&event), "the event is in the run's log");

    let entry = store.rollback_entry(&a.id).await.unwrap().unwrap();
    assert_eq!(
        entry.rollback,
        Some(Rollback {
            revert_commit: "ccc333".into(),
            by: "local:alice".into(),
            at: t(10),
        })
    );
    let open = RollbackQuery {
        open: true,
        ..query()
    };
    assert_eq!(
        ids(&store.rollback_entries(&open).await.unwrap()),
        [b.id.as_str()],
        "only points not rolled back"
    );

    let trail = store.audit_records(None, 0, 100).await.unwrap();
    assert_eq!(trail.len(), 1);
    let record = &trail[0];
    assert_eq!(record.tenant.as_str(), "tenant-a");
    assert_eq!(record.actor, "local:alice");
    assert_eq!(record.action, "rollback");
    assert_eq!(record.subject, a.id);
    assert_eq!(record.at, t(10));
    assert_eq!(record.detail["revert_commit"], "ccc333");
    assert_eq!(record.detail["merge_commit"], "aaa111");
    assert_eq!(record.detail["before_commit"], "aaa111-before");
    assert_eq!(record.detail["deliverable"], "a");

    // A second rollback of the same point is refused and writes nothing.
    let again = NewRollback {
        revert_commit: "ddd444".into(),
        by: "local:bob".into(),
        at: t(11),
        ..new
    };
    match store.record_rollback(&again).await {
        Err(Error::AlreadyRolledBack {
            point,
            at,
            revert_commit,
        }) => {
            assert_eq!(point, a.id);
            assert_eq!(at, t(10));
            assert_eq!(revert_commit, "ccc333");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(store.audit_records(None, 0, 100).await.unwrap().len(), 1);
    assert_eq!(
        store.last_event_seq(&run).await.unwrap(),
        event.seq,
        "no second event"
    );
    assert_eq!(store.verify_audit().await.unwrap().broken_at, None);
}

pub async fn cleanup_forgets_old_points_and_their_rollbacks_only(store: Store) {
    let run = create(&store, plan("t", &[("a", &[]), ("b", &[]), ("c", &[])])).await;
    let a = merged(&store, &run, "a", "aaa111", 3).await;
    let b = merged(&store, &run, "b", "bbb222", 4).await;
    let c = merged(&store, &run, "c", "ccc333", 8).await;
    store
        .record_rollback(&NewRollback {
            point: a.clone(),
            revert_commit: "fff999".into(),
            by: "local:alice".into(),
            at: t(9),
            duration_ms: 250,
        })
        .await
        .unwrap();
    let events_before = store.last_event_seq(&run).await.unwrap();

    assert_eq!(store.forget_rollback_points(t(4)).await.unwrap(), 1);
    assert_eq!(
        ids(&store.rollback_entries(&query()).await.unwrap()),
        [c.id.as_str(), b.id.as_str()],
        "only points created before the cutoff are forgotten"
    );
    assert!(store.rollback_entry(&a.id).await.unwrap().is_none());
    assert_eq!(store.forget_rollback_points(t(4)).await.unwrap(), 0);
    assert_eq!(store.forget_rollback_points(t(100)).await.unwrap(), 2);
    assert!(store.rollback_entries(&query()).await.unwrap().is_empty());

    // Nothing else is touched: the run, its deliverables, its events and the audit trail.
    assert_eq!(store.last_event_seq(&run).await.unwrap(), events_before);
    assert_eq!(store.audit_records(None, 0, 100).await.unwrap().len(), 1);
    let ds = store.deliverables(&run).await.unwrap();
    assert_eq!(ds[0].merge_commit.as_deref(), Some("aaa111"));
    assert!(ds.iter().all(|d| d.state == DeliverableState::Succeeded));
}
