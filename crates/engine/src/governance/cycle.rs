//! Readiness, the weekly cycle and its proposals, and the windowed metrics of actions.
//!
//! Readiness facts come from kamachiq's own records wherever it can measure them: time in
//! phase from the state, success, error and rollback rates and critical incidents from the
//! action outcomes since the phase started, the approval rate from people's decisions in the
//! phase (the tenant's automatic approvals are not counted), breaker rules and unresolved
//! events from the store, monitoring from a scrape of `/metrics` within the last day (the
//! server notes each), and the emergency stop from the audit trail (turned on and lifted since
//! the phase started). What kamachiq cannot measure is attested by a person with evidence.

use std::time::Duration;

use kamachiq_domain::{Role, TenantId, Timestamp};
use kamachiq_governance::cycle::{self as math, Snapshot};
use kamachiq_governance::proposal::ProposalStatus;
use kamachiq_governance::readiness::{Check, Checklist, ReadinessFacts};
use kamachiq_governance::{
    ApprovalOutcome, Assessment, Attestation, ProposalApprovals, WindowMetrics, assess,
};
use kamachiq_store::{
    AuditEntry, CycleReport, EventSummary, Governed, METRICS_SCRAPED, NewProposal, StoredProposal,
    StoredReport,
};
use serde_json::json;

use super::ATTEMPTS;
use crate::Error;
use crate::engine::Engine;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// The weekly cycle looks at the last seven days.
pub const WEEK: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Monitoring counts as on when `/metrics` was scraped this recently.
pub const SCRAPED_WITHIN: Duration = DAY;

/// What running the cycle produced.
#[derive(Clone, Debug, PartialEq)]
pub struct CycleOutcome {
    pub report: StoredReport,
    pub proposal: Option<StoredProposal>,
}

/// What a decision on a proposal did.
#[derive(Clone, Debug, PartialEq)]
pub struct ProposalDecision {
    pub proposal: StoredProposal,
    /// The tenant's governance after it, when the decision completed the proposal and the
    /// phase advanced.
    pub advanced: Option<Governed>,
}

fn before(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_millis(
        t.as_millis()
            .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    )
}

/// What a checklist change did, for its audit record: the ids of items added, removed and
/// changed (a condition loosened, a weight or the required flag moved), the points per category
/// before and after, and both checklists whole, so that no edit goes unseen.
fn checklist_change(before: &Checklist, after: &Checklist) -> serde_json::Value {
    let find = |c: &Checklist, id: &str| c.items.iter().find(|i| i.id == id).cloned();
    let ids = |c: &Checklist| c.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let (was, now) = (ids(before), ids(after));
    json!({
        "added": now.iter().filter(|i| !was.contains(i)).collect::<Vec<_>>(),
        "removed": was.iter().filter(|i| !now.contains(i)).collect::<Vec<_>>(),
        "changed": now.iter()
            .filter(|i| find(before, i).is_some_and(|old| Some(old) != find(after, i)))
            .collect::<Vec<_>>(),
        "points_before": before.max_points(),
        "points_after": after.max_points(),
        "before": before,
        "after": after,
    })
}

