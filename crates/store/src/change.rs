//! Changes to runs and deliverables, applied in batches: one transaction, a handful of
//! set-based statements, and the events describing every accepted change, all committed
//! together. A change that is no longer allowed (a stale lease, a deliverable that moved on) is
//! rejected on its own without failing the batch.
//!
//! Some changes carry what follows them in the life of a deliverable (a claim starts its first
//! step; a step's end starts the next one or, with nothing to merge, completes the
//! deliverable), so a deliverable costs as few round trips to the writer as its durability
//! allows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::run::StepState;
use kamachiq_domain::{
    DeliverableId, DeliverableState, Event, EventKind, Reason, ReasonCode, RunId, RunState,
    StepName, TenantId, Timestamp,
};
use serde::Serialize;
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

/// A step of a deliverable, by position and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRef {
    pub index: u32,
    pub name: StepName,
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

/// What follows a step's end in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Then {
    /// Nothing: the step failed, or the deliverable merges before it completes.
    Stay,
    /// The next step starts.
    Start(StepRef),
    /// The deliverable succeeded (it has nothing to merge).
    Succeed,
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
    pub then: Then,
}

/// One change. Deliverable changes in one batch must concern distinct deliverables.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Start a ready deliverable, or take over a running one whose driver is gone
    /// (`takeover`). Its attempt number goes up by one and becomes the new fencing token.
    /// `start` is the step the claimer expects to run first; it starts with the claim when
    /// the deliverable's next step is indeed that one.
    Claim {
        run: RunId,
        deliverable: DeliverableId,
        owner: String,
        lease_until: Timestamp,
        takeover: bool,
        start: Option<StepRef>,
    },
    StepStarted {
        lease: LeaseKey,
        step: StepRef,
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
    /// Claimed at `attempt`; `step_attempt` when the expected first step started with it.
    Claimed {
        attempt: u32,
        next_step: u32,
        step_attempt: Option<u32>,
    },
    /// A step started (on its own, or after the previous step's end).
    StepStarted {
        step_attempt: u32,
    },
    /// The deliverable succeeded (on its own, or with its last step's end).
    Succeeded,
    Done,
    Failed {
        skipped: Vec<DeliverableId>,
    },
    Cancelled {
        deliverables: Vec<DeliverableId>,
    },
    Reopened {
        deliverables: Vec<DeliverableId>,
    },
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

fn json_array<T: Serialize>(rows: &[T]) -> Result<String, Error> {
    serde_json::to_string(rows).map_err(|e| Error::Corrupt(format!("cannot encode a batch: {e}")))
}

/// A deliverable addressed by run and id.
#[derive(Serialize)]
struct Target<'a> {
    run: &'a str,
    id: &'a str,
}

/// A fenced write: the deliverable, at the attempt the writer holds, with what to write.
#[derive(Serialize)]
struct Fenced<'a> {
    run: &'a str,
    id: &'a str,
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    advance: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    complete: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merge: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
}

impl<'a> Fenced<'a> {
    fn new(lease: &'a LeaseKey) -> Self {
        Self {
            run: lease.run.as_str(),
            id: lease.deliverable.as_str(),
            attempt: lease.attempt,
            step: None,
            advance: None,
            next: None,
            complete: None,
            merge: None,
            state: None,
            reason: None,
            detail: None,
            at: None,
        }
    }
}

/// A step attempt to start: which change asked for it, and for which step.
struct Start<'a> {
    change: usize,
    lease: LeaseKey,
    step: &'a StepRef,
}

/// Events of a batch, kept in the order of the changes that caused them.
struct Events(Vec<(usize, RunId, NewEvent)>);

impl Events {
    fn push(&mut self, change: usize, run: &RunId, event: NewEvent) {
        self.0.push((change, run.clone(), event));
    }
}

/// The state of one batch while it is applied.
struct Batch<'a> {
    at: i64,
    changes: &'a [Change],
    results: Vec<Result<Applied, Rejected>>,
    ready: Vec<(RunId, DeliverableId)>,
    events: Events,
    starts: Vec<Start<'a>>,
    /// Deliverables that succeeded in this batch, whose dependents' counters go down.
    completed: Vec<Target<'a>>,
}

