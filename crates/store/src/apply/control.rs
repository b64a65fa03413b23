//! Run-level changes: cancel requests, cancelling what waits or was orphaned, reopening,
//! resuming and finishing. Rare, so one statement each.

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::{DeliverableId, EventKind, Reason, ReasonCode};
use serde_json::{Value, json};
use sqlx::{Any, Transaction};

use super::Batch;
use crate::change::{Applied, Change};
use crate::decode::text;
use crate::{Error, Store};

impl Store {
    /// Run-level changes; rare, so one statement each.
    pub(super) async fn apply_run_changes<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        let at = batch.at;
        for (i, change) in batch.changes.iter().enumerate() {
            match change {
                Change::RequestCancel { run, by } => {
                    let hit = sqlx::query(self.sql.request_cancel.sql())
                        .bind(run.as_str())
                        .bind(at)
                        .fetch_optional(&mut **tx)
                        .await?;
                    if hit.is_some() {
                        batch.results[i] = Ok(Applied::Done);
                        batch.events.push(
                            i,
                            run,
                            NewEvent::run(EventKind::CancelRequested, json!({"by": by})),
                        );
                    }
                }
                Change::CancelWaiting { run } | Change::CancelOrphans { run } => {
                    let orphans = matches!(change, Change::CancelOrphans { .. });
                    let reason = Reason::new(ReasonCode::Cancelled, "the run was cancelled");
                    let stmt = if orphans {
                        &self.sql.cancel_orphans
                    } else {
                        &self.sql.cancel_waiting
                    };
                    let rows = sqlx::query(stmt.sql())
                        .bind(run.as_str())
                        .bind(reason.detail.as_str())
                        .bind(at)
                        .fetch_all(&mut **tx)
                        .await?;
                    if orphans {
                        sqlx::query(self.sql.cancel_orphan_steps.sql())
                            .bind(run.as_str())
                            .bind(at)
                            .execute(&mut **tx)
                            .await?;
                    } else {
                        // Blocked deliverables were cancelled with the rest: their entries
                        // leave the requeue.
                        sqlx::query(self.sql.close_requeue_of_run.sql())
                            .bind(run.as_str())
                            .bind(at)
                            .execute(&mut **tx)
                            .await?;
                        sqlx::query(self.sql.withdraw_approvals_of_run.sql())
                            .bind(run.as_str())
                            .bind(at)
                            .execute(&mut **tx)
                            .await?;
                    }
                    let mut ids = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let id = DeliverableId::parse(text(row, "id")?)?;
                        batch.events.push(
                            i,
                            run,
                            NewEvent::deliverable(
                                EventKind::DeliverableCancelled,
                                &id,
                                json!({"reason": reason}),
                            ),
                        );
                        ids.push(id);
                    }
                    batch.results[i] = Ok(Applied::Cancelled { deliverables: ids });
                }
                Change::Reopen {
                    run,
                    states,
                    driver,
                } => {
                    let reopened = sqlx::query(self.sql.reopen_run.sql())
                        .bind(run.as_str())
                        .bind(at)
                        .bind(driver.as_str())
                        .fetch_optional(&mut **tx)
                        .await?;
                    if reopened.is_none() {
                        continue;
                    }
                    let wanted: Vec<Value> = states
                        .iter()
                        .map(|s| json!({"state": s.as_str()}))
                        .collect();
                    let rows = sqlx::query(self.sql.reopen_deliverables.sql())
                        .bind(run.as_str())
                        .bind(Value::Array(wanted).to_string())
                        .fetch_all(&mut **tx)
                        .await?;
                    sqlx::query(self.sql.recount_waiting.sql())
                        .bind(run.as_str())
                        .execute(&mut **tx)
                        .await?;
                    batch.events.push(
                        i,
                        run,
                        NewEvent::run(
                            EventKind::RunReopened,
                            json!({"states": states, "deliverables": rows.len()}),
                        ),
                    );
                    let mut ids = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let id = DeliverableId::parse(text(row, "id")?)?;
                        batch.events.push(
                            i,
                            run,
                            NewEvent::deliverable(EventKind::DeliverableReopened, &id, json!({})),
                        );
                        ids.push(id);
                    }
                    batch.results[i] = Ok(Applied::Reopened { deliverables: ids });
                }
                Change::Resumed { run, driver } => {
                    batch.results[i] = Ok(Applied::Done);
                    batch.events.push(
                        i,
                        run,
                        NewEvent::run(EventKind::RunResumed, json!({"driver": driver})),
                    );
                }
                Change::FinishRun { run, state } => {
                    let hit = sqlx::query(self.sql.finish_run.sql())
                        .bind(run.as_str())
                        .bind(state.as_str())
                        .bind(at)
                        .fetch_optional(&mut **tx)
                        .await?;
                    if let Some(row) = hit {
                        let created_at = crate::decode::int(&row, "created_at")?;
                        batch.results[i] = Ok(Applied::Done);
                        batch.events.push(
                            i,
                            run,
                            NewEvent::run(
                                EventKind::RunFinished,
                                json!({"state": state, "duration_ms": (at - created_at).max(0)}),
                            ),
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
