use super::*;
use crate::metrics::tests::{MIN, at, record};
use crate::metrics::{ActionRecord, Outcome};

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

fn rule(condition: &str, action: BreakerAction) -> Rule {
    Rule {
        name: "r".into(),
        enabled: true,
        condition: condition.into(),
        window: mins(5),
        action,
        severity: Severity::High,
        action_type: None,
    }
}

fn recent(records: impl IntoIterator<Item = ActionRecord>) -> Recent {
    let mut recent = Recent::new(mins(60));
    for r in records {
        recent.push(r);
    }
    recent
}

fn default_rule(name: &str) -> Rule {
    default_rules()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap()
}

#[test]
fn the_default_rules_are_the_seeds() {
    let table: Vec<(String, String, String, BreakerAction, Severity, bool)> = default_rules()
        .into_iter()
        .map(|r| {
            (
                r.name,
                r.condition,
                crate::window::format(r.window),
                r.action,
                r.severity,
                r.enabled && r.action_type.is_none(),
            )
        })
        .collect();
    let row = |n: &str, c: &str, w: &str, a, s| (n.into(), c.into(), w.into(), a, s, true);
    assert_eq!(
        table,
        [
            row(
                "High Error Rate",
                "errorRate > 0.05",
                "5m",
                BreakerAction::RevertToL3,
                Severity::Critical
            ),
            row(
                "Repeated Command Failures",
                "failed >= 3",
                "5m",
                BreakerAction::PauseCommandType,
                Severity::High
            ),
            row(
                "Critical Incident",
                "criticalIncidents > 0",
                "1m",
                BreakerAction::RevertToL3,
                Severity::Critical
            ),
            row(
                "High Rollback Rate",
                "rollbackRate > 0.10",
                "15m",
                BreakerAction::AlertOnly,
                Severity::Medium
            ),
        ]
    );
    for r in default_rules() {
        assert_eq!(r.check(), Ok(()), "{}", r.name);
    }
    assert_eq!(horizon_for(&default_rules()), mins(15));
    assert_eq!(horizon_for(&[]), Duration::ZERO);
}

#[test]
fn rules_read_and_write_the_seed_json() {
    let json = serde_json::to_value(default_rule("High Error Rate")).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "name": "High Error Rate", "enabled": true, "condition": "errorRate > 0.05",
            "window": "5m", "action": "revert_to_l3", "alertSeverity": "critical"
        })
    );
    let parsed: Rule = serde_json::from_value(serde_json::json!({
        "name": "Merge failures", "condition": "failed >= 2", "window": "1h",
        "action": "pause_command_type", "severity": "high", "actionType": "merge"
    }))
    .unwrap();
    assert!(parsed.enabled, "enabled by default");
    assert_eq!(parsed.window, mins(60));
    assert_eq!(parsed.severity, Severity::High);
    assert_eq!(parsed.action_type, Some(Action::Merge));
    assert_eq!(
        serde_json::to_value(&parsed).unwrap()["actionType"],
        "merge"
    );

    let err = serde_json::from_value::<Rule>(serde_json::json!({
        "name": "x", "condition": "true", "window": "5 minutes",
        "action": "alert_only", "alertSeverity": "low"
    }))
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid window `5 minutes`: expected a whole number before the unit"),
        "{err}"
    );
    let err = serde_json::from_value::<Rule>(serde_json::json!({
        "name": "x", "condition": "true", "window": "5m", "action": "alert_only",
        "alertSeverity": "low", "threshold": 3
    }))
    .unwrap_err();
    assert!(
        err.to_string().starts_with("unknown field `threshold`"),
        "{err}"
    );
}

#[test]
fn check_refuses_bad_names() {
    let mut r = rule("true", BreakerAction::AlertOnly);
    r.name = "  ".into();
    assert_eq!(
        r.check(),
        Err(Error::RuleName {
            name: "  ".into(),
            why: "must not be empty"
        })
    );
    r.name = "é".repeat(100);
    assert_eq!(r.check(), Ok(()), "100 characters, 200 bytes");
    r.name = "x".repeat(101);
    assert_eq!(
        r.check().unwrap_err().to_string(),
        format!(
            "circuit breaker rule name `{}`: is longer than 100 characters",
            r.name
        )
    );
}

