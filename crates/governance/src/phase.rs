//! The autonomy phases: how much kamachiq does without a person.
//!
//! A tenant starts at L3, where every automated action waits for a person, and moves up one
//! phase at a time through an approved proposal; a circuit breaker (or an operator) sends it back
//! to L3 at once. Each phase adds action types to the whitelist of what runs unattended
//! ([`Phase::default_whitelist`]), is validated for a period after it is entered
//! ([`Phase::validation_period`]), and needs more approvers to enter
//! ([`Phase::required_approvers`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use kamachiq_domain::Role;
use kamachiq_policy::Action;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

const DAY: u64 = 24 * 60 * 60;

/// An autonomy phase, from least to most autonomous. Written `L3`, `L3+`, `L4`, `L4+`, `L5`
/// everywhere (JSON, the CLI, the database): those names are a contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Supervised: every automated action waits for a person.
    L3,
    L3Plus,
    L4,
    L4Plus,
    /// Fully autonomous within policy.
    L5,
}

impl Phase {
    /// Every phase, from L3 up.
    pub const ALL: [Phase; 5] = [
        Phase::L3,
        Phase::L3Plus,
        Phase::L4,
        Phase::L4Plus,
        Phase::L5,
    ];

    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::L3 => "L3",
            Phase::L3Plus => "L3+",
            Phase::L4 => "L4",
            Phase::L4Plus => "L4+",
            Phase::L5 => "L5",
        }
    }

    /// The phase a proposal from this one moves to; `None` at L5.
    pub const fn next(self) -> Option<Phase> {
        match self {
            Phase::L3 => Some(Phase::L3Plus),
            Phase::L3Plus => Some(Phase::L4),
            Phase::L4 => Some(Phase::L4Plus),
            Phase::L4Plus => Some(Phase::L5),
            Phase::L5 => None,
        }
    }

    /// How long a tenant stays in this phase, once it entered it by a proposal, before a
    /// proposal to go further may be drafted: L3+ 14 days, L4 21, L4+ 30, L5 60. L3 has none:
    /// it is where everyone starts and where breakers send them back, and readiness alone
    /// decides when to leave it.
    pub const fn validation_period(self) -> Option<Duration> {
        let days = match self {
            Phase::L3 => return None,
            Phase::L3Plus => 14,
            Phase::L4 => 21,
            Phase::L4Plus => 30,
            Phase::L5 => 60,
        };
        Some(Duration::from_secs(days * DAY))
    }

    /// [`Phase::validation_period`] in whole days, 0 for L3.
    pub const fn validation_days(self) -> u32 {
        match self {
            Phase::L3 => 0,
            Phase::L3Plus => 14,
            Phase::L4 => 21,
            Phase::L4Plus => 30,
            Phase::L5 => 60,
        }
    }

    /// Who must approve a move into this phase, one approval per role, each by a different
    /// person (seed runbook, "Gather Approvals"): to L3+ the tech lead; to L4 the tech and ops
    /// leads; to L4+ also the product lead; to L5 also the executive sponsor. Nobody approves
    /// a move to L3: that is a revert, which needs no consent.
    pub const fn required_approvers(self) -> &'static [Role] {
        match self {
            Phase::L3 => &[],
            Phase::L3Plus => &[Role::TechLead],
            Phase::L4 => &[Role::TechLead, Role::OpsLead],
            Phase::L4Plus => &[Role::TechLead, Role::OpsLead, Role::ProductLead],
            Phase::L5 => &[
                Role::TechLead,
                Role::OpsLead,
                Role::ProductLead,
                Role::ExecSponsor,
            ],
        }
    }

    /// The action types that run without a person at this phase, as kamachiq sets them by
    /// default: none at L3; provisioning at L3+; running steps too at L4; merging too at L4+;
    /// rolling back too at L5. A proposal's `whitelistAdd` may widen a tenant's whitelist
    /// differently, and a revert empties it; this is only the default a proposal starts from.
    pub fn default_whitelist(self) -> Vec<Action> {
        let n = match self {
            Phase::L3 => 0,
            Phase::L3Plus => 1,
            Phase::L4 => 2,
            Phase::L4Plus => 3,
            Phase::L5 => 4,
        };
        Action::ALL[..n].to_vec()
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::UnknownPhase {
                value: s.to_owned(),
            })
    }
}

impl Serialize for Phase {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["L3", "L3+", "L4", "L4+", "L5"]);
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>().unwrap(), phase);
            assert_eq!(phase.to_string(), phase.as_str());
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{}\"", phase.as_str()));
            assert_eq!(serde_json::from_str::<Phase>(&json).unwrap(), phase);
        }
    }

    #[test]
    fn an_unknown_name_lists_the_valid_ones() {
        let err = "L6".parse::<Phase>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown phase `L6`: expected one of L3, L3+, L4, L4+, L5"
        );
        assert!("l3".parse::<Phase>().is_err(), "names are case-sensitive");
        let err = serde_json::from_str::<Phase>("\"L3 +\"").unwrap_err();
        assert!(err.to_string().starts_with("unknown phase `L3 +`"), "{err}");
    }

    #[test]
    fn phases_are_ordered_and_next_walks_up_to_l5() {
        assert!(Phase::L3 < Phase::L3Plus && Phase::L4Plus < Phase::L5);
        let mut walk = vec![Phase::L3];
        while let Some(next) = walk[walk.len() - 1].next() {
            walk.push(next);
        }
        assert_eq!(walk, Phase::ALL);
        assert_eq!(Phase::L5.next(), None);
    }

    #[test]
    fn validation_periods_follow_the_seed() {
        let days: Vec<Option<u64>> = Phase::ALL
            .iter()
            .map(|p| p.validation_period().map(|d| d.as_secs() / DAY))
            .collect();
        assert_eq!(days, [None, Some(14), Some(21), Some(30), Some(60)]);
        for phase in Phase::ALL {
            assert_eq!(
                u64::from(phase.validation_days()),
                phase.validation_period().map_or(0, |d| d.as_secs() / DAY)
            );
        }
    }

    #[test]
    fn approvers_accumulate_phase_by_phase() {
        assert_eq!(Phase::L3.required_approvers(), []);
        assert_eq!(Phase::L3Plus.required_approvers(), [Role::TechLead]);
        assert_eq!(
            Phase::L4.required_approvers(),
            [Role::TechLead, Role::OpsLead]
        );
        assert_eq!(
            Phase::L4Plus.required_approvers(),
            [Role::TechLead, Role::OpsLead, Role::ProductLead]
        );
        assert_eq!(
            Phase::L5.required_approvers(),
            [
                Role::TechLead,
                Role::OpsLead,
                Role::ProductLead,
                Role::ExecSponsor
            ]
        );
    }

    #[test]
    fn default_whitelists_grow_one_action_type_per_phase() {
        use Action::*;
        assert_eq!(Phase::L3.default_whitelist(), []);
        assert_eq!(Phase::L3Plus.default_whitelist(), [Provision]);
        assert_eq!(Phase::L4.default_whitelist(), [Provision, RunStep]);
        assert_eq!(
            Phase::L4Plus.default_whitelist(),
            [Provision, RunStep, Merge]
        );
        assert_eq!(
            Phase::L5.default_whitelist(),
            [Provision, RunStep, Merge, Rollback]
        );
    }
}
