//! Autonomy governance: action outcomes, governed tenants, circuit-breaker rules and events.

use std::time::Duration;

use kamachiq_domain::{EventKind, TenantId};
use kamachiq_governance::{
    BreakerAction, Effect, GovernanceState, Outcome, Phase, Rule, Settings, Severity,
    WindowMetrics, default_checklist, default_rules,
};
use kamachiq_policy::Action;
use kamachiq_store::{AuditEntry, BreakerEvent, EventFilter, NewAction, Store};
use serde_json::json;

use super::*;

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

pub(super) fn acted(
    tenant_id: &str,
    run: Option<&RunId>,
    action: Action,
    outcome: Outcome,
    duration_ms: u64,
) -> Change {
    Change::Acted(Box::new(NewAction {
        tenant: tenant(tenant_id),
        run: run.cloned(),
        deliverable: run.map(|_| did("api")),
        action,
        outcome,
        duration_ms,
        tokens: 100,
        cost_micro_usd: 2_000,
        critical: false,
    }))
}

fn audit(tenant_id: &str, action: &str) -> AuditEntry {
    AuditEntry {
        tenant: tenant(tenant_id),
        actor: "alice".into(),
        action: action.into(),
        subject: tenant_id.into(),
        detail: json!({}),
    }
}

pub(super) async fn govern(store: &Store, tenant_id: &str) -> kamachiq_store::Governed {
    store
        .enable_governance(
            &tenant(tenant_id),
            &GovernanceState::initial(t(0)),
            &Settings::default(),
            &default_checklist(),
            &default_rules(),
            "admin",
            t(0),
        )
        .await
        .unwrap()
}

