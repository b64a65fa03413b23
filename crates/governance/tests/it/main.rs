//! The seed runbook (autonomy governance) walked at the level of this crate: a tenant at L3, a
//! healthy week, readiness reaching 95% with attestations, a proposal to L3+ approved by a tech
//! lead, the phase advanced, then the circuit breakers: a burst of failures reverts to L3, one
//! failing action type is paused, a rollback rate raises an alert.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kamachiq_domain::{Role, Timestamp};
use kamachiq_governance::approval::Subject;
use kamachiq_governance::metrics::metrics;
use kamachiq_governance::proposal::ProposalStatus;
use kamachiq_governance::*;
use kamachiq_policy::{Action, Risk, Verdict};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Monday 2027-01-04, 09:00 UTC.
const MONDAY: i64 = 1_799_053_200_000;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(MONDAY + ms)
}

fn done(action: Action, outcome: Outcome, t: i64) -> ActionRecord {
    ActionRecord {
        action,
        outcome,
        duration_ms: 40_000,
        tokens: 12_000,
        cost_micro_usd: 90_000,
        critical: false,
        at: at(t),
    }
}

/// The tenant as the engine would hold it.
struct Tenant {
    state: GovernanceState,
    rules: Vec<Rule>,
    breakers: Breakers,
    recent: Recent,
    history: Vec<ActionRecord>,
    unresolved_events: Vec<Trip>,
}

impl Tenant {
    fn new() -> Self {
        let rules = default_rules();
        for rule in &rules {
            rule.check().unwrap();
        }
        let horizon = breaker::horizon_for(&rules).max(Duration::from_secs(24 * 3_600));
        Self {
            state: GovernanceState::initial(at(0)),
            rules,
            breakers: Breakers::new(),
            recent: Recent::new(horizon),
            history: Vec::new(),
            unresolved_events: Vec::new(),
        }
    }

    /// Records an action and runs every breaker, as the engine does after each action; applies
    /// what trips and returns it.
    fn record(&mut self, record: ActionRecord) -> Vec<(Trip, Effect)> {
        let now = record.at;
        self.history.push(record.clone());
        self.recent.push(record);
        self.recent.prune(now);
        let evaluation = self.breakers.evaluate_all(&self.rules, &self.recent, now);
        assert_eq!(evaluation.errors, []);
        let mut out = Vec::new();
        for trip in evaluation.trips {
            let effect = effect(&self.state, &trip);
            self.state.apply(&effect, now);
            self.unresolved_events.push(trip.clone());
            out.push((trip, effect));
        }
        out
    }

    fn facts(&self, now: Timestamp) -> ReadinessFacts {
        let mut facts = ReadinessFacts::new(&self.state, now);
        facts.observe(&metrics(&self.history, self.state.phase_started_at, now));
        facts.count_rules(&self.rules);
        facts.unresolved_breaker_events = self.unresolved_events.len() as u32;
        facts.approvals_decided = 25;
        facts.approval_rate = 24.0 / 25.0;
        facts.monitoring_enabled = true;
        facts.emergency_stop_exercised = true;
        facts
    }
}

fn attest(item: &str, by: &str, t: i64) -> Attestation {
    Attestation {
        item: item.to_owned(),
        by: by.to_owned(),
        evidence: format!("see wiki/{item}"),
        at: at(t),
    }
}

fn names(trips: &[(Trip, Effect)]) -> Vec<(&str, Option<Action>)> {
    trips
        .iter()
        .map(|(t, _)| (t.rule.name.as_str(), t.action_type))
        .collect()
}

