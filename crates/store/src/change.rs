//! Changes to runs and deliverables, applied in batches: one transaction, a handful of
//! set-based statements, and the events describing every accepted change, all committed
//! together. A change that is no longer allowed (a stale lease, a deliverable that moved on) is
//! rejected on its own without failing the batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::run::StepState;
use kamachiq_domain::{
    DeliverableId, DeliverableState, Event, EventKind, Reason, ReasonCode, RunId, RunState,
    StepName, TenantId, Timestamp,
};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Transaction};

use crate::decode::{int, text};
use crate::{Error, Store};

/// A deliverable's current lease: the fencing token every write for a running deliverable
/// carries. A write whose attempt is not the deliverable's current one is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    pub run: RunId,
    pub deliverable: DeliverableId,
    pub attempt: u32,
}

/// A merge of a deliverable's branch into the target branch, recorded with its success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    /// Id of the rollback point recorded for this merge.
    pub rollback_id: String,
    pub repo: String,
    pub branch: String,
    /// The target branch's commit before the merge.
    pub before: String,
    /// The merge commit now at the tip of the target branch.
    pub commit: String,
}

/// How a step attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub struct StepEnd {
    pub lease: LeaseKey,
    pub index: u32,
    pub step: StepName,
    pub step_attempt: u32,
    pub state: StepState,
    pub exit_code: Option<i32>,
    pub reason: Option<Reason>,
    /// What the step printed, possibly shortened (see `output_bytes` for the full size).
    pub output: String,
    pub output_bytes: u64,
    pub duration: Duration,
    /// Whether the deliverable moves on to its next step (true when the step succeeded).
    pub advance: bool,
}

/// One change. Deliverable changes in one batch must concern distinct deliverables.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Start a ready deliverable, or take over a running one whose driver is gone
    /// (`takeover`). Its attempt number goes up by one and becomes the new fencing token.
    Claim {
        run: RunId,
        deliverable: DeliverableId,
        owner: String,
        lease_until: Timestamp,
        takeover: bool,
    },
    StepStarted {
        lease: LeaseKey,
        index: u32,
        step: StepName,
    },
    StepFinished(Box<StepEnd>),
    Succeeded {
        lease: LeaseKey,
        merge: Option<Merge>,
    },
    /// The deliverable failed; everything that depends on it is skipped.
    Failed {
        lease: LeaseKey,
        reason: Reason,
    },
    /// A running deliverable was stopped by a cancel of its run.
    Cancelled {
        lease: LeaseKey,
    },
    /// The driver gives a running deliverable back unfinished (it is shutting down); the next
    /// driver re-runs its interrupted step.
    Released {
        lease: LeaseKey,
    },
    /// Ask the run's driver to cancel it.
    RequestCancel {
        run: RunId,
    },
    /// Cancel every deliverable of the run that has not started.
    CancelWaiting {
        run: RunId,
    },
    /// Cancel running deliverables that no live driver holds (used when nobody drives the run).
    CancelOrphans {
        run: RunId,
    },
    /// Put deliverables in the given states back to pending and reopen the run.
    Reopen {
        run: RunId,
        states: Vec<DeliverableState>,
    },
    /// A driver took the run over (an event only).
    Resumed {
        run: RunId,
        driver: String,
    },
    FinishRun {
        run: RunId,
        state: RunState,
    },
}

/// What an accepted change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Claimed { attempt: u32, next_step: u32 },
    StepStarted { step_attempt: u32 },
    Done,
    Failed { skipped: Vec<DeliverableId> },
    Cancelled { deliverables: Vec<DeliverableId> },
    Reopened { deliverables: Vec<DeliverableId> },
}

/// Why a change was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The deliverable is not in a state that allows the change, or the lease is no longer
    /// held at that attempt: another driver took it over, or it already moved on.
    #[error(
        "the deliverable is no longer held at this attempt, or is not in a state that allows the change"
    )]
    NotApplicable,
}

