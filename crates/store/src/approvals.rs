//! The approvals inbox (seed 003): actions that wait for a person. A request is written with
//! the block of its deliverable (its requeue entry), and decided through
//! [`Change::DecideApproval`](crate::Change::DecideApproval): approved (the deliverable runs
//! that one action), denied or expired (it stays in the requeue, retried by nobody but a
//! person), or escalated (it waits on, without a deadline). This module reads them.

use kamachiq_domain::{DeliverableId, RunId, TenantId, Timestamp};
use kamachiq_governance::Cause;
use kamachiq_policy::{Action, DiffInput, Reason, Risk};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::decode::{int, opt_text, opt_time, text, time};
use crate::{Error, Store};

/// Where an approval request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waits for a person until it expires.
    Pending,
    /// A person (or the tenant's low-risk auto-approval) let the action through.
    Approved,
    /// A person refused it; the deliverable stays in the requeue.
    Denied,
    /// Nobody answered in time, and the tenant denies what expires.
    Expired,
    /// Nobody answered in time, and the tenant escalates: it waits on, without a deadline,
    /// and may still be approved or denied.
    Escalated,
    /// The deliverable was let through otherwise (an operator's override, a re-evaluation
    /// that policy allowed) or its run was cancelled: nothing is left to decide.
    Withdrawn,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 6] = [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
        ApprovalStatus::Expired,
        ApprovalStatus::Escalated,
        ApprovalStatus::Withdrawn,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Escalated => "escalated",
            ApprovalStatus::Withdrawn => "withdrawn",
        }
    }

    /// Whether a person may still decide it.
    pub const fn is_open(self) -> bool {
        matches!(self, ApprovalStatus::Pending | ApprovalStatus::Escalated)
    }

    fn parse(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| Error::Corrupt(format!("unknown approval status `{s}`")))
    }
}

/// What a person sees to decide: why it waits, the change a merge would bring in, and how
/// the deliverable's steps went so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The policy gate's reasons, and governance's (code `governance_<cause>`).
    pub reasons: Vec<Reason>,
    /// The diff's statistics and the review guards' findings, for a merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<DiffInput>,
    /// The latest attempt of each step that ran (the test results where steps are tests).
    #[serde(default)]
    pub steps: Vec<StepEvidence>,
}

/// How a step of the deliverable went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepEvidence {
    pub step: String,
    pub attempt: u32,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A request to write: pending, with the block of its deliverable; or approved at once (by
/// `auto`), with the decision that let the action through.
#[derive(Clone, Debug, PartialEq)]
pub struct NewApproval {
    /// `apr-...`
    pub id: String,
    /// The requeue entry of the blocked deliverable; `None` for one approved at once.
    pub requeue_id: Option<String>,
    pub tenant: TenantId,
    pub run: RunId,
    pub deliverable: DeliverableId,
    pub action: Action,
    /// The step, for a `run_step`.
    pub step: Option<String>,
    pub risk: Risk,
    /// Why governance asks; `None` when only the policy gate did.
    pub cause: Option<Cause>,
    pub evidence: Evidence,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    /// [`ApprovalStatus::Pending`], or [`ApprovalStatus::Approved`] with `decided_by`.
    pub status: ApprovalStatus,
    pub decided_by: Option<String>,
}

/// An approval request, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    pub id: String,
    pub requeue_id: Option<String>,
    pub tenant: TenantId,
    pub run: RunId,
    pub deliverable: DeliverableId,
    pub action: Action,
    pub step: Option<String>,
    pub risk: Risk,
    pub cause: Option<Cause>,
    pub evidence: Evidence,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    pub status: ApprovalStatus,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    /// The approver's comment, or the reason of a denial.
    pub comment: Option<String>,
}

/// How many approval requests people decided in a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApprovalDecisions {
    pub approved: u64,
    pub denied: u64,
}

/// The scope an approval of `action` grants a deliverable held at step `step_index`: that
/// step (`run_step:2`), for a step; the action itself (`merge`) otherwise. A deliverable's
/// approved scopes let exactly those actions past a need for a person, nothing else.
pub fn approval_scope(action: Action, step_index: u32) -> String {
    match action {
        Action::RunStep => format!("run_step:{step_index}"),
        other => other.as_str().to_owned(),
    }
}

