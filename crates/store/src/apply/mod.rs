//! Applying a batch of changes: one transaction, a handful of set-based statements (one per
//! kind of change, whatever the batch's size), and the events describing every accepted change,
//! all committed together. A change that is no longer allowed (a stale lease, a deliverable
//! that moved on) is rejected on its own without failing the batch.
//!
//! The phases run in an order that lets one change's follow-up be handled by a later phase: a
//! claim's first step and a step end's next step are started by the step-start phase, and a
//! deliverable completed with its last step releases its dependents with the explicit
//! successes.

mod approvals;
mod control;
mod endings;
mod events;
mod policy;
mod steps;
mod usage;

use std::collections::HashSet;

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableId, RunId, Timestamp};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Transaction};

use crate::change::{Applied, Change, LeaseKey, Outcome, Rejected, StepRef};
use crate::decode::text;
use crate::{Error, Store};

type Key = (String, String);

fn key_of(row: &AnyRow) -> Result<Key, Error> {
    Ok((text(row, "run_id")?, text(row, "id")?))
}

fn lease_key(lease: &LeaseKey) -> Key {
    (lease.run.to_string(), lease.deliverable.to_string())
}

pub(crate) fn json_array<T: Serialize>(rows: &[T]) -> Result<String, Error> {
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
    index: Option<u32>,
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
            index: None,
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
        self.apply_policy_changes(&mut tx, &mut batch).await?;
        self.apply_approvals(&mut tx, &mut batch).await?;
        self.apply_usage(&mut tx, &mut batch).await?;
        let events = self.insert_events(&mut tx, batch.at, batch.events).await?;
        tx.commit().await?;
        Ok(Outcome {
            results: batch.results,
            ready: batch.ready,
            events,
        })
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
}
