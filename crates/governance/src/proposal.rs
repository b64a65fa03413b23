//! Expansion proposals and the approvals they gather.
//!
//! A proposal to move up a phase needs one approval for each role the target phase names
//! ([`Phase::required_approvers`]), each from a different person who is not the one who asked.
//! Approvers are authenticated identities holding roles, not free text (the seed took
//! `{"approvedBy": "tech-lead"}` from anyone).
//!
//! Rules, checked in this order:
//!
//! - a rejected or complete proposal takes no more approvals or rejections;
//! - the approver must be named (non-empty identity);
//! - the requester cannot approve their own proposal;
//! - four eyes: an identity that approved once cannot approve again, for another role;
//! - the approver must hold a required role that has no approval yet. An approver holding
//!   several such roles approves the first of them in the proposal's order (tech lead, ops
//!   lead, product lead, exec sponsor) and no other: one person never stands for two roles;
//! - a role that already has its approval is refused.
//!
//! Anyone holding one of the required roles may reject, whether or not their role approved, and
//! so may the requester if they hold one: stopping a change needs no second pair of eyes.

use kamachiq_domain::{Role, Timestamp};
use kamachiq_policy::{Action, Risk};
use serde::{Deserialize, Serialize};

use crate::phase::Phase;

/// A proposal to move a tenant up one phase, as the weekly cycle drafts it. JSON names, a
/// contract with the seed's proposals endpoint: `fromPhase`, `targetPhase`, `whitelistAdd`,
/// `risk`, `validationDays`, `requiredApprovers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalDraft {
    pub from_phase: Phase,
    pub target_phase: Phase,
    /// Action types the target phase adds to the whitelist.
    pub whitelist_add: Vec<Action>,
    /// How risky the move is judged: low to L3+, medium to L4, high to L4+, critical to L5.
    pub risk: Risk,
    /// How long the target phase is validated before the next proposal.
    pub validation_days: u32,
    /// One approval per role, each from a different person.
    pub required_approvers: Vec<Role>,
}

impl ProposalDraft {
    /// Whether the proposal still fits a tenant at `phase`: it moves from there to the next
    /// phase. One that no longer fits is withdrawn.
    pub fn fits(&self, phase: Phase) -> bool {
        self.from_phase == phase && phase.next() == Some(self.target_phase)
    }
}

/// One approval. JSON: `role`, `by`, `at`, `comment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub role: Role,
    /// The approver's identity.
    pub by: String,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A rejection. JSON: `role`, `by`, `reason`, `at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// The required role the rejecter holds (the first in the proposal's order).
    pub role: Role,
    pub by: String,
    pub reason: String,
    pub at: Timestamp,
}

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Pending,
    Approved,
    Rejected,
    /// The tenant's phase moved away from the one the proposal would move from (a circuit
    /// breaker reverted it, or an operator rolled it back) while it was pending: it takes no
    /// more decisions, and the next cycle may draft a fresh one.
    Withdrawn,
}

impl ProposalStatus {
    /// The status as stored and shown: `pending`, `approved`, `rejected`, `withdrawn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// The status named `name` ([`Self::as_str`]), if any.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Approved,
            Self::Rejected,
            Self::Withdrawn,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// The approvals a proposal gathered. JSON: `required`, `requestedBy`, `approvals`,
/// `rejection` (absent unless rejected).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalApprovals {
    pub required: Vec<Role>,
    /// Who asked: the operator, or `kamachiq` for the weekly cycle's proposals.
    pub requested_by: String,
    #[serde(default)]
    pub approvals: Vec<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
}

/// What an accepted approval did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// Recorded for `role`; `remaining` roles still need an approval.
    Recorded { role: Role, remaining: Vec<Role> },
    /// Recorded for `role`, the last one: the proposal is approved.
    Complete { role: Role },
}

