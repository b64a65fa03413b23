//! Governed tenants: their [`GovernanceState`], approval [`Settings`] and readiness
//! [`Checklist`], their circuit-breaker [`Rule`]s, and the events those rules raise.
//!
//! A tenant is governed once a row exists for it (an admin enabled governance). The row's
//! `version` goes up with every change of anything here for the tenant, so the policy gate and
//! the breakers reload on one cheap read ([`crate::PolicyStamp::governance_version`]). Changes
//! of the state are compare-and-set on that version: two processes that raced, a breaker and
//! an operator say, never overwrite each other's state unseen. Every change is audited in its
//! transaction.

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::{EventKind, RunId, TenantId, Timestamp};
use kamachiq_governance::proposal::ProposalDraft;
use kamachiq_governance::{
    BreakerAction, Checklist, Effect, GovernanceState, Phase, Rule, Settings, Severity,
    WindowMetrics,
};
use kamachiq_policy::Action;
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::audit::AuditEntry;
use crate::decode::{count, opt_text, opt_time, text, time};
use crate::{Error, Store};

/// A governed tenant, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Governed {
    pub tenant: TenantId,
    pub state: GovernanceState,
    pub settings: Settings,
    pub checklist: Checklist,
    /// Goes up with every change of the tenant's governance (state, settings, rules, events).
    pub version: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A circuit breaker that tripped, as recorded. `resolved_*` are set once a person resolved it.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerEvent {
    pub id: String,
    pub tenant: TenantId,
    /// The rule's name.
    pub rule: String,
    pub severity: Severity,
    pub action: BreakerAction,
    /// The action type whose numbers breached, when the rule looked at one type.
    pub action_type: Option<Action>,
    /// What the trip did to the tenant's state.
    pub effect: Effect,
    /// The numbers the rule's condition held over.
    pub metrics: WindowMetrics,
    /// The run whose outcome tripped it, when one did.
    pub run: Option<RunId>,
    pub at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub note: Option<String>,
}

impl BreakerEvent {
    pub fn is_resolved(&self) -> bool {
        self.resolved_at.is_some()
    }
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(format!("cannot encode {what}: {e}")))
}

fn decode_json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
    whose: &str,
) -> Result<T, Error> {
    serde_json::from_str(&text(row, column)?)
        .map_err(|e| Error::Corrupt(format!("{column} of {whose}: {e}")))
}

/// A rule's row for `insert_rules`.
#[derive(Serialize)]
struct RuleRow {
    name: String,
    rule: String,
    position: i64,
}

fn rule_rows(rules: &[Rule]) -> Result<Vec<RuleRow>, Error> {
    rules
        .iter()
        .zip(1_i64..)
        .map(|(rule, position)| {
            Ok(RuleRow {
                name: rule.name.clone(),
                rule: encode("a circuit breaker rule", rule)?,
                position,
            })
        })
        .collect()
}

pub(crate) fn breaker_action_name(a: BreakerAction) -> &'static str {
    match a {
        BreakerAction::RevertToL3 => "revert_to_l3",
        BreakerAction::PauseCommandType => "pause_command_type",
        BreakerAction::AlertOnly => "alert_only",
    }
}

pub(crate) fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

impl Store {
    /// The tenant's governance, or `None` when it is not governed.
    pub async fn governance(&self, tenant: &TenantId) -> Result<Option<Governed>, Error> {
        let row = sqlx::query(self.sql.select_governance.sql())
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(governed).transpose()
    }

    /// Every governed tenant, by id.
    pub async fn governed_tenants(&self) -> Result<Vec<Governed>, Error> {
        let rows = sqlx::query(self.sql.select_governed.sql())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(governed).collect()
    }