impl Engine {
    /// The numbers of the tenant's action outcomes in `(from, to]`, per action type and
    /// overall.
    pub async fn action_metrics(
        &self,
        tenant: &TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<WindowMetrics, Error> {
        let stored = self.inner.store.actions(tenant, from, to).await?;
        let records: Vec<_> = stored.into_iter().map(|a| a.record).collect();
        Ok(kamachiq_governance::metrics::metrics(&records, from, to))
    }

    /// The tenant's readiness now, from what kamachiq measured and what people attested.
    pub async fn readiness(&self, tenant: &TenantId) -> Result<Assessment, Error> {
        let governed = self.governed(tenant).await?;
        self.assess(&governed, self.now()).await
    }

    async fn assess(&self, governed: &Governed, now: Timestamp) -> Result<Assessment, Error> {
        let store = &self.inner.store;
        let tenant = &governed.tenant;
        let state = &governed.state;
        let mut facts = ReadinessFacts::new(state, now);
        facts.observe(
            &store
                .action_counts(
                    tenant,
                    before(state.phase_started_at, Duration::from_millis(1)),
                    now,
                )
                .await?,
        );
        facts.count_rules(&store.breaker_rules(tenant).await?);
        facts.unresolved_breaker_events = u32::try_from(
            store
                .breaker_events(tenant, true, None, 10_000)
                .await?
                .len(),
        )
        .unwrap_or(u32::MAX);
        let decisions = store
            .approval_decisions(tenant, state.phase_started_at)
            .await?;
        facts.approvals_decided = decisions.approved + decisions.denied;
        if facts.approvals_decided > 0 {
            facts.approval_rate = decisions.approved as f64 / facts.approvals_decided as f64;
        }
        facts.monitoring_enabled = store
            .observed(METRICS_SCRAPED)
            .await?
            .is_some_and(|at| at > before(now, SCRAPED_WITHIN));
        facts.emergency_stop_exercised = store.stop_exercised_since(state.phase_started_at).await?;
        let attestations = store.attestations(tenant, state.phase_started_at).await?;
        Ok(assess(&governed.checklist, &facts, &attestations, now))
    }

    /// A person attests a readiness item that kamachiq cannot measure, with evidence. The
    /// item must be one of the tenant's attested items. Audited.
    pub async fn attest(
        &self,
        tenant: &TenantId,
        item: &str,
        evidence: &str,
        by: &str,
    ) -> Result<Attestation, Error> {
        let governed = self.governed(tenant).await?;
        let Some(found) = governed.checklist.items.iter().find(|i| i.id == item) else {
            return Err(Error::UnknownItem {
                item: item.to_owned(),
                known: governed
                    .checklist
                    .items
                    .iter()
                    .filter(|i| i.check == Check::Attested)
                    .map(|i| i.id.clone())
                    .collect(),
            });
        };
        if found.check != Check::Attested {
            return Err(Error::ItemMeasured {
                item: item.to_owned(),
            });
        }
        let attestation = Attestation {
            item: item.to_owned(),
            by: by.to_owned(),
            evidence: evidence.to_owned(),
            at: self.now(),
        };
        let audit = AuditEntry {
            tenant: tenant.clone(),
            actor: by.to_owned(),
            action: "readiness_attested".to_owned(),
            subject: item.to_owned(),
            detail: json!({"evidence": evidence, "title": found.title}),
        };
        self.inner
            .store
            .attest(tenant, &attestation, &audit)
            .await?;
        Ok(attestation)
    }

    /// The tenant's readiness checklist.
    pub async fn checklist(&self, tenant: &TenantId) -> Result<Checklist, Error> {
        Ok(self.governed(tenant).await?.checklist)
    }

    /// Replaces the tenant's readiness checklist (seed runbook: "review checklist items for
    /// relevance, adjust weights"), checked first: ids, weights, titles and every condition.
    /// Attestations of items kept still count. Audited: see [`checklist_change`].
    pub async fn set_checklist(
        &self,
        tenant: &TenantId,
        checklist: &Checklist,
        by: &str,
    ) -> Result<Governed, Error> {
        checklist.check()?;
        for _ in 0..ATTEMPTS {
            let governed = self.governed(tenant).await?;
            let audit = AuditEntry {
                tenant: tenant.clone(),
                actor: by.to_owned(),
                action: "checklist_changed".to_owned(),
                subject: tenant.to_string(),
                detail: checklist_change(&governed.checklist, checklist),
            };
            let now = self.now();
            if let Some(version) = self
                .inner
                .store
                .save_checklist(tenant, governed.version, checklist, &audit, now)
                .await?
            {
                tracing::info!(tenant = %tenant, by, items = checklist.items.len(),
                    "readiness checklist changed");
                self.governance_changed(tenant).await?;
                return Ok(Governed {
                    checklist: checklist.clone(),
                    version,
                    updated_at: now,
                    ..governed
                });
            }
        }
        Err(Error::GovernanceBusy(tenant.to_string()))
    }

    /// Runs the weekly cycle for the tenant (seed runbook, "Friday End-of-Week Review"): the
    /// last seven days' metrics, readiness now, the breaker events, the recommendation, and
    /// the proposal when expanding is recommended, asked for by `by` (who may then not
    /// approve it). Stored, audited.
    pub async fn run_cycle(&self, tenant: &TenantId, by: &str) -> Result<CycleOutcome, Error> {
        let store = &self.inner.store;
        let governed = self.governed(tenant).await?;
        let now = self.now();
        let from = before(now, WEEK);
        let metrics = self.action_metrics(tenant, from, now).await?;
        let readiness = self.assess(&governed, now).await?;
        let unresolved = store.breaker_events(tenant, true, None, 10_000).await?;
        let pending = !store.proposals(tenant, true, 1).await?.is_empty();
        let snapshot = Snapshot {
            state: &governed.state,
            assessment: &readiness,
            metrics: &metrics,
            unresolved_events: u32::try_from(unresolved.len()).unwrap_or(u32::MAX),
            pending_proposal: pending,
            now,
        };
        let report = math::run(&snapshot);
        let week_events = store
            .breaker_events(tenant, false, Some(from), 1_000)
            .await?;
        let proposal = report.proposal.map(|draft| NewProposal {
            id: format!("prp-{}", ulid::Ulid::generate().to_string().to_lowercase()),
            approvals: ProposalApprovals::new(&draft, by),
            draft,
        });
        let stored = StoredReport {
            id: format!("grp-{}", ulid::Ulid::generate().to_string().to_lowercase()),
            tenant: tenant.clone(),
            report: CycleReport {
                phase: governed.state.current_phase,
                from,
                to: now,
                metrics,
                readiness,
                recommendation: report.recommendation,
                circuit_breaker_events: week_events
                    .iter()
                    .map(|e| EventSummary {
                        id: e.id.clone(),
                        rule: e.rule.clone(),
                        severity: e.severity,
                        action: e.action,
                        action_type: e.action_type,
                        at: e.at,
                        resolved: e.is_resolved(),
                    })
                    .collect(),
                proposal_id: proposal.as_ref().map(|p| p.id.clone()),
            },
            requested_by: by.to_owned(),
            at: now,
        };
        let audit = AuditEntry {
            tenant: tenant.clone(),
            actor: by.to_owned(),
            action: "governance_cycle".to_owned(),
            subject: stored.id.clone(),
            detail: json!({
                "recommendation": stored.report.recommendation,
                "readiness": stored.report.readiness.score,
                "proposal": proposal.as_ref().map(|p| json!({"id": p.id, "draft": p.draft})),
            }),
        };
        store
            .save_report(&stored, proposal.as_ref(), &audit)
            .await?;
        tracing::info!(tenant = %tenant, report = %stored.id,
            recommendation = ?stored.report.recommendation.kind, by, "governance cycle ran");
        let proposal = match proposal {
            Some(p) => store.proposal(&p.id).await?,
            None => None,
        };
        Ok(CycleOutcome {
            report: stored,
            proposal,
        })
    }

    /// The tenant's proposal `id` ("not found" for another tenant's).
    pub async fn proposal(&self, tenant: &TenantId, id: &str) -> Result<StoredProposal, Error> {
        self.inner
            .store
            .proposal(id)
            .await?
            .filter(|p| p.tenant == *tenant)
            .ok_or_else(|| Error::ProposalNotFound(id.to_owned()))
    }

    /// Approves a proposal as `by`, holding `roles` (an authenticated identity: four eyes,
    /// the requester refused, one person one role). Refused while readiness is below its
    /// threshold, a required item fails, or a breaker event is unresolved. The approval that
    /// completes it advances the tenant's phase (whitelist widened, validation period
    /// started), in the same transaction. Audited.
    pub async fn approve_proposal(
        &self,
        tenant: &TenantId,
        id: &str,
        by: &str,
        roles: &[Role],
        comment: Option<&str>,
    ) -> Result<ProposalDecision, Error> {
        for _ in 0..ATTEMPTS {
            let proposal = self.open_proposal(tenant, id).await?;
            let governed = self.governed(tenant).await?;
            let now = self.now();
            self.refuse_if_not_ready(&governed, now).await?;
            let mut updated = proposal.clone();
            let outcome = updated
                .approvals
                .approve(by, roles, comment, now)
                .map_err(Error::ProposalRefused)?;
            updated.status = updated.approvals.status();
            let mut audits = vec![AuditEntry {
                tenant: tenant.clone(),
                actor: by.to_owned(),
                action: "proposal_approved".to_owned(),
                subject: id.to_owned(),
                detail: json!({"outcome": outcome, "comment": comment, "roles": roles}),
            }];
            let advance = match outcome {
                ApprovalOutcome::Complete { .. } => {
                    let mut state = governed.state.clone();
                    state
                        .advance(&proposal.draft, now)
                        .map_err(Error::ProposalStale)?;
                    audits.push(AuditEntry {
                        tenant: tenant.clone(),
                        actor: by.to_owned(),
                        action: "phase_advanced".to_owned(),
                        subject: tenant.to_string(),
                        detail: json!({
                            "proposal": id, "from": governed.state.current_phase,
                            "to": state.current_phase, "whitelist": state.command_whitelist,
                            "validation_ends_at": state.validation_ends_at,
                            "approvals": updated.approvals.approvals,
                        }),
                    });
                    Some(state)
                }
                ApprovalOutcome::Recorded { .. } => None,
            };
            let audit_refs: Vec<&AuditEntry> = audits.iter().collect();
            if self
                .inner
                .store
                .decide_proposal(
                    &updated,
                    advance.as_ref().map(|s| (&governed, s)),
                    &audit_refs,
                    now,
                )
                .await?
            {
                let advanced = match advance {
                    Some(_) => {
                        tracing::info!(tenant = %tenant, proposal = id, by,
                            to = %proposal.draft.target_phase, "proposal approved: phase advanced");
                        self.governance_changed(tenant).await?;
                        Some(self.governed(tenant).await?)
                    }
                    None => None,
                };
                return Ok(ProposalDecision {
                    proposal: self.proposal(tenant, id).await?,
                    advanced,
                });
            }
        }
        Err(Error::GovernanceBusy(tenant.to_string()))
    }

    /// Rejects a proposal as `by`, who must hold one of its required roles. Audited.
    pub async fn reject_proposal(
        &self,
        tenant: &TenantId,
        id: &str,
        by: &str,
        roles: &[Role],
        reason: &str,
    ) -> Result<ProposalDecision, Error> {
        let proposal = self.open_proposal(tenant, id).await?;
        let now = self.now();
        let mut updated = proposal.clone();
        updated
            .approvals
            .reject(by, roles, reason, now)
            .map_err(Error::ProposalRefused)?;
        updated.status = updated.approvals.status();
        let audit = AuditEntry {
            tenant: tenant.clone(),
            actor: by.to_owned(),
            action: "proposal_rejected".to_owned(),
            subject: id.to_owned(),
            detail: json!({"reason": reason, "roles": roles}),
        };
        if !self
            .inner
            .store
            .decide_proposal(&updated, None, &[&audit], now)
            .await?
        {
            return Err(Error::ProposalClosed {
                id: id.to_owned(),
                status: self.proposal(tenant, id).await?.status,
            });
        }
        Ok(ProposalDecision {
            proposal: self.proposal(tenant, id).await?,
            advanced: None,
        })
    }

    async fn open_proposal(&self, tenant: &TenantId, id: &str) -> Result<StoredProposal, Error> {
        let proposal = self.proposal(tenant, id).await?;
        if proposal.status != ProposalStatus::Pending {
            return Err(Error::ProposalClosed {
                id: id.to_owned(),
                status: proposal.status,
            });
        }
        Ok(proposal)
    }

    /// Refuses a decision that would move the phase on while the tenant is not ready.
    async fn refuse_if_not_ready(&self, governed: &Governed, now: Timestamp) -> Result<(), Error> {
        let assessment = self.assess(governed, now).await?;
        let unresolved = self
            .inner
            .store
            .breaker_events(&governed.tenant, true, None, 10_000)
            .await?
            .len();
        let mut reasons = Vec::new();
        if !assessment.reaches_ready() {
            reasons.push(format!(
                "readiness is {:.2}% ({} of {} points), below 95%",
                assessment.score * 100.0,
                assessment.points,
                assessment.max_points
            ));
        }
        reasons.extend(assessment.overall.blockers.iter().cloned());
        if unresolved > 0 {
            reasons.push(format!(
                "{unresolved} circuit breaker event(s) are unresolved"
            ));
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Error::ProposalBlocked { reasons })
        }
    }
}
