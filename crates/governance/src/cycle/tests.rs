use std::time::Duration;

use kamachiq_domain::Role;
use kamachiq_policy::Action;

use super::*;
use crate::metrics::tests::at;
use crate::readiness::{Overall, Status};

const DAY: i64 = 24 * 60 * 60 * 1_000;

fn assessment(phase: Phase, points: u32, blockers: &[&str], when: Timestamp) -> Assessment {
    let score = f64::from(points) / 80.0;
    Assessment {
        phase,
        assessed_at: when,
        score,
        points,
        max_points: 80,
        status: Status::Ready,
        categories: Vec::new(),
        items: Vec::new(),
        overall: Overall {
            score,
            blockers: blockers.iter().map(|b| (*b).to_owned()).collect(),
        },
    }
}

fn healthy() -> WindowMetrics {
    WindowMetrics {
        total: 1_000,
        succeeded: 998,
        failed: 2,
        success_rate: 0.998,
        error_rate: 0.002,
        ..WindowMetrics::default()
    }
}

struct Fixture {
    state: GovernanceState,
    assessment: Assessment,
    metrics: WindowMetrics,
    unresolved_events: u32,
    pending_proposal: bool,
    now: Timestamp,
}

impl Fixture {
    /// At L3 since day 0, assessed on day 7 with 78 of 80 points, nothing open.
    fn ready() -> Self {
        Self {
            state: GovernanceState::initial(at(0)),
            assessment: assessment(Phase::L3, 78, &[], at(7 * DAY)),
            metrics: healthy(),
            unresolved_events: 0,
            pending_proposal: false,
            now: at(7 * DAY),
        }
    }

    fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            state: &self.state,
            assessment: &self.assessment,
            metrics: &self.metrics,
            unresolved_events: self.unresolved_events,
            pending_proposal: self.pending_proposal,
            now: self.now,
        }
    }
}

#[test]
fn a_ready_l3_tenant_gets_a_proposal_for_l3_plus() {
    let f = Fixture::ready();
    assert_eq!(
        propose(&f.snapshot()),
        Ok(ProposalDraft {
            from_phase: Phase::L3,
            target_phase: Phase::L3Plus,
            whitelist_add: vec![Action::Provision],
            risk: Risk::Low,
            validation_days: 14,
            required_approvers: vec![Role::TechLead],
        })
    );
    let r = recommend(&f.snapshot());
    assert_eq!(r.kind, RecommendationKind::Expand);
    assert_eq!(
        r.reasons,
        [
            "readiness 97.50% with every required item passed, no open breaker event and the \
          validation period over: propose L3 -> L3+"
        ]
    );
    let report = run(&f.snapshot());
    assert_eq!(report.recommendation, r);
    assert_eq!(report.proposal, propose(&f.snapshot()).ok());
}

#[test]
fn each_target_phase_has_its_risk_days_approvers_and_whitelist() {
    let expected = [
        (Phase::L3Plus, Risk::Low, 14, 1, vec![Action::Provision]),
        (Phase::L4, Risk::Medium, 21, 2, vec![Action::RunStep]),
        (Phase::L4Plus, Risk::High, 30, 3, vec![Action::Merge]),
        (Phase::L5, Risk::Critical, 60, 4, vec![Action::Rollback]),
    ];
    for (target, risk, days, approvers, add) in expected {
        let mut f = Fixture::ready();
        let from = Phase::ALL[Phase::ALL.iter().position(|p| *p == target).unwrap() - 1];
        f.state.current_phase = from;
        f.state.command_whitelist = from.default_whitelist();
        f.assessment.phase = from;
        let draft = propose(&f.snapshot()).unwrap();
        assert_eq!(draft.target_phase, target);
        assert_eq!(draft.risk, risk);
        assert_eq!(draft.validation_days, days);
        assert_eq!(draft.required_approvers.len(), approvers);
        assert_eq!(draft.whitelist_add, add, "{target}");
    }
}

#[test]
fn the_whitelist_addition_skips_what_is_already_whitelisted() {
    let mut f = Fixture::ready();
    f.state.command_whitelist = vec![Action::Provision];
    assert_eq!(propose(&f.snapshot()).unwrap().whitelist_add, []);
}

#[test]
fn every_unmet_condition_is_listed() {
    let mut f = Fixture::ready();
    f.state.current_phase = Phase::L3Plus;
    f.state.phase_started_at = at(0);
    f.state.validation_ends_at = Some(at(14 * DAY));
    f.now = at(10 * DAY - 1);
    f.assessment = assessment(
        Phase::L3Plus,
        70,
        &["Required: X: not met (y = 1)"],
        at(9 * DAY),
    );
    f.unresolved_events = 2;
    f.pending_proposal = true;
    assert_eq!(
        propose(&f.snapshot()),
        Err(vec![
            "readiness 87.50% (70 of 80 points) is below 95.00%".to_owned(),
            "1 required readiness item(s) not passed: Required: X: not met (y = 1)".to_owned(),
            "2 circuit breaker event(s) are unresolved".to_owned(),
            "a proposal is already waiting for approvals".to_owned(),
            "the validation period of L3+ ends at 2027-01-29T08:00:00.000Z, in 5 day(s)".to_owned(),
        ])
    );
}

#[test]
fn readiness_is_compared_in_whole_points() {
    let mut f = Fixture::ready();
    f.assessment = assessment(Phase::L3, 76, &[], at(7 * DAY));
    assert!(propose(&f.snapshot()).is_ok(), "76 of 80 is 95%");
    f.assessment = assessment(Phase::L3, 75, &[], at(7 * DAY));
    assert_eq!(
        propose(&f.snapshot()),
        Err(vec![
            "readiness 93.75% (75 of 80 points) is below 95.00%".to_owned()
        ])
    );
}

