//! What the weekly governance cycle reads and writes besides the actions: readiness
//! attestations, the cycle's reports, the expansion proposals they draft with the approvals
//! those gather, and a few observed facts (the last scrape of `/metrics`, emergency stop
//! drills). Every write is audited in its transaction.

use kamachiq_domain::{TenantId, Timestamp};
use kamachiq_governance::proposal::ProposalStatus;
use kamachiq_governance::{
    Assessment, Attestation, BreakerAction, GovernanceState, Phase, ProposalApprovals,
    ProposalDraft, Recommendation, Severity, WindowMetrics,
};
use kamachiq_policy::Action;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::audit::AuditEntry;
use crate::decode::{int, text, time};
use crate::governance::Governed;
use crate::{Error, Store};

/// A breaker event as a report keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSummary {
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub action: BreakerAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<Action>,
    pub at: Timestamp,
    pub resolved: bool,
}

/// What one run of the weekly cycle found. JSON names (the seed's report sections): `phase`,
/// `from`, `to`, `metrics`, `readiness`, `recommendation`, `circuitBreakerEvents`,
/// `proposalId`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleReport {
    pub phase: Phase,
    /// The week looked at: `(from, to]`.
    pub from: Timestamp,
    pub to: Timestamp,
    pub metrics: WindowMetrics,
    pub readiness: Assessment,
    pub recommendation: Recommendation,
    /// The breaker events of the week, newest first.
    pub circuit_breaker_events: Vec<EventSummary>,
    /// The proposal drafted, when the recommendation is to expand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal_id: Option<String>,
}

/// A report as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReport {
    /// `grp-...`
    pub id: String,
    pub tenant: TenantId,
    pub report: CycleReport,
    /// Who ran the cycle.
    pub requested_by: String,
    pub at: Timestamp,
}

/// A proposal to store with its report.
#[derive(Clone, Debug, PartialEq)]
pub struct NewProposal {
    /// `prp-...`
    pub id: String,
    pub draft: ProposalDraft,
    pub approvals: ProposalApprovals,
}

/// A proposal as stored, with the approvals it gathered.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredProposal {
    pub id: String,
    pub tenant: TenantId,
    pub report_id: String,
    pub draft: ProposalDraft,
    pub approvals: ProposalApprovals,
    pub status: ProposalStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The name of the observation of a `/metrics` scrape.
pub const METRICS_SCRAPED: &str = "metrics_scraped";

fn encode<T: Serialize>(what: &str, value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(format!("cannot encode {what}: {e}")))
}

