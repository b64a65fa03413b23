//! The figures of `/v1/kamachiq/summary` and `/metrics`: aggregates computed in SQL, so a
//! store of many thousands of runs is summarised without reading them.

use kamachiq_domain::run::StateCounts;
use kamachiq_domain::{DeliverableState, RunState, TenantId};

use crate::decode::{count, int, parsed};
use crate::{Error, Store};

/// One tenant's runs in figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub runs: RunCounts,
    pub deliverables: StateCounts,
    /// Total wall time of finished runs, in milliseconds.
    pub finished_run_millis: i64,
    /// Tokens agent steps reported (plain commands use none).
    pub tokens: u64,
    /// Cost agent steps reported, in millionths of a US dollar.
    pub cost_micro_usd: u64,
    /// Deliverables that succeeded without anyone stepping in (no operator retry).
    pub handoffs_avoided: u32,
}

/// Runs by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub total: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl RunCounts {
    pub fn finished(&self) -> u32 {
        self.succeeded + self.failed + self.cancelled
    }
}

/// Work in flight across every tenant, for gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Deliverables of running runs, by state.
    pub deliverables: StateCounts,
    /// Deliverables ready to start (pending with every dependency done) in running runs.
    pub queue_depth: u32,
}

impl Store {
    pub async fn summary(&self, tenant: &TenantId) -> Result<Summary, Error> {
        let mut summary = Summary::default();
        let rows = sqlx::query(self.sql.summary_runs.sql())
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            let n = count(row, "n")?;
            summary.runs.total += n;
            match parsed::<RunState>(row, "state")? {
                RunState::Running => summary.runs.running += n,
                RunState::Succeeded => summary.runs.succeeded += n,
                RunState::Failed => summary.runs.failed += n,
                RunState::Cancelled => summary.runs.cancelled += n,
            }
            summary.finished_run_millis += int(row, "ms")?;
        }
        let rows = sqlx::query(self.sql.summary_deliverables.sql())
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            let state: DeliverableState = parsed(row, "state")?;
            summary.deliverables.add(state, count(row, "n")?);
        }
        let row = sqlx::query(self.sql.summary_usage.sql())
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        summary.tokens = u64::try_from(int(&row, "tokens")?).unwrap_or(0);
        summary.cost_micro_usd = u64::try_from(int(&row, "cost")?).unwrap_or(0);
        let row = sqlx::query(self.sql.summary_handoffs_avoided.sql())
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        summary.handoffs_avoided = count(&row, "n")?;
        Ok(summary)
    }

    pub async fn load(&self) -> Result<Load, Error> {
        let mut load = Load::default();
        let rows = sqlx::query(self.sql.select_deliverable_totals.sql())
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            let state: DeliverableState = parsed(row, "state")?;
            load.deliverables.add(state, count(row, "n")?);
        }
        let row = sqlx::query(self.sql.select_queue_depth.sql())
            .fetch_one(&self.pool)
            .await?;
        load.queue_depth = count(&row, "n")?;
        Ok(load)
    }
}