pub(crate) fn cause_name(c: Cause) -> &'static str {
    match c {
        Cause::Paused => "paused",
        Cause::ManualMode => "manual_mode",
        Cause::Policy => "policy",
        Cause::NotWhitelisted => "not_whitelisted",
        Cause::Risk => "risk",
    }
}

impl Store {
    /// The tenant's approval requests, newest first: all, or only those a person may still
    /// decide (pending or escalated).
    pub async fn approvals(
        &self,
        tenant: &TenantId,
        open: bool,
        limit: u32,
    ) -> Result<Vec<Approval>, Error> {
        let rows = sqlx::query(self.sql.select_approvals.sql())
            .bind(tenant.as_str())
            .bind(i64::from(open))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(approval).collect()
    }

    /// One approval request.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, Error> {
        let row = sqlx::query(self.sql.select_approval.sql())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(approval).transpose()
    }

    /// The request a person may still decide for a requeue entry, if any.
    pub async fn open_approval_of(&self, requeue_id: &str) -> Result<Option<String>, Error> {
        let row = sqlx::query(self.sql.select_open_approval_of_requeue.sql())
            .bind(requeue_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| text(&r, "id")).transpose()
    }

    /// Pending requests whose time ran out at `now`, oldest deadline first.
    pub async fn expired_approvals(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Approval>, Error> {
        let rows = sqlx::query(self.sql.select_expired_approvals.sql())
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(approval).collect()
    }

    /// How many of the tenant's requests people approved and denied since `since` (the
    /// tenant's automatic approvals are not a person's decision and are not counted).
    pub async fn approval_decisions(
        &self,
        tenant: &TenantId,
        since: Timestamp,
    ) -> Result<ApprovalDecisions, Error> {
        let rows = sqlx::query(self.sql.select_approval_decisions.sql())
            .bind(tenant.as_str())
            .bind(since.as_millis())
            .fetch_all(&self.pool)
            .await?;
        let mut out = ApprovalDecisions::default();
        for row in &rows {
            let n = u64::try_from(int(row, "n")?).unwrap_or(0);
            match ApprovalStatus::parse(&text(row, "status")?)? {
                ApprovalStatus::Approved => out.approved += n,
                ApprovalStatus::Denied => out.denied += n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// Requests a person may still decide, per tenant.
    pub async fn open_approval_counts(&self) -> Result<Vec<(TenantId, u64)>, Error> {
        let rows = sqlx::query(self.sql.select_open_approval_counts.sql())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    TenantId::parse(text(row, "tenant")?)?,
                    u64::try_from(int(row, "n")?).unwrap_or(0),
                ))
            })
            .collect()
    }
}

fn approval(row: &AnyRow) -> Result<Approval, Error> {
    let id = text(row, "id")?;
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        Error::Corrupt(format!("{what} of approval {id}: {e}"))
    };
    let action = text(row, "action")?;
    let risk = text(row, "risk")?;
    let cause = opt_text(row, "cause")?
        .map(|c| {
            serde_json::from_value::<Cause>(serde_json::Value::String(c))
                .map_err(|e| corrupt("cause", &e))
        })
        .transpose()?;
    Ok(Approval {
        requeue_id: opt_text(row, "requeue_id")?,
        tenant: TenantId::parse(text(row, "tenant")?)?,
        run: RunId::parse(text(row, "run_id")?)?,
        deliverable: DeliverableId::parse(text(row, "deliverable")?)?,
        action: action
            .parse()
            .map_err(|_| corrupt("action", &format!("unknown action `{action}`")))?,
        step: opt_text(row, "step")?,
        risk: Risk::from_name(&risk)
            .ok_or_else(|| corrupt("risk", &format!("unknown risk `{risk}`")))?,
        cause,
        evidence: serde_json::from_str(&text(row, "evidence")?)
            .map_err(|e| corrupt("evidence", &e))?,
        requested_at: time(row, "requested_at")?,
        expires_at: time(row, "expires_at")?,
        status: ApprovalStatus::parse(&text(row, "status")?)?,
        decided_by: opt_text(row, "decided_by")?,
        decided_at: opt_time(row, "decided_at")?,
        comment: opt_text(row, "comment")?,
        id,
    })
}
