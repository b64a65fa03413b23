//! Approval requests and action outcomes in a batch: requests opened with blocks and
//! re-evaluations, approvals granted at once, decisions of people and of expiry, and the
//! outcomes of automated actions. Decisions are rare, so one statement each; outcomes are many,
//! so one statement for the batch.

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::{DeliverableId, EventKind, RunId, Timestamp};
use kamachiq_policy::{Action, Reason};
use serde::Serialize;
use serde_json::json;
use sqlx::{Any, Transaction};

use super::{Batch, json_array};
use crate::actions::NewAction;
use crate::approvals::{ApprovalStatus, NewApproval, approval_scope as scope, cause_name};
use crate::audit::AuditEntry;
use crate::change::{Applied, Change};
use crate::decode::{opt_text, text, time};
use crate::requeue::Resolution;
use crate::{Error, Store};

/// The JSON row `insert_approvals` reads.
#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    requeue: Option<&'a str>,
    tenant: &'a str,
    run: &'a str,
    deliverable: &'a str,
    action: &'static str,
    step: Option<&'a str>,
    risk: &'static str,
    cause: Option<&'static str>,
    evidence: String,
    requested_at: i64,
    expires_at: i64,
    status: &'static str,
    decided_by: Option<&'a str>,
    decided_at: Option<i64>,
}

impl Store {
    /// Writes approval requests, with an `approval_requested` event for each pending one and
    /// an `approval_decided` event for each approved at once.
    pub(super) async fn insert_approvals(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'_>,
        change: usize,
        approvals: &[&NewApproval],
    ) -> Result<(), Error> {
        if approvals.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(approvals.len());
        for a in approvals {
            rows.push(Row {
                id: &a.id,
                requeue: a.requeue_id.as_deref(),
                tenant: a.tenant.as_str(),
                run: a.run.as_str(),
                deliverable: a.deliverable.as_str(),
                action: a.action.as_str(),
                step: a.step.as_deref(),
                risk: a.risk.as_str(),
                cause: a.cause.map(cause_name),
                evidence: serde_json::to_string(&a.evidence)
                    .map_err(|e| Error::Corrupt(format!("cannot encode evidence: {e}")))?,
                requested_at: a.requested_at.as_millis(),
                expires_at: a.expires_at.as_millis(),
                status: a.status.as_str(),
                decided_by: a.decided_by.as_deref(),
                decided_at: (a.status != ApprovalStatus::Pending).then_some(batch.at),
            });
            let data = json!({
                "approval_id": a.id, "requeue_id": a.requeue_id, "action": a.action,
                "step": a.step, "risk": a.risk, "cause": a.cause.map(cause_name),
                "requested_at": a.requested_at, "expires_at": a.expires_at,
            });
            let event = if a.status == ApprovalStatus::Pending {
                NewEvent::deliverable(EventKind::ApprovalRequested, &a.deliverable, data)
            } else {
                let mut data = data;
                data["status"] = json!(a.status.as_str());
                data["by"] = json!(a.decided_by);
                data["latency_ms"] = json!(0);
                NewEvent::deliverable(EventKind::ApprovalDecided, &a.deliverable, data)
            };
            batch.events.push(change, &a.run, event);
        }
        sqlx::query(self.sql.insert_approvals.sql())
            .bind(json_array(&rows)?)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Approvals granted at once, decisions on requests, and action outcomes.
    pub(super) async fn apply_approvals<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        let mut acted: Vec<&'a NewAction> = Vec::new();
        let changes: &'a [Change] = batch.changes;
        for (i, change) in changes.iter().enumerate() {
            match change {
                Change::Approval(approval) => {
                    self.insert_approvals(tx, batch, i, &[&**approval]).await?;
                    batch.results[i] = Ok(Applied::Done);
                }
                Change::DecideApproval {
                    id,
                    status,
                    by,
                    comment,
                } => {
                    let decided = self
                        .decide_approval(tx, batch, i, id, *status, by, comment.as_deref())
                        .await?;
                    if decided {
                        batch.results[i] = Ok(Applied::Done);
                    }
                }
                Change::Acted(action) => {
                    acted.push(action);
                    batch.results[i] = Ok(Applied::Done);
                }
                _ => {}
            }
        }
        self.insert_actions(tx, batch.at, &acted).await
    }

