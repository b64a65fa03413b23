//! Creating runs, the driver lease, and every read of run state.

use std::collections::HashMap;

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::plan::Graph;
use kamachiq_domain::run::{
    DeliverableStatus, Lease, RollbackPoint, Run, RunSummary, StateCounts, StepAttempt,
};
use kamachiq_domain::{
    DeliverableId, DeliverableState, Event, EventKind, Plan, RunId, TenantId, Timestamp,
};
use serde_json::{Value, json};
use sqlx::Executor;

use crate::decode::{self, count, int, opt_text, opt_time, parsed, text, time};
use crate::{Error, Store};

/// Everything needed to create a run.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub id: RunId,
    pub plan: Plan,
    /// Absolute path of the target repository, if the run merges into one.
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub concurrency: u32,
    pub at: Timestamp,
    /// The driver that holds the run from birth: a process that submits a run to drive it
    /// itself takes it at once, so no scheduler picks it up in between. `None` leaves the run
    /// to whichever scheduler finds it first.
    pub driver: Option<Lease>,
    /// Who submitted the run (a token's name), recorded in its `run_started` event.
    pub submitted_by: Option<String>,
}

/// Which runs [`Store::runs`] lists.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    pub tenant: Option<TenantId>,
    /// Only runs older than this one (the last id of the previous page).
    pub before: Option<RunId>,
    pub limit: u32,
}

/// The few fields a run's driver polls while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunControl {
    pub state: kamachiq_domain::RunState,
    pub cancel_requested: bool,
    pub driver: Option<Lease>,
    /// An operator paused the run: no driver may work on it until it is resumed.
    pub paused: bool,
    /// The emergency stop is on: no driver may work on any run.
    pub stopped: bool,
}

/// Who owns a run, its state and when it last changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStamp {
    pub tenant: TenantId,
    pub state: kamachiq_domain::RunState,
    pub updated_at: Timestamp,
}

/// Why a driver takes a run's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// To continue a running run.
    Driving,
    /// To reopen a finished run (failed or cancelled work to run again).
    Reopening,
}

/// Filter for the event log.
/// A deliverable held back and let through since: ready again, with the step it resumes at
/// and what lets it past policy now (an operator's override, actions a person approved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    pub id: DeliverableId,
    pub next_step: u32,
    pub policy_override: Option<String>,
    pub approved_actions: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub run: Option<RunId>,
    pub tenant: Option<TenantId>,
}

impl Store {
    /// Stores a run, its deliverables and their dependency edges in one transaction, with the
    /// `run_started` event. Readiness counters start at the number of dependencies.
    pub async fn create_run(&self, new: &NewRun) -> Result<Event, Error> {
        self.create_runs(std::slice::from_ref(new))
            .await?
            .pop()
            .ok_or_else(|| Error::Corrupt("run_started event was not written".into()))
    }

    /// Stores several runs in one transaction (one commit for all: this is how a server
    /// accepts many submissions a second). Returns each run's `run_started` event, in order.
    pub async fn create_runs(&self, runs: &[NewRun]) -> Result<Vec<Event>, Error> {
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        if let Some(lock) = self.backend.event_order_lock() {
            tx.execute(lock).await?;
        }
        let mut started = Vec::with_capacity(runs.len());
        for new in runs {
            self.insert_run(&mut tx, new).await?;
            let event = NewEvent::run(
                EventKind::RunStarted,
                json!({
                    "title": new.plan.title, "deliverables": new.plan.deliverables.len(),
                    "concurrency": new.concurrency, "repo": new.repo, "branch": new.branch,
                    "region": new.plan.region, "submitted_by": new.submitted_by,
                }),
            );
            let mut events = self
                .insert_run_events(&mut tx, new.at, &new.id, vec![event])
                .await?;
            started.push(
                events
                    .pop()
                    .ok_or_else(|| Error::Corrupt("run_started event was not written".into()))?,
            );
        }
        tx.commit().await?;
        Ok(started)
    }

