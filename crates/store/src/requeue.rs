//! Policy decisions as recorded, and the requeue: deliverables that policy held back, waiting
//! for a re-evaluation or an operator. Decisions and requeue entries are written through
//! [`Store::apply`](crate::Store::apply) with the change they cause; this module reads them.

use kamachiq_domain::{DeliverableId, RunId, TenantId, Timestamp};
use kamachiq_policy::{Action, Decision, Input, Reason, Verdict};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::decode::{count, opt_text, opt_time, text, time};
use crate::{Error, Store};

/// A decision of the policy gate with the input it was made on: the record that replays a
/// candidate policy against what really happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionRecord {
    pub id: String,
    pub tenant: TenantId,
    pub run: Option<RunId>,
    pub deliverable: Option<DeliverableId>,
    pub input: Input,
    pub decision: Decision,
    pub at: Timestamp,
}

/// How a requeue entry was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Policy allowed the deliverable on re-evaluation (by an operator or the retry loop).
    Allowed,
    /// An operator overrode the block, with a justification.
    Overridden,
    /// The run was cancelled while the deliverable waited.
    Cancelled,
    /// A person approved the action it waited for (the approvals inbox).
    Approved,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Overridden => "overridden",
            Self::Cancelled => "cancelled",
            Self::Approved => "approved",
        }
    }

    fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "allowed" => Ok(Self::Allowed),
            "overridden" => Ok(Self::Overridden),
            "cancelled" => Ok(Self::Cancelled),
            "approved" => Ok(Self::Approved),
            other => Err(Error::Corrupt(format!(
                "unknown requeue resolution `{other}`"
            ))),
        }
    }
}

/// A deliverable held back by policy, as the requeue keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequeueEntry {
    pub id: String,
    pub tenant: TenantId,
    pub run: RunId,
    pub deliverable: DeliverableId,
    /// The action policy held back (`provision`, `run_step`, `merge`).
    pub action: Action,
    /// The latest decision about it.
    pub decision_id: String,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    /// Automatic re-evaluations so far.
    pub attempts: u32,
    /// When the retry loop looks at it next; `None` once it has given up (an operator must).
    pub next_retry_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub resolution: Option<Resolution>,
    pub resolved_by: Option<String>,
    pub justification: Option<String>,
}

/// A new requeue entry, written with the block it records.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRequeue {
    pub id: String,
    pub tenant: TenantId,
    pub action: Action,
    pub decision_id: String,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    pub next_retry_at: Option<Timestamp>,
}

/// Which entries [`Store::requeue`] lists.
#[derive(Clone, Debug, Default)]
pub struct RequeueQuery {
    pub tenant: Option<TenantId>,
    pub run: Option<RunId>,
    /// Only entries still waiting.
    pub open: bool,
    pub limit: u32,
}

/// Which decisions [`Store::decisions`] lists.
#[derive(Clone, Debug, Default)]
pub struct DecisionQuery {
    pub tenant: Option<TenantId>,
    /// Only decisions made at or after this instant.
    pub since: Option<Timestamp>,
    /// Only decisions after this one (by id, which sorts by time): the next page.
    pub after: Option<String>,
    pub limit: u32,
}

pub(crate) fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::RequireApproval => "require_approval",
        Verdict::Deny => "deny",
    }
}

fn parse_verdict(s: &str) -> Result<Verdict, Error> {
    match s {
        "allow" => Ok(Verdict::Allow),
        "require_approval" => Ok(Verdict::RequireApproval),
        "deny" => Ok(Verdict::Deny),
        other => Err(Error::Corrupt(format!("unknown verdict `{other}`"))),
    }
}

impl Store {
    /// Requeue entries, newest first.
    pub async fn requeue(&self, query: &RequeueQuery) -> Result<Vec<RequeueEntry>, Error> {
        let rows = sqlx::query(self.sql.select_requeue.sql())
            .bind(query.tenant.as_ref().map(ToString::to_string))
            .bind(query.run.as_ref().map(ToString::to_string))
            .bind(i64::from(query.open))
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry).collect()
    }

    /// One requeue entry.
    pub async fn requeue_entry(&self, id: &str) -> Result<Option<RequeueEntry>, Error> {
        let row = sqlx::query(self.sql.select_requeue_entry.sql())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(entry).transpose()
    }

    /// Open entries whose next retry is due at `now`, oldest due first.
    pub async fn requeue_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<RequeueEntry>, Error> {
        let rows = sqlx::query(self.sql.select_requeue_due.sql())
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry).collect()
    }

    /// Makes every open entry of `tenant` due at `now` (its policy or settings changed, so
    /// they deserve a look at once), including those the retry loop had given up on. Returns
    /// how many.
    pub async fn requeue_due_now(&self, tenant: &TenantId, now: Timestamp) -> Result<u64, Error> {
        let done = sqlx::query(self.sql.requeue_due_now.sql())
            .bind(tenant.as_str())
            .bind(now.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Decisions, oldest first, a page at a time.
    pub async fn decisions(&self, query: &DecisionQuery) -> Result<Vec<DecisionRecord>, Error> {
        let rows = sqlx::query(self.sql.select_decisions.sql())
            .bind(query.tenant.as_ref().map(ToString::to_string))
            .bind(query.since.map(Timestamp::as_millis))
            .bind(query.after.clone())
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decision).collect()
    }

    /// One decision.
    pub async fn decision(&self, id: &str) -> Result<Option<DecisionRecord>, Error> {
        let row = sqlx::query(self.sql.select_decision.sql())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decision).transpose()
    }
}

fn entry(row: &AnyRow) -> Result<RequeueEntry, Error> {
    let reasons: Vec<Reason> = serde_json::from_str(&text(row, "reasons")?)
        .map_err(|e| Error::Corrupt(format!("requeue reasons: {e}")))?;
    let action = text(row, "action")?;
    Ok(RequeueEntry {
        id: text(row, "id")?,
        tenant: TenantId::parse(text(row, "tenant")?)?,
        run: RunId::parse(text(row, "run_id")?)?,
        deliverable: DeliverableId::parse(text(row, "deliverable")?)?,
        action: action
            .parse()
            .map_err(|_| Error::Corrupt(format!("unknown action `{action}`")))?,
        decision_id: text(row, "decision_id")?,
        verdict: parse_verdict(&text(row, "verdict")?)?,
        reasons,
        attempts: count(row, "attempts")?,
        next_retry_at: opt_time(row, "next_retry_at")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        resolved_at: opt_time(row, "resolved_at")?,
        resolution: opt_text(row, "resolution")?
            .as_deref()
            .map(Resolution::parse)
            .transpose()?,
        resolved_by: opt_text(row, "resolved_by")?,
        justification: opt_text(row, "justification")?,
    })
}

fn decision(row: &AnyRow) -> Result<DecisionRecord, Error> {
    let id = text(row, "id")?;
    let corrupt =
        |what: &str, e: serde_json::Error| Error::Corrupt(format!("{what} of decision {id}: {e}"));
    let input: Input =
        serde_json::from_str(&text(row, "input")?).map_err(|e| corrupt("input", e))?;
    let decision: Decision =
        serde_json::from_str(&text(row, "decision")?).map_err(|e| corrupt("decision", e))?;
    Ok(DecisionRecord {
        tenant: TenantId::parse(text(row, "tenant")?)?,
        run: opt_text(row, "run_id")?.map(RunId::parse).transpose()?,
        deliverable: opt_text(row, "deliverable")?
            .map(DeliverableId::parse)
            .transpose()?,
        input,
        decision,
        at: time(row, "at")?,
        id,
    })
}
