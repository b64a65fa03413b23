//! Tenants, policy sets, decisions, the requeue and the audit trail.

use kamachiq_domain::tenant::{TenantSettings, TenantUpdate};
use kamachiq_domain::{DeliverableState, EventKind, TenantId};
use kamachiq_policy::{Action, Decision, Input, Module, Reason as PolicyReason, Risk, Verdict};
use kamachiq_store::{
    AuditEntry, DecisionQuery, DecisionRecord, EventFilter, NewRequeue, RequeueQuery, Resolution,
    Store,
};
use serde_json::json;

use super::*;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn residency() -> PolicyReason {
    PolicyReason {
        code: "residency".into(),
        message: "region us-east-1 is not allowed".into(),
        rule: "builtin.residency".into(),
    }
}

fn decision_record(id: &str, run: &RunId, deliverable: &str, verdict: Verdict) -> DecisionRecord {
    DecisionRecord {
        id: id.into(),
        tenant: tenant("tenant-a"),
        run: Some(run.clone()),
        deliverable: Some(did(deliverable)),
        input: Input {
            action: Action::Provision,
            tenant: "tenant-a".into(),
            region: "us-east-1".into(),
            run: None,
            deliverable: None,
            step: None,
            spent: Default::default(),
            reserve: Default::default(),
            autonomy: Default::default(),
            emergency_stop: false,
            diff: None,
            at: t(1),
        },
        decision: Decision {
            verdict,
            score: if verdict == Verdict::Allow { 1.0 } else { 0.0 },
            threshold: 0.5,
            risk: Risk::Critical,
            reasons: if verdict == Verdict::Allow {
                vec![]
            } else {
                vec![residency()]
            },
            policy_version: None,
            tenant_version: 1,
        },
        at: t(1),
    }
}

fn block(run: &RunId, deliverable: &str, requeue_id: &str, attempt: Option<u32>) -> Change {
    Change::Block {
        run: run.clone(),
        deliverable: did(deliverable),
        attempt,
        reason: Reason::new(ReasonCode::Residency, "region us-east-1 is not allowed"),
        entry: Box::new(NewRequeue {
            id: requeue_id.into(),
            tenant: tenant("tenant-a"),
            action: Action::Provision,
            decision_id: "dc-1".into(),
            verdict: Verdict::Deny,
            reasons: vec![residency()],
            next_retry_at: Some(t(10)),
        }),
        approval: None,
    }
}

fn unblock(requeue_id: &str, resolution: Resolution) -> Change {
    Change::Unblock {
        requeue_id: requeue_id.into(),
        resolution,
        by: Some("alice".into()),
        justification: Some("approved by legal".into()),
        decision_id: None,
        audit: Some(Box::new(AuditEntry {
            tenant: tenant("tenant-a"),
            actor: "alice".into(),
            action: "requeue_override".into(),
            subject: requeue_id.into(),
            detail: json!({"justification": "approved by legal"}),
        })),
    }
}

