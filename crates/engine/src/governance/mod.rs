//! Autonomy governance as operators drive it (seed 002's runbook, with an API call where the
//! seed fell back to SQL): enabling it for a tenant, its settings, rolling its phase back,
//! recording a critical incident, circuit-breaker rules and the resolution of their events;
//! readiness, the weekly cycle and proposals are in [`cycle`].
//!
//! The math is the governance crate's; this module reads what it needs from the store, asks
//! the crate, and stores what comes out, audited in the transaction of the change. A change
//! of a tenant's state is compare-and-set on its governance version, retried a few times when
//! a breaker or another operator moved it meanwhile. After every change the policy gate and
//! the breakers of this process read the tenant again at once (other processes within a
//! second), and the tenant's blocked deliverables are judged again.

mod cycle;

use std::time::Duration;

use kamachiq_domain::{RunId, TenantId, Timestamp};
use kamachiq_governance::{
    ApprovalMode, BreakerAction, Effect, ExpiryAction, GovernanceState, Outcome, Phase, Rule,
    Settings, Severity, default_checklist, default_rules,
};
use kamachiq_policy::{Action, Risk};
use kamachiq_store::{AuditEntry, BreakerEvent, Governed, NewAction};
use serde_json::json;

pub use cycle::{CycleOutcome, ProposalDecision};

use crate::Error;
use crate::engine::Engine;
use crate::governor::Notice;

/// Attempts at a compare-and-set change before giving up.
const ATTEMPTS: usize = 5;

/// How a tenant starts being governed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnableOptions {
    /// The phase it starts at (L3 unless an admin says otherwise), with that phase's default
    /// whitelist and validation period.
    pub phase: Phase,
    pub mode: ApprovalMode,
    pub settings: Settings,
}

impl Default for EnableOptions {
    fn default() -> Self {
        Self {
            phase: Phase::L3,
            mode: ApprovalMode::Supervised,
            settings: Settings::default(),
        }
    }
}

/// A change of a governed tenant's mode and settings: `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GovernanceUpdate {
    pub mode: Option<ApprovalMode>,
    pub auto_approve_low_risk: Option<bool>,
    pub approval_ttl: Option<Duration>,
    pub on_expiry: Option<ExpiryAction>,
    pub risk_threshold: Option<Risk>,
}

impl GovernanceUpdate {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A change of a circuit-breaker rule: `None` keeps the current value; `action_type` is
/// `Some(None)` to make the rule watch every action type again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RulePatch {
    pub enabled: Option<bool>,
    pub condition: Option<String>,
    pub window: Option<Duration>,
    pub action: Option<BreakerAction>,
    pub severity: Option<Severity>,
    pub action_type: Option<Option<Action>>,
}

/// The state a tenant starts governed with at `now`.
fn starting_state(options: &EnableOptions, now: Timestamp) -> GovernanceState {
    let mut state = GovernanceState::initial(now);
    state.current_phase = options.phase;
    state.command_whitelist = options.phase.default_whitelist();
    state.validation_ends_at = options.phase.validation_period().map(|p| now.plus(p));
    state.approval_mode = options.mode;
    state
}

impl Engine {
    /// The tenant's governance as stored now, or `None` when it is not governed.
    pub async fn governance(&self, tenant: &TenantId) -> Result<Option<Governed>, Error> {
        Ok(self.inner.store.governance(tenant).await?)
    }

    /// The tenant's governance, or [`Error::NotGoverned`].
    pub(crate) async fn governed(&self, tenant: &TenantId) -> Result<Governed, Error> {
        self.governance(tenant)
            .await?
            .ok_or_else(|| Error::NotGoverned(tenant.to_string()))
    }

    /// Tells this process's gate and breakers that the tenant's governance changed, and has
    /// its blocked deliverables judged again.
    pub(crate) async fn governance_changed(&self, tenant: &TenantId) -> Result<(), Error> {
        self.inner.governor.notify(Notice::Changed(tenant.clone()));
        self.policy_changed(tenant).await?;
        Ok(())
    }

