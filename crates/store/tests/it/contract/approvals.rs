//! The approvals inbox, and what the weekly cycle keeps: reports, proposals, attestations,
//! observations.

use kamachiq_domain::{DeliverableState, EventKind, Role, TenantId};
use kamachiq_governance::proposal::ProposalStatus;
use kamachiq_governance::{
    Attestation, Cause, Effect, Phase, ProposalApprovals, ProposalDraft, Recommendation,
    RecommendationKind, WindowMetrics, assess, default_checklist,
};
use kamachiq_policy::{Action, Reason as PolicyReason, Risk, Verdict};
use kamachiq_store::{
    ApprovalStatus, AuditEntry, CycleReport, EventFilter, Evidence, Governed, NewApproval,
    NewProposal, NewRequeue, Resolution, StepEvidence, Store, StoredReport, approval_scope,
};
use serde_json::json;

use super::governance::{govern, trip_event};
use super::*;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn request(id: &str, requeue: Option<&str>, run: &RunId, action: Action) -> NewApproval {
    NewApproval {
        id: id.into(),
        requeue_id: requeue.map(str::to_owned),
        tenant: tenant("tenant-a"),
        run: run.clone(),
        deliverable: did("api"),
        action,
        step: (action == Action::RunStep).then(|| "dev".to_owned()),
        risk: Risk::Medium,
        cause: Some(Cause::NotWhitelisted),
        evidence: Evidence {
            reasons: vec![PolicyReason::new(
                "governance_not_whitelisted",
                "provision is not on the whitelist of phase L3",
                "governance",
            )],
            diff: None,
            steps: vec![StepEvidence {
                step: "dev".into(),
                attempt: 1,
                state: "succeeded".into(),
                exit_code: Some(0),
                reason: None,
            }],
        },
        requested_at: t(1),
        expires_at: t(100),
        status: ApprovalStatus::Pending,
        decided_by: None,
    }
}

/// Blocks `api` (pending, ready) with requeue entry `rq-1` and approval request `apr-1`.
fn block_for_approval(run: &RunId, action: Action) -> Change {
    Change::Block {
        run: run.clone(),
        deliverable: did("api"),
        attempt: None,
        reason: Reason::new(ReasonCode::ApprovalRequired, "a person approves it"),
        entry: Box::new(NewRequeue {
            id: "rq-1".into(),
            tenant: tenant("tenant-a"),
            action,
            decision_id: "dc-1".into(),
            verdict: Verdict::RequireApproval,
            reasons: vec![],
            next_retry_at: Some(t(30)),
        }),
        approval: Some(Box::new(request("apr-1", Some("rq-1"), run, action))),
    }
}

fn decide(id: &str, status: ApprovalStatus, by: &str, comment: Option<&str>) -> Change {
    Change::DecideApproval {
        id: id.into(),
        status,
        by: by.into(),
        comment: comment.map(str::to_owned),
    }
}