    async fn insert_run(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        new: &NewRun,
    ) -> Result<(), Error> {
        let plan_json =
            serde_json::to_string(&new.plan).map_err(|e| Error::Corrupt(e.to_string()))?;
        let graph = Graph::new(&new.plan);
        let deliverables: Vec<Value> = new
            .plan
            .deliverables
            .iter()
            .enumerate()
            .map(|(i, d)| json!({"id": d.id, "position": i, "waiting_on": graph.dependencies(i).len()}))
            .collect();
        let edges: Vec<Value> = new
            .plan
            .deliverables
            .iter()
            .flat_map(|d| {
                d.dependencies
                    .iter()
                    .map(move |dep| json!({"dependency": dep, "dependent": d.id}))
            })
            .collect();
        sqlx::query(self.sql.insert_run.sql())
            .bind(new.id.as_str())
            .bind(new.plan.tenant.as_str())
            .bind(new.plan.region.as_str())
            .bind(new.plan.title.clone())
            .bind(new.repo.clone())
            .bind(new.branch.clone())
            .bind(plan_json)
            .bind(i64::from(new.concurrency))
            .bind(new.at.as_millis())
            .bind(new.driver.as_ref().map(|l| l.owner.clone()))
            .bind(new.driver.as_ref().map(|l| l.expires_at.as_millis()))
            .execute(&mut **tx)
            .await?;
        sqlx::query(self.sql.insert_deliverables.sql())
            .bind(new.id.as_str())
            .bind(Value::Array(deliverables).to_string())
            .execute(&mut **tx)
            .await?;
        if !edges.is_empty() {
            sqlx::query(self.sql.insert_edges.sql())
                .bind(new.id.as_str())
                .bind(Value::Array(edges).to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub async fn run(&self, id: &RunId) -> Result<Run, Error> {
        let row = sqlx::query(self.sql.select_run.sql())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::RunNotFound(id.to_string()))?;
        let plan: Plan = serde_json::from_str(&text(&row, "plan")?)
            .map_err(|e| Error::Corrupt(format!("plan of run {id}: {e}")))?;
        let driver = decode::driver(&row)?;
        Ok(Run {
            id: RunId::parse(text(&row, "id")?)?,
            tenant: TenantId::parse(text(&row, "tenant")?)?,
            region: text(&row, "region")?,
            title: opt_text(&row, "title")?,
            repo: opt_text(&row, "repo")?,
            branch: opt_text(&row, "branch")?,
            state: parsed(&row, "state")?,
            plan,
            concurrency: count(&row, "concurrency")?,
            cancel_requested: int(&row, "cancel_requested")? != 0,
            driver,
            created_at: time(&row, "created_at")?,
            updated_at: time(&row, "updated_at")?,
            finished_at: opt_time(&row, "finished_at")?,
        })
    }

    /// Tenant, state and last update of a run: the cheapest read that tells whether a
    /// finished run changed since it was last read (a finished run changes only by a reopen,
    /// which moves `updated_at`).
    pub async fn run_stamp(&self, id: &RunId) -> Result<RunStamp, Error> {
        let row = sqlx::query(self.sql.select_run_stamp.sql())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::RunNotFound(id.to_string()))?;
        Ok(RunStamp {
            tenant: TenantId::parse(text(&row, "tenant")?)?,
            state: parsed(&row, "state")?,
            updated_at: time(&row, "updated_at")?,
        })
    }

    /// State, cancel flag and driver of a run: a cheap read for polling.
    pub async fn run_control(&self, id: &RunId) -> Result<RunControl, Error> {
        let row = sqlx::query(self.sql.select_run_control.sql())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::RunNotFound(id.to_string()))?;
        let driver = decode::driver(&row)?;
        Ok(RunControl {
            state: parsed(&row, "state")?,
            cancel_requested: int(&row, "cancel_requested")? != 0,
            driver,
            paused: int(&row, "paused")? != 0,
            stopped: int(&row, "stopped")? != 0,
        })
    }