    /// Starts governing `tenant` (an admin's act): its state at `options.phase` from now, its
    /// settings, kamachiq's default circuit-breaker rules and readiness checklist. Audited.
    pub async fn enable_governance(
        &self,
        tenant: &TenantId,
        options: &EnableOptions,
        by: &str,
    ) -> Result<Governed, Error> {
        options.settings.check()?;
        let now = self.now();
        let state = starting_state(options, now);
        let governed = self
            .inner
            .store
            .enable_governance(
                tenant,
                &state,
                &options.settings,
                &default_checklist(),
                &default_rules(),
                by,
                now,
            )
            .await?;
        tracing::info!(tenant = %tenant, phase = %state.current_phase, mode = %state.approval_mode,
            by, "governance enabled");
        self.governance_changed(tenant).await?;
        Ok(governed)
    }

    /// Changes the tenant's approval mode and settings. Audited with the values before and
    /// after.
    pub async fn configure_governance(
        &self,
        tenant: &TenantId,
        update: &GovernanceUpdate,
        by: &str,
    ) -> Result<Governed, Error> {
        self.change_state(tenant, "governance_configured", by, |governed| {
            let mut state = governed.state.clone();
            let mut settings = governed.settings.clone();
            if let Some(mode) = update.mode {
                state.approval_mode = mode;
            }
            if let Some(auto) = update.auto_approve_low_risk {
                settings.auto_approve_low_risk = auto;
            }
            if let Some(ttl) = update.approval_ttl {
                settings.approval_ttl = ttl;
            }
            if let Some(on_expiry) = update.on_expiry {
                settings.on_expiry = on_expiry;
            }
            if let Some(risk) = update.risk_threshold {
                settings.risk_threshold = risk;
            }
            settings.check()?;
            let detail = json!({
                "before": {"mode": governed.state.approval_mode, "settings": governed.settings},
                "after": {"mode": state.approval_mode, "settings": settings},
            });
            Ok((state, settings, detail))
        })
        .await
    }

    /// Rolls the tenant's phase back to `target` (the seed's hand-edited SQL, as an audited
    /// call): the phase starts again from now, the whitelist keeps only what `target` allows
    /// by default (nothing at L3), paused action types stay paused. `target` may be the
    /// current phase (restarting it), never a higher one: moving up takes a proposal.
    pub async fn rollback_phase(
        &self,
        tenant: &TenantId,
        target: Phase,
        reason: &str,
        by: &str,
    ) -> Result<Governed, Error> {
        let now = self.now();
        self.change_state(tenant, "phase_rolled_back", by, |governed| {
            let current = governed.state.current_phase;
            if target > current {
                return Err(Error::PhaseNotLower { current, target });
            }
            let mut state = governed.state.clone();
            let allowed = target.default_whitelist();
            state.current_phase = target;
            state.phase_started_at = now;
            state.validation_ends_at = target.validation_period().map(|p| now.plus(p));
            state.command_whitelist.retain(|a| allowed.contains(a));
            let detail = json!({
                "from": current, "to": target, "reason": reason,
                "whitelist_before": governed.state.command_whitelist,
                "whitelist": state.command_whitelist,
            });
            Ok((state, governed.settings.clone(), detail))
        })
        .await
    }

