//! The gate's answer, and [`decide`], which combines the built-in guards with the operator's
//! policies into one.

use std::fmt;

use kamachiq_domain::Tenant;
use serde::{Deserialize, Serialize};

use crate::guard;
use crate::input::Input;
use crate::rego::PolicySet;

/// What may happen to the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    /// A person must approve it first (or governance requeues it).
    RequireApproval,
    Deny,
}

impl Verdict {
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::RequireApproval => "require_approval",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How risky the action is judged, from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub const ALL: [Risk; 4] = [Risk::Low, Risk::Medium, Risk::High, Risk::Critical];

    pub const fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }

    /// The risk a score implies when no policy names one: at least 0.8 is low, 0.6 medium,
    /// 0.4 high, anything less critical.
    pub fn from_score(score: f64) -> Risk {
        if score >= 0.8 {
            Risk::Low
        } else if score >= 0.6 {
            Risk::Medium
        } else if score >= 0.4 {
            Risk::High
        } else {
            Risk::Critical
        }
    }

    /// The risk named `name` (`low`, `medium`, `high`, `critical`), if it is one.
    pub fn from_name(name: &str) -> Option<Risk> {
        Risk::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why: a stable code to match on, a sentence for people, and the rule that said so
/// (`builtin.residency`, `data.kamachiq.deny (residency.rego)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
    pub rule: String,
}

impl Reason {
    pub fn new(
        code: impl Into<String>,
        message: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            rule: rule.into(),
        }
    }
}

/// Stable codes of reasons the gate itself gives (besides the guards' in [`guard::code`]).
pub mod code {
    /// A `deny` entry of an operator policy that gave no code.
    pub const POLICY_DENY: &str = "policy_deny";
    /// A `require_approval` entry of an operator policy that gave no code.
    pub const POLICY_REQUIRES_APPROVAL: &str = "policy_requires_approval";
    /// An operator policy failed or gave a result of the wrong shape; the gate fails closed.
    pub const POLICY_ERROR: &str = "policy_error";
    /// The score is below the tenant's threshold.
    pub const SCORE_BELOW_THRESHOLD: &str = "score_below_threshold";
}

/// The gate's answer for one action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    #[serde(rename = "decision")]
    pub verdict: Verdict,
    /// In [0, 1]: the policies' confidence that the action is fine; 0 when anything denies.
    pub score: f64,
    /// The tenant's threshold the score was held against.
    pub threshold: f64,
    pub risk: Risk,
    /// The reasons for the verdict: the deny reasons of a denial (or the threshold's), the
    /// approval reasons of a `require_approval`, none for an `allow`.
    pub reasons: Vec<Reason>,
    /// Version of the Rego policy set used; `None` when the tenant has none.
    pub policy_version: Option<u32>,
    /// Version of the tenant's settings used.
    pub tenant_version: u32,
}