#[test]
fn the_seed_runbook_from_l3_to_l3_plus_and_back() {
    let mut tenant = Tenant::new();
    let state_json = |t: &Tenant| serde_json::to_value(&t.state).unwrap();
    assert_eq!(state_json(&tenant)["currentPhase"], "L3");
    assert_eq!(
        state_json(&tenant)["commandWhitelist"],
        serde_json::json!([])
    );

    // At L3 with an empty whitelist every action waits for a person.
    let ask = |state: &GovernanceState, action| {
        needs_approval(
            state,
            &Subject {
                action,
                risk: Risk::Low,
                verdict: Verdict::Allow,
            },
            Risk::High,
        )
    };
    assert!(matches!(
        ask(&tenant.state, Action::Provision),
        Requirement::Approval {
            cause: Cause::NotWhitelisted,
            ..
        }
    ));

    // A healthy week: an action every 10 minutes, all of them fine. (With traffic this sparse a
    // single failure is the only action in its 5-minute window, an error rate of 100%, and the
    // seed's "High Error Rate" rule would revert: see `default_rules`.)
    for i in 0..(7 * 24 * 6) {
        let t = (i + 1) * 10 * MINUTE;
        let action = Action::ALL[(i % 3) as usize];
        assert_eq!(
            names(&tenant.record(done(action, Outcome::Succeeded, t))),
            []
        );
    }
    let friday = at(7 * DAY);
    let week = metrics(&tenant.history, at(0), friday);
    assert_eq!((week.total, week.succeeded, week.failed), (1_008, 1_008, 0));
    assert_eq!(week.success_rate, 1.0);

    // Morning check: readiness without attestations needs work, three blockers.
    let checklist = default_checklist();
    let facts = tenant.facts(friday);
    let before = assess(&checklist, &facts, &[], friday);
    assert_eq!((before.points, before.status), (50, Status::NeedsWork));
    assert_eq!(
        before.overall.blockers,
        [
            "Required: The operator runbook was reviewed for the next phase: not attested since \
             L3 started at 2027-01-04T09:00:00.000Z",
            "Required: An on-call rota covers the hours automation runs: not attested since L3 \
             started at 2027-01-04T09:00:00.000Z",
            "Required: Stakeholders signed off on expanding autonomy: not attested since L3 \
             started at 2027-01-04T09:00:00.000Z",
        ]
    );

    // Attestations through the week bring it to exactly 95% (approver training is missing).
    let attestations = vec![
        attest("tech.rollback_rehearsed", "ops.ines", 2 * DAY),
        attest("process.runbook", "ops.ines", 3 * DAY),
        attest("process.incident_drill", "ops.ines", 4 * DAY),
        attest("org.on_call", "lead.ana", 4 * DAY),
        attest("org.stakeholder_signoff", "exec.eva", 6 * DAY),
        attest("org.escalation_contacts", "lead.ana", 6 * DAY),
    ];
    let ready = assess(&checklist, &facts, &attestations, friday);
    assert_eq!((ready.points, ready.max_points), (76, 80));
    assert_eq!(ready.score, 0.95);
    assert_eq!(ready.status, Status::Ready);
    assert_eq!(ready.overall.blockers, Vec::<String>::new());

    // Friday: the weekly cycle recommends expanding and drafts the proposal.
    let snapshot = Snapshot {
        state: &tenant.state,
        assessment: &ready,
        metrics: &week,
        unresolved_events: 0,
        pending_proposal: false,
        now: friday,
    };
    let report = cycle::run(&snapshot);
    assert_eq!(report.recommendation.kind, RecommendationKind::Expand);
    let draft = report.proposal.unwrap();
    assert_eq!(
        serde_json::to_value(&draft).unwrap(),
        serde_json::json!({
            "fromPhase": "L3", "targetPhase": "L3+", "whitelistAdd": ["provision"],
            "risk": "low", "validationDays": 14, "requiredApprovers": ["tech-lead"]
        })
    );
    let pending = Snapshot {
        pending_proposal: true,
        ..snapshot
    };
    assert_eq!(
        recommend(&pending).kind,
        RecommendationKind::Maintain,
        "no second proposal while one waits"
    );

    // Approvals: not the requester, not an ops lead; a tech lead completes it.
    let mut approvals = ProposalApprovals::new(&draft, "ops.ines");
    assert_eq!(
        approvals.approve("ops.ines", &[Role::Operator, Role::TechLead], None, friday),
        Err(ApprovalRefused::Requester {
            by: "ops.ines".into()
        })
    );
    assert_eq!(
        approvals.approve("ops.otto", &[Role::OpsLead], None, friday),
        Err(ApprovalRefused::NoRequiredRole {
            by: "ops.otto".into(),
            required: vec![Role::TechLead]
        })
    );
    assert_eq!(approvals.status(), ProposalStatus::Pending);
    assert_eq!(
        approvals.approve(
            "lead.ana",
            &[Role::TechLead],
            Some("week looks clean"),
            friday
        ),
        Ok(ApprovalOutcome::Complete {
            role: Role::TechLead
        })
    );
    assert!(approvals.is_complete());

    // The phase advances; provisioning now runs unattended.
    let advanced_at = at(7 * DAY + HOUR);
    tenant.state.advance(&draft, advanced_at).unwrap();
    assert_eq!(state_json(&tenant)["currentPhase"], "L3+");
    assert_eq!(
        state_json(&tenant)["commandWhitelist"],
        serde_json::json!(["provision"])
    );
    assert_eq!(
        tenant.state.validation_ends_at,
        Some(at(21 * DAY + HOUR)),
        "14 days of validation"
    );
    assert_eq!(ask(&tenant.state, Action::Provision), Requirement::Auto);
    assert!(matches!(
        ask(&tenant.state, Action::Merge),
        Requirement::Approval {
            cause: Cause::NotWhitelisted,
            ..
        }
    ));

    // A burst of provisioning failures: the error rate trips "High Error Rate" (revert to L3)
    // and the same failures trip "Repeated Command Failures" for provision (pause).
    let burst = 8 * DAY;
    let mut tripped = Vec::new();
    for i in 0..4 {
        tripped.extend(tenant.record(done(
            Action::Provision,
            Outcome::Succeeded,
            burst + i * MINUTE / 4,
        )));
    }
    assert_eq!(tripped.len(), 0);
    tripped.extend(tenant.record(done(Action::Provision, Outcome::Failed, burst + MINUTE)));
    assert_eq!(
        names(&tripped),
        [("High Error Rate", None)],
        "1 of 5 is 20%"
    );
    let (trip, effect) = &tripped[0];
    assert_eq!(trip.metrics.total, 5);
    assert_eq!(trip.metrics.error_rate, 0.2);
    assert_eq!(
        effect,
        &Effect::RevertToL3 {
            from: Phase::L3Plus,
            cleared: vec![Action::Provision]
        }
    );
    assert_eq!(state_json(&tenant)["currentPhase"], "L3");
    assert_eq!(
        state_json(&tenant)["commandWhitelist"],
        serde_json::json!([])
    );
    assert_eq!(tenant.state.phase_started_at, at(burst + MINUTE));
    assert_ne!(ask(&tenant.state, Action::Provision), Requirement::Auto);

    let more: Vec<(Trip, Effect)> = (2..4)
        .flat_map(|i| tenant.record(done(Action::Provision, Outcome::Failed, burst + i * MINUTE)))
        .collect();
    assert_eq!(
        names(&more),
        [
            ("High Error Rate", None),
            ("High Error Rate", None),
            ("Repeated Command Failures", Some(Action::Provision)),
        ],
        "the error rate is still high; the third failure pauses provisioning"
    );
    assert_eq!(
        more[2].1,
        Effect::Pause {
            action: Action::Provision,
            already_paused: false
        }
    );
    assert_eq!(tenant.state.paused_actions, [Action::Provision]);
    assert!(matches!(
        ask(&tenant.state, Action::Provision),
        Requirement::Approval {
            cause: Cause::Paused,
            ..
        }
    ));

    // With breaker events unresolved the cycle says investigate; the L3 phase restarted, so
    // last week's attestations no longer count either.
    let later = at(burst + HOUR);
    let facts = tenant.facts(later);
    assert_eq!(facts.unresolved_breaker_events, 4);
    let after = assess(&checklist, &facts, &attestations, later);
    assert_eq!(after.status, Status::NeedsWork);
    let incident_week = metrics(&tenant.history, at(burst), later);
    let snapshot = Snapshot {
        state: &tenant.state,
        assessment: &after,
        metrics: &incident_week,
        unresolved_events: facts.unresolved_breaker_events,
        pending_proposal: false,
        now: later,
    };
    let r = recommend(&snapshot);
    assert_eq!(r.kind, RecommendationKind::Investigate);
    assert_eq!(r.reasons[0], "4 circuit breaker event(s) are unresolved");
    assert!(propose(&snapshot).is_err());

    // Events resolved and provisioning resumed after the fix.
    tenant.unresolved_events.clear();
    assert!(tenant.state.resume(Action::Provision));

    // One action type failing among many healthy ones: the error rate stays low, only the
    // failing type is paused.
    let quiet = 9 * DAY;
    let mut trips = Vec::new();
    for i in 0..60 {
        trips.extend(tenant.record(done(Action::Merge, Outcome::Succeeded, quiet + i * 1_000)));
    }
    for i in 0..3 {
        trips.extend(tenant.record(done(Action::RunStep, Outcome::Failed, quiet + MINUTE + i)));
    }
    assert_eq!(
        names(&trips),
        [("Repeated Command Failures", Some(Action::RunStep))]
    );
    assert_eq!(trips[0].0.metrics.failed, 3);
    assert_eq!(tenant.state.paused_actions, [Action::RunStep]);
    assert_eq!(tenant.state.current_phase, Phase::L3);

    // Rollbacks above 10% in 15 minutes: an alert, and nothing changes.
    let rollbacks = 10 * DAY;
    let before_alert = tenant.state.clone();
    let mut trips = Vec::new();
    for i in 0..18 {
        trips.extend(tenant.record(done(
            Action::Merge,
            Outcome::Succeeded,
            rollbacks + i * MINUTE / 2,
        )));
    }
    for i in 0..2 {
        trips.extend(tenant.record(done(
            Action::Merge,
            Outcome::RolledBack,
            rollbacks + 10 * MINUTE + i,
        )));
    }
    assert_eq!(names(&trips), [], "2 of 20 is 10%, not above");
    trips.extend(tenant.record(done(
        Action::Merge,
        Outcome::RolledBack,
        rollbacks + 11 * MINUTE,
    )));
    assert_eq!(names(&trips), [("High Rollback Rate", None)]);
    assert_eq!(trips[0].1, Effect::Alert);
    assert_eq!(trips[0].0.rule.severity, Severity::Medium);
    assert_eq!(trips[0].0.metrics.rolled_back, 3);
    assert_eq!(tenant.state, before_alert);
}

