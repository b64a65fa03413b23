use std::time::Duration;

use super::*;
use crate::breaker::default_rules;
use crate::metrics::tests::{at, record};
use crate::metrics::{Outcome, metrics};
use kamachiq_policy::Action;

const DAY: i64 = 24 * 60 * 60 * 1_000;

fn state_at_l3() -> GovernanceState {
    GovernanceState::initial(at(0))
}

/// Facts that pass every metric item of the default checklist.
fn good_facts(now: Timestamp) -> ReadinessFacts {
    let mut f = ReadinessFacts::new(&state_at_l3(), now);
    f.actions_total = 1_000;
    f.success_rate = 0.999;
    f.error_rate = 0.001;
    f.rollback_rate = 0.0;
    f.approvals_decided = 40;
    f.approval_rate = 0.975;
    f.count_rules(&default_rules());
    f.monitoring_enabled = true;
    f.emergency_stop_exercised = true;
    f
}

fn attested_ids(checklist: &Checklist) -> Vec<String> {
    checklist
        .items
        .iter()
        .filter(|i| i.check == Check::Attested)
        .map(|i| i.id.clone())
        .collect()
}

fn attest(item: &str, t: Timestamp) -> Attestation {
    Attestation {
        item: item.into(),
        by: "ana".into(),
        evidence: format!("{item} done"),
        at: t,
    }
}

/// Attestations of every attested item of the default checklist but `except`.
fn attestations(except: &[&str], t: Timestamp) -> Vec<Attestation> {
    attested_ids(&default_checklist())
        .iter()
        .filter(|id| !except.contains(&id.as_str()))
        .map(|id| attest(id, t))
        .collect()
}

fn failing(a: &Assessment) -> Vec<&str> {
    a.items
        .iter()
        .filter(|i| !i.passed)
        .map(|i| i.id.as_str())
        .collect()
}

#[test]
fn the_default_checklist_is_80_points_in_three_categories() {
    let c = default_checklist();
    assert_eq!(c.check(), Ok(()));
    assert_eq!(
        c.max_points(),
        BTreeMap::from([
            (Category::Technical, 35),
            (Category::Process, 25),
            (Category::Organizational, 20)
        ])
    );
    let table: Vec<(&str, u32, bool, Option<&str>)> = c
        .items
        .iter()
        .map(|i| {
            let condition = match &i.check {
                Check::Metric { condition } => Some(condition.as_str()),
                Check::Attested => None,
            };
            (i.id.as_str(), i.weight, i.required, condition)
        })
        .collect();
    assert_eq!(
        table,
        [
            ("tech.success_rate", 6, true, Some("successRate >= 0.995")),
            ("tech.error_rate", 5, true, Some("errorRate <= 0.005")),
            ("tech.rollback_rate", 4, false, Some("rollbackRate <= 0.02")),
            (
                "tech.no_critical_incidents",
                5,
                true,
                Some("criticalIncidents == 0")
            ),
            ("tech.volume", 4, true, Some("actionsTotal >= 100")),
            (
                "tech.breakers",
                4,
                true,
                Some("revertRulesEnabled >= 1 && breakerRulesEnabled >= 3")
            ),
            ("tech.monitoring", 4, false, Some("monitoringEnabled")),
            ("tech.rollback_rehearsed", 3, false, None),
            (
                "process.time_in_phase",
                5,
                true,
                Some("daysInPhase >= minDaysInPhase")
            ),
            (
                "process.breaker_events_resolved",
                5,
                true,
                Some("unresolvedBreakerEvents == 0")
            ),
            (
                "process.approval_rate",
                4,
                false,
                Some("approvalRate >= 0.95")
            ),
            (
                "process.emergency_stop",
                4,
                true,
                Some("emergencyStopExercised")
            ),
            ("process.runbook", 3, true, None),
            ("process.incident_drill", 4, false, None),
            ("org.on_call", 6, true, None),
            ("org.stakeholder_signoff", 6, true, None),
            ("org.escalation_contacts", 4, false, None),
            ("org.approver_training", 4, false, None),
        ]
    );
}

#[test]
fn everything_passing_is_ready_with_full_marks() {
    let now = at(DAY);
    let a = assess(
        &default_checklist(),
        &good_facts(now),
        &attestations(&[], at(1)),
        now,
    );
    assert_eq!(failing(&a), Vec::<&str>::new());
    assert_eq!((a.points, a.max_points, a.score), (80, 80, 1.0));
    assert_eq!(a.status, Status::Ready);
    assert_eq!(a.overall.score, 1.0);
    assert_eq!(a.overall.blockers, Vec::<String>::new());
    assert_eq!(a.phase, Phase::L3);
    assert_eq!(a.assessed_at, now);
    let cats: Vec<(Category, u32, u32, f64)> = a
        .categories
        .iter()
        .map(|c| (c.name, c.points, c.max_points, c.score))
        .collect();
    assert_eq!(
        cats,
        [
            (Category::Technical, 35, 35, 1.0),
            (Category::Process, 25, 25, 1.0),
            (Category::Organizational, 20, 20, 1.0)
        ]
    );
}