/// The result of a batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// One result per change, in order.
    pub results: Vec<Result<Applied, Rejected>>,
    /// Deliverables that became ready (pending, no dependency left) through this batch.
    pub ready: Vec<(RunId, DeliverableId)>,
    /// The committed events, in sequence order.
    pub events: Vec<Event>,
}

type Key = (String, String);

fn key_of(row: &AnyRow) -> Result<Key, Error> {
    Ok((text(row, "run_id")?, text(row, "id")?))
}

fn lease_key(lease: &LeaseKey) -> Key {
    (lease.run.to_string(), lease.deliverable.to_string())
}

fn lease_json(lease: &LeaseKey) -> Value {
    json!({"run": lease.run, "id": lease.deliverable, "attempt": lease.attempt})
}

/// Events of a batch, kept in the order of the changes that caused them.
struct Events(Vec<(usize, RunId, NewEvent)>);

impl Events {
    fn push(&mut self, change: usize, run: &RunId, event: NewEvent) {
        self.0.push((change, run.clone(), event));
    }
}

impl Store {
    /// Applies `changes` in one transaction stamped `at`, with their events.
    pub async fn apply(&self, at: Timestamp, changes: &[Change]) -> Result<Outcome, Error> {
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        if let Some(lock) = self.backend.event_order_lock() {
            tx.execute(lock).await?;
        }
        let mut results = vec![Err(Rejected::NotApplicable); changes.len()];
        let mut ready = Vec::new();
        let mut events = Events(Vec::new());
        let at_ms = at.as_millis();

        self.apply_claims(&mut tx, at_ms, changes, &mut results, &mut events)
            .await?;
        self.apply_step_starts(&mut tx, at_ms, changes, &mut results, &mut events)
            .await?;
        self.apply_step_ends(&mut tx, at_ms, changes, &mut results, &mut events)
            .await?;
        self.apply_releases(&mut tx, at_ms, changes, &mut results, &mut events)
            .await?;
        self.apply_successes(
            &mut tx,
            at_ms,
            changes,
            &mut results,
            &mut ready,
            &mut events,
        )
        .await?;
        self.apply_endings(&mut tx, at_ms, changes, &mut results, &mut events)
            .await?;
        self.apply_run_changes(&mut tx, at_ms, changes, &mut results, &mut events)
            .await?;

        let committed = self.insert_events(&mut tx, at_ms, events).await?;
        tx.commit().await?;
        Ok(Outcome {
            results,
            ready,
            events: committed,
        })
    }