pub async fn action_outcomes_are_recorded_with_their_change_and_read_by_window(store: Store) {
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    let outcome = store
        .apply(
            t(1),
            &[
                acted(
                    "tenant-a",
                    Some(&run),
                    Action::RunStep,
                    Outcome::Succeeded,
                    1_500,
                ),
                acted(
                    "tenant-a",
                    Some(&run),
                    Action::RunStep,
                    Outcome::Failed,
                    500,
                ),
                acted("tenant-b", None, Action::Merge, Outcome::Succeeded, 10),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcome.results, [const { Ok(Applied::Done) }; 3]);
    store
        .apply(
            t(5),
            &[acted(
                "tenant-a",
                Some(&run),
                Action::Merge,
                Outcome::RolledBack,
                20,
            )],
        )
        .await
        .unwrap();
    let a = tenant("tenant-a");

    let all = store.actions(&a, t(0), t(10)).await.unwrap();
    let seen: Vec<(Action, Outcome, u64, i64)> = all
        .iter()
        .map(|s| {
            (
                s.record.action,
                s.record.outcome,
                s.record.duration_ms,
                s.record.at.as_millis(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Action::RunStep, Outcome::Succeeded, 1_500, t(1).as_millis()),
            (Action::RunStep, Outcome::Failed, 500, t(1).as_millis()),
            (Action::Merge, Outcome::RolledBack, 20, t(5).as_millis()),
        ]
    );
    assert_eq!(all[0].run, Some(run.clone()));
    assert_eq!(all[0].deliverable, Some(did("api")));
    assert_eq!(
        (all[0].record.tokens, all[0].record.cost_micro_usd),
        (100, 2_000)
    );
    // The window is (from, to]: a record at `from` is out, one at `to` in.
    assert_eq!(store.actions(&a, t(1), t(5)).await.unwrap().len(), 1);
    assert_eq!(store.actions(&a, t(0), t(1)).await.unwrap().len(), 2);

    let last = store.last_action_seq(&a).await.unwrap();
    assert_eq!(last, all[2].seq);
    let after = store.actions_after(&a, all[0].seq, 10).await.unwrap();
    assert_eq!(
        after.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [all[1].seq, all[2].seq]
    );
    assert!(store.actions_after(&a, last, 10).await.unwrap().is_empty());
    assert_eq!(store.last_action_seq(&tenant("tenant-c")).await.unwrap(), 0);

    assert_eq!(store.latest_action_seq().await.unwrap(), last);
    let (upto, totals) = store.action_totals_after(0).await.unwrap();
    assert_eq!(upto, last);
    assert_eq!(
        totals,
        [
            (a.clone(), Action::Merge, Outcome::RolledBack, 1),
            (a.clone(), Action::RunStep, Outcome::Failed, 1),
            (a.clone(), Action::RunStep, Outcome::Succeeded, 1),
            (tenant("tenant-b"), Action::Merge, Outcome::Succeeded, 1),
        ],
        "by tenant, action and outcome names"
    );
    let (upto, newer) = store.action_totals_after(all[1].seq).await.unwrap();
    assert_eq!(upto, last);
    assert_eq!(
        newer,
        [
            (a.clone(), Action::Merge, Outcome::RolledBack, 1),
            (tenant("tenant-b"), Action::Merge, Outcome::Succeeded, 1),
        ],
        "the third of the first batch, and the later one"
    );
    assert_eq!(
        store.action_totals_after(last).await.unwrap(),
        (last, vec![])
    );

    let counts = store.action_counts(&a, t(0), t(10)).await.unwrap();
    assert_eq!(
        (
            counts.total,
            counts.succeeded,
            counts.failed,
            counts.rolled_back
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(counts.error_rate, 1.0 / 3.0);
    assert_eq!(counts.cost_usd, 0.006);
    assert_eq!(
        store
            .action_counts(&tenant("tenant-b"), t(0), t(10))
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(
        store.action_counts(&a, t(5), t(10)).await.unwrap(),
        WindowMetrics::default()
    );

    // An incident an operator reports: a failed action flagged critical, audited with it.
    let incident = NewAction {
        tenant: a.clone(),
        run: None,
        deliverable: None,
        action: Action::Merge,
        outcome: Outcome::Failed,
        duration_ms: 0,
        tokens: 0,
        cost_micro_usd: 0,
        critical: true,
    };
    store
        .record_incident(&incident, &audit("tenant-a", "critical_incident"), t(7))
        .await
        .unwrap();
    let counts = store.action_counts(&a, t(6), t(10)).await.unwrap();
    assert_eq!(
        (counts.total, counts.failed, counts.critical_incidents),
        (1, 1, 1)
    );
    let trail = store.audit_records(Some(&a), 0, 10).await.unwrap();
    assert_eq!(trail.last().unwrap().action, "critical_incident");
}

pub async fn governance_is_enabled_once_with_its_rules_and_audited(store: Store) {
    let a = tenant("tenant-a");
    assert_eq!(store.governance(&a).await.unwrap(), None);
    assert_eq!(store.policy_stamp(&a).await.unwrap().governance_version, 0);
    let governed = govern(&store, "tenant-a").await;
    assert_eq!(governed.version, 1);
    assert_eq!(store.governance(&a).await.unwrap(), Some(governed.clone()));
    assert_eq!(store.policy_stamp(&a).await.unwrap().governance_version, 1);
    let names: Vec<String> = store
        .breaker_rules(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        [
            "High Error Rate",
            "Repeated Command Failures",
            "Critical Incident",
            "High Rollback Rate"
        ]
    );
    assert_eq!(store.breaker_rules(&a).await.unwrap(), default_rules());

    let again = store
        .enable_governance(
            &a,
            &GovernanceState::initial(t(5)),
            &Settings::default(),
            &default_checklist(),
            &[],
            "admin",
            t(5),
        )
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        "tenant `tenant-a` is governed already; change its settings instead"
    );
    assert_eq!(store.governance(&a).await.unwrap().unwrap().version, 1);
    govern(&store, "tenant-b").await;
    let all: Vec<String> = store
        .governed_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.tenant.to_string())
        .collect();
    assert_eq!(all, ["tenant-a", "tenant-b"]);
    let trail = store.audit_records(Some(&a), 0, 10).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].action, "governance_enabled");
    assert_eq!(trail[0].actor, "admin");
    assert_eq!(trail[0].detail["state"]["currentPhase"], "L3");
}

pub async fn a_governance_change_is_compare_and_set(store: Store) {
    let a = tenant("tenant-a");
    let governed = govern(&store, "tenant-a").await;
    let mut state = governed.state.clone();
    state.current_phase = Phase::L3Plus;
    state.command_whitelist = vec![Action::Provision];
    let settings = Settings {
        auto_approve_low_risk: true,
        ..Settings::default()
    };
    let saved = store
        .save_governance(&a, 1, &state, &settings, &audit("tenant-a", "x"), t(1))
        .await
        .unwrap();
    assert_eq!(saved, Some(2));
    let stale = store
        .save_governance(
            &a,
            1,
            &GovernanceState::initial(t(2)),
            &Settings::default(),
            &audit("tenant-a", "y"),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(stale, None, "written against version 1, now 2");
    let now = store.governance(&a).await.unwrap().unwrap();
    assert_eq!(
        (now.state, now.settings, now.version, now.updated_at),
        (state, settings, 2, t(1))
    );
    let actions: Vec<String> = store
        .audit_records(Some(&a), 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        ["governance_enabled", "x"],
        "the refused one left no record"
    );
    assert_eq!(
        store
            .save_governance(
                &tenant("nobody"),
                0,
                &GovernanceState::initial(t(2)),
                &Settings::default(),
                &audit("nobody", "z"),
                t(2)
            )
            .await
            .unwrap(),
        None
    );
}

pub async fn a_checklist_change_is_compare_and_set_and_audited(store: Store) {
    let a = tenant("tenant-a");
    let governed = govern(&store, "tenant-a").await;
    let mut checklist = governed.checklist.clone();
    checklist.items.truncate(3);
    checklist.items[0].weight = 7;
    let saved = store
        .save_checklist(
            &a,
            governed.version,
            &checklist,
            &audit("tenant-a", "checklist_changed"),
            t(1),
        )
        .await
        .unwrap();
    assert_eq!(saved, Some(governed.version + 1));
    let stale = store
        .save_checklist(
            &a,
            governed.version,
            &governed.checklist,
            &audit("tenant-a", "y"),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(stale, None, "written against the old version");
    let now = store.governance(&a).await.unwrap().unwrap();
    assert_eq!(
        (&now.checklist, now.version, now.state),
        (&checklist, governed.version + 1, governed.state),
        "only the checklist changed"
    );
    let actions: Vec<String> = store
        .audit_records(Some(&a), 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, ["governance_enabled", "checklist_changed"]);
    assert_eq!(
        store
            .save_checklist(
                &tenant("nobody"),
                1,
                &checklist,
                &audit("nobody", "z"),
                t(2)
            )
            .await
            .unwrap(),
        None,
        "not governed"
    );
}

fn rule(name: &str, condition: &str) -> Rule {
    Rule {
        name: name.into(),
        enabled: true,
        condition: condition.into(),
        window: Duration::from_secs(600),
        action: BreakerAction::AlertOnly,
        severity: Severity::Low,
        action_type: Some(Action::Merge),
    }
}

pub async fn rules_are_added_replaced_and_deleted_each_moving_the_version(store: Store) {
    let a = tenant("tenant-a");
    let refused = store
        .add_rule(
            &a,
            &rule("Slow merges", "p95Ms > 60000"),
            &audit("tenant-a", "r"),
            t(1),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "tenant `tenant-a` is not governed; an admin enables governance first"
    );
    govern(&store, "tenant-a").await;
    store
        .add_rule(
            &a,
            &rule("Slow merges", "p95Ms > 60000"),
            &audit("tenant-a", "r"),
            t(1),
        )
        .await
        .unwrap();
    let rules = store.breaker_rules(&a).await.unwrap();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[4], rule("Slow merges", "p95Ms > 60000"));
    assert_eq!(store.governance(&a).await.unwrap().unwrap().version, 2);
    let taken = store
        .add_rule(
            &a,
            &rule("Slow merges", "true"),
            &audit("tenant-a", "r"),
            t(2),
        )
        .await
        .unwrap_err();
    assert_eq!(
        taken.to_string(),
        "tenant `tenant-a` already has a circuit breaker rule named `Slow merges`"
    );
    assert_eq!(store.governance(&a).await.unwrap().unwrap().version, 2);

    let mut changed = rule("Slow merges", "p95Ms > 30000");
    changed.enabled = false;
    store
        .replace_rule(&a, &changed, &audit("tenant-a", "r2"), t(3))
        .await
        .unwrap();
    assert_eq!(store.breaker_rules(&a).await.unwrap()[4], changed);
    let missing = store
        .replace_rule(&a, &rule("Nope", "true"), &audit("tenant-a", "r"), t(3))
        .await
        .unwrap_err();
    assert_eq!(missing.to_string(), "no circuit breaker rule `Nope`");

    store
        .delete_rule(&a, "High Rollback Rate", &audit("tenant-a", "r3"), t(4))
        .await
        .unwrap();
    let names: Vec<String> = store
        .breaker_rules(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        [
            "High Error Rate",
            "Repeated Command Failures",
            "Critical Incident",
            "Slow merges"
        ]
    );
    assert!(
        store
            .delete_rule(&a, "High Rollback Rate", &audit("tenant-a", "r"), t(5))
            .await
            .is_err()
    );
    assert_eq!(store.governance(&a).await.unwrap().unwrap().version, 4);
    // Another tenant's rules are its own.
    govern(&store, "tenant-b").await;
    assert_eq!(
        store.breaker_rules(&tenant("tenant-b")).await.unwrap(),
        default_rules()
    );
}

pub(super) fn trip_event(id: &str, run: Option<&RunId>, effect: Effect, at: i64) -> BreakerEvent {
    BreakerEvent {
        id: id.into(),
        tenant: tenant("tenant-a"),
        rule: "High Error Rate".into(),
        severity: Severity::Critical,
        action: BreakerAction::RevertToL3,
        action_type: None,
        effect,
        metrics: WindowMetrics {
            total: 5,
            failed: 1,
            error_rate: 0.2,
            ..WindowMetrics::default()
        },
        run: run.cloned(),
        at: t(at),
        resolved_at: None,
        resolved_by: None,
        note: None,
    }
}

pub async fn a_trip_changes_the_state_and_records_its_event_audit_and_run_event(store: Store) {
    let a = tenant("tenant-a");
    let run = create(&store, plan("tenant-a", &[("api", &[])])).await;
    let mut governed = govern(&store, "tenant-a").await;
    let mut advanced = governed.state.clone();
    advanced.current_phase = Phase::L3Plus;
    advanced.command_whitelist = vec![Action::Provision];
    governed.version = store
        .save_governance(
            &a,
            1,
            &advanced,
            &governed.settings,
            &audit("tenant-a", "x"),
            t(1),
        )
        .await
        .unwrap()
        .unwrap();
    governed.state = advanced;
    let mut reverted = governed.state.clone();
    reverted.revert_to_l3(t(2));
    let effect = Effect::RevertToL3 {
        from: Phase::L3Plus,
        cleared: vec![Action::Provision],
    };
    let event = trip_event("bke-1", Some(&run), effect.clone(), 2);
    let (version, run_event) = store
        .trip_breaker(&governed, &reverted, &event)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(version, 3);
    let run_event = run_event.unwrap();
    assert_eq!(run_event.kind, EventKind::BreakerTripped);
    assert_eq!(run_event.run_id, run);
    assert_eq!(run_event.data["rule"], "High Error Rate");
    assert_eq!(run_event.data["effect"]["kind"], "revert_to_l3");
    let stored = store.governance(&a).await.unwrap().unwrap();
    assert_eq!(stored.state.current_phase, Phase::L3);
    assert_eq!(stored.state.command_whitelist, []);
    // A trip written against an old version changes nothing.
    assert_eq!(
        store
            .trip_breaker(&governed, &reverted, &trip_event("bke-2", None, effect, 3))
            .await
            .unwrap(),
        None
    );
    assert!(store.breaker_event("bke-2").await.unwrap().is_none());

    let open = store.breaker_events(&a, true, None, 10).await.unwrap();
    assert_eq!(open, std::slice::from_ref(&event));
    assert!(
        store
            .breaker_events(&tenant("tenant-b"), false, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let trail = store.audit_records(Some(&a), 0, 10).await.unwrap();
    let record = trail
        .iter()
        .find(|r| r.action == "breaker_tripped")
        .unwrap();
    assert_eq!(record.actor, "breaker:High Error Rate");
    assert_eq!(record.subject, "bke-1");
    assert_eq!(record.detail["phase"], "L3");
    let kinds: Vec<EventKind> = store
        .events_after(0, &EventFilter::default(), 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::RunStarted, EventKind::BreakerTripped]);

    // An alert of another rule, without a run: no run event.
    let stored = store.governance(&a).await.unwrap().unwrap();
    let alert = BreakerEvent {
        id: "bke-3".into(),
        rule: "High Rollback Rate".into(),
        severity: Severity::Medium,
        action: BreakerAction::AlertOnly,
        ..trip_event("bke-3", None, Effect::Alert, 4)
    };
    let (_, none) = store
        .trip_breaker(&stored, &stored.state, &alert)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(none, None);
    assert_eq!(
        store.breaker_event_totals().await.unwrap(),
        [(Severity::Critical, 1, 1), (Severity::Medium, 1, 1)]
    );

    // Resolving: once, with the state given, audited.
    let stored = store.governance(&a).await.unwrap().unwrap();
    store
        .resolve_breaker_event(&stored, "bke-1", &stored.state, "ops", Some("fixed"), t(5))
        .await
        .unwrap()
        .unwrap();
    let resolved = store.breaker_event("bke-1").await.unwrap().unwrap();
    assert_eq!(
        (
            resolved.resolved_at,
            resolved.resolved_by.as_deref(),
            resolved.note.as_deref()
        ),
        (Some(t(5)), Some("ops"), Some("fixed"))
    );
    let ids: Vec<String> = store
        .breaker_events(&a, true, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["bke-3"]);
    let ids: Vec<String> = store
        .breaker_events(&a, false, Some(t(3)), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["bke-3"], "since t(3): the newer one only");
    let stored = store.governance(&a).await.unwrap().unwrap();
    let again = store
        .resolve_breaker_event(&stored, "bke-1", &stored.state, "ops", None, t(6))
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        format!(
            "circuit breaker event `bke-1` was already resolved at {}",
            t(5)
        )
    );
    // Against a stale version, nothing is resolved.
    let mut stale = stored.clone();
    stale.version -= 1;
    assert_eq!(
        store
            .resolve_breaker_event(&stale, "bke-3", &stale.state, "ops", None, t(6))
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .breaker_event("bke-3")
            .await
            .unwrap()
            .unwrap()
            .is_resolved()
    );
    assert_eq!(
        store.breaker_event_totals().await.unwrap(),
        [(Severity::Critical, 1, 0), (Severity::Medium, 1, 1)]
    );
}