    /// Reads the tenant's governance, computes the new state and settings with `change`, and
    /// stores them if nobody changed the governance meanwhile (else tries again), with an
    /// audit record `action` whose detail `change` gives.
    async fn change_state(
        &self,
        tenant: &TenantId,
        action: &str,
        by: &str,
        change: impl Fn(&Governed) -> Result<(GovernanceState, Settings, serde_json::Value), Error>,
    ) -> Result<Governed, Error> {
        for _ in 0..ATTEMPTS {
            let governed = self.governed(tenant).await?;
            let (state, settings, detail) = change(&governed)?;
            let audit = AuditEntry {
                tenant: tenant.clone(),
                actor: by.to_owned(),
                action: action.to_owned(),
                subject: tenant.to_string(),
                detail,
            };
            let now = self.now();
            if let Some(version) = self
                .inner
                .store
                .save_governance(tenant, governed.version, &state, &settings, &audit, now)
                .await?
            {
                tracing::info!(tenant = %tenant, action, by, phase = %state.current_phase,
                    "governance changed");
                self.governance_changed(tenant).await?;
                return Ok(Governed {
                    state,
                    settings,
                    version,
                    updated_at: now,
                    ..governed
                });
            }
        }
        Err(Error::GovernanceBusy(tenant.to_string()))
    }

    /// Records a critical incident attributed to `action` (an operator's statement): a failed
    /// action flagged critical, audited. Circuit breakers judge it at once (kamachiq's
    /// "Critical Incident" rule reverts the phase to L3).
    pub async fn record_incident(
        &self,
        tenant: &TenantId,
        action: Action,
        description: &str,
        run: Option<RunId>,
        by: &str,
    ) -> Result<(), Error> {
        let incident = NewAction {
            tenant: tenant.clone(),
            run: run.clone(),
            deliverable: None,
            action,
            outcome: Outcome::Failed,
            duration_ms: 0,
            tokens: 0,
            cost_micro_usd: 0,
            critical: true,
        };
        let audit = AuditEntry {
            tenant: tenant.clone(),
            actor: by.to_owned(),
            action: "critical_incident".to_owned(),
            subject: action.as_str().to_owned(),
            detail: json!({"description": description, "run": run}),
        };
        self.inner
            .store
            .record_incident(&incident, &audit, self.now())
            .await?;
        tracing::warn!(tenant = %tenant, action = %action, by, "critical incident recorded");
        self.inner.governor.notify(Notice::Outcomes(tenant.clone()));
        Ok(())
    }

    /// The tenant's circuit-breaker rules, in order.
    pub async fn breaker_rules(&self, tenant: &TenantId) -> Result<Vec<Rule>, Error> {
        self.governed(tenant).await?;
        Ok(self.inner.store.breaker_rules(tenant).await?)
    }

    /// Adds a rule after checking it (a condition that does not parse is refused with the
    /// parser's message). Audited.
    pub async fn add_rule(&self, tenant: &TenantId, rule: &Rule, by: &str) -> Result<(), Error> {
        rule.check()?;
        let audit = rule_audit(tenant, "breaker_rule_added", by, &rule.name, json!(rule));
        self.inner
            .store
            .add_rule(tenant, rule, &audit, self.now())
            .await?;
        self.governance_changed(tenant).await
    }