impl Store {
    /// Stores a cycle's report, with the proposal it drafted, audited, in one transaction.
    pub async fn save_report(
        &self,
        report: &StoredReport,
        proposal: Option<&NewProposal>,
        audit: &AuditEntry,
    ) -> Result<(), Error> {
        let at = report.at;
        let mut tx = self.begin_write().await?;
        sqlx::query(self.sql.insert_report.sql())
            .bind(report.id.as_str())
            .bind(report.tenant.as_str())
            .bind(encode("a governance report", &report.report)?)
            .bind(report.requested_by.as_str())
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await?;
        if let Some(p) = proposal {
            sqlx::query(self.sql.insert_proposal.sql())
                .bind(p.id.as_str())
                .bind(report.tenant.as_str())
                .bind(report.id.as_str())
                .bind(encode("a proposal", &p.draft)?)
                .bind(encode("a proposal's approvals", &p.approvals)?)
                .bind(at.as_millis())
                .execute(&mut *tx)
                .await?;
        }
        self.append_audit(&mut tx, at.as_millis(), &[audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's reports, newest first.
    pub async fn reports(&self, tenant: &TenantId, limit: u32) -> Result<Vec<StoredReport>, Error> {
        let rows = sqlx::query(self.sql.select_reports.sql())
            .bind(tenant.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(report).collect()
    }

    /// One report.
    pub async fn report(&self, id: &str) -> Result<Option<StoredReport>, Error> {
        let row = sqlx::query(self.sql.select_report.sql())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(report).transpose()
    }

    /// The tenant's proposals, newest first: all, or only those pending.
    pub async fn proposals(
        &self,
        tenant: &TenantId,
        pending: bool,
        limit: u32,
    ) -> Result<Vec<StoredProposal>, Error> {
        let rows = sqlx::query(self.sql.select_proposals.sql())
            .bind(tenant.as_str())
            .bind(i64::from(pending))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(proposal).collect()
    }

    /// One proposal.
    pub async fn proposal(&self, id: &str) -> Result<Option<StoredProposal>, Error> {
        let row = sqlx::query(self.sql.select_proposal.sql())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(proposal).transpose()
    }

    /// Records a decision on a pending proposal (`updated` carries its approvals and status
    /// after it) and, when it completes the proposal, the tenant's advanced `state` if its
    /// governance is still at `governed.version`; audited, in one transaction. Returns false,
    /// writing nothing, when the proposal is no longer pending or the governance moved.
    pub async fn decide_proposal(
        &self,
        updated: &StoredProposal,
        advance: Option<(&Governed, &GovernanceState)>,
        audits: &[&AuditEntry],
        at: Timestamp,
    ) -> Result<bool, Error> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(self.sql.update_proposal.sql())
            .bind(updated.id.as_str())
            .bind(encode("a proposal's approvals", &updated.approvals)?)
            .bind(updated.status.as_str())
            .bind(at.as_millis())
            .fetch_optional(&mut *tx)
            .await?;
        if changed.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some((governed, state)) = advance {
            let saved = self
                .write_governance(
                    &mut tx,
                    &governed.tenant,
                    governed.version,
                    (state, &governed.settings),
                    audits,
                    at,
                )
                .await?;
            if saved.is_none() {
                tx.rollback().await?;
                return Ok(false);
            }
        } else {
            self.append_audit(&mut tx, at.as_millis(), audits).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records an attestation of a readiness item, audited.
    pub async fn attest(
        &self,
        tenant: &TenantId,
        attestation: &Attestation,
        audit: &AuditEntry,
    ) -> Result<(), Error> {
        let at = attestation.at;
        let mut tx = self.begin_write().await?;
        sqlx::query(self.sql.insert_attestation.sql())
            .bind(tenant.as_str())
            .bind(attestation.item.as_str())
            .bind(attestation.by.as_str())
            .bind(attestation.evidence.as_str())
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await?;
        self.append_audit(&mut tx, at.as_millis(), &[audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's attestations made at or after `since`, oldest first.
    pub async fn attestations(
        &self,
        tenant: &TenantId,
        since: Timestamp,
    ) -> Result<Vec<Attestation>, Error> {
        let rows = sqlx::query(self.sql.select_attestations.sql())
            .bind(tenant.as_str())
            .bind(since.as_millis())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Attestation {
                    item: text(row, "item")?,
                    by: text(row, "by")?,
                    evidence: text(row, "evidence")?,
                    at: time(row, "at")?,
                })
            })
            .collect()
    }

    /// Notes that `name` was observed happening at `at` (only the latest time is kept).
    pub async fn observe(&self, name: &str, at: Timestamp) -> Result<(), Error> {
        sqlx::query(self.sql.upsert_observation.sql())
            .bind(name)
            .bind(at.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When `name` was last observed.
    pub async fn observed(&self, name: &str) -> Result<Option<Timestamp>, Error> {
        let row = sqlx::query(self.sql.select_observation.sql())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| time(&r, "at")).transpose()
    }

    /// Whether the emergency stop was exercised since `since`: turned on and lifted again,
    /// as the audit trail records (`emergency_stop`, `resume_all`).
    pub async fn stop_exercised_since(&self, since: Timestamp) -> Result<bool, Error> {
        let row = sqlx::query(self.sql.select_stop_drills.sql())
            .bind(since.as_millis())
            .fetch_one(&self.pool)
            .await?;
        Ok(int(&row, "stops")? > 0 && int(&row, "resumes")? > 0)
    }
}

fn report(row: &AnyRow) -> Result<StoredReport, Error> {
    let id = text(row, "id")?;
    let report = serde_json::from_str(&text(row, "report")?)
        .map_err(|e| Error::Corrupt(format!("report {id}: {e}")))?;
    Ok(StoredReport {
        tenant: TenantId::parse(text(row, "tenant")?)?,
        report,
        requested_by: text(row, "requested_by")?,
        at: time(row, "at")?,
        id,
    })
}

fn proposal(row: &AnyRow) -> Result<StoredProposal, Error> {
    let id = text(row, "id")?;
    let corrupt =
        |what: &str, e: serde_json::Error| Error::Corrupt(format!("{what} of proposal {id}: {e}"));
    let status = text(row, "status")?;
    let status = ProposalStatus::parse(&status)
        .ok_or_else(|| Error::Corrupt(format!("status of proposal {id}: unknown `{status}`")))?;
    Ok(StoredProposal {
        tenant: TenantId::parse(text(row, "tenant")?)?,
        report_id: text(row, "report_id")?,
        draft: serde_json::from_str(&text(row, "draft")?).map_err(|e| corrupt("draft", e))?,
        approvals: serde_json::from_str(&text(row, "approvals")?)
            .map_err(|e| corrupt("approvals", e))?,
        status,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        id,
    })
}