#[test]
fn status_bands_are_exact_at_their_edges() {
    let now = at(DAY);
    let cases: [(&[&str], u32, Status); 5] = [
        (&["tech.rollback_rehearsed"], 77, Status::Ready),
        (&["org.approver_training"], 76, Status::Ready),
        (
            &["tech.rollback_rehearsed", "org.approver_training"],
            73,
            Status::AlmostReady,
        ),
        (
            &["org.escalation_contacts", "org.approver_training"],
            72,
            Status::AlmostReady,
        ),
        (
            &[
                "tech.rollback_rehearsed",
                "org.escalation_contacts",
                "org.approver_training",
            ],
            69,
            Status::NeedsWork,
        ),
    ];
    for (missing, points, status) in cases {
        let a = assess(
            &default_checklist(),
            &good_facts(now),
            &attestations(missing, at(1)),
            now,
        );
        assert_eq!((a.points, a.status), (points, status), "{missing:?}");
        assert_eq!(a.score, f64::from(points) / 80.0);
        assert!(a.overall.blockers.is_empty());
    }
    let a = assess(
        &default_checklist(),
        &good_facts(now),
        &attestations(&["org.approver_training"], at(1)),
        now,
    );
    assert_eq!(a.score, 0.95, "76 of 80 is exactly the threshold");
    assert!(a.reaches_ready());
}

#[test]
fn a_failing_required_item_needs_work_even_at_a_high_score() {
    let now = at(DAY);
    let a = assess(
        &default_checklist(),
        &good_facts(now),
        &attestations(&["process.runbook"], at(1)),
        now,
    );
    assert_eq!((a.points, a.score), (77, 77.0 / 80.0));
    assert!(a.reaches_ready());
    assert_eq!(a.status, Status::NeedsWork);
    assert_eq!(
        a.overall.blockers,
        [
            "Required: The operator runbook was reviewed for the next phase: not attested since L3 \
          started at 2027-01-15T08:00:00.000Z"
        ]
    );
    let item = a.items.iter().find(|i| i.id == "process.runbook").unwrap();
    assert_eq!((item.passed, item.source), (false, Source::Missing));
}

#[test]
fn metric_items_give_the_values_they_read_as_evidence() {
    let now = at(DAY);
    let mut facts = good_facts(now);
    facts.success_rate = 0.98;
    facts.error_rate = 0.02;
    facts.monitoring_enabled = false;
    let a = assess(&default_checklist(), &facts, &attestations(&[], at(1)), now);
    assert_eq!(
        failing(&a),
        ["tech.success_rate", "tech.error_rate", "tech.monitoring"]
    );
    assert_eq!(a.points, 80 - 6 - 5 - 4);
    assert_eq!(
        a.overall.blockers,
        [
            "Required: At least 99.5% of automated actions succeed: not met (successRate = 0.98)",
            "Required: At most 0.5% of automated actions fail: not met (errorRate = 0.02)",
        ]
    );
    let breakers = a.items.iter().find(|i| i.id == "tech.breakers").unwrap();
    assert_eq!(
        (breakers.passed, breakers.source, breakers.evidence.as_str()),
        (
            true,
            Source::Metric,
            "breakerRulesEnabled = 4, revertRulesEnabled = 2"
        )
    );
    let tech = &a.categories[0];
    assert_eq!((tech.points, tech.max_points), (20, 35));
    assert_eq!(tech.score, 20.0 / 35.0);
}

