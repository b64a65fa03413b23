//! A tenant's governance state: its phase, since when, what runs unattended, what is paused,
//! and how approvals are asked.

use kamachiq_domain::Timestamp;
use kamachiq_policy::Action;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::approval::ApprovalMode;
use crate::breaker::Effect;
use crate::phase::Phase;
use crate::proposal::ProposalDraft;

const DAY_MS: u64 = 24 * 60 * 60 * 1_000;

/// A tenant's governance state. JSON names, a contract (the seed runbook reads
/// `.currentPhase` and `.commandWhitelist` with `jq` to confirm a revert): `currentPhase`,
/// `phaseStartedAt`, `validationEndsAt` (absent when there is no validation period),
/// `commandWhitelist`, `pausedActions`, `approvalMode`.
///
/// Both action lists are kept sorted in lifecycle order (provision, run_step, merge, rollback)
/// and free of duplicates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GovernanceState {
    pub current_phase: Phase,
    pub phase_started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_ends_at: Option<Timestamp>,
    /// The action types that run without a person (in supervised and autonomous modes).
    pub command_whitelist: Vec<Action>,
    /// The action types a circuit breaker (or an operator) paused: none of them runs
    /// without a person, whatever the whitelist says, until resumed.
    #[serde(default)]
    pub paused_actions: Vec<Action>,
    pub approval_mode: ApprovalMode,
}

impl GovernanceState {
    /// Where every tenant starts: L3 from `now`, nothing whitelisted, nothing paused, in
    /// supervised mode (at L3 that asks a person for everything, as manual mode would, and
    /// it is the mode the seed orchestrator runs as a service in).
    pub fn initial(now: Timestamp) -> Self {
        Self {
            current_phase: Phase::L3,
            phase_started_at: now,
            validation_ends_at: None,
            command_whitelist: Vec::new(),
            paused_actions: Vec::new(),
            approval_mode: ApprovalMode::Supervised,
        }
    }

    /// Back to L3 from `now` with an empty whitelist and no validation period. Paused action
    /// types stay paused: a pause is resolved on its own.
    pub fn revert_to_l3(&mut self, now: Timestamp) {
        self.current_phase = Phase::L3;
        self.phase_started_at = now;
        self.validation_ends_at = None;
        self.command_whitelist.clear();
    }

    /// Pauses `action`; whether it was not paused before.
    pub fn pause(&mut self, action: Action) -> bool {
        insert_sorted(&mut self.paused_actions, action)
    }

    /// Resumes `action`; whether it was paused.
    pub fn resume(&mut self, action: Action) -> bool {
        let before = self.paused_actions.len();
        self.paused_actions.retain(|a| *a != action);
        self.paused_actions.len() != before
    }

    /// Whether `action` runs without a person at this phase: whitelisted and not paused.
    pub fn runs_unattended(&self, action: Action) -> bool {
        self.command_whitelist.contains(&action) && !self.paused_actions.contains(&action)
    }

    /// Moves to the proposal's target phase from `now`: the whitelist gains `whitelistAdd`,
    /// the validation period starts. The target must be the phase after the current one; that
    /// the proposal gathered its approvals ([`crate::ProposalApprovals::is_complete`]) is the
    /// caller's to check before.
    pub fn advance(&mut self, proposal: &ProposalDraft, now: Timestamp) -> Result<(), Error> {
        if self.current_phase.next() != Some(proposal.target_phase) {
            return Err(Error::NotNextPhase {
                current: self.current_phase,
                target: proposal.target_phase,
            });
        }
        self.current_phase = proposal.target_phase;
        self.phase_started_at = now;
        self.validation_ends_at = (proposal.validation_days > 0).then(|| {
            now.plus(std::time::Duration::from_millis(
                u64::from(proposal.validation_days) * DAY_MS,
            ))
        });
        for action in &proposal.whitelist_add {
            insert_sorted(&mut self.command_whitelist, *action);
        }
        Ok(())
    }

    /// Applies a circuit breaker's effect at `now`.
    pub fn apply(&mut self, effect: &Effect, now: Timestamp) {
        match effect {
            Effect::RevertToL3 { .. } => self.revert_to_l3(now),
            Effect::Pause { action, .. } => {
                self.pause(*action);
            }
            Effect::Alert => {}
        }
    }
}

