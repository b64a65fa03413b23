//! The outcome of every automated action: what circuit breakers, readiness and the weekly
//! cycle count. An outcome is written in the transaction of the change that ended its action
//! ([`Change::Acted`](crate::Change::Acted), or [`Store::record_rollback`] for a rollback), for
//! every tenant, governed or not; the store stamps it with the commit's time.

use kamachiq_domain::{DeliverableId, RunId, TenantId, Timestamp};
use kamachiq_governance::{ActionRecord, Outcome, WindowMetrics};
use kamachiq_policy::Action;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::audit::AuditEntry;
use crate::decode::{int, opt_text, text, time};
use crate::{Error, Store};

/// An outcome to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAction {
    pub tenant: TenantId,
    pub run: Option<RunId>,
    pub deliverable: Option<DeliverableId>,
    pub action: Action,
    pub outcome: Outcome,
    pub duration_ms: u64,
    pub tokens: u64,
    pub cost_micro_usd: u64,
    /// A critical incident is attributed to it.
    pub critical: bool,
}

/// A recorded outcome, with its place in the tenant's sequence and what it belonged to.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAction {
    pub seq: i64,
    pub run: Option<RunId>,
    pub deliverable: Option<DeliverableId>,
    pub record: ActionRecord,
}

/// Most outcomes one read returns.
pub const MAX_READ: u32 = 200_000;

pub(crate) fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::RolledBack => "rolled_back",
    }
}

fn parse_outcome(s: &str) -> Result<Outcome, Error> {
    match s {
        "succeeded" => Ok(Outcome::Succeeded),
        "failed" => Ok(Outcome::Failed),
        "rolled_back" => Ok(Outcome::RolledBack),
        other => Err(Error::Corrupt(format!("unknown action outcome `{other}`"))),
    }
}