pub async fn approving_a_request_lets_exactly_its_action_through(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    let outcome = store
        .apply(t(1), &[block_for_approval(&run, Action::RunStep)])
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Done)]);
    let kinds: Vec<EventKind> = outcome.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::DeliverableBlocked, EventKind::ApprovalRequested]
    );
    assert_eq!(outcome.events[1].data["approval_id"], "apr-1");
    assert_eq!(outcome.events[1].data["risk"], "medium");
    let a = tenant("tenant-a");
    let open = store.approvals(&a, true, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    let stored = &open[0];
    assert_eq!(
        (
            stored.status,
            stored.requeue_id.as_deref(),
            stored.step.as_deref()
        ),
        (ApprovalStatus::Pending, Some("rq-1"), Some("dev"))
    );
    assert_eq!(
        stored.evidence,
        request("apr-1", None, &run, Action::RunStep).evidence
    );
    assert_eq!(
        store.open_approval_of("rq-1").await.unwrap(),
        Some("apr-1".into())
    );
    assert!(
        store
            .approvals(&tenant("tenant-b"), false, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.open_approval_counts().await.unwrap(),
        [(tenant("tenant-a"), 1)]
    );

    let outcome = store
        .apply(
            t(5),
            &[decide(
                "apr-1",
                ApprovalStatus::Approved,
                "lead.ana",
                Some("looks fine"),
            )],
        )
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Done)]);
    assert_eq!(outcome.ready, [(run.clone(), did("api"))]);
    let kinds: Vec<EventKind> = outcome.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::DeliverableUnblocked, EventKind::ApprovalDecided]
    );
    assert_eq!(outcome.events[1].data["latency_ms"], 4_000);
    assert_eq!(outcome.events[1].data["status"], "approved");
    let api = &store.deliverables(&run).await.unwrap()[0];
    assert_eq!(api.state, DeliverableState::Pending);
    assert_eq!(api.approved_actions, ["run_step:0"]);
    assert_eq!(api.policy_override, None, "an approval is no override");
    let entry = store.requeue_entry("rq-1").await.unwrap().unwrap();
    assert_eq!(
        (
            entry.resolution,
            entry.resolved_by.as_deref(),
            entry.justification.as_deref()
        ),
        (
            Some(Resolution::Approved),
            Some("lead.ana"),
            Some("looks fine")
        )
    );
    let decided = store.approval("apr-1").await.unwrap().unwrap();
    assert_eq!(
        (
            decided.status,
            decided.decided_by.as_deref(),
            decided.decided_at
        ),
        (ApprovalStatus::Approved, Some("lead.ana"), Some(t(5)))
    );
    assert_eq!(decided.comment.as_deref(), Some("looks fine"));
    // Decided once: a second decision changes nothing.
    assert_eq!(
        one(
            &store,
            6,
            decide("apr-1", ApprovalStatus::Denied, "bo", Some("no"))
        )
        .await,
        Err(Rejected::NotApplicable)
    );
    let trail = store
        .audit_records(Some(&tenant("tenant-a")), 0, 10)
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(
        (
            trail[0].action.as_str(),
            trail[0].actor.as_str(),
            trail[0].subject.as_str()
        ),
        ("approval_approved", "lead.ana", "apr-1")
    );
    assert_eq!(approval_scope(Action::Merge, 3), "merge");
    assert_eq!(approval_scope(Action::RunStep, 3), "run_step:3");
}

pub async fn a_denied_request_keeps_its_deliverable_blocked_and_unretried(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    store
        .apply(t(1), &[block_for_approval(&run, Action::Provision)])
        .await
        .unwrap();
    let outcome = store
        .apply(
            t(2),
            &[decide(
                "apr-1",
                ApprovalStatus::Denied,
                "lead.ana",
                Some("not this week"),
            )],
        )
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Done)]);
    assert_eq!(outcome.events[0].data["status"], "denied");
    assert_eq!(
        states(&store, &run).await,
        [("api".into(), DeliverableState::Blocked)]
    );
    let entry = store.requeue_entry("rq-1").await.unwrap().unwrap();
    assert_eq!((entry.resolution, entry.next_retry_at), (None, None));
    assert_eq!(entry.reasons.len(), 1);
    assert_eq!(entry.reasons[0].code, "approval_denied");
    assert_eq!(
        entry.reasons[0].message,
        "lead.ana denied the approval: not this week"
    );
    // A change of the tenant's policy brings every entry back but this one.
    assert_eq!(
        store
            .requeue_due_now(&tenant("tenant-a"), t(3))
            .await
            .unwrap(),
        0
    );
    assert!(store.requeue_due(t(1000), 10).await.unwrap().is_empty());
    assert!(
        store
            .approvals(&tenant("tenant-a"), true, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.open_approval_of("rq-1").await.unwrap(), None);
}