pub async fn tenants_are_created_updated_and_audited(store: Store) {
    let id = tenant("tenant-a");
    assert_eq!(store.tenant(&id).await.unwrap(), None);
    assert_eq!(
        store.tenant_or_default(&id).await.unwrap().settings,
        TenantSettings::default()
    );
    let settings = TenantSettings {
        regions: vec![
            "eu-west-1".into(),
            "eu-central-1".into(),
            "eu-west-1".into(),
        ],
        ..TenantSettings::default()
    };
    let created = store
        .create_tenant(&id, &settings, "local:ops", t(0))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
    // Lists are kept sorted and without duplicates.
    assert_eq!(created.settings.regions, ["eu-central-1", "eu-west-1"]);
    assert_eq!(store.tenant(&id).await.unwrap(), Some(created.clone()));
    assert!(matches!(
        store.create_tenant(&id, &settings, "local:ops", t(1)).await,
        Err(kamachiq_store::Error::TenantExists(_))
    ));

    let updated = store
        .update_tenant(
            &id,
            &TenantUpdate {
                threshold: Some(0.7),
                ..TenantUpdate::default()
            },
            "local:ops",
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.settings.threshold, 0.7);
    assert_eq!(updated.settings.regions, ["eu-central-1", "eu-west-1"]);
    assert_eq!(updated.created_at, t(0));
    assert_eq!(updated.updated_at, t(2));

    // An invalid update names the field and changes nothing.
    let err = store
        .update_tenant(
            &id,
            &TenantUpdate {
                threshold: Some(2.0),
                ..TenantUpdate::default()
            },
            "local:ops",
            t(3),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`threshold`"), "{err}");
    assert_eq!(store.tenant(&id).await.unwrap().unwrap().version, 2);
    assert!(matches!(
        store
            .update_tenant(
                &tenant("nobody"),
                &TenantUpdate::default(),
                "local:ops",
                t(3)
            )
            .await,
        Err(kamachiq_store::Error::TenantNotFound(_))
    ));

    let stamp = store.policy_stamp(&id).await.unwrap();
    assert_eq!((stamp.tenant_version, stamp.policy_version), (2, 0));
    let trail = store.audit_records(Some(&id), 0, 100).await.unwrap();
    let actions: Vec<&str> = trail.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["tenant_created", "tenant_updated"]);
    assert_eq!(trail[1].detail["before"]["threshold"], 0.5);
    assert_eq!(trail[1].detail["after"]["threshold"], 0.7);
    assert_eq!(trail[1].actor, "local:ops");
    assert_eq!(store.tenants().await.unwrap().len(), 1);
}

pub async fn policies_are_versioned_and_unchanged_sets_are_not_stored_twice(store: Store) {
    let id = tenant("tenant-a");
    assert_eq!(store.policy(&id).await.unwrap(), None);
    let v1 = vec![Module {
        name: "main.rego".into(),
        source: "package kamachiq\n".into(),
    }];
    let (first, added) = store.add_policy(&id, &v1, "alice", t(0)).await.unwrap();
    assert!(added);
    assert_eq!(first.version, 1);
    let (same, added) = store.add_policy(&id, &v1, "bob", t(1)).await.unwrap();
    assert!(!added);
    assert_eq!(same, first);

    let v2 = vec![Module {
        name: "main.rego".into(),
        source: "package kamachiq\ndefault score := 0.9\n".into(),
    }];
    let (second, added) = store.add_policy(&id, &v2, "bob", t(2)).await.unwrap();
    assert!(added);
    assert_eq!(second.version, 2);
    assert_ne!(second.digest, first.digest);
    assert_eq!(store.policy(&id).await.unwrap(), Some(second.clone()));
    assert_eq!(store.policy_version(&id, 1).await.unwrap(), Some(first));
    assert_eq!(store.policy_history(&id).await.unwrap().len(), 2);
    // Another tenant's policies are its own.
    assert_eq!(store.policy(&tenant("tenant-b")).await.unwrap(), None);
    assert_eq!(store.policy_stamp(&id).await.unwrap().policy_version, 2);
    let trail = store.audit_records(Some(&id), 0, 100).await.unwrap();
    assert_eq!(trail.len(), 2, "an unchanged set is not audited again");
    assert_eq!(trail[1].subject, "policy v2");
}

