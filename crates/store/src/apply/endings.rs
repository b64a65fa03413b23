//! The ends of deliverables: successes (with their merges and dependents), failures (with the
//! dependents they skip) and cancellations.

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableId, DeliverableState, EventKind, Reason, ReasonCode, RunId};
use serde::Serialize;
use serde_json::json;
use sqlx::{Any, Transaction};

use super::{Batch, Fenced, Target, json_array, key_of, lease_key};
use crate::change::{Applied, Change, LeaseKey, Merge};
use crate::decode::{int, text};
use crate::{Error, Store};

impl Store {
    /// Explicit successes (after a merge); then, for them and for the deliverables completed
    /// with their last step's end, the dependents' counters go down.
    pub(super) async fn apply_successes<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Point<'r> {
            id: &'r str,
            run: &'r str,
            deliverable: &'r str,
            repo: &'r str,
            branch: &'r str,
            before: &'r str,
            merge: &'r str,
            at: i64,
        }
        let successes: Vec<(usize, &LeaseKey, Option<&Merge>)> = batch
            .changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::Succeeded { lease, merge } => Some((i, lease, merge.as_ref())),
                _ => None,
            })
            .collect();
        let mut points = Vec::new();
        if !successes.is_empty() {
            let rows: Vec<Fenced<'_>> = successes
                .iter()
                .map(|(_, lease, merge)| Fenced {
                    merge: merge.map(|m| m.commit.as_str()),
                    at: Some(batch.at),
                    ..Fenced::new(lease)
                })
                .collect();
            let accepted = self.fence(tx, &self.sql.succeed, &rows).await?;
            for (i, lease, merge) in successes {
                if !accepted.contains(&lease_key(lease)) {
                    continue;
                }
                batch.results[i] = Ok(Applied::Succeeded);
                batch.completed.push(Target {
                    run: lease.run.as_str(),
                    id: lease.deliverable.as_str(),
                });
                if let Some(m) = merge {
                    points.push(Point {
                        id: &m.rollback_id,
                        run: lease.run.as_str(),
                        deliverable: lease.deliverable.as_str(),
                        repo: &m.repo,
                        branch: &m.branch,
                        before: &m.before,
                        merge: &m.commit,
                        at: batch.at,
                    });
                    batch.events.push(
                        i,
                        &lease.run,
                        NewEvent::deliverable(
                            EventKind::DeliverableMerged,
                            &lease.deliverable,
                            json!({"branch": m.branch, "before": m.before, "commit": m.commit,
                                   "rollback_point": m.rollback_id}),
                        ),
                    );
                }
                batch.events.push(
                    i,
                    &lease.run,
                    NewEvent::deliverable(
                        EventKind::DeliverableSucceeded,
                        &lease.deliverable,
                        json!({}),
                    ),
                );
            }
        }
        if !points.is_empty() {
            sqlx::query(self.sql.insert_rollback_points.sql())
                .bind(json_array(&points)?)
                .execute(&mut **tx)
                .await?;
        }
        if batch.completed.is_empty() {
            return Ok(());
        }
        let released = sqlx::query(self.sql.release_dependents.sql())
            .bind(json_array(&batch.completed)?)
            .fetch_all(&mut **tx)
            .await?;
        for row in &released {
            if int(row, "waiting_on")? == 0 && text(row, "state")? == "pending" {
                let (run, id) = key_of(row)?;
                batch
                    .ready
                    .push((RunId::parse(run)?, DeliverableId::parse(id)?));
            }
        }
        Ok(())
    }

    /// Failures and cancellations of running deliverables.
    pub(super) async fn apply_endings<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        let cancelled = Reason::new(ReasonCode::Cancelled, "the run was cancelled");
        let endings: Vec<(usize, &LeaseKey, DeliverableState, &Reason)> = batch
            .changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::Failed { lease, reason } => {
                    Some((i, lease, DeliverableState::Failed, reason))
                }
                Change::Cancelled { lease } => {
                    Some((i, lease, DeliverableState::Cancelled, &cancelled))
                }
                _ => None,
            })
            .collect();
        if endings.is_empty() {
            return Ok(());
        }
        let rows: Vec<Fenced<'_>> = endings
            .iter()
            .map(|(_, lease, state, reason)| Fenced {
                state: Some(state.as_str()),
                reason: Some(reason.code.as_str()),
                detail: Some(reason.detail.as_str()),
                at: Some(batch.at),
                ..Fenced::new(lease)
            })
            .collect();
        let accepted = self.fence(tx, &self.sql.end_running, &rows).await?;
        let mut stopped = Vec::new();
        let mut failed = Vec::new();
        for (i, lease, state, reason) in endings {
            if !accepted.contains(&lease_key(lease)) {
                continue;
            }
            let target = Target {
                run: lease.run.as_str(),
                id: lease.deliverable.as_str(),
            };
            if state == DeliverableState::Cancelled {
                stopped.push(target);
                batch.results[i] = Ok(Applied::Done);
                batch.events.push(
                    i,
                    &lease.run,
                    NewEvent::deliverable(
                        EventKind::DeliverableCancelled,
                        &lease.deliverable,
                        json!({"reason": reason}),
                    ),
                );
                continue;
            }
            failed.push(target);
            batch.events.push(
                i,
                &lease.run,
                NewEvent::deliverable(
                    EventKind::DeliverableFailed,
                    &lease.deliverable,
                    json!({"reason": reason}),
                ),
            );
            let detail = format!("depends on `{}`, which failed", lease.deliverable);
            let skipped_rows = sqlx::query(self.sql.skip_dependents.sql())
                .bind(lease.run.as_str())
                .bind(lease.deliverable.as_str())
                .bind(detail.as_str())
                .bind(batch.at)
                .fetch_all(&mut **tx)
                .await?;
            let mut skipped = Vec::with_capacity(skipped_rows.len());
            for row in &skipped_rows {
                let id = DeliverableId::parse(text(row, "id")?)?;
                batch.events.push(
                    i,
                    &lease.run,
                    NewEvent::deliverable(
                        EventKind::DeliverableSkipped,
                        &id,
                        json!({"reason": Reason::new(ReasonCode::DependencyFailed, detail.clone())}),
                    ),
                );
                skipped.push(id);
            }
            batch.results[i] = Ok(Applied::Failed { skipped });
        }
        if !stopped.is_empty() {
            self.close_running_steps(tx, StepState::Cancelled, batch.at, &stopped)
                .await?;
        }
        if !failed.is_empty() {
            // A step that started with the claim but never ran (the worktree could not be
            // prepared) ends with its deliverable.
            self.close_running_steps(tx, StepState::Failed, batch.at, &failed)
                .await?;
        }
        Ok(())
    }
}