    async fn apply_claims(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        changes: &[Change],
        results: &mut [Result<Applied, Rejected>],
        events: &mut Events,
    ) -> Result<(), Error> {
        let mut wanted: HashMap<Key, usize> = HashMap::new();
        let mut rows = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            if let Change::Claim {
                run,
                deliverable,
                owner,
                lease_until,
                takeover,
            } = change
            {
                wanted.insert((run.to_string(), deliverable.to_string()), i);
                rows.push(json!({
                    "run": run, "id": deliverable, "owner": owner,
                    "until": lease_until.as_millis(), "at": at, "takeover": i64::from(*takeover),
                }));
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let claimed = sqlx::query(self.sql.claim.sql())
            .bind(Value::Array(rows).to_string())
            .fetch_all(&mut **tx)
            .await?;
        let mut taken = Vec::with_capacity(claimed.len());
        for row in &claimed {
            let key = key_of(row)?;
            let Some(&i) = wanted.get(&key) else { continue };
            let attempt = u32::try_from(int(row, "attempt")?).unwrap_or(u32::MAX);
            let next_step = u32::try_from(int(row, "next_step")?).unwrap_or(0);
            results[i] = Ok(Applied::Claimed { attempt, next_step });
            if let Change::Claim {
                run,
                deliverable,
                takeover,
                ..
            } = &changes[i]
            {
                events.push(
                    i,
                    run,
                    NewEvent::deliverable(
                        EventKind::DeliverableStarted,
                        deliverable,
                        json!({"attempt": attempt, "next_step": next_step, "takeover": takeover}),
                    ),
                );
            }
            taken.push(json!({"run": key.0, "id": key.1}));
        }
        if !taken.is_empty() {
            // Steps that a vanished driver left running were interrupted, not failed.
            sqlx::query(self.sql.interrupt_running_steps.sql())
                .bind(at)
                .bind(Value::Array(taken).to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Runs a fencing statement over `leases` and returns the keys it accepted.
    async fn fence(
        &self,
        tx: &mut Transaction<'static, Any>,
        stmt: &crate::dialect::Stmt,
        rows: Vec<Value>,
    ) -> Result<HashSet<Key>, Error> {
        let accepted = sqlx::query(stmt.sql())
            .bind(Value::Array(rows).to_string())
            .fetch_all(&mut **tx)
            .await?;
        accepted.iter().map(key_of).collect()
    }

    async fn apply_step_starts(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        changes: &[Change],
        results: &mut [Result<Applied, Rejected>],
        events: &mut Events,
    ) -> Result<(), Error> {
        let starts: Vec<(usize, &LeaseKey, u32, &StepName)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::StepStarted { lease, index, step } => Some((i, lease, *index, step)),
                _ => None,
            })
            .collect();
        if starts.is_empty() {
            return Ok(());
        }
        let fence_rows = starts
            .iter()
            .map(|(_, lease, _, step)| {
                let mut row = lease_json(lease);
                row["step"] = json!(step);
                row
            })
            .collect();
        let accepted = self
            .fence(tx, &self.sql.fence_step_start, fence_rows)
            .await?;
        let inserts: Vec<Value> = starts
            .iter()
            .filter(|(_, lease, _, _)| accepted.contains(&lease_key(lease)))
            .map(|(_, lease, index, step)| {
                json!({"run": lease.run, "id": lease.deliverable, "index": index, "step": step,
                       "attempt": lease.attempt, "at": at})
            })
            .collect();
        if inserts.is_empty() {
            return Ok(());
        }
        let inserted = sqlx::query(self.sql.insert_step_attempts.sql())
            .bind(Value::Array(inserts).to_string())
            .fetch_all(&mut **tx)
            .await?;
        let mut attempts: HashMap<Key, u32> = HashMap::new();
        for row in &inserted {
            let key = (text(row, "run_id")?, text(row, "deliverable")?);
            attempts.insert(key, u32::try_from(int(row, "attempt")?).unwrap_or(u32::MAX));
        }
        for (i, lease, index, step) in starts {
            if let Some(&step_attempt) = attempts.get(&lease_key(lease)) {
                results[i] = Ok(Applied::StepStarted { step_attempt });
                events.push(
                    i,
                    &lease.run,
                    NewEvent::deliverable(
                        EventKind::StepStarted,
                        &lease.deliverable,
                        json!({"step": step, "index": index, "attempt": step_attempt}),
                    ),
                );
            }
        }
        Ok(())
    }

    async fn apply_step_ends(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        changes: &[Change],
        results: &mut [Result<Applied, Rejected>],
        events: &mut Events,
    ) -> Result<(), Error> {
        let ends: Vec<(usize, &StepEnd)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::StepFinished(end) => Some((i, end.as_ref())),
                _ => None,
            })
            .collect();
        if ends.is_empty() {
            return Ok(());
        }
        let fence_rows = ends
            .iter()
            .map(|(_, end)| {
                let mut row = lease_json(&end.lease);
                row["advance"] = json!(i64::from(end.advance));
                row
            })
            .collect();
        let accepted = self
            .fence(tx, &self.sql.fence_step_finish, fence_rows)
            .await?;
        let mut updates = Vec::new();
        for (i, end) in ends {
            if !accepted.contains(&lease_key(&end.lease)) {
                continue;
            }
            results[i] = Ok(Applied::Done);
            updates.push(json!({
                "run": end.lease.run, "id": end.lease.deliverable, "index": end.index,
                "step_attempt": end.step_attempt, "state": end.state.as_str(),
                "exit_code": end.exit_code, "reason": end.reason.as_ref().map(|r| r.code.as_str()),
                "detail": end.reason.as_ref().map(|r| r.detail.as_str()),
                "output": end.output, "bytes": end.output_bytes, "at": at,
            }));
            events.push(
                i,
                &end.lease.run,
                NewEvent::deliverable(
                    EventKind::StepFinished,
                    &end.lease.deliverable,
                    json!({
                        "step": end.step, "index": end.index, "attempt": end.step_attempt,
                        "state": end.state, "exit_code": end.exit_code,
                        "duration_ms": u64::try_from(end.duration.as_millis()).unwrap_or(u64::MAX),
                        "output_bytes": end.output_bytes, "output_tail": output_tail(&end.output),
                        "reason": end.reason,
                    }),
                ),
            );
        }
        if !updates.is_empty() {
            sqlx::query(self.sql.finish_step_attempts.sql())
                .bind(Value::Array(updates).to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn apply_releases(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        changes: &[Change],
        results: &mut [Result<Applied, Rejected>],
        events: &mut Events,
    ) -> Result<(), Error> {
        let releases: Vec<(usize, &LeaseKey)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::Released { lease } => Some((i, lease)),
                _ => None,
            })
            .collect();
        if releases.is_empty() {
            return Ok(());
        }
        let accepted = self
            .fence(
                tx,
                &self.sql.release,
                releases.iter().map(|(_, l)| lease_json(l)).collect(),
            )
            .await?;
        let mut interrupted = Vec::new();
        for (i, lease) in releases {
            if accepted.contains(&lease_key(lease)) {
                results[i] = Ok(Applied::Done);
                interrupted.push(json!({"run": lease.run, "id": lease.deliverable}));
                events.push(
                    i,
                    &lease.run,
                    NewEvent::deliverable(
                        EventKind::DeliverableReleased,
                        &lease.deliverable,
                        json!({}),
                    ),
                );
            }
        }
        if !interrupted.is_empty() {
            sqlx::query(self.sql.interrupt_running_steps.sql())
                .bind(at)
                .bind(Value::Array(interrupted).to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn apply_successes(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        changes: &[Change],
        results: &mut [Result<Applied, Rejected>],
        ready: &mut Vec<(RunId, DeliverableId)>,
        events: &mut Events,
    ) -> Result<(), Error> {
        let successes: Vec<(usize, &LeaseKey, Option<&Merge>)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::Succeeded { lease, merge } => Some((i, lease, merge.as_ref())),
                _ => None,
            })
            .collect();
        if successes.is_empty() {
            return Ok(());
        }
        let rows = successes
            .iter()
            .map(|(_, lease, merge)| {
                let mut row = lease_json(lease);
                row["merge"] = json!(merge.map(|m| &m.commit));
                row["at"] = json!(at);
                row
            })
            .collect();
        let accepted = self.fence(tx, &self.sql.succeed, rows).await?;
        let mut done = Vec::new();
        let mut points = Vec::new();
        for (i, lease, merge) in successes {
            if !accepted.contains(&lease_key(lease)) {
                continue;
            }
            results[i] = Ok(Applied::Done);
            done.push(json!({"run": lease.run, "id": lease.deliverable}));
            if let Some(m) = merge {
                points.push(json!({
                    "id": m.rollback_id, "run": lease.run, "deliverable": lease.deliverable,
                    "repo": m.repo, "branch": m.branch, "before": m.before, "merge": m.commit, "at": at,
                }));
                events.push(
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
            events.push(
                i,
                &lease.run,
                NewEvent::deliverable(
                    EventKind::DeliverableSucceeded,
                    &lease.deliverable,
                    json!({}),
                ),
            );
        }
        if done.is_empty() {
            return Ok(());
        }
        let released = sqlx::query(self.sql.release_dependents.sql())
            .bind(Value::Array(done).to_string())
            .fetch_all(&mut **tx)
            .await?;
        for row in &released {
            if int(row, "waiting_on")? == 0 && text(row, "state")? == "pending" {
                let (run, id) = key_of(row)?;
                ready.push((RunId::parse(run)?, DeliverableId::parse(id)?));
            }
        }
        if !points.is_empty() {
            sqlx::query(self.sql.insert_rollback_points.sql())
                .bind(Value::Array(points).to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Failures and cancellations of running deliverables.
    async fn apply_endings(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        changes: &[Change],
        results: &mut [Result<Applied, Rejected>],
        events: &mut Events,
    ) -> Result<(), Error> {
        let cancelled = Reason::new(ReasonCode::Cancelled, "the run was cancelled");
        let endings: Vec<(usize, &LeaseKey, DeliverableState, &Reason)> = changes
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
        let rows = endings
            .iter()
            .map(|(_, lease, state, reason)| {
                let mut row = lease_json(lease);
                row["state"] = json!(state.as_str());
                row["reason"] = json!(reason.code.as_str());
                row["detail"] = json!(reason.detail);
                row["at"] = json!(at);
                row
            })
            .collect();
        let accepted = self.fence(tx, &self.sql.end_running, rows).await?;
        let mut stopped = Vec::new();
        for (i, lease, state, reason) in endings {
            if !accepted.contains(&lease_key(lease)) {
                continue;
            }
            if state == DeliverableState::Cancelled {
                stopped.push(json!({"run": lease.run, "id": lease.deliverable}));
                results[i] = Ok(Applied::Done);
                events.push(
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
            events.push(
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
                .bind(at)
                .fetch_all(&mut **tx)
                .await?;
            let mut skipped = Vec::with_capacity(skipped_rows.len());
            for row in &skipped_rows {
                let id = DeliverableId::parse(text(row, "id")?)?;
                events.push(
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
            results[i] = Ok(Applied::Failed { skipped });
        }
        if !stopped.is_empty() {
            sqlx::query(self.sql.cancel_running_steps.sql())
                .bind(at)
                .bind(Value::Array(stopped).to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Run-level changes; rare, so one statement each.
    async fn apply_run_changes(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        changes: &[Change],
        results: &mut [Result<Applied, Rejected>],
        events: &mut Events,
    ) -> Result<(), Error> {
        for (i, change) in changes.iter().enumerate() {
            match change {
                Change::RequestCancel { run } => {
                    let hit = sqlx::query(self.sql.request_cancel.sql())
                        .bind(run.as_str())
                        .bind(at)
                        .fetch_optional(&mut **tx)
                        .await?;
                    if hit.is_some() {
                        results[i] = Ok(Applied::Done);
                        events.push(i, run, NewEvent::run(EventKind::CancelRequested, json!({})));
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
                    }
                    let mut ids = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let id = DeliverableId::parse(text(row, "id")?)?;
                        events.push(
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
                    results[i] = Ok(Applied::Cancelled { deliverables: ids });
                }
                Change::Reopen { run, states } => {
                    let reopened = sqlx::query(self.sql.reopen_run.sql())
                        .bind(run.as_str())
                        .bind(at)
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
                    let mut ids = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let id = DeliverableId::parse(text(row, "id")?)?;
                        events.push(
                            i,
                            run,
                            NewEvent::deliverable(EventKind::DeliverableReopened, &id, json!({})),
                        );
                        ids.push(id);
                    }
                    results[i] = Ok(Applied::Reopened { deliverables: ids });
                }
                Change::Resumed { run, driver } => {
                    results[i] = Ok(Applied::Done);
                    events.push(
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
                    if hit.is_some() {
                        results[i] = Ok(Applied::Done);
                        events.push(
                            i,
                            run,
                            NewEvent::run(EventKind::RunFinished, json!({"state": state})),
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn insert_events(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        mut events: Events,
    ) -> Result<Vec<Event>, Error> {
        if events.0.is_empty() {
            return Ok(Vec::new());
        }
        events.0.sort_by_key(|(change, _, _)| *change);
        let rows: Vec<Value> = events
            .0
            .iter()
            .map(|(_, run, e)| {
                json!({"run": run, "kind": e.kind.as_str(), "deliverable": e.deliverable,
                       "data": e.data.to_string(), "at": at})
            })
            .collect();
        let inserted = sqlx::query(self.sql.insert_events.sql())
            .bind(Value::Array(rows).to_string())
            .fetch_all(&mut **tx)
            .await?;
        // Sequence numbers are assigned in insertion order (the rows are inserted ordered by
        // their position in the batch, one writer at a time), so the n-th smallest belongs to
        // the n-th event: the events are built from what is in hand, not read back.
        let mut assigned: Vec<(i64, String)> = inserted
            .iter()
            .map(|row| Ok((int(row, "seq")?, text(row, "tenant")?)))
            .collect::<Result<_, Error>>()?;
        if assigned.len() != events.0.len() {
            return Err(Error::Corrupt(format!(
                "{} events written, {} expected (an event names a run that does not exist)",
                assigned.len(),
                events.0.len()
            )));
        }
        assigned.sort_unstable_by_key(|(seq, _)| *seq);
        let at = Timestamp::from_millis(at);
        events
            .0
            .into_iter()
            .zip(assigned)
            .map(|((_, run_id, e), (seq, tenant))| {
                Ok(Event {
                    seq,
                    at,
                    run_id,
                    tenant: TenantId::parse(tenant)?,
                    kind: e.kind,
                    deliverable: e.deliverable,
                    data: e.data,
                })
            })
            .collect()
    }

    /// Appends events outside a batch (the run's first event is written with the run).
    pub(crate) async fn insert_run_events(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: Timestamp,
        run: &RunId,
        new: Vec<NewEvent>,
    ) -> Result<Vec<Event>, Error> {
        let events = Events(new.into_iter().map(|e| (0, run.clone(), e)).collect());
        self.insert_events(tx, at.as_millis(), events).await
    }
}

/// The last lines of a step's output, for event summaries: at most 5 lines and 500 bytes.
fn output_tail(output: &str) -> String {
    let trimmed = output.trim_end();
    let start = trimmed
        .rmatch_indices('\n')
        .nth(4)
        .map_or(0, |(i, _)| i + 1);
    let tail = &trimmed[start..];
    if tail.len() <= 500 {
        return tail.to_owned();
    }
    let mut cut = tail.len() - 500;
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    tail[cut..].to_owned()
}

/// Groups deliverables by run, for callers that route results per run.
pub fn by_run(pairs: &[(RunId, DeliverableId)]) -> BTreeMap<RunId, Vec<DeliverableId>> {
    let mut map: BTreeMap<RunId, Vec<DeliverableId>> = BTreeMap::new();
    for (run, id) in pairs {
        map.entry(run.clone()).or_default().push(id.clone());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_tail_keeps_the_last_five_lines() {
        let out = (1..=8).map(|i| format!("line {i}\n")).collect::<String>();
        assert_eq!(output_tail(&out), "line 4\nline 5\nline 6\nline 7\nline 8");
        assert_eq!(output_tail("one line"), "one line");
        assert_eq!(output_tail(""), "");
    }

    #[test]
    fn output_tail_is_bounded_and_stays_on_char_boundaries() {
        let long = "é".repeat(400);
        let tail = output_tail(&long);
        assert!(tail.len() <= 500);
        assert!(tail.chars().all(|c| c == 'é'));
    }
}
