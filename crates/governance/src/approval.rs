//! Approval modes, and whether an action needs a person before it runs.
//!
//! The mode (seed 003) says how much the tenant trusts the gate; the phase's whitelist says
//! which action types run unattended at all. [`needs_approval`] combines them with the policy
//! gate's verdict and risk, in this order, the first that applies deciding:
//!
//! 1. The policy denied it: [`Requirement::Denied`]; no approval lets it run (the requeue and
//!    its audited overrides do that).
//! 2. The action type is paused by a circuit breaker: a person, in every mode. A pause means
//!    "no more of these unattended until someone looks", so it is never auto-approved either.
//! 3. Manual mode: a person for every action.
//! 4. The policy asked for approval: a person, in every mode.
//! 5. The action type is not on the phase's whitelist: a person, in supervised and in
//!    autonomous mode. Autonomous mode does not bypass the phase: otherwise a breaker's revert
//!    to L3 (empty whitelist) would stop nothing for a tenant in autonomous mode.
//! 6. Supervised mode and the risk is at or above the tenant's threshold: a person.
//! 7. Otherwise the action runs without one.

use std::fmt;
use std::time::Duration;

use kamachiq_domain::Timestamp;
use kamachiq_policy::{Action, Risk, Verdict};
use serde::{Deserialize, Serialize};

use crate::state::GovernanceState;

/// How approvals are asked (seed 003's modes, same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// A person approves every automated action.
    Manual,
    /// Whitelisted action types below the risk threshold run; the rest wait for a person.
    Supervised,
    /// Whitelisted action types run whatever their risk, unless the policy asks for approval.
    Autonomous,
}

impl ApprovalMode {
    pub const ALL: [ApprovalMode; 3] = [
        ApprovalMode::Manual,
        ApprovalMode::Supervised,
        ApprovalMode::Autonomous,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Manual => "manual",
            ApprovalMode::Supervised => "supervised",
            ApprovalMode::Autonomous => "autonomous",
        }
    }
}

impl fmt::Display for ApprovalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The action asking to run, as the policy gate judged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    pub action: Action,
    pub risk: Risk,
    pub verdict: Verdict,
}

/// Why a person must approve, as a stable code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The action type is paused.
    Paused,
    /// The tenant is in manual mode.
    ManualMode,
    /// The policy gate answered `require_approval`.
    Policy,
    /// The action type is not on the phase's whitelist.
    NotWhitelisted,
    /// Supervised mode, and the risk is at or above the threshold.
    Risk,
}

impl Cause {
    /// Whether a request raised for this cause may be approved automatically for low risk
    /// ([`auto_approves`]): only [`Cause::NotWhitelisted`]. A pause, manual mode and the
    /// policy's own request each ask for a person explicitly, and a threshold of `low` means
    /// the tenant wants to see even low-risk actions.
    pub const fn auto_approvable(self) -> bool {
        matches!(self, Cause::NotWhitelisted)
    }
}

/// Whether a person must approve. JSON: `{"requirement": "approval", "cause": ..., "reason": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "requirement", rename_all = "snake_case")]
pub enum Requirement {
    /// It runs without a person.
    Auto,
    /// A person must approve it first.
    Approval { cause: Cause, reason: String },
    /// The policy denied it; it does not run.
    Denied { reason: String },
}

/// Whether `subject` needs a person, for a tenant in `state` (whose `approvalMode` is the
/// mode), with the tenant's supervised-mode risk threshold. See the module documentation for
/// the order of the rules.
pub fn needs_approval(
    state: &GovernanceState,
    subject: &Subject,
    supervised_risk_threshold: Risk,
) -> Requirement {
    let action = subject.action;
    let mode = state.approval_mode;
    let approval = |cause, reason: String| Requirement::Approval { cause, reason };
    if subject.verdict == Verdict::Deny {
        return Requirement::Denied {
            reason: format!("the policy gate denied this {action} action"),
        };
    }
    if state.paused_actions.contains(&action) {
        return approval(
            Cause::Paused,
            format!("{action} actions are paused until a person resumes them"),
        );
    }
    if mode == ApprovalMode::Manual {
        return approval(
            Cause::ManualMode,
            "manual mode: a person approves every action".to_owned(),
        );
    }
    if subject.verdict == Verdict::RequireApproval {
        return approval(
            Cause::Policy,
            format!("the policy gate asks a person to approve this {action} action"),
        );
    }
    if !state.command_whitelist.contains(&action) {
        return approval(
            Cause::NotWhitelisted,
            format!(
                "{action} is not on the whitelist of phase {}",
                state.current_phase
            ),
        );
    }
    if mode == ApprovalMode::Supervised && subject.risk >= supervised_risk_threshold {
        return approval(
            Cause::Risk,
            format!(
                "supervised mode: risk {} is at or above the threshold {supervised_risk_threshold}",
                subject.risk
            ),
        );
    }
    Requirement::Auto
}