#[test]
fn an_attestation_from_the_previous_phase_does_not_carry_over() {
    let mut state = GovernanceState::initial(at(0));
    let draft = ProposalDraft {
        from_phase: Phase::L3,
        target_phase: Phase::L3Plus,
        whitelist_add: vec![Action::Provision],
        risk: Risk::Low,
        validation_days: 14,
        required_approvers: vec![Role::TechLead],
    };
    state.advance(&draft, at(DAY)).unwrap();
    let checklist = default_checklist();
    let now = at(2 * DAY);
    let facts = ReadinessFacts::new(&state, now);
    let on_call = |t| {
        let a = assess(
            &checklist,
            &facts,
            &[attest("org.on_call", "lead.ana", t)],
            now,
        );
        a.items
            .iter()
            .find(|i| i.id == "org.on_call")
            .unwrap()
            .passed
    };
    assert!(!on_call(DAY - 1));
    assert!(on_call(DAY));
}

#[test]
fn rule_errors_are_reported_not_tripped() {
    let syntax = Rule {
        name: "Broken".into(),
        enabled: true,
        condition: "errorRate >> 2".into(),
        window: Duration::from_secs(300),
        action: BreakerAction::RevertToL3,
        severity: Severity::Critical,
        action_type: None,
    };
    let Err(Error::ConditionSyntax { message, .. }) = syntax.check() else {
        panic!("a syntax error must be reported");
    };
    assert!(message.starts_with("ERROR: <input>:1:"), "{message}");

    let unknown = Rule {
        condition: "errors > 2".into(),
        ..syntax.clone()
    };
    let err = unknown.check().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "circuit breaker rule `Broken`: condition `errors > 2` uses unknown variable(s) \
             errors; known: {}",
            breaker::variables().join(", ")
        )
    );

    let mut recent = Recent::new(Duration::from_secs(3_600));
    recent.push(done(Action::RunStep, Outcome::Failed, MINUTE));
    let out = Breakers::new().evaluate_all(&[syntax, unknown], &recent, at(2 * MINUTE));
    assert_eq!(out.trips, []);
    assert_eq!(out.errors.len(), 2);
}