pub async fn requests_expire_at_their_time_denied_or_escalated(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[]), ("docs", &[])])).await;
    store
        .apply(t(1), &[block_for_approval(&run, Action::Provision)])
        .await
        .unwrap();
    assert!(store.expired_approvals(t(99), 10).await.unwrap().is_empty());
    assert_eq!(store.expired_approvals(t(100), 10).await.unwrap().len(), 1);
    // Expiry before the time is refused; a person may decide until then.
    assert_eq!(
        one(
            &store,
            50,
            decide("apr-1", ApprovalStatus::Escalated, "expiry", None)
        )
        .await,
        Err(Rejected::NotApplicable)
    );
    assert_eq!(
        one(
            &store,
            100,
            decide("apr-1", ApprovalStatus::Escalated, "expiry", None)
        )
        .await,
        Ok(Applied::Done)
    );
    let escalated = store.approval("apr-1").await.unwrap().unwrap();
    assert_eq!(escalated.status, ApprovalStatus::Escalated);
    assert!(
        store
            .expired_approvals(t(500), 10)
            .await
            .unwrap()
            .is_empty(),
        "no deadline now"
    );
    assert_eq!(
        store
            .approvals(&tenant("tenant-a"), true, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Expiry takes no escalated request; a person still decides it.
    assert_eq!(
        one(
            &store,
            501,
            decide("apr-1", ApprovalStatus::Expired, "expiry", None)
        )
        .await,
        Err(Rejected::NotApplicable)
    );
    assert_eq!(
        one(
            &store,
            502,
            decide("apr-1", ApprovalStatus::Approved, "ops.lead", None)
        )
        .await,
        Ok(Applied::Done)
    );
    assert_eq!(
        store.deliverables(&run).await.unwrap()[0].approved_actions,
        ["provision"]
    );

    // Denied on expiry: blocked, unretried, with the reason.
    let mut other = request("apr-2", Some("rq-2"), &run, Action::Merge);
    other.deliverable = did("docs");
    store
        .apply(
            t(600),
            &[Change::Block {
                run: run.clone(),
                deliverable: did("docs"),
                attempt: None,
                reason: Reason::new(ReasonCode::ApprovalRequired, "a person approves it"),
                entry: Box::new(NewRequeue {
                    id: "rq-2".into(),
                    tenant: tenant("tenant-a"),
                    action: Action::Merge,
                    decision_id: "dc-2".into(),
                    verdict: Verdict::RequireApproval,
                    reasons: vec![],
                    next_retry_at: Some(t(700)),
                }),
                approval: Some(Box::new(other)),
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        one(
            &store,
            601,
            decide("apr-2", ApprovalStatus::Expired, "expiry", None)
        )
        .await,
        Ok(Applied::Done)
    );
    let entry = store.requeue_entry("rq-2").await.unwrap().unwrap();
    assert_eq!(entry.next_retry_at, None);
    assert_eq!(entry.reasons[0].code, "approval_expired");
    assert_eq!(
        store.approval("apr-2").await.unwrap().unwrap().status,
        ApprovalStatus::Expired
    );
}

pub async fn letting_a_deliverable_through_otherwise_withdraws_its_request(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    store
        .apply(t(1), &[block_for_approval(&run, Action::Merge)])
        .await
        .unwrap();
    let outcome = store
        .apply(
            t(2),
            &[Change::Unblock {
                requeue_id: "rq-1".into(),
                resolution: Resolution::Overridden,
                by: Some("ops".into()),
                justification: Some("hotfix".into()),
                decision_id: None,
                audit: None,
            }],
        )
        .await
        .unwrap();
    let kinds: Vec<EventKind> = outcome.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::ApprovalDecided, EventKind::DeliverableUnblocked]
    );
    assert_eq!(outcome.events[0].data["status"], "withdrawn");
    assert_eq!(
        store.approval("apr-1").await.unwrap().unwrap().status,
        ApprovalStatus::Withdrawn
    );
    assert_eq!(
        one(
            &store,
            3,
            decide("apr-1", ApprovalStatus::Approved, "ana", None)
        )
        .await,
        Err(Rejected::NotApplicable)
    );
    // Cancelling a run withdraws its open requests too.
    let other = create(&store, plan("tenant-a", &[("api", &[])])).await;
    let mut again = block_for_approval(&other, Action::Provision);
    if let Change::Block {
        entry, approval, ..
    } = &mut again
    {
        entry.id = "rq-9".into();
        if let Some(a) = approval {
            a.id = "apr-9".into();
            a.requeue_id = Some("rq-9".into());
        }
    }
    store.apply(t(4), &[again]).await.unwrap();
    store
        .apply(t(5), &[Change::CancelWaiting { run: other.clone() }])
        .await
        .unwrap();
    assert_eq!(
        store.approval("apr-9").await.unwrap().unwrap().status,
        ApprovalStatus::Withdrawn
    );
}

pub async fn approvals_granted_at_once_are_recorded_and_only_people_are_counted(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    let mut auto = request("apr-a", None, &run, Action::Provision);
    auto.status = ApprovalStatus::Approved;
    auto.decided_by = Some("auto".into());
    let outcome = store
        .apply(t(1), &[Change::Approval(Box::new(auto))])
        .await
        .unwrap();
    assert_eq!(outcome.results, [Ok(Applied::Done)]);
    assert_eq!(outcome.events[0].kind, EventKind::ApprovalDecided);
    assert_eq!(outcome.events[0].data["by"], "auto");
    let stored = store.approval("apr-a").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.decided_at, stored.requeue_id),
        (ApprovalStatus::Approved, Some(t(1)), None)
    );
    store
        .apply(t(2), &[block_for_approval(&run, Action::Provision)])
        .await
        .unwrap();
    store
        .apply(
            t(3),
            &[decide("apr-1", ApprovalStatus::Denied, "ana", Some("no"))],
        )
        .await
        .unwrap();
    let counted = store
        .approval_decisions(&tenant("tenant-a"), t(0))
        .await
        .unwrap();
    assert_eq!(
        (counted.approved, counted.denied),
        (0, 1),
        "auto is no person"
    );
    assert_eq!(
        store
            .approval_decisions(&tenant("tenant-a"), t(4))
            .await
            .unwrap()
            .denied,
        0
    );
    assert!(store.open_approval_counts().await.unwrap().is_empty());
    let events = store
        .events_after(0, &EventFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::ApprovalDecided)
            .count(),
        2
    );
}