#[test]
fn check_bounds_the_window() {
    let mut r = rule("true", BreakerAction::AlertOnly);
    for (window, ok) in [
        (Duration::from_secs(59), false),
        (mins(1), true),
        (mins(7 * 24 * 60), true),
        (mins(7 * 24 * 60) + Duration::from_secs(1), false),
        (Duration::from_millis(90_500), false),
    ] {
        r.window = window;
        assert_eq!(r.check().is_ok(), ok, "{window:?}");
    }
    r.window = Duration::from_secs(59);
    assert_eq!(
        r.check().unwrap_err().to_string(),
        "circuit breaker rule `r`: window 59s is shorter than 1 minute"
    );
    r.window = mins(8 * 24 * 60);
    assert_eq!(
        r.check().unwrap_err().to_string(),
        "circuit breaker rule `r`: window 8d is longer than 7 days"
    );
    r.window = Duration::from_millis(90_500);
    assert_eq!(
        r.check().unwrap_err(),
        Error::RuleWindow {
            rule: "r".into(),
            window: Duration::from_millis(90_500),
            why: "is not a whole number of seconds"
        }
    );
}

#[test]
fn check_reports_the_cel_parse_message() {
    let r = rule("errorRate > > 0.05", BreakerAction::AlertOnly);
    let err = r.check().unwrap_err();
    let Error::ConditionSyntax {
        owner,
        condition,
        message,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(owner, &Owner::Rule("r".into()));
    assert_eq!(condition, "errorRate > > 0.05");
    assert!(message.starts_with("ERROR: <input>:1:"), "{message}");
    assert!(
        err.to_string().starts_with(
            "circuit breaker rule `r`: condition `errorRate > > 0.05` does not parse: ERROR: <input>:1:"
        ),
        "{err}"
    );
}

#[test]
fn check_rejects_unknown_variables_and_names_the_known_ones() {
    let r = rule(
        "error_rate > 0.05 || failures > 2",
        BreakerAction::AlertOnly,
    );
    assert_eq!(
        r.check(),
        Err(Error::UnknownVariables {
            owner: Owner::Rule("r".into()),
            condition: "error_rate > 0.05 || failures > 2".into(),
            names: vec!["error_rate".into(), "failures".into()],
            known: variables().to_vec(),
        })
    );
    assert_eq!(
        variables(),
        [
            "total",
            "succeeded",
            "failed",
            "rolledBack",
            "criticalIncidents",
            "successRate",
            "errorRate",
            "rollbackRate",
            "costUsd",
            "costRatePerHour",
            "p50Ms",
            "p95Ms",
            "p99Ms"
        ]
    );
}

#[test]
fn check_dry_runs_the_condition_on_an_empty_window() {
    let not_bool = rule("failed + 1", BreakerAction::AlertOnly);
    assert_eq!(
        not_bool.check(),
        Err(Error::ConditionNotBool {
            owner: Owner::Rule("r".into()),
            condition: "failed + 1".into(),
            got: "Int(1)".into()
        })
    );
    let unknown_function = rule("ratio(failed, total) > 0.5", BreakerAction::AlertOnly);
    assert_eq!(
        unknown_function.check().unwrap_err().to_string(),
        "circuit breaker rule `r`: condition `ratio(failed, total) > 0.5` failed: \
         Undeclared reference to 'ratio'"
    );
    let mixed = rule("costUsd > 5 && p95Ms > 1000.5", BreakerAction::AlertOnly);
    assert_eq!(mixed.check(), Ok(()), "ints and doubles compare");
}

#[test]
fn every_metric_is_readable_under_its_json_name() {
    let mut records: Vec<ActionRecord> = (0..4)
        .map(|i| record(Action::RunStep, Outcome::Succeeded, i * MIN))
        .collect();
    records[0].outcome = Outcome::Failed;
    records[1].outcome = Outcome::RolledBack;
    records[2].critical = true;
    let recent = recent(records);
    let m = recent.metrics(mins(5), at(4 * MIN), None);
    let json = serde_json::to_value(&m).unwrap();
    let breakers = Breakers::new();
    for name in variables() {
        let value = &json[name];
        let condition = format!("{name} == {value}");
        let r = rule(&condition, BreakerAction::AlertOnly);
        assert_eq!(breakers.holds(&r, &m), Ok(true), "{condition}");
        let r = rule(&format!("{name} != {value}"), BreakerAction::AlertOnly);
        assert_eq!(breakers.holds(&r, &m), Ok(false), "{name}");
    }
}

#[test]
fn a_tripping_rule_reports_the_overall_numbers() {
    let recent = recent([
        record(Action::RunStep, Outcome::Failed, MIN),
        record(Action::Merge, Outcome::Succeeded, 2 * MIN),
    ]);
    let r = default_rule("High Error Rate");
    let trips = Breakers::new().evaluate(&r, &recent, at(3 * MIN)).unwrap();
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].rule, r);
    assert_eq!(trips[0].action_type, None);
    assert_eq!(trips[0].metrics, recent.metrics(mins(5), at(3 * MIN), None));
    assert_eq!(trips[0].metrics.error_rate, 0.5);
}