#[test]
fn the_validation_period_must_be_over() {
    let mut f = Fixture::ready();
    f.state.current_phase = Phase::L4;
    f.state.phase_started_at = at(0);
    f.state.validation_ends_at = Some(at(21 * DAY));
    f.assessment.phase = Phase::L4;
    f.now = at(21 * DAY - 1);
    assert_eq!(
        propose(&f.snapshot()),
        Err(vec![
            "the validation period of L4 ends at 2027-02-05T08:00:00.000Z, in 1 day(s)".to_owned()
        ])
    );
    f.now = at(21 * DAY);
    assert_eq!(propose(&f.snapshot()).unwrap().target_phase, Phase::L4Plus);
}

#[test]
fn l5_has_nowhere_to_go() {
    let mut f = Fixture::ready();
    f.state.current_phase = Phase::L5;
    f.assessment.phase = Phase::L5;
    let unmet = vec!["L5 is the highest phase: there is nothing to expand to".to_owned()];
    assert_eq!(propose(&f.snapshot()), Err(unmet.clone()));
    let r = recommend(&f.snapshot());
    assert_eq!(
        r,
        Recommendation {
            kind: RecommendationKind::Maintain,
            reasons: unmet
        }
    );
    assert_eq!(run(&f.snapshot()).proposal, None);
}

#[test]
fn an_assessment_of_another_phase_or_from_before_it_does_not_count() {
    let mut f = Fixture::ready();
    f.state.phase_started_at = at(8 * DAY);
    f.now = at(9 * DAY);
    assert_eq!(
        propose(&f.snapshot()),
        Err(vec![
            "the readiness assessment (L3 at 2027-01-22T08:00:00.000Z) is not of the current \
             phase L3 started at 2027-01-23T08:00:00.000Z"
                .to_owned()
        ])
    );
    let mut f = Fixture::ready();
    f.assessment.phase = Phase::L3Plus;
    assert_eq!(propose(&f.snapshot()).unwrap_err().len(), 1);
}

#[test]
fn unresolved_events_or_bad_metrics_call_for_investigation() {
    let mut f = Fixture::ready();
    f.unresolved_events = 1;
    f.metrics = WindowMetrics {
        total: 100,
        succeeded: 90,
        failed: 6,
        rolled_back: 4,
        critical_incidents: 1,
        success_rate: 0.9,
        error_rate: 0.06,
        rollback_rate: 0.04,
        ..WindowMetrics::default()
    };
    let r = recommend(&f.snapshot());
    assert_eq!(r.kind, RecommendationKind::Investigate);
    assert_eq!(
        r.reasons,
        [
            "1 circuit breaker event(s) are unresolved",
            "1 critical incident(s) were attributed to automated actions",
            "success rate 90.00% is below 99.50%",
            "error rate 6.00% is above 0.50%",
            "rollback rate 4.00% is above 2.00%",
        ]
    );
    assert_eq!(
        run(&f.snapshot()).proposal,
        None,
        "no proposal while investigating"
    );
}

#[test]
fn each_trouble_alone_calls_for_investigation() {
    let troubled: [fn(&mut Fixture); 4] = [
        |f| f.unresolved_events = 3,
        |f| f.metrics.critical_incidents = 1,
        |f| {
            f.metrics.success_rate = 0.99;
        },
        |f| {
            f.metrics.rollback_rate = 0.03;
        },
    ];
    for (i, trouble) in troubled.into_iter().enumerate() {
        let mut f = Fixture::ready();
        trouble(&mut f);
        assert_eq!(
            recommend(&f.snapshot()).kind,
            RecommendationKind::Investigate,
            "trouble {i}"
        );
    }
}

#[test]
fn a_quiet_week_is_not_judged_on_rates() {
    let mut f = Fixture::ready();
    f.metrics = WindowMetrics::default();
    assert_eq!(recommend(&f.snapshot()).kind, RecommendationKind::Expand);
}

#[test]
fn otherwise_maintain_with_what_is_missing() {
    let mut f = Fixture::ready();
    f.pending_proposal = true;
    assert_eq!(
        recommend(&f.snapshot()),
        Recommendation {
            kind: RecommendationKind::Maintain,
            reasons: vec!["a proposal is already waiting for approvals".to_owned()]
        }
    );
}

#[test]
fn validation_days_left_round_up() {
    let mut f = Fixture::ready();
    f.state.validation_ends_at = Some(at(0).plus(Duration::from_secs(3_600)));
    f.now = at(0);
    assert_eq!(
        propose(&f.snapshot()).unwrap_err(),
        ["the validation period of L3 ends at 2027-01-15T09:00:00.000Z, in 1 day(s)"]
    );
}

#[test]
fn reports_serialise_with_camel_case_names() {
    let f = Fixture::ready();
    let json = serde_json::to_value(run(&f.snapshot())).unwrap();
    assert_eq!(json["recommendation"]["kind"], "expand");
    assert_eq!(json["proposal"]["targetPhase"], "L3+");
    let mut f = Fixture::ready();
    f.unresolved_events = 1;
    let json = serde_json::to_value(run(&f.snapshot())).unwrap();
    assert_eq!(json["recommendation"]["kind"], "investigate");
    assert_eq!(json.get("proposal"), None);
}