impl Store {
    /// Applies `changes` in one transaction stamped `at`, with their events.
    pub async fn apply(&self, at: Timestamp, changes: &[Change]) -> Result<Outcome, Error> {
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        if let Some(lock) = self.backend.event_order_lock() {
            tx.execute(lock).await?;
        }
        let mut batch = Batch {
            at: at.as_millis(),
            changes,
            results: vec![Err(Rejected::NotApplicable); changes.len()],
            ready: Vec::new(),
            events: Events(Vec::new()),
            starts: Vec::new(),
            completed: Vec::new(),
        };
        self.apply_claims(&mut tx, &mut batch).await?;
        self.apply_step_ends(&mut tx, &mut batch).await?;
        self.apply_step_starts(&mut tx, &mut batch).await?;
        self.apply_releases(&mut tx, &mut batch).await?;
        self.apply_successes(&mut tx, &mut batch).await?;
        self.apply_endings(&mut tx, &mut batch).await?;
        self.apply_run_changes(&mut tx, &mut batch).await?;
        let events = self.insert_events(&mut tx, batch.at, batch.events).await?;
        tx.commit().await?;
        Ok(Outcome {
            results: batch.results,
            ready: batch.ready,
            events,
        })
    }

    async fn apply_claims<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct ClaimRow<'r> {
            run: &'r str,
            id: &'r str,
            owner: &'r str,
            until: i64,
            at: i64,
            takeover: i64,
            index: Option<u32>,
            step: Option<&'r str>,
        }
        let changes = batch.changes;
        let mut wanted: HashMap<(&str, &str), usize> = HashMap::new();
        let mut rows = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            if let Change::Claim {
                run,
                deliverable,
                owner,
                lease_until,
                takeover,
                start,
            } = change
            {
                wanted.insert((run.as_str(), deliverable.as_str()), i);
                rows.push(ClaimRow {
                    run: run.as_str(),
                    id: deliverable.as_str(),
                    owner,
                    until: lease_until.as_millis(),
                    at: batch.at,
                    takeover: i64::from(*takeover),
                    index: start.as_ref().map(|s| s.index),
                    step: start.as_ref().map(|s| s.name.as_str()),
                });
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let claimed = sqlx::query(self.sql.claim.sql())
            .bind(json_array(&rows)?)
            .fetch_all(&mut **tx)
            .await?;
        let mut taken = Vec::with_capacity(claimed.len());
        for row in &claimed {
            let (run_id, id) = key_of(row)?;
            let Some(&i) = wanted.get(&(run_id.as_str(), id.as_str())) else {
                continue;
            };
            let Change::Claim {
                run,
                deliverable,
                takeover,
                start,
                ..
            } = &changes[i]
            else {
                continue;
            };
            let attempt = u32::try_from(int(row, "attempt")?).unwrap_or(u32::MAX);
            let next_step = u32::try_from(int(row, "next_step")?).unwrap_or(0);
            batch.results[i] = Ok(Applied::Claimed {
                attempt,
                next_step,
                step_attempt: None,
            });
            batch.events.push(
                i,
                run,
                NewEvent::deliverable(
                    EventKind::DeliverableStarted,
                    deliverable,
                    json!({"attempt": attempt, "next_step": next_step, "takeover": takeover}),
                ),
            );
            if let Some(step) = start.as_ref().filter(|s| s.index == next_step) {
                batch.starts.push(Start {
                    change: i,
                    lease: LeaseKey {
                        run: run.clone(),
                        deliverable: deliverable.clone(),
                        attempt,
                    },
                    step,
                });
            }
            if *takeover {
                taken.push(Target {
                    run: run.as_str(),
                    id: deliverable.as_str(),
                });
            }
        }
        if !taken.is_empty() {
            // Steps that a vanished driver left running were interrupted, not failed. (A
            // pending deliverable has no running step: only takeovers can.)
            self.close_running_steps(tx, StepState::Interrupted, batch.at, &taken)
                .await?;
        }
        Ok(())
    }

    async fn close_running_steps(
        &self,
        tx: &mut Transaction<'static, Any>,
        state: StepState,
        at: i64,
        targets: &[Target<'_>],
    ) -> Result<(), Error> {
        sqlx::query(self.sql.close_running_steps.sql())
            .bind(state.as_str())
            .bind(at)
            .bind(json_array(targets)?)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Runs a fencing statement and returns the deliverables it accepted.
    async fn fence<T: Serialize>(
        &self,
        tx: &mut Transaction<'static, Any>,
        stmt: &crate::dialect::Stmt,
        rows: &[T],
    ) -> Result<HashSet<Key>, Error> {
        let accepted = sqlx::query(stmt.sql())
            .bind(json_array(rows)?)
            .fetch_all(&mut **tx)
            .await?;
        accepted.iter().map(key_of).collect()
    }

    async fn apply_step_ends<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Finish<'r> {
            run: &'r str,
            id: &'r str,
            index: u32,
            step_attempt: u32,
            state: &'r str,
            exit_code: Option<i32>,
            reason: Option<&'r str>,
            detail: Option<&'r str>,
            output: &'r str,
            bytes: u64,
            at: i64,
        }
        let changes = batch.changes;
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
        let fence_rows: Vec<Fenced<'_>> = ends
            .iter()
            .map(|(_, end)| Fenced {
                advance: Some(i64::from(end.advance)),
                next: match &end.then {
                    Then::Start(step) => Some(step.name.as_str()),
                    _ => None,
                },
                complete: Some(i64::from(end.then == Then::Succeed)),
                at: Some(batch.at),
                ..Fenced::new(&end.lease)
            })
            .collect();
        let accepted = self
            .fence(tx, &self.sql.fence_step_finish, &fence_rows)
            .await?;
        let mut updates = Vec::new();
        for (i, end) in ends {
            if !accepted.contains(&lease_key(&end.lease)) {
                continue;
            }
            batch.results[i] = Ok(Applied::Done);
            updates.push(Finish {
                run: end.lease.run.as_str(),
                id: end.lease.deliverable.as_str(),
                index: end.index,
                step_attempt: end.step_attempt,
                state: end.state.as_str(),
                exit_code: end.exit_code,
                reason: end.reason.as_ref().map(|r| r.code.as_str()),
                detail: end.reason.as_ref().map(|r| r.detail.as_str()),
                output: &end.output,
                bytes: end.output_bytes,
                at: batch.at,
            });
            batch.events.push(
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
            match &end.then {
                Then::Stay => {}
                Then::Start(step) => batch.starts.push(Start {
                    change: i,
                    lease: end.lease.clone(),
                    step,
                }),
                // The deliverable was completed by the fence itself.
                Then::Succeed => {
                    batch.results[i] = Ok(Applied::Succeeded);
                    batch.events.push(
                        i,
                        &end.lease.run,
                        NewEvent::deliverable(
                            EventKind::DeliverableSucceeded,
                            &end.lease.deliverable,
                            json!({}),
                        ),
                    );
                    batch.completed.push(Target {
                        run: end.lease.run.as_str(),
                        id: end.lease.deliverable.as_str(),
                    });
                }
            }
        }
        if !updates.is_empty() {
            sqlx::query(self.sql.finish_step_attempts.sql())
                .bind(json_array(&updates)?)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Explicit step starts, and the starts that come with claims and step ends.
    async fn apply_step_starts<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        #[derive(Serialize)]
        struct Insert<'r> {
            run: &'r str,
            id: &'r str,
            index: u32,
            step: &'r str,
            attempt: u32,
            at: i64,
        }
        let changes = batch.changes;
        let explicit: Vec<(usize, &LeaseKey, &StepRef)> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::StepStarted { lease, step } => Some((i, lease, step)),
                _ => None,
            })
            .collect();
        if !explicit.is_empty() {
            let fence_rows: Vec<Fenced<'_>> = explicit
                .iter()
                .map(|(_, lease, step)| Fenced {
                    step: Some(step.name.as_str()),
                    ..Fenced::new(lease)
                })
                .collect();
            let accepted = self
                .fence(tx, &self.sql.fence_step_start, &fence_rows)
                .await?;
            for (i, lease, step) in explicit {
                if accepted.contains(&lease_key(lease)) {
                    batch.starts.push(Start {
                        change: i,
                        lease: lease.clone(),
                        step,
                    });
                }
            }
        }
        if batch.starts.is_empty() {
            return Ok(());
        }
        let inserts: Vec<Insert<'_>> = batch
            .starts
            .iter()
            .map(|s| Insert {
                run: s.lease.run.as_str(),
                id: s.lease.deliverable.as_str(),
                index: s.step.index,
                step: s.step.name.as_str(),
                attempt: s.lease.attempt,
                at: batch.at,
            })
            .collect();
        let inserted = sqlx::query(self.sql.insert_step_attempts.sql())
            .bind(json_array(&inserts)?)
            .fetch_all(&mut **tx)
            .await?;
        let mut attempts: HashMap<Key, u32> = HashMap::new();
        for row in &inserted {
            let key = (text(row, "run_id")?, text(row, "deliverable")?);
            attempts.insert(key, u32::try_from(int(row, "attempt")?).unwrap_or(u32::MAX));
        }
        for start in std::mem::take(&mut batch.starts) {
            let Some(&step_attempt) = attempts.get(&lease_key(&start.lease)) else {
                continue;
            };
            batch.results[start.change] = match &batch.results[start.change] {
                Ok(Applied::Claimed {
                    attempt, next_step, ..
                }) => Ok(Applied::Claimed {
                    attempt: *attempt,
                    next_step: *next_step,
                    step_attempt: Some(step_attempt),
                }),
                _ => Ok(Applied::StepStarted { step_attempt }),
            };
            batch.events.push(
                start.change,
                &start.lease.run,
                NewEvent::deliverable(
                    EventKind::StepStarted,
                    &start.lease.deliverable,
                    json!({"step": start.step.name, "index": start.step.index, "attempt": step_attempt}),
                ),
            );
        }
        Ok(())
    }

    async fn apply_releases<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        let releases: Vec<(usize, &LeaseKey)> = batch
            .changes
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
        let rows: Vec<Fenced<'_>> = releases.iter().map(|(_, l)| Fenced::new(l)).collect();
        let accepted = self.fence(tx, &self.sql.release, &rows).await?;
        let mut interrupted = Vec::new();
        for (i, lease) in releases {
            if accepted.contains(&lease_key(lease)) {
                batch.results[i] = Ok(Applied::Done);
                interrupted.push(Target {
                    run: lease.run.as_str(),
                    id: lease.deliverable.as_str(),
                });
                batch.events.push(
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
            self.close_running_steps(tx, StepState::Interrupted, batch.at, &interrupted)
                .await?;
        }
        Ok(())
    }

    /// Explicit successes (after a merge); then, for them and for the deliverables completed
    /// with their last step's end, the dependents' counters go down.
    async fn apply_successes<'a>(
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
    async fn apply_endings<'a>(
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

    /// Run-level changes; rare, so one statement each.
    async fn apply_run_changes<'a>(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'a>,
    ) -> Result<(), Error> {
        let at = batch.at;
        for (i, change) in batch.changes.iter().enumerate() {
            match change {
                Change::RequestCancel { run } => {
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
                            NewEvent::run(EventKind::CancelRequested, json!({})),
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
                    if hit.is_some() {
                        batch.results[i] = Ok(Applied::Done);
                        batch.events.push(
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
        #[derive(Serialize)]
        struct Row<'r> {
            run: &'r str,
            tenant: &'r str,
            kind: &'r str,
            deliverable: Option<&'r str>,
            data: &'r Value,
            at: i64,
        }
        if events.0.is_empty() {
            return Ok(Vec::new());
        }
        events.0.sort_by_key(|(change, _, _)| *change);
        // Every event carries its run's tenant; a batch concerns a few runs, looked up once.
        #[derive(Serialize)]
        struct RunRef<'r> {
            id: &'r str,
        }
        let mut runs: Vec<RunRef<'_>> = events
            .0
            .iter()
            .map(|(_, run, _)| RunRef { id: run.as_str() })
            .collect();
        runs.sort_by_key(|t| t.id);
        runs.dedup_by_key(|t| t.id);
        let mut tenants: HashMap<String, TenantId> = HashMap::new();
        for row in sqlx::query(self.sql.select_tenants.sql())
            .bind(json_array(&runs)?)
            .fetch_all(&mut **tx)
            .await?
        {
            tenants.insert(text(&row, "id")?, TenantId::parse(text(&row, "tenant")?)?);
        }
        let mut rows: Vec<Row<'_>> = Vec::with_capacity(events.0.len());
        for (_, run, e) in &events.0 {
            let tenant = tenants.get(run.as_str()).ok_or_else(|| {
                Error::Corrupt(format!("an event names run {run}, which does not exist"))
            })?;
            rows.push(Row {
                run: run.as_str(),
                tenant: tenant.as_str(),
                kind: e.kind.as_str(),
                deliverable: e.deliverable.as_ref().map(DeliverableId::as_str),
                data: &e.data,
                at,
            });
        }
        let inserted = sqlx::query(self.sql.insert_events.sql())
            .bind(json_array(&rows)?)
            .fetch_all(&mut **tx)
            .await?;
        // Sequence numbers are assigned in insertion order (the rows are inserted ordered by
        // their position in the batch, one writer at a time), so the n-th smallest belongs to
        // the n-th event: the events are built from what is in hand, not read back.
        let mut seqs: Vec<i64> = inserted
            .iter()
            .map(|row| int(row, "seq"))
            .collect::<Result<_, _>>()?;
        if seqs.len() != events.0.len() {
            return Err(Error::Corrupt(format!(
                "{} events written, {} expected",
                seqs.len(),
                events.0.len()
            )));
        }
        seqs.sort_unstable();
        let at = Timestamp::from_millis(at);
        Ok(events
            .0
            .into_iter()
            .zip(seqs)
            .filter_map(|((_, run_id, e), seq)| {
                let tenant = tenants.get(run_id.as_str())?.clone();
                Some(Event {
                    seq,
                    at,
                    run_id,
                    tenant,
                    kind: e.kind,
                    deliverable: e.deliverable,
                    data: e.data,
                })
            })
            .collect())
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