#[test]
fn attestations_count_only_within_the_current_phase() {
    let now = at(10 * DAY);
    let mut state = state_at_l3();
    state.phase_started_at = at(5 * DAY);
    let mut facts = good_facts(now);
    facts.phase_started_at = state.phase_started_at;
    let id = "org.on_call";
    let judged = |given: Vec<Attestation>| {
        let mut all = attestations(&[id], at(6 * DAY));
        all.extend(given);
        let a = assess(&default_checklist(), &facts, &all, now);
        let item = a.items.iter().find(|i| i.id == id).unwrap().clone();
        (item.passed, item.source, item.evidence)
    };
    assert!(!judged(vec![]).0);
    assert!(
        !judged(vec![attest(id, at(5 * DAY - 1))]).0,
        "given before the phase started"
    );
    assert_eq!(
        judged(vec![attest(id, at(5 * DAY))]),
        (
            true,
            Source::Attested,
            "attested by ana at 2027-01-20T08:00:00.000Z: org.on_call done".into()
        ),
        "given the instant the phase started"
    );
    assert!(judged(vec![attest(id, now)]).0);
    assert!(
        !judged(vec![attest(id, at(10 * DAY + 1))]).0,
        "given after now"
    );
    let mut older = attest(id, at(6 * DAY));
    older.evidence = "rota v1".into();
    let mut newer = attest(id, at(7 * DAY));
    newer.evidence = "rota v2".into();
    newer.by = "bo".into();
    assert_eq!(
        judged(vec![newer, older]).2,
        "attested by bo at 2027-01-22T08:00:00.000Z: rota v2",
        "the latest counts"
    );
}

#[test]
fn attesting_a_metric_item_does_not_overrule_it() {
    let now = at(DAY);
    let mut facts = good_facts(now);
    facts.emergency_stop_exercised = false;
    let mut given = attestations(&[], at(1));
    given.push(attest("process.emergency_stop", at(1)));
    given.push(attest("no.such.item", at(1)));
    let a = assess(&default_checklist(), &facts, &given, now);
    assert_eq!(failing(&a), ["process.emergency_stop"]);
    let item = a
        .items
        .iter()
        .find(|i| i.id == "process.emergency_stop")
        .unwrap();
    assert_eq!(item.source, Source::Metric);
    assert_eq!(item.evidence, "emergencyStopExercised = false");
}

#[test]
fn a_broken_condition_fails_its_item_with_the_error_as_evidence() {
    let checklist = Checklist {
        items: vec![Item {
            id: "x".into(),
            category: Category::Process,
            title: "X holds".into(),
            weight: 2,
            required: true,
            check: Check::Metric {
                condition: "actionsTotal > 0 ? actionsTotal : false".into(),
            },
        }],
    };
    assert_eq!(
        checklist.check(),
        Ok(()),
        "it parses, reads a known variable, and gives a bool on the sample facts"
    );
    let mut plain = checklist.clone();
    plain.items[0].check = Check::Metric {
        condition: "actionsTotal".into(),
    };
    assert_eq!(
        plain.check().unwrap_err().to_string(),
        "readiness item `x`: condition `actionsTotal` gave Int(0), not a bool",
        "refused when written"
    );
    let now = at(DAY);
    let a = assess(&checklist, &good_facts(now), &[], now);
    assert_eq!(
        (a.points, a.max_points, a.status),
        (0, 2, Status::NeedsWork)
    );
    assert_eq!(
        a.items[0].evidence,
        "readiness item `x`: condition `actionsTotal > 0 ? actionsTotal : false` gave Int(1000), \
         not a bool"
    );
    assert_eq!(a.categories.len(), 1, "only categories with items");
    assert_eq!(a.categories[0].name, Category::Process);
}

#[test]
fn check_refuses_bad_checklists() {
    let item = |id: &str, weight, condition: &str| Item {
        id: id.into(),
        category: Category::Technical,
        title: "t".into(),
        weight,
        required: false,
        check: Check::Metric {
            condition: condition.into(),
        },
    };
    let check = |items| Checklist { items }.check();
    assert_eq!(
        check(vec![]).unwrap_err().to_string(),
        "a readiness checklist has between 1 and 200 items, not 0"
    );
    assert_eq!(
        check(
            (0..201)
                .map(|i| item(&format!("i{i}"), 1, "true"))
                .collect()
        )
        .unwrap_err()
        .to_string(),
        "a readiness checklist has between 1 and 200 items, not 201"
    );
    assert_eq!(
        check(vec![item("a", 1, "true"), item("a", 2, "true")])
            .unwrap_err()
            .to_string(),
        "readiness item `a`: the id is used by another item"
    );
    assert_eq!(
        check(vec![item("a", 1, "true"), item(" ", 1, "true")])
            .unwrap_err()
            .to_string(),
        "readiness item `#2`: the id must not be empty"
    );
    assert_eq!(
        check(vec![item("a", 0, "true")]).unwrap_err().to_string(),
        "readiness item `a`: the weight must be between 1 and 1000"
    );
    assert_eq!(
        check(vec![item("a", 1001, "true")])
            .unwrap_err()
            .to_string(),
        "readiness item `a`: the weight must be between 1 and 1000"
    );
    assert_eq!(check(vec![item("a", 1000, "true")]), Ok(()));
    let mut untitled = item("a", 1, "true");
    untitled.title = String::new();
    assert_eq!(
        check(vec![untitled]).unwrap_err().to_string(),
        "readiness item `a`: the title must not be empty"
    );
    assert_eq!(
        check(vec![item("a", 1, "errorRate < 0.1 && uptime > 0.99")]),
        Err(Error::UnknownVariables {
            owner: Owner::Item("a".into()),
            condition: "errorRate < 0.1 && uptime > 0.99".into(),
            names: vec!["uptime".into()],
            known: variables().to_vec(),
        })
    );
    assert!(matches!(
        check(vec![item("a", 1, "successRate >=")]),
        Err(Error::ConditionSyntax { .. })
    ));
}