#[test]
fn a_rule_that_does_not_hold_does_not_trip() {
    let recent = recent((0..100).map(|i| {
        let outcome = if i < 5 {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        record(Action::RunStep, outcome, i * 1_000)
    }));
    let r = default_rule("High Error Rate");
    let breakers = Breakers::new();
    assert_eq!(
        breakers.evaluate(&r, &recent, at(2 * MIN)),
        Ok(vec![]),
        "5% is not > 5%"
    );
    let r6 = rule("errorRate >= 0.05", BreakerAction::RevertToL3);
    assert_eq!(
        breakers.evaluate(&r6, &recent, at(2 * MIN)).unwrap().len(),
        1
    );
}

#[test]
fn one_failure_out_of_one_reverts_under_the_seed_default() {
    // The trade-off the default keeps (see `default_rules`): no minimum volume.
    let recent = recent([record(Action::Provision, Outcome::Failed, MIN)]);
    let breakers = Breakers::new();
    let seed = default_rule("High Error Rate");
    assert_eq!(
        breakers
            .evaluate(&seed, &recent, at(2 * MIN))
            .unwrap()
            .len(),
        1
    );
    let guarded = Rule {
        condition: "errorRate > 0.05 && total >= 20".into(),
        ..seed
    };
    assert_eq!(
        breakers.evaluate(&guarded, &recent, at(2 * MIN)),
        Ok(vec![])
    );
}

#[test]
fn a_disabled_rule_never_trips() {
    let recent = recent([record(Action::RunStep, Outcome::Failed, MIN)]);
    let mut r = default_rule("High Error Rate");
    r.enabled = false;
    assert_eq!(
        Breakers::new().evaluate(&r, &recent, at(2 * MIN)),
        Ok(vec![])
    );
}

#[test]
fn pause_without_a_type_trips_once_per_breaching_type() {
    let mut records = Vec::new();
    for i in 0..3 {
        records.push(record(Action::RunStep, Outcome::Failed, MIN + i));
        records.push(record(Action::Merge, Outcome::Failed, MIN + 10 + i));
    }
    records.push(record(Action::Provision, Outcome::Failed, 2 * MIN));
    records.push(record(Action::Provision, Outcome::Failed, 2 * MIN + 1));
    records.push(record(Action::Rollback, Outcome::Succeeded, 2 * MIN + 2));
    let recent = recent(records);
    let r = default_rule("Repeated Command Failures");
    let trips = Breakers::new().evaluate(&r, &recent, at(3 * MIN)).unwrap();
    let tripped: Vec<Option<Action>> = trips.iter().map(|t| t.action_type).collect();
    assert_eq!(
        tripped,
        [Some(Action::RunStep), Some(Action::Merge)],
        "provision failed twice only; the 8 failures together do not count"
    );
    assert_eq!(trips[0].metrics.failed, 3);
    assert_eq!(trips[0].metrics.total, 3);
    assert!(trips[0].metrics.by_action.is_empty());
}

#[test]
fn pause_without_a_type_on_an_empty_window_trips_nothing_but_still_compiles() {
    let breakers = Breakers::new();
    let r = default_rule("Repeated Command Failures");
    assert_eq!(breakers.evaluate(&r, &recent([]), at(0)), Ok(vec![]));
    let bad = rule("failed >=", BreakerAction::PauseCommandType);
    assert!(matches!(
        breakers.evaluate(&bad, &recent([]), at(0)),
        Err(Error::ConditionSyntax { .. })
    ));
}

#[test]
fn a_rule_with_an_action_type_reads_only_that_type() {
    let recent = recent([
        record(Action::RunStep, Outcome::Failed, MIN),
        record(Action::RunStep, Outcome::Failed, MIN + 1),
        record(Action::Merge, Outcome::Succeeded, MIN + 2),
    ]);
    let breakers = Breakers::new();
    let mut r = rule("errorRate > 0.5", BreakerAction::RevertToL3);
    r.action_type = Some(Action::Merge);
    assert_eq!(breakers.evaluate(&r, &recent, at(2 * MIN)), Ok(vec![]));
    r.action_type = Some(Action::RunStep);
    let trips = breakers.evaluate(&r, &recent, at(2 * MIN)).unwrap();
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].action_type, Some(Action::RunStep));
    assert_eq!(
        (trips[0].metrics.total, trips[0].metrics.error_rate),
        (2, 1.0)
    );
}