/// Inserts `action` keeping `list` sorted and unique; whether it was new.
fn insert_sorted(list: &mut Vec<Action>, action: Action) -> bool {
    match list.binary_search(&action) {
        Ok(_) => false,
        Err(i) => {
            list.insert(i, action);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kamachiq_domain::Role;
    use kamachiq_policy::Risk;

    fn at(days: u64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000)
            .plus(std::time::Duration::from_millis(days * DAY_MS))
    }

    fn draft(target: Phase, add: &[Action], days: u32) -> ProposalDraft {
        ProposalDraft {
            from_phase: Phase::L3,
            target_phase: target,
            whitelist_add: add.to_vec(),
            risk: Risk::Low,
            validation_days: days,
            required_approvers: vec![Role::TechLead],
        }
    }

    #[test]
    fn the_initial_state_is_l3_with_nothing_unattended() {
        let s = GovernanceState::initial(at(0));
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({
                "currentPhase": "L3",
                "phaseStartedAt": "2027-01-15T08:00:00.000Z",
                "commandWhitelist": [],
                "pausedActions": [],
                "approvalMode": "supervised"
            })
        );
        for action in Action::ALL {
            assert!(!s.runs_unattended(action));
        }
    }

    #[test]
    fn advance_moves_one_phase_and_starts_the_validation_period() {
        let mut s = GovernanceState::initial(at(0));
        s.advance(&draft(Phase::L3Plus, &[Action::Provision], 14), at(3))
            .unwrap();
        assert_eq!(s.current_phase, Phase::L3Plus);
        assert_eq!(s.phase_started_at, at(3));
        assert_eq!(s.validation_ends_at, Some(at(17)));
        assert_eq!(s.command_whitelist, [Action::Provision]);
        assert!(s.runs_unattended(Action::Provision));
        assert!(!s.runs_unattended(Action::RunStep));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["currentPhase"], "L3+");
        assert_eq!(json["validationEndsAt"], "2027-02-01T08:00:00.000Z");
        let back: GovernanceState = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn advance_keeps_the_whitelist_sorted_and_unique() {
        let mut s = GovernanceState::initial(at(0));
        s.command_whitelist = vec![Action::Provision];
        s.advance(
            &draft(
                Phase::L3Plus,
                &[Action::Merge, Action::Provision, Action::RunStep],
                0,
            ),
            at(1),
        )
        .unwrap();
        assert_eq!(
            s.command_whitelist,
            [Action::Provision, Action::RunStep, Action::Merge]
        );
        assert_eq!(s.validation_ends_at, None, "no validation days, no end");
    }

    #[test]
    fn advance_refuses_anything_but_the_next_phase_and_changes_nothing() {
        let mut s = GovernanceState::initial(at(0));
        let before = s.clone();
        let err = s
            .advance(&draft(Phase::L4, &[Action::RunStep], 21), at(1))
            .unwrap_err();
        assert_eq!(
            err,
            Error::NotNextPhase {
                current: Phase::L3,
                target: Phase::L4
            }
        );
        assert_eq!(
            err.to_string(),
            "cannot move from L3 to L4: the next phase after L3 is L3+"
        );
        assert_eq!(s, before);
        assert!(s.advance(&draft(Phase::L3, &[], 0), at(1)).is_err());

        s.current_phase = Phase::L5;
        let err = s.advance(&draft(Phase::L5, &[], 0), at(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot move from L5 to L5: the next phase after L5 is none"
        );
    }

    #[test]
    fn revert_to_l3_clears_the_whitelist_and_keeps_pauses() {
        let mut s = GovernanceState::initial(at(0));
        s.advance(&draft(Phase::L3Plus, &[Action::Provision], 14), at(1))
            .unwrap();
        s.pause(Action::Merge);
        s.revert_to_l3(at(5));
        assert_eq!(s.current_phase, Phase::L3);
        assert_eq!(s.phase_started_at, at(5));
        assert_eq!(s.validation_ends_at, None);
        assert_eq!(s.command_whitelist, []);
        assert_eq!(s.paused_actions, [Action::Merge]);
    }

    #[test]
    fn pause_and_resume_say_whether_they_changed_anything() {
        let mut s = GovernanceState::initial(at(0));
        s.command_whitelist = vec![Action::Provision, Action::RunStep];
        assert!(s.pause(Action::RunStep));
        assert!(!s.pause(Action::RunStep));
        assert!(s.pause(Action::Provision));
        assert_eq!(s.paused_actions, [Action::Provision, Action::RunStep]);
        assert!(
            !s.runs_unattended(Action::RunStep),
            "paused beats whitelisted"
        );
        assert!(s.resume(Action::RunStep));
        assert!(!s.resume(Action::RunStep));
        assert!(s.runs_unattended(Action::RunStep));
        assert_eq!(s.paused_actions, [Action::Provision]);
    }

    #[test]
    fn apply_carries_out_each_effect() {
        let mut s = GovernanceState::initial(at(0));
        s.advance(&draft(Phase::L3Plus, &[Action::Provision], 14), at(1))
            .unwrap();
        let mut alerted = s.clone();
        alerted.apply(&Effect::Alert, at(2));
        assert_eq!(alerted, s);

        s.apply(
            &Effect::Pause {
                action: Action::RunStep,
                already_paused: false,
            },
            at(2),
        );
        assert_eq!(s.paused_actions, [Action::RunStep]);
        s.apply(
            &Effect::RevertToL3 {
                from: Phase::L3Plus,
                cleared: vec![Action::Provision],
            },
            at(3),
        );
        assert_eq!(
            (
                s.current_phase,
                s.phase_started_at,
                s.command_whitelist.len()
            ),
            (Phase::L3, at(3), 0)
        );
    }
}