pub async fn a_blocked_deliverable_waits_in_the_requeue_until_let_through(store: Store) {
    let run = create(
        &store,
        plan("tenant-a", &[("api", &[]), ("docs", &["api"])]),
    )
    .await;
    // Only a ready deliverable can be held back before its claim.
    assert_eq!(
        one(&store, 1, block(&run, "docs", "rq-0", None)).await,
        Err(Rejected::NotApplicable)
    );
    let outcome = store
        .apply(
            t(1),
            &[
                Change::Decided(Box::new(decision_record(
                    "dc-1",
                    &run,
                    "api",
                    Verdict::Deny,
                ))),
                block(&run, "api", "rq-1", None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Done), Ok(Applied::Done)]);
    let blocked = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(blocked.state, DeliverableState::Blocked);
    assert_eq!(blocked.reason.as_ref().unwrap().code, ReasonCode::Residency);

    let open = store
        .requeue(&RequeueQuery {
            tenant: Some(tenant("tenant-a")),
            open: true,
            limit: 10,
            ..RequeueQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, "rq-1");
    assert_eq!(open[0].deliverable, did("api"));
    assert_eq!(open[0].reasons, [residency()]);
    assert_eq!(open[0].next_retry_at, Some(t(10)));
    // Another tenant sees none of it.
    assert!(
        store
            .requeue(&RequeueQuery {
                tenant: Some(tenant("tenant-b")),
                open: true,
                limit: 10,
                ..RequeueQuery::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    // A deliverable is in the requeue once at a time.
    assert!(
        store
            .apply(t(2), &[block(&run, "api", "rq-2", None)])
            .await
            .unwrap()
            .results[0]
            .is_err()
    );

    let outcome = store
        .apply(t(3), &[unblock("rq-1", Resolution::Overridden)])
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Done)]);
    assert_eq!(outcome.ready, [(run.clone(), did("api"))]);
    let kinds: Vec<EventKind> = outcome.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::DeliverableUnblocked]);
    assert_eq!(outcome.events[0].data["by"], "alice");
    let api = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(
        (api.state, api.reason.clone()),
        (DeliverableState::Pending, None)
    );
    let entry = store.requeue_entry("rq-1").await.unwrap().unwrap();
    assert_eq!(entry.resolution, Some(Resolution::Overridden));
    assert_eq!(entry.resolved_at, Some(t(3)));
    assert_eq!(entry.justification.as_deref(), Some("approved by legal"));
    assert_eq!(entry.next_retry_at, None);
    // Resolved once: a second override finds nothing to let through, and writes no audit.
    assert_eq!(
        one(&store, 4, unblock("rq-1", Resolution::Overridden)).await,
        Err(Rejected::NotApplicable)
    );
    let trail = store.audit_records(None, 0, 100).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].action, "requeue_override");
    // The unblocked deliverable can be claimed.
    assert!(matches!(
        one(&store, 5, claim_change(&run, "api", false)).await,
        Ok(Applied::Claimed { .. })
    ));
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
    let blocked_event = events
        .iter()
        .find(|e| e.kind == EventKind::DeliverableBlocked)
        .unwrap();
    assert_eq!(blocked_event.data["requeue_id"], "rq-1");
    assert_eq!(blocked_event.data["reasons"][0]["code"], "residency");
}

pub async fn a_running_deliverable_is_blocked_only_at_its_attempt(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    let Ok(Applied::Claimed { attempt, .. }) =
        one(&store, 1, claim_change(&run, "api", false)).await
    else {
        panic!("claim refused");
    };
    assert_eq!(
        one(&store, 2, block(&run, "api", "rq-old", Some(attempt + 1))).await,
        Err(Rejected::NotApplicable)
    );
    assert_eq!(
        one(&store, 2, block(&run, "api", "rq-1", Some(attempt))).await,
        Ok(Applied::Done)
    );
    let api = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(api.state, DeliverableState::Blocked);
    assert_eq!(api.lease, None);
    // Blocked work keeps the run open but needs no driver until it is let through.
    assert!(
        store
            .runs_awaiting_driver(t(100), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .apply(t(3), &[unblock("rq-1", Resolution::Allowed)])
        .await
        .unwrap();
    assert_eq!(store.runs_awaiting_driver(t(100), 10).await.unwrap(), [run]);
}

pub async fn retries_keep_the_entry_open_and_a_change_makes_it_due_at_once(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    store
        .apply(t(1), &[block(&run, "api", "rq-1", None)])
        .await
        .unwrap();
    assert!(store.requeue_due(t(9), 10).await.unwrap().is_empty());
    assert_eq!(store.requeue_due(t(10), 10).await.unwrap().len(), 1);
    let outcome = store
        .apply(
            t(10),
            &[Change::Retried {
                requeue_id: "rq-1".into(),
                attempts: 1,
                next_retry_at: None,
                decision_id: "dc-2".into(),
                verdict: Verdict::Deny,
                reasons: vec![residency()],
                approval: None,
            }],
        )
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Done)]);
    assert_eq!(outcome.events[0].kind, EventKind::RequeueRetried);
    let entry = store.requeue_entry("rq-1").await.unwrap().unwrap();
    assert_eq!((entry.attempts, entry.next_retry_at), (1, None));
    assert_eq!(entry.decision_id, "dc-2");
    // Given up on: never due, until the tenant's policy or settings change.
    assert!(store.requeue_due(t(1000), 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .requeue_due_now(&tenant("tenant-b"), t(20))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .requeue_due_now(&tenant("tenant-a"), t(20))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.requeue_due(t(20), 10).await.unwrap()[0].id, "rq-1");
}