    /// One decision; false when the request is not open (or, to approve, its deliverable is
    /// no longer blocked by it), and nothing is written.
    #[allow(clippy::too_many_arguments)]
    async fn decide_approval(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'_>,
        change: usize,
        id: &str,
        status: ApprovalStatus,
        by: &str,
        comment: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(current) = sqlx::query(self.sql.select_approval.sql())
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(false);
        };
        let requeue_id = opt_text(&current, "requeue_id")?;
        let run = RunId::parse(text(&current, "run_id")?)?;
        let deliverable = DeliverableId::parse(text(&current, "deliverable")?)?;
        let action_name = text(&current, "action")?;
        let action: Action = action_name
            .parse()
            .map_err(|_| Error::Corrupt(format!("unknown action `{action_name}`")))?;
        let requested_at = time(&current, "requested_at")?;
        // Approving unblocks the deliverable: only while its requeue entry is still open.
        let unblock = match (status, &requeue_id) {
            (ApprovalStatus::Approved, Some(requeue)) => {
                let open = sqlx::query(self.sql.select_open_requeue.sql())
                    .bind(requeue.as_str())
                    .fetch_optional(&mut **tx)
                    .await?;
                if open.is_none() {
                    return Ok(false);
                }
                let Some(row) = sqlx::query(self.sql.select_deliverable_approvals.sql())
                    .bind(run.as_str())
                    .bind(deliverable.as_str())
                    .fetch_optional(&mut **tx)
                    .await?
                else {
                    return Ok(false);
                };
                let next_step = crate::decode::count(&row, "next_step")?;
                let mut approved = crate::decode::approved_actions(&row)?;
                let granted = scope(action, next_step);
                if !approved.contains(&granted) {
                    approved.push(granted);
                }
                Some((requeue.clone(), approved))
            }
            _ => None,
        };
        // A person decides a request that is pending or escalated; expiry only a pending one
        // whose time ran out.
        let by_person = matches!(status, ApprovalStatus::Approved | ApprovalStatus::Denied);
        let decided = sqlx::query(self.sql.decide_approval.sql())
            .bind(id)
            .bind(status.as_str())
            .bind(by)
            .bind(batch.at)
            .bind(comment)
            .bind(i64::from(by_person))
            .fetch_optional(&mut **tx)
            .await?;
        if decided.is_none() {
            return Ok(false);
        }
        if let Some((requeue, approved)) = unblock {
            let encoded = serde_json::to_string(&approved)
                .map_err(|e| Error::Corrupt(format!("cannot encode approved actions: {e}")))?;
            let unblocked = sqlx::query(self.sql.unblock_approved.sql())
                .bind(run.as_str())
                .bind(deliverable.as_str())
                .bind(encoded)
                .fetch_optional(&mut **tx)
                .await?;
            if unblocked.is_some() {
                sqlx::query(self.sql.resolve_requeue.sql())
                    .bind(requeue.as_str())
                    .bind(batch.at)
                    .bind(Resolution::Approved.as_str())
                    .bind(by)
                    .bind(comment)
                    .bind(None::<String>)
                    .execute(&mut **tx)
                    .await?;
                batch.events.push(
                    change,
                    &run,
                    NewEvent::deliverable(
                        EventKind::DeliverableUnblocked,
                        &deliverable,
                        json!({
                            "requeue_id": requeue, "resolution": Resolution::Approved,
                            "by": by, "justification": comment, "approval_id": id,
                        }),
                    ),
                );
                batch.ready.push((run.clone(), deliverable.clone()));
            }
        } else if matches!(status, ApprovalStatus::Denied | ApprovalStatus::Expired)
            && let Some(requeue) = &requeue_id
        {
            self.hold_requeue(tx, requeue, status, by, comment, batch.at)
                .await?;
        }
        let latency_ms = Timestamp::from_millis(batch.at)
            .since(requested_at)
            .as_millis();
        batch.events.push(
            change,
            &run,
            NewEvent::deliverable(
                EventKind::ApprovalDecided,
                &deliverable,
                json!({
                    "approval_id": id, "requeue_id": requeue_id, "action": action,
                    "status": status.as_str(), "by": by, "comment": comment,
                    "latency_ms": u64::try_from(latency_ms).unwrap_or(u64::MAX),
                }),
            ),
        );
        let tenant = kamachiq_domain::TenantId::parse(text(&current, "tenant")?)?;
        let audit = AuditEntry {
            tenant,
            actor: by.to_owned(),
            action: format!("approval_{}", status.as_str()),
            subject: id.to_owned(),
            detail: json!({
                "run": run, "deliverable": deliverable, "action": action,
                "requeue_id": requeue_id, "comment": comment,
            }),
        };
        self.append_audit(tx, batch.at, &[&audit]).await?;
        Ok(true)
    }

    /// A denied or expired request keeps its deliverable in the requeue: nothing retries it on
    /// its own any more, and its reasons say why.
    async fn hold_requeue(
        &self,
        tx: &mut Transaction<'static, Any>,
        requeue: &str,
        status: ApprovalStatus,
        by: &str,
        comment: Option<&str>,
        at: i64,
    ) -> Result<(), Error> {
        let Some(row) = sqlx::query(self.sql.select_requeue_reasons.sql())
            .bind(requeue)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(());
        };
        let mut reasons: Vec<Reason> = serde_json::from_str(&text(&row, "reasons")?)
            .map_err(|e| Error::Corrupt(format!("requeue reasons: {e}")))?;
        let (code, message) = match status {
            ApprovalStatus::Denied => (
                "approval_denied",
                format!(
                    "{by} denied the approval: {}",
                    comment.unwrap_or("no reason given")
                ),
            ),
            _ => (
                "approval_expired",
                "nobody approved it in time; it was denied on expiry".to_owned(),
            ),
        };
        reasons.push(Reason::new(code, message, "approvals"));
        let encoded = serde_json::to_string(&reasons)
            .map_err(|e| Error::Corrupt(format!("cannot encode requeue reasons: {e}")))?;
        sqlx::query(self.sql.hold_requeue.sql())
            .bind(requeue)
            .bind(encoded)
            .bind(at)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Requests still open for a requeue entry that was resolved otherwise are withdrawn,
    /// each with an `approval_decided` event.
    pub(super) async fn withdraw_approvals(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'_>,
        change: usize,
        requeue: &str,
        run: &RunId,
        deliverable: &DeliverableId,
    ) -> Result<(), Error> {
        let withdrawn = sqlx::query(self.sql.withdraw_approvals_of_requeue.sql())
            .bind(requeue)
            .bind(batch.at)
            .fetch_all(&mut **tx)
            .await?;
        for row in &withdrawn {
            batch.events.push(
                change,
                run,
                NewEvent::deliverable(
                    EventKind::ApprovalDecided,
                    deliverable,
                    json!({
                        "approval_id": text(row, "id")?, "requeue_id": requeue,
                        "status": ApprovalStatus::Withdrawn.as_str(),
                    }),
                ),
            );
        }
        Ok(())
    }
}