fn draft() -> ProposalDraft {
    ProposalDraft {
        from_phase: Phase::L3,
        target_phase: Phase::L3Plus,
        whitelist_add: vec![Action::Provision],
        risk: Risk::Low,
        validation_days: 14,
        required_approvers: vec![Role::TechLead],
    }
}

pub async fn reports_and_proposals_are_kept_and_decided_once(store: Store) {
    let a = tenant("tenant-a");
    let governed = govern(&store, "tenant-a").await;
    let report = report_with("grp-1", "prp-1", Phase::L3, &governed);
    let proposal = NewProposal {
        id: "prp-1".into(),
        draft: draft(),
        approvals: ProposalApprovals::new(&draft(), "ops.ines"),
    };
    let audit = AuditEntry {
        tenant: a.clone(),
        actor: "ops.ines".into(),
        action: "governance_cycle".into(),
        subject: "grp-1".into(),
        detail: json!({}),
    };
    store
        .save_report(&report, Some(&proposal), &audit)
        .await
        .unwrap();
    assert_eq!(store.report("grp-1").await.unwrap(), Some(report.clone()));
    assert_eq!(store.reports(&a, 10).await.unwrap(), [report]);
    assert!(
        store
            .reports(&tenant("tenant-b"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let stored = store.proposal("prp-1").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, &stored.report_id, &stored.draft),
        (ProposalStatus::Pending, &"grp-1".to_owned(), &draft())
    );
    assert_eq!(store.proposals(&a, true, 10).await.unwrap().len(), 1);

    let mut approved = stored.clone();
    approved
        .approvals
        .approve("lead.ana", &[Role::TechLead], None, t(2))
        .unwrap();
    approved.status = approved.approvals.status();
    let mut advanced = governed.state.clone();
    advanced.advance(&draft(), t(2)).unwrap();
    let record = AuditEntry {
        action: "proposal_approved".into(),
        actor: "lead.ana".into(),
        ..audit.clone()
    };
    // Against a stale governance version: refused, nothing written.
    let mut stale = governed.clone();
    stale.version = 9;
    assert!(
        !store
            .decide_proposal(&approved, Some((&stale, &advanced)), &[&record], t(2))
            .await
            .unwrap()
    );
    assert_eq!(
        store.proposal("prp-1").await.unwrap().unwrap().status,
        ProposalStatus::Pending
    );
    assert!(
        store
            .decide_proposal(&approved, Some((&governed, &advanced)), &[&record], t(2))
            .await
            .unwrap()
    );
    let now = store.proposal("prp-1").await.unwrap().unwrap();
    assert_eq!(now.status, ProposalStatus::Approved);
    assert_eq!(now.approvals.approvals[0].by, "lead.ana");
    assert_eq!(now.updated_at, t(2));
    let state = store.governance(&a).await.unwrap().unwrap().state;
    assert_eq!(
        (state.current_phase, state.command_whitelist),
        (Phase::L3Plus, vec![Action::Provision])
    );
    assert!(store.proposals(&a, true, 10).await.unwrap().is_empty());
    assert_eq!(store.proposals(&a, false, 10).await.unwrap().len(), 1);
    assert!(
        !store
            .decide_proposal(&approved, None, &[&record], t(3))
            .await
            .unwrap(),
        "decided once"
    );
}

fn report_with(id: &str, proposal: &str, phase: Phase, governed: &Governed) -> StoredReport {
    StoredReport {
        id: id.into(),
        tenant: governed.tenant.clone(),
        report: CycleReport {
            phase,
            from: t(0),
            to: t(1),
            metrics: WindowMetrics::default(),
            readiness: assess(
                &default_checklist(),
                &kamachiq_governance::ReadinessFacts::new(&governed.state, t(1)),
                &[],
                t(1),
            ),
            recommendation: Recommendation {
                kind: RecommendationKind::Expand,
                reasons: vec![],
            },
            circuit_breaker_events: vec![],
            proposal_id: Some(proposal.into()),
        },
        requested_by: "ops.ines".into(),
        at: t(1),
    }
}

/// A breaker that reverts a tenant at L3+ to L3 withdraws its pending L3+ -> L4 proposal in
/// the same transaction, audited after the trip and by the breaker; the withdrawn proposal
/// takes no decision. A rollback that keeps the phase withdraws nothing.
pub async fn a_phase_change_withdraws_the_proposals_it_left_stale(store: Store) {
    let a = tenant("tenant-a");
    let mut governed = govern(&store, "tenant-a").await;
    let mut at_l3_plus = governed.state.clone();
    at_l3_plus.current_phase = Phase::L3Plus;
    at_l3_plus.command_whitelist = vec![Action::Provision];
    let cause = AuditEntry {
        tenant: a.clone(),
        actor: "lead.ana".into(),
        action: "phase_advanced".into(),
        subject: "tenant-a".into(),
        detail: json!({}),
    };
    governed.version = store
        .save_governance(&a, 1, &at_l3_plus, &governed.settings, &cause, t(1))
        .await
        .unwrap()
        .unwrap();
    governed.state = at_l3_plus;
    let to_l4 = ProposalDraft {
        from_phase: Phase::L3Plus,
        target_phase: Phase::L4,
        ..draft()
    };
    let proposal = NewProposal {
        id: "prp-2".into(),
        approvals: ProposalApprovals::new(&to_l4, "ops.ines"),
        draft: to_l4,
    };
    let cycle = AuditEntry {
        action: "governance_cycle".into(),
        subject: "grp-2".into(),
        ..cause.clone()
    };
    store
        .save_report(
            &report_with("grp-2", "prp-2", Phase::L3Plus, &governed),
            Some(&proposal),
            &cycle,
        )
        .await
        .unwrap();

    // A change that keeps the phase (restarting L3+) leaves the proposal pending.
    let restart = AuditEntry {
        action: "phase_rolled_back".into(),
        ..cause.clone()
    };
    governed.version = store
        .save_governance(
            &a,
            governed.version,
            &governed.state,
            &governed.settings,
            &restart,
            t(2),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.proposal("prp-2").await.unwrap().unwrap().status,
        ProposalStatus::Pending
    );

    let mut reverted = governed.state.clone();
    reverted.revert_to_l3(t(3));
    let event = trip_event(
        "bke-1",
        None,
        Effect::RevertToL3 {
            from: Phase::L3Plus,
            cleared: vec![Action::Provision],
        },
        3,
    );
    store
        .trip_breaker(&governed, &reverted, &event)
        .await
        .unwrap()
        .unwrap();
    let withdrawn = store.proposal("prp-2").await.unwrap().unwrap();
    assert_eq!(
        (withdrawn.status, withdrawn.updated_at),
        (ProposalStatus::Withdrawn, t(3))
    );
    assert!(store.proposals(&a, true, 10).await.unwrap().is_empty());
    let trail = store.audit_records(Some(&a), 0, 100).await.unwrap();
    let tail: Vec<(&str, &str, &str)> = trail
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(|r| (r.action.as_str(), r.actor.as_str(), r.subject.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            ("breaker_tripped", "breaker:High Error Rate", "bke-1"),
            ("proposal_withdrawn", "breaker:High Error Rate", "prp-2"),
        ],
        "the cause first, then what it withdrew"
    );
    let withdrawal = &trail[trail.len() - 1];
    assert_eq!(
        (
            &withdrawal.detail["phase"],
            &withdrawal.detail["cause"],
            &withdrawal.detail["from"]
        ),
        (&json!("L3"), &json!("breaker_tripped"), &json!("L3+"))
    );

    // A withdrawn proposal takes no decision.
    let mut approved = withdrawn.clone();
    approved.status = ProposalStatus::Approved;
    let decision = AuditEntry {
        action: "proposal_approved".into(),
        ..cause.clone()
    };
    assert!(
        !store
            .decide_proposal(&approved, None, &[&decision], t(4))
            .await
            .unwrap()
    );
    assert_eq!(
        store.proposal("prp-2").await.unwrap().unwrap().status,
        ProposalStatus::Withdrawn
    );
}

pub async fn attestations_observations_and_stop_drills_are_read_back(store: Store) {
    let a = tenant("tenant-a");
    for (i, item) in ["org.on_call", "process.runbook"].iter().enumerate() {
        let attestation = Attestation {
            item: (*item).into(),
            by: "lead.ana".into(),
            evidence: format!("wiki/{item}"),
            at: t(i as i64 + 1),
        };
        let audit = AuditEntry {
            tenant: a.clone(),
            actor: "lead.ana".into(),
            action: "readiness_attested".into(),
            subject: (*item).into(),
            detail: json!({}),
        };
        store.attest(&a, &attestation, &audit).await.unwrap();
    }
    let all: Vec<String> = store
        .attestations(&a, t(0))
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.item)
        .collect();
    assert_eq!(all, ["org.on_call", "process.runbook"]);
    assert_eq!(store.attestations(&a, t(2)).await.unwrap().len(), 1);
    assert!(
        store
            .attestations(&tenant("tenant-b"), t(0))
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.observed("metrics_scraped").await.unwrap(), None);
    store.observe("metrics_scraped", t(5)).await.unwrap();
    store.observe("metrics_scraped", t(7)).await.unwrap();
    assert_eq!(store.observed("metrics_scraped").await.unwrap(), Some(t(7)));

    assert!(!store.stop_exercised_since(t(0)).await.unwrap());
    store.stop_all("ops", "drill", t(10)).await.unwrap();
    assert!(
        !store.stop_exercised_since(t(0)).await.unwrap(),
        "not lifted yet"
    );
    store.resume_all("ops", t(11)).await.unwrap();
    assert!(store.stop_exercised_since(t(0)).await.unwrap());
    assert!(!store.stop_exercised_since(t(12)).await.unwrap());
}