#[test]
fn a_condition_that_is_not_a_bool_is_an_error_not_a_trip() {
    let recent = recent([record(Action::RunStep, Outcome::Failed, MIN)]);
    // A rule stored before it was checked (or never checked) is judged when it runs.
    let r = rule("failed", BreakerAction::RevertToL3);
    assert_eq!(
        Breakers::new().evaluate(&r, &recent, at(2 * MIN)),
        Err(Error::ConditionNotBool {
            owner: Owner::Rule("r".into()),
            condition: "failed".into(),
            got: "Int(1)".into()
        })
    );
    assert!(r.check().is_err(), "and refused when checked");
    // What both trials pass is found when the numbers reach it.
    let r = rule("total > 0 ? failed : false", BreakerAction::RevertToL3);
    assert_eq!(
        Breakers::new().evaluate(&r, &recent, at(2 * MIN)),
        Err(Error::ConditionNotBool {
            owner: Owner::Rule("r".into()),
            condition: "total > 0 ? failed : false".into(),
            got: "Int(1)".into()
        })
    );
}

#[test]
fn the_window_boundary_is_exclusive_at_its_start() {
    let recent = recent([record(Action::RunStep, Outcome::Failed, 0)]);
    let r = default_rule("High Error Rate");
    let breakers = Breakers::new();
    assert_eq!(
        breakers
            .evaluate(&r, &recent, at(5 * MIN - 1))
            .unwrap()
            .len(),
        1,
        "inside the 5 minutes"
    );
    assert_eq!(
        breakers.evaluate(&r, &recent, at(5 * MIN)),
        Ok(vec![]),
        "exactly 5 minutes old: out"
    );
}