    /// Changes the rule `name` as `patch` says, after checking the result. Audited with the
    /// rule before and after. Returns the rule as stored.
    pub async fn update_rule(
        &self,
        tenant: &TenantId,
        name: &str,
        patch: &RulePatch,
        by: &str,
    ) -> Result<Rule, Error> {
        let rules = self.breaker_rules(tenant).await?;
        let before = rules
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| kamachiq_store::Error::RuleNotFound(name.to_owned()))?;
        let mut rule = before.clone();
        if let Some(enabled) = patch.enabled {
            rule.enabled = enabled;
        }
        if let Some(condition) = &patch.condition {
            rule.condition.clone_from(condition);
        }
        if let Some(window) = patch.window {
            rule.window = window;
        }
        if let Some(action) = patch.action {
            rule.action = action;
        }
        if let Some(severity) = patch.severity {
            rule.severity = severity;
        }
        if let Some(action_type) = patch.action_type {
            rule.action_type = action_type;
        }
        rule.check()?;
        let audit = rule_audit(
            tenant,
            "breaker_rule_changed",
            by,
            name,
            json!({"before": before, "after": rule}),
        );
        self.inner
            .store
            .replace_rule(tenant, &rule, &audit, self.now())
            .await?;
        self.governance_changed(tenant).await?;
        Ok(rule)
    }

    /// Deletes the rule `name`. Audited with the rule as it was.
    pub async fn delete_rule(&self, tenant: &TenantId, name: &str, by: &str) -> Result<(), Error> {
        let rules = self.breaker_rules(tenant).await?;
        let rule = rules
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| kamachiq_store::Error::RuleNotFound(name.to_owned()))?;
        let audit = rule_audit(tenant, "breaker_rule_deleted", by, name, json!(rule));
        self.inner
            .store
            .delete_rule(tenant, name, &audit, self.now())
            .await?;
        self.governance_changed(tenant).await
    }

    /// The tenant's breaker event `id` ("not found" for another tenant's).
    pub async fn breaker_event(&self, tenant: &TenantId, id: &str) -> Result<BreakerEvent, Error> {
        self.inner
            .store
            .breaker_event(id)
            .await?
            .filter(|e| e.tenant == *tenant)
            .ok_or_else(|| kamachiq_store::Error::BreakerEventNotFound(id.to_owned()).into())
    }

    /// Resolves a breaker event (seed runbook: after the root cause is found and fixed). An
    /// event that paused an action type resumes it, unless another unresolved event keeps it
    /// paused; a revert is not undone (moving up again takes a proposal). Audited.
    pub async fn resolve_breaker_event(
        &self,
        tenant: &TenantId,
        id: &str,
        note: Option<&str>,
        by: &str,
    ) -> Result<BreakerEvent, Error> {
        let event = self.breaker_event(tenant, id).await?;
        if let Some(at) = event.resolved_at {
            return Err(kamachiq_store::Error::BreakerEventResolved {
                id: id.to_owned(),
                at,
            }
            .into());
        }
        for _ in 0..ATTEMPTS {
            let governed = self.governed(tenant).await?;
            let mut state = governed.state.clone();
            if let Effect::Pause { action, .. } = &event.effect {
                let others = self
                    .inner
                    .store
                    .breaker_events(tenant, true, None, 10_000)
                    .await?;
                let still_paused = others.iter().any(|e| {
                    e.id != event.id
                        && matches!(&e.effect, Effect::Pause { action: a, .. } if a == action)
                });
                if !still_paused {
                    state.resume(*action);
                }
            }
            let now = self.now();
            if self
                .inner
                .store
                .resolve_breaker_event(&governed, id, &state, by, note, now)
                .await?
                .is_some()
            {
                tracing::info!(tenant = %tenant, event = id, by, "circuit breaker event resolved");
                self.governance_changed(tenant).await?;
                return self.breaker_event(tenant, id).await;
            }
        }
        Err(Error::GovernanceBusy(tenant.to_string()))
    }
}

fn rule_audit(
    tenant: &TenantId,
    action: &str,
    by: &str,
    name: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        tenant: tenant.clone(),
        actor: by.to_owned(),
        action: action.to_owned(),
        subject: name.to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_enabled_above_l3_starts_with_that_phase_whitelist_and_validation() {
        let now = Timestamp::from_millis(1_800_000_000_000);
        let state = starting_state(
            &EnableOptions {
                phase: Phase::L4,
                mode: ApprovalMode::Autonomous,
                settings: Settings::default(),
            },
            now,
        );
        assert_eq!(state.current_phase, Phase::L4);
        assert_eq!(
            state.command_whitelist,
            [Action::Provision, Action::RunStep]
        );
        assert_eq!(
            state.validation_ends_at,
            Some(now.plus(Duration::from_secs(21 * 86_400)))
        );
        assert_eq!(state.approval_mode, ApprovalMode::Autonomous);
        let l3 = starting_state(&EnableOptions::default(), now);
        assert_eq!(l3, GovernanceState::initial(now));
    }
}
