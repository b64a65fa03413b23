//! A governed tenant's approval settings: what waits for a person beyond the phase's whitelist,
//! how long a person has, and what becomes of a request nobody answered.
//!
//! JSON names, a contract of `GET /api/governance/state`: `autoApproveLowRisk`, `approvalTtl`
//! (a window such as `24h`, see [`crate::window`]), `onExpiry` (`deny`, `escalate`),
//! `riskThreshold` (`low` .. `critical`).

use std::time::Duration;

use kamachiq_policy::Risk;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::approval::{DEFAULT_TTL, ExpiryAction};

/// Shortest time an approval request waits.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// Longest time an approval request waits.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How approvals are asked and answered for one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Approve low-risk requests at once, recorded as approved by `auto` (seed 003's
    /// `safety.auto_approve_low_risk`); only requests raised because the action type is not
    /// whitelisted ([`crate::Cause::auto_approvable`]). Off by default.
    #[serde(default)]
    pub auto_approve_low_risk: bool,
    /// How long a request waits for a person: 24 hours by default.
    #[serde(default = "default_ttl", with = "crate::window")]
    pub approval_ttl: Duration,
    /// What becomes of a request nobody answered in time: denied by default.
    #[serde(default)]
    pub on_expiry: ExpiryAction,
    /// In supervised mode, whitelisted actions at or above this risk still wait for a person:
    /// `high` by default.
    #[serde(default = "default_threshold")]
    pub risk_threshold: Risk,
}

fn default_ttl() -> Duration {
    DEFAULT_TTL
}

fn default_threshold() -> Risk {
    Risk::High
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            auto_approve_low_risk: false,
            approval_ttl: DEFAULT_TTL,
            on_expiry: ExpiryAction::Deny,
            risk_threshold: Risk::High,
        }
    }
}

impl Settings {
    /// Checks the settings as a whole: a time to live of whole seconds between [`MIN_TTL`]
    /// and [`MAX_TTL`].
    pub fn check(&self) -> Result<(), Error> {
        let invalid = |why| Error::InvalidWindow {
            value: crate::window::format(self.approval_ttl),
            why,
        };
        if self.approval_ttl < MIN_TTL {
            return Err(invalid("an approval's time to live is at least 1 minute"));
        }
        if self.approval_ttl > MAX_TTL {
            return Err(invalid("an approval's time to live is at most 30 days"));
        }
        if self.approval_ttl.subsec_nanos() != 0 {
            return Err(invalid("an approval's time to live is whole seconds"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_seeds_and_have_stable_json() {
        let s = Settings::default();
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({
                "autoApproveLowRisk": false, "approvalTtl": "1d", "onExpiry": "deny",
                "riskThreshold": "high"
            })
        );
        let parsed: Settings = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, s);
        let parsed: Settings =
            serde_json::from_str(r#"{"approvalTtl": "2h", "onExpiry": "escalate"}"#).unwrap();
        assert_eq!(parsed.approval_ttl, Duration::from_secs(7_200));
        assert_eq!(parsed.on_expiry, ExpiryAction::Escalate);
        s.check().unwrap();
    }

    #[test]
    fn a_ttl_out_of_bounds_is_refused_with_the_reason() {
        let short = Settings {
            approval_ttl: Duration::from_secs(30),
            ..Settings::default()
        };
        assert_eq!(
            short.check().unwrap_err().to_string(),
            "invalid window `30s`: an approval's time to live is at least 1 minute"
        );
        let long = Settings {
            approval_ttl: Duration::from_secs(31 * 24 * 3_600),
            ..Settings::default()
        };
        assert_eq!(
            long.check().unwrap_err().to_string(),
            "invalid window `31d`: an approval's time to live is at most 30 days"
        );
        assert!(serde_json::from_str::<Settings>(r#"{"ttl": "1h"}"#).is_err());
    }
}