#[test]
fn programs_are_compiled_once_per_distinct_condition() {
    let breakers = Breakers::new();
    let failing = recent([
        record(Action::RunStep, Outcome::Failed, MIN),
        record(Action::RunStep, Outcome::Failed, MIN + 1),
        record(Action::RunStep, Outcome::Failed, MIN + 2),
    ]);
    let healthy = recent([record(Action::RunStep, Outcome::Succeeded, MIN)]);
    let rules = default_rules();
    for i in 0..10_000 {
        let rule = &rules[i % 2];
        let (recent, expected) = if (i / 2) % 2 == 0 {
            (&failing, 1)
        } else {
            (&healthy, 0)
        };
        let trips = breakers.evaluate(rule, recent, at(2 * MIN)).unwrap();
        assert_eq!(trips.len(), expected, "evaluation {i} of {}", rule.name);
    }
    assert_eq!(breakers.compiled(), 2);
    let same_text = Rule {
        name: "another name, same condition".into(),
        ..rules[0].clone()
    };
    breakers
        .evaluate(&same_text, &healthy, at(2 * MIN))
        .unwrap();
    assert_eq!(breakers.compiled(), 2, "keyed by condition text");
    assert!(format!("{breakers:?}").contains("compiled: 2"));
}

#[test]
fn breakers_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Breakers>();
    let breakers = Breakers::new();
    let recent = recent([record(Action::Merge, Outcome::Failed, MIN)]);
    let r = default_rule("High Error Rate");
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| breakers.evaluate(&r, &recent, at(2 * MIN)).unwrap().len()))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 1);
        }
    });
    assert_eq!(breakers.compiled(), 1);
}

#[test]
fn evaluate_all_goes_on_past_a_broken_rule() {
    let recent = recent([record(Action::RunStep, Outcome::Failed, MIN)]);
    let mut rules = vec![rule("failed", BreakerAction::AlertOnly)];
    rules.extend(default_rules());
    let out = Breakers::new().evaluate_all(&rules, &recent, at(2 * MIN));
    let names: Vec<&str> = out.trips.iter().map(|t| t.rule.name.as_str()).collect();
    assert_eq!(names, ["High Error Rate"]);
    assert_eq!(out.errors.len(), 1);
    assert!(matches!(out.errors[0], Error::ConditionNotBool { .. }));
}

#[test]
fn effects_follow_the_rule_action() {
    let mut state = GovernanceState::initial(at(0));
    state.current_phase = Phase::L4;
    state.command_whitelist = vec![Action::Provision, Action::RunStep];
    state.pause(Action::Merge);
    let trip = |action, action_type| Trip {
        rule: rule("true", action),
        action_type,
        metrics: WindowMetrics::default(),
    };
    assert_eq!(
        effect(
            &state,
            &trip(BreakerAction::RevertToL3, Some(Action::Merge))
        ),
        Effect::RevertToL3 {
            from: Phase::L4,
            cleared: vec![Action::Provision, Action::RunStep]
        }
    );
    assert_eq!(
        effect(
            &state,
            &trip(BreakerAction::PauseCommandType, Some(Action::RunStep))
        ),
        Effect::Pause {
            action: Action::RunStep,
            already_paused: false
        }
    );
    assert_eq!(
        effect(
            &state,
            &trip(BreakerAction::PauseCommandType, Some(Action::Merge))
        ),
        Effect::Pause {
            action: Action::Merge,
            already_paused: true
        }
    );
    assert_eq!(
        effect(&state, &trip(BreakerAction::PauseCommandType, None)),
        Effect::Alert
    );
    assert_eq!(
        effect(
            &state,
            &trip(BreakerAction::AlertOnly, Some(Action::RunStep))
        ),
        Effect::Alert
    );
    assert_eq!(
        serde_json::to_value(Effect::Pause {
            action: Action::RunStep,
            already_paused: false
        })
        .unwrap(),
        serde_json::json!({"kind": "pause", "action": "run_step", "alreadyPaused": false})
    );
}

#[test]
fn severities_are_ordered_with_response_times() {
    assert!(Severity::Low < Severity::Medium && Severity::High < Severity::Critical);
    let minutes: Vec<Option<u64>> = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ]
    .iter()
    .map(|s| s.response_within().map(|d| d.as_secs() / 60))
    .collect();
    assert_eq!(minutes, [Some(5), Some(15), Some(60), None]);
}