/// The JSON row `insert_actions` reads.
#[derive(Serialize)]
struct Row<'a> {
    tenant: &'a str,
    run: Option<&'a str>,
    deliverable: Option<&'a str>,
    action: &'static str,
    outcome: &'static str,
    duration_ms: i64,
    tokens: i64,
    cost: i64,
    critical: i64,
    at: i64,
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Writes `actions` stamped `at` inside `tx`, in one statement.
    pub(crate) async fn insert_actions(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        actions: &[&NewAction],
    ) -> Result<(), Error> {
        if actions.is_empty() {
            return Ok(());
        }
        let rows: Vec<Row<'_>> = actions
            .iter()
            .map(|a| Row {
                tenant: a.tenant.as_str(),
                run: a.run.as_ref().map(RunId::as_str),
                deliverable: a.deliverable.as_ref().map(DeliverableId::as_str),
                action: a.action.as_str(),
                outcome: outcome_name(a.outcome),
                duration_ms: clamp(a.duration_ms),
                tokens: clamp(a.tokens),
                cost: clamp(a.cost_micro_usd),
                critical: i64::from(a.critical),
                at,
            })
            .collect();
        sqlx::query(self.sql.insert_actions.sql())
            .bind(crate::apply::json_array(&rows)?)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Records a critical incident an operator attributes to an action type: a failed action
    /// flagged critical, with its audit record, in one transaction.
    pub async fn record_incident(
        &self,
        incident: &NewAction,
        audit: &AuditEntry,
        at: Timestamp,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        self.insert_actions(&mut tx, at.as_millis(), &[incident])
            .await?;
        self.append_audit(&mut tx, at.as_millis(), &[audit]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's outcomes in `(from, to]`, oldest first (at most [`MAX_READ`]).
    pub async fn actions(
        &self,
        tenant: &TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredAction>, Error> {
        let rows = sqlx::query(self.sql.select_actions.sql())
            .bind(tenant.as_str())
            .bind(from.as_millis())
            .bind(to.as_millis())
            .bind(i64::from(MAX_READ))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored).collect()
    }

    /// The tenant's outcomes recorded after sequence number `after`, in order.
    pub async fn actions_after(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredAction>, Error> {
        let rows = sqlx::query(self.sql.select_actions_after.sql())
            .bind(tenant.as_str())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored).collect()
    }

    /// The sequence number of the tenant's latest outcome (0 for none).
    pub async fn last_action_seq(&self, tenant: &TenantId) -> Result<i64, Error> {
        let row = sqlx::query(self.sql.select_last_action_seq.sql())
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        int(&row, "seq")
    }

    /// The sequence number of the latest outcome of any tenant (0 for none).
    pub async fn latest_action_seq(&self) -> Result<i64, Error> {
        let row = sqlx::query(self.sql.select_latest_action_seq.sql())
            .fetch_one(&self.pool)
            .await?;
        int(&row, "seq")
    }

    /// Outcomes of every tenant recorded after sequence number `after`, counted by tenant,
    /// action and outcome, with the latest sequence number counted: what a metrics counter adds
    /// since its last look.
    pub async fn action_totals_after(
        &self,
        after: i64,
    ) -> Result<(i64, Vec<(TenantId, Action, Outcome, u64)>), Error> {
        let rows = sqlx::query(self.sql.select_action_totals_after.sql())
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        let mut last = after;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            last = last.max(int(row, "last")?);
            let action = text(row, "action")?;
            out.push((
                TenantId::parse(text(row, "tenant")?)?,
                action
                    .parse()
                    .map_err(|_| Error::Corrupt(format!("unknown action `{action}`")))?,
                parse_outcome(&text(row, "outcome")?)?,
                u64::try_from(int(row, "n")?).unwrap_or(0),
            ));
        }
        Ok((last, out))
    }

    /// The counts, rates and cost of the tenant's outcomes in `(from, to]`, summed in the
    /// database: what readiness needs over a whole phase, without reading every record. The
    /// duration percentiles and the per-type breakdown are left at zero and empty.
    pub async fn action_counts(
        &self,
        tenant: &TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<WindowMetrics, Error> {
        let rows = sqlx::query(self.sql.select_action_counts.sql())
            .bind(tenant.as_str())
            .bind(from.as_millis())
            .bind(to.as_millis())
            .fetch_all(&self.pool)
            .await?;
        let mut m = WindowMetrics::default();
        let mut cost: i64 = 0;
        for row in &rows {
            let n = u64::try_from(int(row, "n")?).unwrap_or(0);
            match parse_outcome(&text(row, "outcome")?)? {
                Outcome::Succeeded => m.succeeded += n,
                Outcome::Failed => m.failed += n,
                Outcome::RolledBack => m.rolled_back += n,
            }
            m.total += n;
            m.critical_incidents += u64::try_from(int(row, "critical")?).unwrap_or(0);
            cost = cost.saturating_add(int(row, "cost")?);
        }
        if m.total > 0 {
            let total = m.total as f64;
            m.success_rate = m.succeeded as f64 / total;
            m.error_rate = m.failed as f64 / total;
            m.rollback_rate = m.rolled_back as f64 / total;
        }
        m.cost_usd = cost as f64 / 1_000_000.0;
        let hours = to.since(from).as_secs_f64() / 3_600.0;
        if hours > 0.0 {
            m.cost_rate_per_hour = m.cost_usd / hours;
        }
        Ok(m)
    }
}

fn stored(row: &AnyRow) -> Result<StoredAction, Error> {
    let action = text(row, "action")?;
    let non_negative = |column: &str| -> Result<u64, Error> {
        u64::try_from(int(row, column)?)
            .map_err(|e| Error::Corrupt(format!("column `{column}`: {e}")))
    };
    Ok(StoredAction {
        seq: int(row, "seq")?,
        run: opt_text(row, "run_id")?.map(RunId::parse).transpose()?,
        deliverable: opt_text(row, "deliverable")?
            .map(DeliverableId::parse)
            .transpose()?,
        record: ActionRecord {
            action: action
                .parse()
                .map_err(|_| Error::Corrupt(format!("unknown action `{action}`")))?,
            outcome: parse_outcome(&text(row, "outcome")?)?,
            duration_ms: non_negative("duration_ms")?,
            tokens: non_negative("tokens")?,
            cost_micro_usd: non_negative("cost_micro_usd")?,
            critical: int(row, "critical")? != 0,
            at: time(row, "at")?,
        },
    })
}