/// Decides on `input` for `tenant`: the built-in guards, then the tenant's Rego `policies` if
/// any, combined as the crate documentation says. Never fails: errors in policies are deny
/// reasons (`policy_error`).
pub fn decide(input: &Input, tenant: &Tenant, policies: Option<&PolicySet>) -> Decision {
    let builtin = guard::check(input, tenant);
    let mut deny = builtin.deny;
    let mut approval = builtin.require_approval;
    let mut score = 1.0;
    let mut policy_risk = None;
    if let Some(set) = policies {
        let out = set.evaluate(input);
        deny.extend(out.deny);
        approval.extend(out.require_approval);
        if let Some(s) = out.score {
            score = s;
        }
        policy_risk = out.risk;
    }

    let threshold = tenant.settings.threshold;
    let (verdict, reasons) = if !deny.is_empty() {
        score = 0.0;
        (Verdict::Deny, deny)
    } else if score < threshold {
        let reason = Reason::new(
            code::SCORE_BELOW_THRESHOLD,
            format!(
                "score {score} is below tenant {}'s threshold {threshold}",
                tenant.id
            ),
            "builtin.threshold",
        );
        (Verdict::Deny, vec![reason])
    } else if !approval.is_empty() {
        (Verdict::RequireApproval, approval)
    } else {
        (Verdict::Allow, Vec::new())
    };

    let mut risk = policy_risk.unwrap_or_else(|| Risk::from_score(score));
    if verdict == Verdict::Deny {
        risk = risk.max(Risk::High);
    }

    Decision {
        verdict,
        score,
        threshold,
        risk,
        reasons,
        policy_version: policies.map(PolicySet::version),
        tenant_version: tenant.version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::tests::{fine_input, open_tenant, strict_tenant};
    use crate::input::{DiffInput, Finding};
    use crate::rego::Module;

    fn policy(source: &str) -> PolicySet {
        PolicySet::compile(
            4,
            vec![Module {
                name: "p.rego".into(),
                source: format!("package kamachiq\n{source}\n"),
            }],
        )
        .unwrap()
    }

    fn with_finding(mut input: Input) -> Input {
        input.diff = Some(DiffInput {
            files: 1,
            lines_added: 1,
            lines_removed: 0,
            findings: vec![Finding {
                guard: "secrets".into(),
                code: "secret_in_diff".into(),
                path: "a.env".into(),
                line: None,
                message: "a token".into(),
            }],
        });
        input
    }

    fn codes(d: &Decision) -> Vec<&str> {
        d.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn nothing_against_it_allows() {
        let d = decide(&fine_input(), &strict_tenant(), None);
        assert_eq!(
            d,
            Decision {
                verdict: Verdict::Allow,
                score: 1.0,
                threshold: 0.5,
                risk: Risk::Low,
                reasons: vec![],
                policy_version: None,
                tenant_version: 7,
            }
        );
    }

    #[test]
    fn a_guard_denies_with_score_zero_and_critical_risk() {
        let mut input = fine_input();
        input.region = "us-east-1".into();
        let d = decide(&input, &strict_tenant(), None);
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.score, 0.0);
        assert_eq!(d.risk, Risk::Critical);
        assert_eq!(codes(&d), ["residency"]);
    }

    #[test]
    fn a_finding_requires_approval() {
        let d = decide(&with_finding(fine_input()), &strict_tenant(), None);
        assert_eq!(d.verdict, Verdict::RequireApproval);
        assert_eq!(d.score, 1.0);
        assert_eq!(d.risk, Risk::Low);
        assert_eq!(codes(&d), ["secret_in_diff"]);
    }

    #[test]
    fn deny_beats_require_approval() {
        let mut input = with_finding(fine_input());
        input.emergency_stop = true;
        let d = decide(&input, &strict_tenant(), None);
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(codes(&d), ["emergency_stop"]);
    }

    #[test]
    fn a_policy_deny_beats_a_policy_approval_and_zeroes_its_score() {
        let set = policy(
            "deny contains \"no\" if true\nrequire_approval contains \"ask\" if true\nscore := 0.9",
        );
        let d = decide(&fine_input(), &strict_tenant(), Some(&set));
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.score, 0.0);
        assert_eq!(codes(&d), ["policy_deny"]);
        assert_eq!(d.policy_version, Some(4));
    }

    #[test]
    fn a_policy_approval_beats_allow() {
        let set = policy("require_approval contains \"ask\" if true\nscore := 0.9");
        let d = decide(&fine_input(), &strict_tenant(), Some(&set));
        assert_eq!(d.verdict, Verdict::RequireApproval);
        assert_eq!(d.score, 0.9);
        assert_eq!(d.risk, Risk::Low);
        assert_eq!(
            d.reasons,
            [Reason::new(
                "policy_requires_approval",
                "ask",
                "data.kamachiq.require_approval (p.rego)"
            )]
        );
    }

    #[test]
    fn a_score_equal_to_the_threshold_allows() {
        let d = decide(
            &fine_input(),
            &strict_tenant(),
            Some(&policy("score := 0.5")),
        );
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.score, 0.5);
        assert_eq!(d.threshold, 0.5);
        assert_eq!(d.risk, Risk::High);
        assert_eq!(d.reasons, []);
    }

    #[test]
    fn a_score_below_the_threshold_denies_with_both_figures() {
        let d = decide(
            &fine_input(),
            &strict_tenant(),
            Some(&policy("score := 0.49")),
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.score, 0.49, "the score is kept: no deny reason forced it");
        assert_eq!(d.risk, Risk::High);
        assert_eq!(
            d.reasons,
            [Reason::new(
                "score_below_threshold",
                "score 0.49 is below tenant tenant-a's threshold 0.5",
                "builtin.threshold"
            )]
        );
    }

    #[test]
    fn the_threshold_beats_approval_reasons() {
        let d = decide(
            &with_finding(fine_input()),
            &strict_tenant(),
            Some(&policy("score := 0.1")),
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(codes(&d), ["score_below_threshold"]);
        assert_eq!(d.risk, Risk::Critical);
    }

    #[test]
    fn a_zero_threshold_allows_a_zero_score() {
        let mut tenant = open_tenant();
        tenant.settings.threshold = 0.0;
        let d = decide(&fine_input(), &tenant, Some(&policy("score := 0")));
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.risk, Risk::Critical);
    }

    #[test]
    fn the_policy_risk_wins_over_the_score_risk() {
        let d = decide(
            &fine_input(),
            &strict_tenant(),
            Some(&policy("risk := \"medium\"")),
        );
        assert_eq!(d.verdict, Verdict::Allow);
        assert_eq!(d.risk, Risk::Medium);
        let d = decide(
            &fine_input(),
            &strict_tenant(),
            Some(&policy("score := 0.1\nrisk := \"low\"")),
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.risk, Risk::High, "a denial is never below high");
    }

    #[test]
    fn a_critical_policy_risk_stays_critical_on_deny() {
        let d = decide(
            &fine_input(),
            &strict_tenant(),
            Some(&policy("deny contains \"x\" if true\nrisk := \"critical\"")),
        );
        assert_eq!(d.risk, Risk::Critical);
    }

    #[test]
    fn a_policy_error_denies() {
        let d = decide(&fine_input(), &strict_tenant(), Some(&policy("score := 2")));
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.score, 0.0);
        assert_eq!(codes(&d), ["policy_error"]);
    }

    #[test]
    fn guard_reasons_come_before_policy_reasons() {
        let mut input = fine_input();
        input.region = "us-east-1".into();
        let d = decide(
            &input,
            &strict_tenant(),
            Some(&policy("deny contains \"policy says no\" if true")),
        );
        assert_eq!(codes(&d), ["residency", "policy_deny"]);
    }

    #[test]
    fn risk_from_score_boundaries() {
        assert_eq!(Risk::from_score(1.0), Risk::Low);
        assert_eq!(Risk::from_score(0.8), Risk::Low);
        assert_eq!(Risk::from_score(0.799), Risk::Medium);
        assert_eq!(Risk::from_score(0.6), Risk::Medium);
        assert_eq!(Risk::from_score(0.599), Risk::High);
        assert_eq!(Risk::from_score(0.4), Risk::High);
        assert_eq!(Risk::from_score(0.399), Risk::Critical);
        assert_eq!(Risk::from_score(0.0), Risk::Critical);
    }

    #[test]
    fn risks_are_ordered_and_named() {
        assert!(Risk::Low < Risk::Medium && Risk::Medium < Risk::High);
        assert!(Risk::High < Risk::Critical);
        for risk in Risk::ALL {
            assert_eq!(Risk::from_name(risk.as_str()), Some(risk));
            assert_eq!(serde_json::to_string(&risk).unwrap(), format!("\"{risk}\""));
        }
        assert_eq!(Risk::from_name("Low"), None);
    }

    #[test]
    fn verdicts_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&Verdict::RequireApproval).unwrap(),
            "\"require_approval\""
        );
        assert_eq!(serde_json::to_string(&Verdict::Allow).unwrap(), "\"allow\"");
        assert_eq!(serde_json::to_string(&Verdict::Deny).unwrap(), "\"deny\"");
    }
}