    /// The run a user means by `reference`: an exact id, a unique prefix of one, or `latest`.
    pub async fn resolve_run(&self, reference: &str) -> Result<RunId, Error> {
        if reference == "latest" {
            let row = sqlx::query(self.sql.select_latest_run.sql())
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| Error::RunNotFound("latest".into()))?;
            return Ok(RunId::parse(text(&row, "id")?)?);
        }
        if reference.is_empty()
            || !reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Error::RunNotFound(reference.to_owned()));
        }
        let rows = sqlx::query(self.sql.select_run_ids_by_prefix.sql())
            .bind(format!("{}%", reference.to_ascii_lowercase()))
            .fetch_all(&self.pool)
            .await?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| text(r, "id"))
            .collect::<Result<_, _>>()?;
        match ids.as_slice() {
            [] => Err(Error::RunNotFound(reference.to_owned())),
            [one] => Ok(RunId::parse(one.clone())?),
            _ if ids.iter().any(|id| id == reference) => Ok(RunId::parse(reference)?),
            _ => Err(Error::AmbiguousRun {
                prefix: reference.to_owned(),
                matches: ids,
            }),
        }
    }

    /// Runs, newest first, with their deliverables counted by state.
    pub async fn runs(&self, query: &RunQuery) -> Result<Vec<RunSummary>, Error> {
        let rows = sqlx::query(self.sql.select_runs.sql())
            .bind(query.tenant.as_ref().map(|t| t.to_string()))
            .bind(i64::from(query.limit))
            .bind(query.before.as_ref().map(|r| r.to_string()))
            .fetch_all(&self.pool)
            .await?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in &rows {
            runs.push(RunSummary {
                id: RunId::parse(text(row, "id")?)?,
                tenant: TenantId::parse(text(row, "tenant")?)?,
                title: opt_text(row, "title")?,
                state: parsed(row, "state")?,
                created_at: time(row, "created_at")?,
                finished_at: opt_time(row, "finished_at")?,
                counts: StateCounts::default(),
            });
        }
        if runs.is_empty() {
            return Ok(runs);
        }
        let ids: Vec<Value> = runs.iter().map(|r| json!({"id": r.id})).collect();
        let counted = sqlx::query(self.sql.select_counts.sql())
            .bind(Value::Array(ids).to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut counts: HashMap<String, StateCounts> = HashMap::new();
        for row in &counted {
            let state: DeliverableState = parsed(row, "state")?;
            counts
                .entry(text(row, "run_id")?)
                .or_default()
                .add(state, count(row, "n")?);
        }
        for run in &mut runs {
            run.counts = counts.remove(run.id.as_str()).unwrap_or_default();
        }
        Ok(runs)
    }

    /// How many of the run's deliverables are in each state.
    pub async fn counts(&self, run: &RunId) -> Result<StateCounts, Error> {
        let rows = sqlx::query(self.sql.select_counts.sql())
            .bind(Value::Array(vec![json!({"id": run})]).to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut counts = StateCounts::default();
        for row in &rows {
            let state: DeliverableState = parsed(row, "state")?;
            counts.add(state, count(row, "n")?);
        }
        Ok(counts)
    }

    /// The run's deliverables in plan order.
    pub async fn deliverables(&self, run: &RunId) -> Result<Vec<DeliverableStatus>, Error> {
        let rows = sqlx::query(self.sql.select_deliverables.sql())
            .bind(run.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::deliverable).collect()
    }

    /// Which of `ids` are pending and ready, with the step each resumes at and its policy
    /// override: what a driver asks about the deliverables it saw held back, to pick up those
    /// let through since.
    pub async fn ready_among(
        &self,
        run: &RunId,
        ids: &[DeliverableId],
    ) -> Result<Vec<Ready>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
        let rows = sqlx::query(self.sql.select_ready_among.sql())
            .bind(run.as_str())
            .bind(Value::Array(wanted).to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Ready {
                    id: DeliverableId::parse(text(row, "id")?)?,
                    next_step: count(row, "next_step")?,
                    policy_override: opt_text(row, "policy_override")?,
                    approved_actions: decode::approved_actions(row)?,
                })
            })
            .collect()
    }

    /// Step attempts of a run (or of one deliverable), by deliverable, step and attempt.
    pub async fn step_attempts(
        &self,
        run: &RunId,
        deliverable: Option<&DeliverableId>,
    ) -> Result<Vec<StepAttempt>, Error> {
        let rows = sqlx::query(self.sql.select_step_attempts.sql())
            .bind(run.as_str())
            .bind(deliverable.map(|d| d.to_string()))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::step_attempt).collect()
    }

    /// What one step attempt printed, as kept (`None` if the attempt has not finished).
    pub async fn step_output(
        &self,
        run: &RunId,
        deliverable: &DeliverableId,
        step_index: u32,
        attempt: u32,
    ) -> Result<Option<String>, Error> {
        let row = sqlx::query(self.sql.select_step_output.sql())
            .bind(run.as_str())
            .bind(deliverable.as_str())
            .bind(i64::from(step_index))
            .bind(i64::from(attempt))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => opt_text(&row, "output"),
            None => Ok(None),
        }
    }

    /// Events after sequence number `after`, oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<Event>, Error> {
        let rows = sqlx::query(self.sql.select_events.sql())
            .bind(after)
            .bind(filter.run.as_ref().map(|r| r.to_string()))
            .bind(filter.tenant.as_ref().map(|t| t.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::event).collect()
    }

    /// Running runs that no live driver holds (none ever did, or its lease expired), oldest
    /// first: what a scheduler should drive next.
    pub async fn runs_awaiting_driver(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<RunId>, Error> {
        let rows = sqlx::query(self.sql.select_runs_awaiting_driver.sql())
            .bind(now.as_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(RunId::parse(text(r, "id")?)?))
            .collect()
    }

    /// The sequence number of the last event of any run (0 when there is none).
    pub async fn latest_event_seq(&self) -> Result<i64, Error> {
        let row = sqlx::query(self.sql.select_latest_event_seq.sql())
            .fetch_one(&self.pool)
            .await?;
        int(&row, "seq")
    }

    /// The sequence number of the run's last event (0 when it has none).
    pub async fn last_event_seq(&self, run: &RunId) -> Result<i64, Error> {
        let row = sqlx::query(self.sql.select_last_event_seq.sql())
            .bind(run.as_str())
            .fetch_one(&self.pool)
            .await?;
        int(&row, "seq")
    }

    pub async fn rollback_points(&self, run: &RunId) -> Result<Vec<RollbackPoint>, Error> {
        let rows = sqlx::query(self.sql.select_rollback_points.sql())
            .bind(run.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::rollback_point).collect()
    }

    /// Makes `owner` the run's driver until `until`, if nobody drives it or the current driver
    /// is `replacing` (a driver the caller has judged gone). Only a running run can be driven,
    /// unless the driver is `Reopening` it. Returns whether it did.
    pub async fn acquire_driver(
        &self,
        run: &RunId,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
        replacing: Option<&str>,
        purpose: Purpose,
    ) -> Result<bool, Error> {
        let row = sqlx::query(self.sql.acquire_driver.sql())
            .bind(run.as_str())
            .bind(owner)
            .bind(until.as_millis())
            .bind(now.as_millis())
            .bind(replacing.map(str::to_owned))
            .bind(i64::from(purpose == Purpose::Reopening))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Extends the driver's lease on the run and on every deliverable it holds. Returns false
    /// when the run's lease is no longer `owner`'s: another driver took over, and this one must
    /// stop.
    pub async fn renew_leases(
        &self,
        run: &RunId,
        owner: &str,
        until: Timestamp,
    ) -> Result<bool, Error> {
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        // The writer locks deliverable rows in its own order; taking its lock first means a
        // renewal waits for it instead of deadlocking with it.
        if let Some(lock) = self.backend.event_order_lock() {
            tx.execute(lock).await?;
        }
        let held = sqlx::query(self.sql.renew_driver.sql())
            .bind(run.as_str())
            .bind(owner)
            .bind(until.as_millis())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if held {
            sqlx::query(self.sql.renew_leases.sql())
                .bind(run.as_str())
                .bind(owner)
                .bind(until.as_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(held)
    }

    /// Gives up driving the run (its deliverables' leases are released separately).
    pub async fn release_driver(&self, run: &RunId, owner: &str) -> Result<(), Error> {
        sqlx::query(self.sql.release_driver.sql())
            .bind(run.as_str())
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