#[test]
fn facts_come_from_the_state_the_metrics_and_the_rules() {
    let mut state = state_at_l3();
    state.current_phase = Phase::L4;
    state.phase_started_at = at(0);
    let f = ReadinessFacts::new(&state, at(3 * DAY - 1));
    assert_eq!(
        (f.phase, f.days_in_phase, f.min_days_in_phase),
        (Phase::L4, 2, 21)
    );
    assert_eq!(f.approval_rate, 1.0);
    assert_eq!(ReadinessFacts::new(&state, at(3 * DAY)).days_in_phase, 3);
    assert_eq!(
        ReadinessFacts::new(&state_at_l3(), at(0)).min_days_in_phase,
        0
    );

    let mut f = ReadinessFacts::new(&state, at(DAY));
    let mut records = vec![
        record(Action::RunStep, Outcome::Succeeded, 1),
        record(Action::RunStep, Outcome::Failed, 2),
        record(Action::Merge, Outcome::RolledBack, 3),
        record(Action::Merge, Outcome::Succeeded, 4),
    ];
    records[0].critical = true;
    f.observe(&metrics(&records, at(0), at(DAY)));
    assert_eq!(f.actions_total, 4);
    assert_eq!(
        (f.success_rate, f.error_rate, f.rollback_rate),
        (0.5, 0.25, 0.25)
    );
    assert_eq!(f.critical_incidents, 1);

    let mut rules = default_rules();
    rules[0].enabled = false;
    f.count_rules(&rules);
    assert_eq!((f.breaker_rules_enabled, f.revert_rules_enabled), (3, 1));
}

#[test]
fn assessments_use_the_contract_json_names() {
    let now = at(DAY);
    let a = assess(
        &default_checklist(),
        &good_facts(now),
        &attestations(&["org.on_call"], at(1)),
        now,
    );
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["score"], 74.0 / 80.0);
    assert_eq!(json["points"], 74);
    assert_eq!(json["maxPoints"], 80);
    assert_eq!(json["status"], "needs_work");
    assert_eq!(json["phase"], "L3");
    assert_eq!(json["assessedAt"], "2027-01-16T08:00:00.000Z");
    assert_eq!(json["overall"]["blockers"].as_array().unwrap().len(), 1);
    assert_eq!(json["categories"][2]["name"], "organizational");
    assert_eq!(json["categories"][2]["maxPoints"], 20);
    let on_call = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "org.on_call")
        .unwrap();
    assert_eq!(on_call["source"], "missing");
    assert_eq!(on_call["passed"], false);
    let back: Assessment = serde_json::from_value(json).unwrap();
    assert_eq!(back, a);

    let checklist_json = serde_json::to_value(default_checklist()).unwrap();
    assert_eq!(
        checklist_json["items"][0]["check"],
        serde_json::json!({"kind": "metric", "condition": "successRate >= 0.995"})
    );
    assert_eq!(
        checklist_json["items"][7]["check"],
        serde_json::json!({"kind": "attested"})
    );
    let back: Checklist = serde_json::from_value(checklist_json).unwrap();
    assert_eq!(back, default_checklist());
}

#[test]
fn time_in_phase_is_measured_in_whole_days() {
    let mut state = state_at_l3();
    state.current_phase = Phase::L3Plus;
    let checklist = Checklist {
        items: vec![Item {
            id: "time".into(),
            category: Category::Process,
            title: "Validated".into(),
            weight: 1,
            required: true,
            check: Check::Metric {
                condition: "daysInPhase >= minDaysInPhase".into(),
            },
        }],
    };
    let judged = |now| {
        let facts = ReadinessFacts::new(&state, now);
        assess(&checklist, &facts, &[], now).items[0].passed
    };
    assert!(!judged(
        at(0).plus(Duration::from_millis(14 * DAY as u64 - 1))
    ));
    assert!(judged(at(14 * DAY)));
}
