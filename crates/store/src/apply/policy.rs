//! Policy changes: decisions (many, so set-based), blocks and unblocks of deliverables with
//! their requeue entries, retries of the requeue loop, and audit records. Blocks and unblocks
//! are rare, so one statement each.

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::{DeliverableId, EventKind, RunId};
use serde::Serialize;
use serde_json::json;
use sqlx::{Any, Transaction};

use super::{Batch, json_array};
use crate::audit::AuditEntry;
use crate::change::{Applied, Change};
use crate::decode::text;
use crate::requeue::{Resolution, verdict_name};
use crate::{Error, Store};

fn encode<T: Serialize>(what: &str, value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(format!("cannot encode {what}: {e}")))
}

impl Store {
    pub(super) async fn apply_policy_changes<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        self.insert_decisions(tx, batch).await?;
        let at = batch.at;
        let mut audits: Vec<&'a AuditEntry> = Vec::new();
        let changes: &'a [Change] = batch.changes;
        for (i, change) in changes.iter().enumerate() {
            match change {
                Change::Block {
                    run,
                    deliverable,
                    attempt,
                    reason,
                    entry,
                    approval,
                } => {
                    let blocked = match attempt {
                        None => sqlx::query(self.sql.block_pending.sql())
                            .bind(run.as_str())
                            .bind(deliverable.as_str())
                            .bind(reason.code.as_str())
                            .bind(reason.detail.as_str()),
                        Some(attempt) => sqlx::query(self.sql.block_running.sql())
                            .bind(run.as_str())
                            .bind(deliverable.as_str())
                            .bind(reason.code.as_str())
                            .bind(reason.detail.as_str())
                            .bind(i64::from(*attempt)),
                    }
                    .fetch_optional(&mut **tx)
                    .await?;
                    if blocked.is_none() {
                        continue;
                    }
                    sqlx::query(self.sql.insert_requeue.sql())
                        .bind(entry.id.as_str())
                        .bind(entry.tenant.as_str())
                        .bind(run.as_str())
                        .bind(deliverable.as_str())
                        .bind(entry.action.as_str())
                        .bind(entry.decision_id.as_str())
                        .bind(verdict_name(entry.verdict))
                        .bind(encode("requeue reasons", &entry.reasons)?)
                        .bind(entry.next_retry_at.map(|t| t.as_millis()))
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    batch.results[i] = Ok(Applied::Done);
                    batch.events.push(
                        i,
                        run,
                        NewEvent::deliverable(
                            EventKind::DeliverableBlocked,
                            deliverable,
                            json!({
                                "requeue_id": entry.id, "action": entry.action,
                                "decision": verdict_name(entry.verdict),
                                "decision_id": entry.decision_id, "reason": reason,
                                "reasons": entry.reasons,
                            }),
                        ),
                    );
                    if let Some(approval) = approval {
                        self.insert_approvals(tx, batch, i, &[&**approval]).await?;
                    }
                }
                Change::Unblock {
                    requeue_id,
                    resolution,
                    by,
                    justification,
                    decision_id,
                    audit,
                } => {
                    let Some(open) = sqlx::query(self.sql.select_open_requeue.sql())
                        .bind(requeue_id.as_str())
                        .fetch_optional(&mut **tx)
                        .await?
                    else {
                        continue;
                    };
                    let run = RunId::parse(text(&open, "run_id")?)?;
                    let deliverable = DeliverableId::parse(text(&open, "deliverable")?)?;
                    // An override lets the deliverable run from now on, whatever policy says
                    // of it (the emergency stop aside).
                    let waiver =
                        (*resolution == Resolution::Overridden).then_some(requeue_id.as_str());
                    let unblocked = sqlx::query(self.sql.unblock.sql())
                        .bind(run.as_str())
                        .bind(deliverable.as_str())
                        .bind(waiver)
                        .fetch_optional(&mut **tx)
                        .await?;
                    if unblocked.is_none() {
                        continue;
                    }
                    self.withdraw_approvals(tx, batch, i, requeue_id, &run, &deliverable)
                        .await?;
                    sqlx::query(self.sql.resolve_requeue.sql())
                        .bind(requeue_id.as_str())
                        .bind(at)
                        .bind(resolution.as_str())
                        .bind(by.clone())
                        .bind(justification.clone())
                        .bind(decision_id.clone())
                        .execute(&mut **tx)
                        .await?;
                    if let Some(audit) = audit {
                        audits.push(audit);
                    }
                    batch.results[i] = Ok(Applied::Done);
                    batch.events.push(
                        i,
                        &run,
                        NewEvent::deliverable(
                            EventKind::DeliverableUnblocked,
                            &deliverable,
                            json!({
                                "requeue_id": requeue_id, "resolution": resolution,
                                "by": by, "justification": justification,
                                "decision_id": decision_id,
                            }),
                        ),
                    );
                    // A blocked deliverable was ready when it was held back: it is again.
                    batch.ready.push((run, deliverable));
                }
                Change::Retried {
                    requeue_id,
                    attempts,
                    next_retry_at,
                    decision_id,
                    verdict,
                    reasons,
                    approval,
                } => {
                    let Some(row) = sqlx::query(self.sql.retry_requeue.sql())
                        .bind(requeue_id.as_str())
                        .bind(i64::from(*attempts))
                        .bind(next_retry_at.map(|t| t.as_millis()))
                        .bind(decision_id.as_str())
                        .bind(verdict_name(*verdict))
                        .bind(encode("requeue reasons", reasons)?)
                        .bind(at)
                        .fetch_optional(&mut **tx)
                        .await?
                    else {
                        continue;
                    };
                    let run = RunId::parse(text(&row, "run_id")?)?;
                    let deliverable = DeliverableId::parse(text(&row, "deliverable")?)?;
                    batch.results[i] = Ok(Applied::Done);
                    if let Some(approval) = approval {
                        self.insert_approvals(tx, batch, i, &[&**approval]).await?;
                    }
                    batch.events.push(
                        i,
                        &run,
                        NewEvent::deliverable(
                            EventKind::RequeueRetried,
                            &deliverable,
                            json!({
                                "requeue_id": requeue_id, "attempt": attempts,
                                "decision": verdict_name(*verdict), "decision_id": decision_id,
                                "reasons": reasons, "next_retry_at": next_retry_at,
                            }),
                        ),
                    );
                }
                Change::Audit(entry) => {
                    audits.push(entry);
                    batch.results[i] = Ok(Applied::Done);
                }
                _ => {}
            }
        }
        self.append_audit(tx, at, &audits).await
    }

    /// Every decision of the batch, in one statement.
    async fn insert_decisions(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'_>,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Row<'r> {
            id: &'r str,
            tenant: &'r str,
            run: Option<&'r str>,
            deliverable: Option<&'r str>,
            action: &'static str,
            verdict: &'static str,
            policy_version: Option<u32>,
            /// Written as they serialise, without building a JSON tree first: a batch holds
            /// hundreds of decisions.
            decision: Box<serde_json::value::RawValue>,
            input: Box<serde_json::value::RawValue>,
            at: i64,
        }
        let raw = |what: &str, value: Result<String, serde_json::Error>| {
            value
                .and_then(serde_json::value::RawValue::from_string)
                .map_err(|e| Error::Corrupt(format!("cannot encode a decision's {what}: {e}")))
        };
        let mut rows = Vec::new();
        for (i, change) in batch.changes.iter().enumerate() {
            let Change::Decided(record) = change else {
                continue;
            };
            rows.push(Row {
                id: &record.id,
                tenant: record.tenant.as_str(),
                run: record.run.as_ref().map(RunId::as_str),
                deliverable: record.deliverable.as_ref().map(DeliverableId::as_str),
                action: record.input.action.as_str(),
                verdict: verdict_name(record.decision.verdict),
                policy_version: record.decision.policy_version,
                decision: raw("decision", serde_json::to_string(&record.decision))?,
                input: raw("input", serde_json::to_string(&record.input))?,
                at: record.at.as_millis(),
            });
            batch.results[i] = Ok(Applied::Done);
        }
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(self.sql.insert_decisions.sql())
            .bind(json_array(&rows)?)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
