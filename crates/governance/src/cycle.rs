//! The weekly governance cycle (seed runbook, "Friday End-of-Week Review"): from the week's
//! metrics, the readiness assessment and the open breaker events, recommend expanding,
//! maintaining or investigating, and draft the expansion proposal when every condition holds.
//!
//! A proposal is drafted only when all of these hold; [`propose`] lists every one that does
//! not:
//!
//! - the phase is not L5;
//! - the assessment is of the current phase, made since it started;
//! - readiness reaches 0.95 and every required item passes;
//! - no circuit breaker event is unresolved;
//! - no other proposal is pending;
//! - the current phase's validation period is over (L3 has none).
//!
//! [`recommend`] says **investigate** when something is wrong now: an unresolved breaker event,
//! a critical incident, or the week's success rate, error rate or rollback rate outside the
//! healthy bounds the checklist uses ([`crate::readiness::SUCCESS_RATE_MIN`] and its
//! siblings; rates are only judged when actions ran). Otherwise **expand** when a proposal can
//! be drafted, else **maintain**, with the unmet conditions as reasons.

use kamachiq_domain::Timestamp;
use kamachiq_policy::Risk;
use serde::{Deserialize, Serialize};

use crate::metrics::WindowMetrics;
use crate::phase::Phase;
use crate::proposal::ProposalDraft;
use crate::readiness::{Assessment, ERROR_RATE_MAX, READY, ROLLBACK_RATE_MAX, SUCCESS_RATE_MIN};
use crate::state::GovernanceState;

/// What the cycle looks at.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    pub state: &'a GovernanceState,
    pub assessment: &'a Assessment,
    /// The week's metrics.
    pub metrics: &'a WindowMetrics,
    pub unresolved_events: u32,
    /// Whether a proposal for this tenant is waiting for approvals.
    pub pending_proposal: bool,
    pub now: Timestamp,
}

/// The cycle's recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationKind {
    Expand,
    Maintain,
    Investigate,
}

/// A recommendation with its reasons. JSON: `kind`, `reasons`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    pub kind: RecommendationKind,
    pub reasons: Vec<String>,
}

/// The cycle's report. JSON: `recommendation`, `proposal` (absent unless drafted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub recommendation: Recommendation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<ProposalDraft>,
}

/// The risk of moving into `target`: low to L3+, medium to L4, high to L4+, critical to L5.
pub const fn risk_of(target: Phase) -> Risk {
    match target {
        Phase::L3 | Phase::L3Plus => Risk::Low,
        Phase::L4 => Risk::Medium,
        Phase::L4Plus => Risk::High,
        Phase::L5 => Risk::Critical,
    }
}

fn percent(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// Reasons to investigate, empty when there are none.
fn troubles(s: &Snapshot<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if s.unresolved_events > 0 {
        out.push(format!(
            "{} circuit breaker event(s) are unresolved",
            s.unresolved_events
        ));
    }
    let m = s.metrics;
    if m.critical_incidents > 0 {
        out.push(format!(
            "{} critical incident(s) were attributed to automated actions",
            m.critical_incidents
        ));
    }
    if m.total > 0 {
        if m.success_rate < SUCCESS_RATE_MIN {
            out.push(format!(
                "success rate {} is below {}",
                percent(m.success_rate),
                percent(SUCCESS_RATE_MIN)
            ));
        }
        if m.error_rate > ERROR_RATE_MAX {
            out.push(format!(
                "error rate {} is above {}",
                percent(m.error_rate),
                percent(ERROR_RATE_MAX)
            ));
        }
        if m.rollback_rate > ROLLBACK_RATE_MAX {
            out.push(format!(
                "rollback rate {} is above {}",
                percent(m.rollback_rate),
                percent(ROLLBACK_RATE_MAX)
            ));
        }
    }
    out
}

/// The proposal to move up one phase, or every condition that is not met.
pub fn propose(s: &Snapshot<'_>) -> Result<ProposalDraft, Vec<String>> {
    let state = s.state;
    let a = s.assessment;
    let mut unmet = Vec::new();
    let target = state.current_phase.next();
    if target.is_none() {
        unmet.push("L5 is the highest phase: there is nothing to expand to".to_owned());
    }
    if a.phase != state.current_phase || a.assessed_at < state.phase_started_at {
        unmet.push(format!(
            "the readiness assessment ({} at {}) is not of the current phase {} started at {}",
            a.phase, a.assessed_at, state.current_phase, state.phase_started_at
        ));
    }
    if !a.reaches_ready() {
        unmet.push(format!(
            "readiness {} ({} of {} points) is below {}",
            percent(a.score),
            a.points,
            a.max_points,
            percent(READY)
        ));
    }
    if !a.overall.blockers.is_empty() {
        unmet.push(format!(
            "{} required readiness item(s) not passed: {}",
            a.overall.blockers.len(),
            a.overall.blockers.join("; ")
        ));
    }
    if s.unresolved_events > 0 {
        unmet.push(format!(
            "{} circuit breaker event(s) are unresolved",
            s.unresolved_events
        ));
    }
    if s.pending_proposal {
        unmet.push("a proposal is already waiting for approvals".to_owned());
    }
    if let Some(ends) = state.validation_ends_at
        && s.now < ends
    {
        let left = ends.since(s.now);
        unmet.push(format!(
            "the validation period of {} ends at {ends}, in {} day(s)",
            state.current_phase,
            left.as_millis().div_ceil(24 * 60 * 60 * 1_000)
        ));
    }
    match target {
        Some(target) if unmet.is_empty() => Ok(ProposalDraft {
            from_phase: state.current_phase,
            target_phase: target,
            whitelist_add: target
                .default_whitelist()
                .into_iter()
                .filter(|a| !state.command_whitelist.contains(a))
                .collect(),
            risk: risk_of(target),
            validation_days: target.validation_days(),
            required_approvers: target.required_approvers().to_vec(),
        }),
        _ => Err(unmet),
    }
}

/// Expand, maintain or investigate, as the module documentation says.
pub fn recommend(s: &Snapshot<'_>) -> Recommendation {
    let troubles = troubles(s);
    if !troubles.is_empty() {
        return Recommendation {
            kind: RecommendationKind::Investigate,
            reasons: troubles,
        };
    }
    match propose(s) {
        Ok(draft) => Recommendation {
            kind: RecommendationKind::Expand,
            reasons: vec![format!(
                "readiness {} with every required item passed, no open breaker event and the \
                 validation period over: propose {} -> {}",
                percent(s.assessment.score),
                draft.from_phase,
                draft.target_phase
            )],
        },
        Err(unmet) => Recommendation {
            kind: RecommendationKind::Maintain,
            reasons: unmet,
        },
    }
}

/// The whole cycle: the recommendation, and the proposal when it is to expand.
pub fn run(s: &Snapshot<'_>) -> Report {
    let recommendation = recommend(s);
    let proposal = match recommendation.kind {
        RecommendationKind::Expand => propose(s).ok(),
        _ => None,
    };
    Report {
        recommendation,
        proposal,
    }
}

#[cfg(test)]
mod tests;