/// Whether an approval request of `risk` is approved without a person when the tenant set
/// `auto_approve_low_risk` (seed 003, `safety.auto_approve_low_risk`): only `low` risk, and
/// only for a request whose [`Cause::auto_approvable`].
pub fn auto_approves(risk: Risk, auto_approve_low_risk: bool) -> bool {
    auto_approve_low_risk && risk == Risk::Low
}

/// How long an approval request waits by default: 24 hours (seed 003 shows requests expiring
/// a day after they were made).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// When a request made at `requested_at` expires.
pub fn expires_at(requested_at: Timestamp, ttl: Duration) -> Timestamp {
    requested_at.plus(ttl)
}

/// Whether a request that expires at `expires_at` has expired at `now`: from that instant on.
pub fn is_expired(expires_at: Timestamp, now: Timestamp) -> bool {
    now >= expires_at
}

/// What becomes of a request nobody answered in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryAction {
    /// It is denied: the action does not run. The safe default.
    #[default]
    Deny,
    /// It goes to the next level of approvers and waits again.
    Escalate,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phase::Phase;

    fn state(mode: ApprovalMode, whitelist: &[Action]) -> GovernanceState {
        let mut s = GovernanceState::initial(Timestamp::from_millis(0));
        s.current_phase = Phase::L4;
        s.command_whitelist = whitelist.to_vec();
        s.approval_mode = mode;
        s
    }

    fn subject(action: Action, risk: Risk, verdict: Verdict) -> Subject {
        Subject {
            action,
            risk,
            verdict,
        }
    }

    fn cause(r: &Requirement) -> Option<Cause> {
        match r {
            Requirement::Approval { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    const WL: &[Action] = &[Action::Provision, Action::RunStep];

    #[test]
    fn manual_mode_asks_a_person_for_everything_the_policy_allows() {
        let s = state(ApprovalMode::Manual, &Action::ALL);
        for action in Action::ALL {
            for risk in Risk::ALL {
                for verdict in [Verdict::Allow, Verdict::RequireApproval] {
                    let r = needs_approval(&s, &subject(action, risk, verdict), Risk::Critical);
                    assert_eq!(
                        r,
                        Requirement::Approval {
                            cause: Cause::ManualMode,
                            reason: "manual mode: a person approves every action".into()
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn supervised_mode_runs_whitelisted_actions_below_the_threshold() {
        let s = state(ApprovalMode::Supervised, WL);
        let ask =
            |action, risk| needs_approval(&s, &subject(action, risk, Verdict::Allow), Risk::High);
        assert_eq!(ask(Action::RunStep, Risk::Low), Requirement::Auto);
        assert_eq!(ask(Action::RunStep, Risk::Medium), Requirement::Auto);
        assert_eq!(
            ask(Action::RunStep, Risk::High),
            Requirement::Approval {
                cause: Cause::Risk,
                reason: "supervised mode: risk high is at or above the threshold high".into()
            }
        );
        assert_eq!(
            cause(&ask(Action::Provision, Risk::Critical)),
            Some(Cause::Risk)
        );
        assert_eq!(
            ask(Action::Merge, Risk::Low),
            Requirement::Approval {
                cause: Cause::NotWhitelisted,
                reason: "merge is not on the whitelist of phase L4".into()
            }
        );
    }

    #[test]
    fn a_low_threshold_in_supervised_mode_asks_for_everything() {
        let s = state(ApprovalMode::Supervised, &Action::ALL);
        for risk in Risk::ALL {
            let r = needs_approval(&s, &subject(Action::Merge, risk, Verdict::Allow), Risk::Low);
            assert_eq!(cause(&r), Some(Cause::Risk), "{risk}");
        }
    }

    #[test]
    fn autonomous_mode_ignores_risk_but_not_the_whitelist_nor_the_policy() {
        let s = state(ApprovalMode::Autonomous, WL);
        let ask =
            |action, risk, verdict| needs_approval(&s, &subject(action, risk, verdict), Risk::Low);
        assert_eq!(
            ask(Action::RunStep, Risk::Critical, Verdict::Allow),
            Requirement::Auto
        );
        assert_eq!(
            cause(&ask(Action::Merge, Risk::Low, Verdict::Allow)),
            Some(Cause::NotWhitelisted)
        );
        assert_eq!(
            ask(Action::RunStep, Risk::Low, Verdict::RequireApproval),
            Requirement::Approval {
                cause: Cause::Policy,
                reason: "the policy gate asks a person to approve this run_step action".into()
            }
        );
    }

    #[test]
    fn after_a_revert_to_l3_nothing_runs_unattended_in_any_mode() {
        for mode in ApprovalMode::ALL {
            let mut s = state(mode, &Action::ALL);
            s.revert_to_l3(Timestamp::from_millis(1));
            for action in Action::ALL {
                let r = needs_approval(
                    &s,
                    &subject(action, Risk::Low, Verdict::Allow),
                    Risk::Critical,
                );
                assert_ne!(r, Requirement::Auto, "{mode} {action}");
            }
        }
    }

    #[test]
    fn a_paused_action_type_is_never_auto() {
        for mode in ApprovalMode::ALL {
            let mut s = state(mode, &Action::ALL);
            s.pause(Action::Merge);
            for risk in Risk::ALL {
                let r = needs_approval(
                    &s,
                    &subject(Action::Merge, risk, Verdict::Allow),
                    Risk::Critical,
                );
                assert_eq!(
                    r,
                    Requirement::Approval {
                        cause: Cause::Paused,
                        reason: "merge actions are paused until a person resumes them".into()
                    },
                    "{mode} {risk}"
                );
            }
            let other = needs_approval(
                &s,
                &subject(Action::RunStep, Risk::Low, Verdict::Allow),
                Risk::Critical,
            );
            assert_ne!(cause(&other), Some(Cause::Paused));
        }
    }

    #[test]
    fn a_denial_is_never_turned_into_an_approval() {
        for mode in ApprovalMode::ALL {
            let mut s = state(mode, &Action::ALL);
            s.pause(Action::Rollback);
            let r = needs_approval(
                &s,
                &subject(Action::Rollback, Risk::Low, Verdict::Deny),
                Risk::Critical,
            );
            assert_eq!(
                r,
                Requirement::Denied {
                    reason: "the policy gate denied this rollback action".into()
                }
            );
        }
    }

    #[test]
    fn only_low_risk_is_auto_approved_and_only_when_asked() {
        let approved: Vec<Risk> = Risk::ALL
            .into_iter()
            .filter(|r| auto_approves(*r, true))
            .collect();
        assert_eq!(approved, [Risk::Low]);
        assert!(Risk::ALL.into_iter().all(|r| !auto_approves(r, false)));
        let approvable: Vec<Cause> = [
            Cause::Paused,
            Cause::ManualMode,
            Cause::Policy,
            Cause::NotWhitelisted,
            Cause::Risk,
        ]
        .into_iter()
        .filter(|c| c.auto_approvable())
        .collect();
        assert_eq!(approvable, [Cause::NotWhitelisted]);
    }

    #[test]
    fn requests_expire_at_the_end_of_their_ttl() {
        let t = Timestamp::from_millis(1_000);
        let end = expires_at(t, DEFAULT_TTL);
        assert_eq!(end.as_millis(), 1_000 + 86_400_000);
        assert!(!is_expired(
            end,
            Timestamp::from_millis(end.as_millis() - 1)
        ));
        assert!(is_expired(end, end));
        assert_eq!(ExpiryAction::default(), ExpiryAction::Deny);
        assert_eq!(
            serde_json::to_string(&ExpiryAction::Escalate).unwrap(),
            "\"escalate\""
        );
    }

    #[test]
    fn modes_and_requirements_have_stable_json() {
        for mode in ApprovalMode::ALL {
            assert_eq!(
                serde_json::to_string(&mode).unwrap(),
                format!("\"{}\"", mode.as_str())
            );
        }
        assert_eq!(
            serde_json::to_value(Requirement::Approval {
                cause: Cause::NotWhitelisted,
                reason: "r".into()
            })
            .unwrap(),
            serde_json::json!({"requirement": "approval", "cause": "not_whitelisted", "reason": "r"})
        );
        assert_eq!(
            serde_json::to_value(Requirement::Auto).unwrap(),
            serde_json::json!({"requirement": "auto"})
        );
    }
}