    /// Starts governing `tenant` with `state`, `settings`, `checklist` and `rules`, audited as
    /// `governance_enabled` by `by`, in one transaction. A tenant governed already is refused
    /// ([`Error::AlreadyGoverned`]) and nothing changes.
    #[allow(clippy::too_many_arguments)]
    pub async fn enable_governance(
        &self,
        tenant: &TenantId,
        state: &GovernanceState,
        settings: &Settings,
        checklist: &Checklist,
        rules: &[Rule],
        by: &str,
        at: Timestamp,
    ) -> Result<Governed, Error> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(self.sql.insert_governance.sql())
            .bind(tenant.as_str())
            .bind(encode("a governance state", state)?)
            .bind(encode("governance settings", settings)?)
            .bind(encode("a readiness checklist", checklist)?)
            .bind(at.as_millis())
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            return Err(Error::AlreadyGoverned(tenant.to_string()));
        }
        sqlx::query(self.sql.insert_rules.sql())
            .bind(tenant.as_str())
            .bind(crate::apply::json_array(&rule_rows(rules)?)?)
            .execute(&mut *tx)
            .await?;
        let audit = AuditEntry {
            tenant: tenant.clone(),
            actor: by.to_owned(),
            action: "governance_enabled".to_owned(),
            subject: tenant.to_string(),
            detail: json!({
                "state": state, "settings": settings,
                "rules": rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
                "checklist_items": checklist.items.len(),
            }),
        };
        self.append_audit(&mut tx, at.as_millis(), &[&audit])
            .await?;
        tx.commit().await?;
        Ok(Governed {
            tenant: tenant.clone(),
            state: state.clone(),
            settings: settings.clone(),
            checklist: checklist.clone(),
            version: 1,
            created_at: at,
            updated_at: at,
        })
    }

    /// Replaces the tenant's state and settings if its governance is still at version
    /// `expected` (compare-and-set), with `audit`. Returns the new version, or `None` when the
    /// version moved (someone else changed it: read again and decide again) or the tenant is
    /// not governed.
    pub async fn save_governance(
        &self,
        tenant: &TenantId,
        expected: u32,
        state: &GovernanceState,
        settings: &Settings,
        audit: &AuditEntry,
        at: Timestamp,
    ) -> Result<Option<u32>, Error> {
        let mut tx = self.begin_write().await?;
        let Some(version) = self
            .write_governance(&mut tx, tenant, expected, (state, settings), &[audit], at)
            .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some(version))
    }

    /// Replaces the tenant's readiness checklist if its governance is still at version
    /// `expected` (compare-and-set), with `audit`. Returns the new version, or `None` when the
    /// version moved or the tenant is not governed.
    pub async fn save_checklist(
        &self,
        tenant: &TenantId,
        expected: u32,
        checklist: &Checklist,
        audit: &AuditEntry,
        at: Timestamp,
    ) -> Result<Option<u32>, Error> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(self.sql.update_checklist.sql())
            .bind(tenant.as_str())
            .bind(encode("a readiness checklist", checklist)?)
            .bind(at.as_millis())
            .bind(i64::from(expected))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        self.append_audit(&mut tx, at.as_millis(), &[audit]).await?;
        tx.commit().await?;
        count(&row, "version").map(Some)
    }

    /// Writes the tenant's state and settings if its governance is still at version `expected`
    /// (compare-and-set), then `audits` (the change, last its cause), then withdraws what the
    /// change left stale: every write of a governance state goes through here. Returns the new
    /// version, or `None` when the version moved (nothing was written; the caller rolls back).
    pub(crate) async fn write_governance(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant: &TenantId,
        expected: u32,
        (state, settings): (&GovernanceState, &Settings),
        audits: &[&AuditEntry],
        at: Timestamp,
    ) -> Result<Option<u32>, Error> {
        let row = sqlx::query(self.sql.update_governance.sql())
            .bind(tenant.as_str())
            .bind(encode("a governance state", state)?)
            .bind(encode("governance settings", settings)?)
            .bind(at.as_millis())
            .bind(i64::from(expected))
            .fetch_optional(&mut **tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        self.append_audit(tx, at.as_millis(), audits).await?;
        if let Some(cause) = audits.last() {
            self.withdraw_stale_proposals(tx, state.current_phase, cause, at)
                .await?;
        }
        count(&row, "version").map(Some)
    }

    /// Withdraws the tenant's pending proposals that no longer fit its `phase` (it was reverted,
    /// rolled back or advanced under them), each audited after `cause`, the change that moved
    /// the phase, and as done by its actor: otherwise one would wait forever, unapprovable,
    /// and keep the weekly cycle from drafting the next. A draft that cannot be read is left
    /// alone (and logged) rather than fail the change, which may be a breaker's revert.
    async fn withdraw_stale_proposals(
        &self,
        tx: &mut Transaction<'static, Any>,
        phase: Phase,
        cause: &AuditEntry,
        at: Timestamp,
    ) -> Result<(), Error> {
        let tenant = &cause.tenant;
        let pending = sqlx::query(self.sql.select_pending_drafts.sql())
            .bind(tenant.as_str())
            .fetch_all(&mut **tx)
            .await?;
        let mut audits = Vec::new();
        for row in &pending {
            let id = text(row, "id")?;
            let draft: ProposalDraft = match decode_json(row, "draft", &format!("proposal {id}")) {
                Ok(draft) => draft,
                Err(e) => {
                    tracing::error!(proposal = %id, error = %e, "a pending proposal cannot be read");
                    continue;
                }
            };
            if draft.fits(phase) {
                continue;
            }
            let withdrawn = sqlx::query(self.sql.withdraw_proposal.sql())
                .bind(id.as_str())
                .bind(at.as_millis())
                .fetch_optional(&mut **tx)
                .await?;
            if withdrawn.is_none() {
                continue;
            }
            audits.push(AuditEntry {
                tenant: tenant.clone(),
                actor: cause.actor.clone(),
                action: "proposal_withdrawn".to_owned(),
                subject: id,
                detail: json!({
                    "from": draft.from_phase, "to": draft.target_phase, "phase": phase,
                    "cause": cause.action, "cause_subject": cause.subject,
                    "reason": format!(
                        "the tenant's phase is now {phase}: the proposal moves from {} to {}",
                        draft.from_phase, draft.target_phase
                    ),
                }),
            });
        }
        if !audits.is_empty() {
            let refs: Vec<&AuditEntry> = audits.iter().collect();
            self.append_audit(tx, at.as_millis(), &refs).await?;
        }
        Ok(())
    }

    /// Moves the tenant's governance version on (its rules or events changed); refuses a
    /// tenant that is not governed.
    async fn bump_governance(
        &self,
        tx: &mut Transaction<'static, Any>,
        tenant: &TenantId,
        at: Timestamp,
    ) -> Result<u32, Error> {
        let row = sqlx::query(self.sql.bump_governance.sql())
            .bind(tenant.as_str())
            .bind(at.as_millis())
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| Error::NotGoverned(tenant.to_string()))?;
        count(&row, "version")
    }

    /// The tenant's circuit-breaker rules, in the order they were added.
    pub async fn breaker_rules(&self, tenant: &TenantId) -> Result<Vec<Rule>, Error> {
        let rows = sqlx::query(self.sql.select_rules.sql())
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| decode_json(row, "rule", &format!("a rule of tenant {tenant}")))
            .collect()
    }

    /// Adds a rule (checked by the caller) at the end of the tenant's rules, audited. A name
    /// the tenant uses already is refused ([`Error::RuleExists`]).
    pub async fn add_rule(
        &self,
        tenant: &TenantId,
        rule: &Rule,
        audit: &AuditEntry,
        at: Timestamp,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        self.bump_governance(&mut tx, tenant, at).await?;
        let inserted = sqlx::query(self.sql.insert_rules.sql())
            .bind(tenant.as_str())
            .bind(crate::apply::json_array(&rule_rows(
                std::slice::from_ref(rule),
            )?)?)
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            return Err(Error::RuleExists {
                tenant: tenant.to_string(),
                name: rule.name.clone(),
            });
        }
        self.append_audit(&mut tx, at.as_millis(), &[audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the rule of the same name, audited ([`Error::RuleNotFound`] when there is
    /// none).
    pub async fn replace_rule(
        &self,
        tenant: &TenantId,
        rule: &Rule,
        audit: &AuditEntry,
        at: Timestamp,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        self.bump_governance(&mut tx, tenant, at).await?;
        let updated = sqlx::query(self.sql.update_rule.sql())
            .bind(tenant.as_str())
            .bind(rule.name.as_str())
            .bind(encode("a circuit breaker rule", rule)?)
            .fetch_optional(&mut *tx)
            .await?;
        if updated.is_none() {
            tx.rollback().await?;
            return Err(Error::RuleNotFound(rule.name.clone()));
        }
        self.append_audit(&mut tx, at.as_millis(), &[audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the rule `name`, audited ([`Error::RuleNotFound`] when there is none).
    pub async fn delete_rule(
        &self,
        tenant: &TenantId,
        name: &str,
        audit: &AuditEntry,
        at: Timestamp,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        self.bump_governance(&mut tx, tenant, at).await?;
        let deleted = sqlx::query(self.sql.delete_rule.sql())
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if deleted.is_none() {
            tx.rollback().await?;
            return Err(Error::RuleNotFound(name.to_owned()));
        }
        self.append_audit(&mut tx, at.as_millis(), &[audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that a breaker tripped, if the tenant's governance is still at `expected`:
    /// the new `state` (unchanged for an alert), the event, its audit record (actor
    /// `breaker:<rule>`) and, when a run's outcome tripped it, a `breaker_tripped` event on
    /// that run, in one transaction. Returns the new version and the run's event, or `None`
    /// when the version moved (nothing was written: read again and evaluate again).
    pub async fn trip_breaker(
        &self,
        expected: &Governed,
        state: &GovernanceState,
        event: &BreakerEvent,
    ) -> Result<Option<(u32, Option<kamachiq_domain::Event>)>, Error> {
        let tenant = &expected.tenant;
        let at = event.at;
        let mut tx = self.begin_write().await?;
        sqlx::query(self.sql.insert_breaker_event.sql())
            .bind(event.id.as_str())
            .bind(tenant.as_str())
            .bind(event.rule.as_str())
            .bind(severity_name(event.severity))
            .bind(breaker_action_name(event.action))
            .bind(event.action_type.map(Action::as_str))
            .bind(encode("a breaker effect", &event.effect)?)
            .bind(encode("breaker metrics", &event.metrics)?)
            .bind(event.run.as_ref().map(RunId::as_str))
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await?;
        let audit = AuditEntry {
            tenant: tenant.clone(),
            actor: format!("breaker:{}", event.rule),
            action: "breaker_tripped".to_owned(),
            subject: event.id.clone(),
            detail: json!({
                "rule": event.rule, "severity": event.severity, "action": event.action,
                "action_type": event.action_type, "effect": event.effect,
                "metrics": event.metrics, "run": event.run,
                "phase": state.current_phase, "whitelist": state.command_whitelist,
                "paused": state.paused_actions,
            }),
        };
        let Some(version) = self
            .write_governance(
                &mut tx,
                tenant,
                expected.version,
                (state, &expected.settings),
                &[&audit],
                at,
            )
            .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let mut run_event = None;
        if let Some(run) = &event.run {
            let mut events = self
                .insert_run_events(
                    &mut tx,
                    at,
                    run,
                    vec![NewEvent::run(
                        EventKind::BreakerTripped,
                        json!({
                            "event_id": event.id, "rule": event.rule,
                            "severity": event.severity, "action": event.action,
                            "action_type": event.action_type, "effect": event.effect,
                        }),
                    )],
                )
                .await?;
            run_event = events.pop();
        }
        tx.commit().await?;
        Ok(Some((version, run_event)))
    }

    /// The tenant's breaker events, newest first: all, or only those not resolved; only those
    /// at or after `since` when given.
    pub async fn breaker_events(
        &self,
        tenant: &TenantId,
        unresolved: bool,
        since: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<BreakerEvent>, Error> {
        let rows = sqlx::query(self.sql.select_breaker_events.sql())
            .bind(tenant.as_str())
            .bind(i64::from(unresolved))
            .bind(since.map(Timestamp::as_millis))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(breaker_event).collect()
    }

    /// One breaker event.
    pub async fn breaker_event(&self, id: &str) -> Result<Option<BreakerEvent>, Error> {
        let row = sqlx::query(self.sql.select_breaker_event.sql())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(breaker_event).transpose()
    }

    /// Resolves a breaker event, if the tenant's governance is still at `expected.version`,
    /// with the tenant's new `state` (a paused action type resumed, say), audited as
    /// `breaker_event_resolved` by `by`. Returns `None` when the version moved; an event
    /// resolved already is refused ([`Error::BreakerEventResolved`]).
    pub async fn resolve_breaker_event(
        &self,
        expected: &Governed,
        id: &str,
        state: &GovernanceState,
        by: &str,
        note: Option<&str>,
        at: Timestamp,
    ) -> Result<Option<u32>, Error> {
        let tenant = &expected.tenant;
        let mut tx = self.begin_write().await?;
        let resolved = sqlx::query(self.sql.resolve_breaker_event.sql())
            .bind(id)
            .bind(at.as_millis())
            .bind(by)
            .bind(note)
            .fetch_optional(&mut *tx)
            .await?;
        if resolved.is_none() {
            tx.rollback().await?;
            let earlier = self
                .breaker_event(id)
                .await?
                .ok_or_else(|| Error::BreakerEventNotFound(id.to_owned()))?;
            return Err(Error::BreakerEventResolved {
                id: id.to_owned(),
                at: earlier.resolved_at.unwrap_or(earlier.at),
            });
        }
        let audit = AuditEntry {
            tenant: tenant.clone(),
            actor: by.to_owned(),
            action: "breaker_event_resolved".to_owned(),
            subject: id.to_owned(),
            detail: json!({
                "note": note, "paused": state.paused_actions,
                "resumed": expected.state.paused_actions.iter()
                    .filter(|a| !state.paused_actions.contains(a)).collect::<Vec<_>>(),
            }),
        };
        let Some(version) = self
            .write_governance(
                &mut tx,
                tenant,
                expected.version,
                (state, &expected.settings),
                &[&audit],
                at,
            )
            .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some(version))
    }

    /// Breaker events of every tenant by severity: how many ever, and how many are open.
    pub async fn breaker_event_totals(&self) -> Result<Vec<(Severity, u64, u64)>, Error> {
        let rows = sqlx::query(self.sql.select_breaker_event_totals.sql())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let severity = parse_severity(&text(row, "severity")?)?;
                let n = |c| crate::decode::int(row, c).map(|v| u64::try_from(v).unwrap_or(0));
                Ok((severity, n("n")?, n("open")?))
            })
            .collect()
    }
}

fn parse_severity(s: &str) -> Result<Severity, Error> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|e| Error::Corrupt(format!("breaker event severity: {e}")))
}

fn governed(row: &AnyRow) -> Result<Governed, Error> {
    let tenant = TenantId::parse(text(row, "tenant")?)?;
    let whose = format!("the governance of tenant {tenant}");
    Ok(Governed {
        state: decode_json(row, "state", &whose)?,
        settings: decode_json(row, "settings", &whose)?,
        checklist: decode_json(row, "checklist", &whose)?,
        version: count(row, "version")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        tenant,
    })
}

fn breaker_event(row: &AnyRow) -> Result<BreakerEvent, Error> {
    let id = text(row, "id")?;
    let whose = format!("breaker event {id}");
    let enum_of = |column: &str| -> Result<serde_json::Value, Error> {
        Ok(serde_json::Value::String(text(row, column)?))
    };
    let corrupt = |e: serde_json::Error| Error::Corrupt(format!("{whose}: {e}"));
    Ok(BreakerEvent {
        tenant: TenantId::parse(text(row, "tenant")?)?,
        rule: text(row, "rule")?,
        severity: serde_json::from_value(enum_of("severity")?).map_err(corrupt)?,
        action: serde_json::from_value(enum_of("action")?).map_err(corrupt)?,
        action_type: opt_text(row, "action_type")?
            .map(|a| {
                a.parse::<Action>()
                    .map_err(|_| Error::Corrupt(format!("{whose}: unknown action `{a}`")))
            })
            .transpose()?,
        effect: decode_json(row, "effect", &whose)?,
        metrics: decode_json(row, "metrics", &whose)?,
        run: opt_text(row, "run_id")?.map(RunId::parse).transpose()?,
        at: time(row, "at")?,
        resolved_at: opt_time(row, "resolved_at")?,
        resolved_by: opt_text(row, "resolved_by")?,
        note: opt_text(row, "note")?,
        id,
    })
}