/// Why an approval or a rejection was refused. Nothing is recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefused {
    #[error("the proposal was rejected; it takes no more decisions")]
    Rejected,
    #[error("the proposal is already approved; it takes no more decisions")]
    Complete,
    #[error("an approver must be identified")]
    Anonymous,
    #[error("{by} asked for this proposal and cannot approve it")]
    Requester { by: String },
    #[error(
        "{by} already approved this proposal as {role}; another person must approve the other roles"
    )]
    AlreadyApprovedBy { by: String, role: Role },
    #[error(
        "{by} holds none of the roles this proposal needs ({})",
        names(required)
    )]
    NoRequiredRole { by: String, required: Vec<Role> },
    #[error("the role(s) {} that {by} holds are already approved", names(roles))]
    RoleAlreadyApproved { by: String, roles: Vec<Role> },
}

fn names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ProposalApprovals {
    /// No approvals yet for `draft`, asked for by `requested_by`.
    pub fn new(draft: &ProposalDraft, requested_by: impl Into<String>) -> Self {
        Self {
            required: draft.required_approvers.clone(),
            requested_by: requested_by.into(),
            approvals: Vec::new(),
            rejection: None,
        }
    }

    /// The required roles without an approval, in the proposal's order.
    pub fn remaining(&self) -> Vec<Role> {
        self.required
            .iter()
            .copied()
            .filter(|role| !self.approvals.iter().any(|a| a.role == *role))
            .collect()
    }

    /// Whether every required role approved and nobody rejected.
    pub fn is_complete(&self) -> bool {
        self.status() == ProposalStatus::Approved
    }

    /// Where the approvals alone put the proposal: pending, approved or rejected (a
    /// withdrawal is the store's, when the phase moved under it).
    pub fn status(&self) -> ProposalStatus {
        if self.rejection.is_some() {
            ProposalStatus::Rejected
        } else if self.remaining().is_empty() {
            ProposalStatus::Approved
        } else {
            ProposalStatus::Pending
        }
    }

    fn open(&self) -> Result<(), ApprovalRefused> {
        if self.rejection.is_some() {
            Err(ApprovalRefused::Rejected)
        } else if self.remaining().is_empty() {
            Err(ApprovalRefused::Complete)
        } else {
            Ok(())
        }
    }

    /// Records `approver`'s approval for one of the required `roles` they hold, as the module
    /// documentation says.
    pub fn approve(
        &mut self,
        approver: &str,
        roles: &[Role],
        comment: Option<&str>,
        at: Timestamp,
    ) -> Result<ApprovalOutcome, ApprovalRefused> {
        self.open()?;
        if approver.trim().is_empty() {
            return Err(ApprovalRefused::Anonymous);
        }
        if approver == self.requested_by {
            return Err(ApprovalRefused::Requester {
                by: approver.to_owned(),
            });
        }
        if let Some(earlier) = self.approvals.iter().find(|a| a.by == approver) {
            return Err(ApprovalRefused::AlreadyApprovedBy {
                by: approver.to_owned(),
                role: earlier.role,
            });
        }
        let held: Vec<Role> = self
            .required
            .iter()
            .copied()
            .filter(|r| roles.contains(r))
            .collect();
        if held.is_empty() {
            return Err(ApprovalRefused::NoRequiredRole {
                by: approver.to_owned(),
                required: self.required.clone(),
            });
        }
        let remaining = self.remaining();
        let Some(role) = held.iter().copied().find(|r| remaining.contains(r)) else {
            return Err(ApprovalRefused::RoleAlreadyApproved {
                by: approver.to_owned(),
                roles: held,
            });
        };
        self.approvals.push(Approval {
            role,
            by: approver.to_owned(),
            at,
            comment: comment.map(str::to_owned),
        });
        let remaining = self.remaining();
        Ok(if remaining.is_empty() {
            ApprovalOutcome::Complete { role }
        } else {
            ApprovalOutcome::Recorded { role, remaining }
        })
    }

    /// Rejects the proposal for `reason`; `by` must hold one of the required roles.
    pub fn reject(
        &mut self,
        by: &str,
        roles: &[Role],
        reason: &str,
        at: Timestamp,
    ) -> Result<(), ApprovalRefused> {
        self.open()?;
        if by.trim().is_empty() {
            return Err(ApprovalRefused::Anonymous);
        }
        let Some(role) = self.required.iter().copied().find(|r| roles.contains(r)) else {
            return Err(ApprovalRefused::NoRequiredRole {
                by: by.to_owned(),
                required: self.required.clone(),
            });
        };
        self.rejection = Some(Rejection {
            role,
            by: by.to_owned(),
            reason: reason.to_owned(),
            at,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: i64) -> Timestamp {
        Timestamp::from_millis(n)
    }

    fn to(target: Phase) -> ProposalApprovals {
        ProposalApprovals {
            required: target.required_approvers().to_vec(),
            requested_by: "rosa".into(),
            approvals: Vec::new(),
            rejection: None,
        }
    }

    #[test]
    fn a_draft_fits_only_the_phase_it_moves_from_to_the_next() {
        let draft = |from, target| ProposalDraft {
            from_phase: from,
            target_phase: target,
            whitelist_add: vec![],
            risk: Risk::Medium,
            validation_days: 21,
            required_approvers: vec![],
        };
        let l4 = draft(Phase::L3Plus, Phase::L4);
        assert!(l4.fits(Phase::L3Plus));
        assert!(!l4.fits(Phase::L3), "reverted under it");
        assert!(!l4.fits(Phase::L4), "already there");
        assert!(
            !draft(Phase::L3, Phase::L4).fits(Phase::L3),
            "skips a phase"
        );
        for status in [
            ProposalStatus::Pending,
            ProposalStatus::Approved,
            ProposalStatus::Rejected,
            ProposalStatus::Withdrawn,
        ] {
            assert_eq!(ProposalStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(ProposalStatus::parse("open"), None);
    }

    #[test]
    fn one_tech_lead_approves_a_move_to_l3_plus() {
        let mut p = to(Phase::L3Plus);
        assert_eq!(p.status(), ProposalStatus::Pending);
        let out = p
            .approve(
                "ana",
                &[Role::Viewer, Role::TechLead],
                Some("looks good"),
                t(5),
            )
            .unwrap();
        assert_eq!(
            out,
            ApprovalOutcome::Complete {
                role: Role::TechLead
            }
        );
        assert!(p.is_complete());
        assert_eq!(
            p.approvals,
            [Approval {
                role: Role::TechLead,
                by: "ana".into(),
                at: t(5),
                comment: Some("looks good".into())
            }]
        );
    }

    #[test]
    fn the_requester_cannot_approve() {
        let mut p = to(Phase::L3Plus);
        let err = p
            .approve("rosa", &[Role::TechLead], None, t(1))
            .unwrap_err();
        assert_eq!(err, ApprovalRefused::Requester { by: "rosa".into() });
        assert_eq!(
            err.to_string(),
            "rosa asked for this proposal and cannot approve it"
        );
        assert!(p.approvals.is_empty());
    }

    #[test]
    fn an_approver_without_a_required_role_is_refused() {
        let mut p = to(Phase::L3Plus);
        let err = p
            .approve("otto", &[Role::OpsLead, Role::Admin], None, t(1))
            .unwrap_err();
        assert_eq!(
            err,
            ApprovalRefused::NoRequiredRole {
                by: "otto".into(),
                required: vec![Role::TechLead]
            }
        );
        assert_eq!(
            err.to_string(),
            "otto holds none of the roles this proposal needs (tech-lead)"
        );
        assert_eq!(p.status(), ProposalStatus::Pending);
    }

    #[test]
    fn each_role_needs_its_own_person() {
        let mut p = to(Phase::L4);
        let out = p
            .approve("ana", &[Role::TechLead, Role::OpsLead], None, t(1))
            .unwrap();
        assert_eq!(
            out,
            ApprovalOutcome::Recorded {
                role: Role::TechLead,
                remaining: vec![Role::OpsLead]
            },
            "the first required role in the proposal's order"
        );
        let err = p
            .approve("ana", &[Role::TechLead, Role::OpsLead], None, t(2))
            .unwrap_err();
        assert_eq!(
            err,
            ApprovalRefused::AlreadyApprovedBy {
                by: "ana".into(),
                role: Role::TechLead
            }
        );
        assert_eq!(
            p.approve("bo", &[Role::TechLead], None, t(3)).unwrap_err(),
            ApprovalRefused::RoleAlreadyApproved {
                by: "bo".into(),
                roles: vec![Role::TechLead]
            }
        );
        assert_eq!(
            p.approve("bo", &[Role::TechLead, Role::OpsLead], None, t(4)),
            Ok(ApprovalOutcome::Complete {
                role: Role::OpsLead
            }),
            "a holder of an approved and an open role approves the open one"
        );
        assert_eq!(p.approvals.len(), 2);
        assert_eq!(
            p.approve("cy", &[Role::OpsLead], None, t(5)),
            Err(ApprovalRefused::Complete)
        );
    }

    #[test]
    fn l5_needs_four_different_people() {
        let mut p = to(Phase::L5);
        let all = [
            Role::TechLead,
            Role::OpsLead,
            Role::ProductLead,
            Role::ExecSponsor,
        ];
        for (i, who) in ["a", "b", "c"].into_iter().enumerate() {
            let out = p.approve(who, &all, None, t(i as i64)).unwrap();
            assert_eq!(
                out,
                ApprovalOutcome::Recorded {
                    role: all[i],
                    remaining: all[i + 1..].to_vec()
                }
            );
        }
        assert_eq!(
            p.approve("d", &[Role::ExecSponsor], None, t(9)),
            Ok(ApprovalOutcome::Complete {
                role: Role::ExecSponsor
            })
        );
    }

    #[test]
    fn an_anonymous_approver_is_refused() {
        let mut p = to(Phase::L3Plus);
        assert_eq!(
            p.approve(" ", &[Role::TechLead], None, t(1)),
            Err(ApprovalRefused::Anonymous)
        );
        assert_eq!(
            p.reject("", &[Role::TechLead], "no", t(1)),
            Err(ApprovalRefused::Anonymous)
        );
    }

    #[test]
    fn a_rejected_proposal_takes_nothing_more() {
        let mut p = to(Phase::L4);
        p.approve("ana", &[Role::TechLead], None, t(1)).unwrap();
        assert_eq!(
            p.reject("zed", &[Role::Operator], "no", t(2)),
            Err(ApprovalRefused::NoRequiredRole {
                by: "zed".into(),
                required: vec![Role::TechLead, Role::OpsLead]
            })
        );
        p.reject("ana", &[Role::TechLead], "error budget spent", t(3))
            .unwrap();
        assert_eq!(p.status(), ProposalStatus::Rejected);
        assert!(!p.is_complete());
        assert_eq!(
            p.rejection,
            Some(Rejection {
                role: Role::TechLead,
                by: "ana".into(),
                reason: "error budget spent".into(),
                at: t(3)
            })
        );
        assert_eq!(
            p.approve("bo", &[Role::OpsLead], None, t(4)),
            Err(ApprovalRefused::Rejected)
        );
        assert_eq!(
            p.reject("bo", &[Role::OpsLead], "also no", t(4)),
            Err(ApprovalRefused::Rejected)
        );
    }

    #[test]
    fn a_complete_proposal_cannot_be_rejected() {
        let mut p = to(Phase::L3Plus);
        p.approve("ana", &[Role::TechLead], None, t(1)).unwrap();
        assert_eq!(
            p.reject("bo", &[Role::TechLead], "late", t(2)),
            Err(ApprovalRefused::Complete)
        );
    }

    #[test]
    fn json_uses_the_contract_names() {
        let draft = ProposalDraft {
            from_phase: Phase::L3,
            target_phase: Phase::L3Plus,
            whitelist_add: vec![Action::Provision],
            risk: Risk::Low,
            validation_days: 14,
            required_approvers: vec![Role::TechLead],
        };
        assert_eq!(
            serde_json::to_value(&draft).unwrap(),
            serde_json::json!({
                "fromPhase": "L3", "targetPhase": "L3+", "whitelistAdd": ["provision"],
                "risk": "low", "validationDays": 14, "requiredApprovers": ["tech-lead"]
            })
        );
        let mut p = ProposalApprovals::new(&draft, "kamachiq");
        p.approve("ana", &[Role::TechLead], None, t(0)).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({
                "required": ["tech-lead"], "requestedBy": "kamachiq",
                "approvals": [{"role": "tech-lead", "by": "ana", "at": "1970-01-01T00:00:00.000Z"}]
            })
        );
    }
}