pub async fn cancelling_a_run_closes_its_requeue_entries(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    store
        .apply(t(1), &[block(&run, "api", "rq-1", None)])
        .await
        .unwrap();
    store
        .apply(t(2), &[Change::CancelWaiting { run: run.clone() }])
        .await
        .unwrap();
    let entry = store.requeue_entry("rq-1").await.unwrap().unwrap();
    assert_eq!(entry.resolution, Some(Resolution::Cancelled));
    assert_eq!(
        store.deliverables(&run).await.unwrap()[0].state,
        DeliverableState::Cancelled
    );
}

pub async fn decisions_are_recorded_with_their_input_and_paged(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    let records: Vec<Change> = (0..5)
        .map(|i| {
            Change::Decided(Box::new(decision_record(
                &format!("dc-{i:02}"),
                &run,
                "api",
                if i % 2 == 0 {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                },
            )))
        })
        .collect();
    store.apply(t(1), &records).await.unwrap();
    let first = store
        .decisions(&DecisionQuery {
            tenant: Some(tenant("tenant-a")),
            limit: 3,
            ..DecisionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(
        first[0],
        decision_record("dc-00", &run, "api", Verdict::Allow)
    );
    let rest = store
        .decisions(&DecisionQuery {
            tenant: Some(tenant("tenant-a")),
            after: Some(first[2].id.clone()),
            limit: 3,
            ..DecisionQuery::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = rest.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["dc-03", "dc-04"]);
    assert!(
        store
            .decisions(&DecisionQuery {
                since: Some(t(2)),
                limit: 10,
                ..DecisionQuery::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .decision("dc-01")
            .await
            .unwrap()
            .unwrap()
            .decision
            .verdict,
        Verdict::Deny
    );
}

pub async fn the_audit_trail_chains_every_record(store: Store) {
    let id = tenant("tenant-a");
    for i in 0..3 {
        store
            .audit(
                t(i),
                &AuditEntry {
                    tenant: id.clone(),
                    actor: "alice".into(),
                    action: "emergency_stop".into(),
                    subject: "all".into(),
                    detail: json!({"n": i, "why": "drill"}),
                },
            )
            .await
            .unwrap();
    }
    let trail = store.audit_records(None, 0, 10).await.unwrap();
    assert_eq!(trail.len(), 3);
    assert_eq!(trail[1].prev_hash, trail[0].hash);
    assert_eq!(trail[2].prev_hash, trail[1].hash);
    let check = store.verify_audit().await.unwrap();
    assert_eq!((check.records, check.broken_at), (3, None));
    // Paging by sequence number.
    let rest = store.audit_records(None, trail[0].seq, 10).await.unwrap();
    assert_eq!(rest.len(), 2);
}

pub async fn the_emergency_stop_and_pauses_are_seen_by_every_reader(store: Store) {
    assert_eq!(store.emergency_stop().await.unwrap(), None);
    let (stop, changed) = store.stop_all("alice", "drill", t(1)).await.unwrap();
    assert!(changed);
    assert_eq!(
        (stop.by.as_str(), stop.reason.as_str(), stop.at),
        ("alice", "drill", t(1))
    );
    // A second stop changes nothing and reports the first.
    let (again, changed) = store.stop_all("bob", "again", t(2)).await.unwrap();
    assert!(!changed);
    assert_eq!(again, stop);
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    let control = store.run_control(&run).await.unwrap();
    assert!(control.stopped && !control.paused);
    assert_eq!(
        store.running_runs().await.unwrap(),
        std::slice::from_ref(&run)
    );

    let lifted = store.resume_all("carol", t(3)).await.unwrap();
    assert_eq!(lifted, Some(stop));
    assert_eq!(store.resume_all("carol", t(4)).await.unwrap(), None);
    assert!(!store.run_control(&run).await.unwrap().stopped);

    // A paused run is left alone by schedulers until it is unpaused.
    assert!(store.set_paused(&run, true, "dave", t(5)).await.unwrap());
    assert!(
        !store.set_paused(&run, true, "dave", t(6)).await.unwrap(),
        "paused already"
    );
    assert!(store.run_control(&run).await.unwrap().paused);
    assert!(
        store
            .runs_awaiting_driver(t(100), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.set_paused(&run, false, "dave", t(7)).await.unwrap());
    assert_eq!(
        store.runs_awaiting_driver(t(100), 10).await.unwrap(),
        std::slice::from_ref(&run)
    );
    let kinds: Vec<EventKind> = store
        .events_after(
            0,
            &EventFilter {
                run: Some(run),
                tenant: None,
            },
            100,
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::RunStarted,
            EventKind::RunPaused,
            EventKind::RunUnpaused
        ]
    );
    let trail: Vec<String> = store
        .audit_records(None, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} by {}", r.action, r.actor))
        .collect();
    assert_eq!(
        trail,
        [
            "emergency_stop by alice",
            "resume_all by carol",
            "run_paused by dave",
            "run_unpaused by dave"
        ]
    );
}

pub async fn usage_is_summed_by_run_deliverable_model_and_day(store: Store) {
    use kamachiq_store::{SpendBy, SpendQuery, UsageRecord};
    let run = create(&store, plan("tenant-a", &[("api", &[]), ("docs", &[])])).await;
    let record = |deliverable: &str, model: &str, tokens: u64, cost: i64, at: i64| UsageRecord {
        tenant: tenant("tenant-a"),
        run: run.clone(),
        deliverable: did(deliverable),
        step: "dev".into(),
        step_attempt: 1,
        agent: "claude".into(),
        model: model.into(),
        input_tokens: tokens,
        output_tokens: 10,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_micro_usd: cost,
        at: t(at),
    };
    store
        .apply(
            t(1),
            &[Change::Usage {
                records: vec![
                    record("api", "sonnet", 990, 3_000, 1),
                    record("api", "sonnet", 490, 1_000, 2),
                    record("docs", "haiku", 90, 100, 86_400),
                ],
                progress: None,
            }],
        )
        .await
        .unwrap();
    let spend = store.run_spend(&run).await.unwrap();
    assert_eq!(
        (spend.total.tokens, spend.total.cost_micro_usd),
        (1600, 4_100)
    );
    assert_eq!(spend.deliverables.len(), 2);
    assert_eq!(spend.deliverables[0].1.tokens, 1500);
    let day = kamachiq_store::day_of(t(1));
    assert_eq!(
        store
            .tenant_day_spend(&tenant("tenant-a"), &day)
            .await
            .unwrap()
            .tokens,
        1500
    );
    let by = |by| SpendQuery {
        tenant: Some(tenant("tenant-a")),
        run: None,
        since: None,
        by,
    };
    let models = store.spend(&by(SpendBy::Model)).await.unwrap();
    let models: Vec<(&str, u64, i64)> = models
        .iter()
        .map(|r| (r.key.as_str(), r.tokens, r.cost_micro_usd))
        .collect();
    assert_eq!(models, [("sonnet", 1500, 4_000), ("haiku", 100, 100)]);
    assert_eq!(store.spend(&by(SpendBy::Day)).await.unwrap().len(), 2);
    let deliverables = store.spend(&by(SpendBy::Deliverable)).await.unwrap();
    assert_eq!(deliverables[0].key, format!("{run}/api"));
    assert_eq!(deliverables[0].steps, 1, "one step attempt reported twice");
    let since = SpendQuery {
        since: Some(t(3)),
        ..by(SpendBy::Model)
    };
    assert_eq!(store.spend(&since).await.unwrap()[0].key, "haiku");
}
