//! The usage ledger: what agent steps consumed, in tokens and money, by tenant, run,
//! deliverable, step, model and day. Budgets are checked against it and spend is reported from
//! it. Rows are written through [`Store::apply`](crate::Store::apply) as
//! [`Change::Usage`](crate::Change::Usage), while the agent streams.

use kamachiq_domain::{DeliverableId, RunId, TenantId, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::any::AnyRow;

use crate::decode::{int, text};
use crate::{Error, Store};

/// Usage reported by one agent step attempt since the last record of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    pub tenant: TenantId,
    pub run: RunId,
    pub deliverable: DeliverableId,
    pub step: String,
    pub step_attempt: u32,
    pub agent: String,
    /// The model that did the work (`unknown` when the agent did not say).
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Micro-dollars (1 USD = 1,000,000); may be negative when an agent's final figure
    /// corrects an estimate made while it streamed.
    pub cost_micro_usd: i64,
    pub at: Timestamp,
}

impl UsageRecord {
    /// Tokens of every kind.
    pub fn tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }
}

/// Tokens and cost summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Spend {
    pub tokens: u64,
    pub cost_micro_usd: i64,
}

impl Spend {
    pub fn add(&mut self, other: Spend) {
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(other.cost_micro_usd);
    }
}

/// How [`Store::spend`] groups the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendBy {
    Run,
    Deliverable,
    Model,
    Day,
    Tenant,
}

impl SpendBy {
    fn column(self) -> &'static str {
        match self {
            Self::Run => "run_id",
            Self::Deliverable => "run_id || '/' || deliverable",
            Self::Model => "model",
            Self::Day => "day",
            Self::Tenant => "tenant",
        }
    }
}

/// Which part of the ledger [`Store::spend`] sums.
#[derive(Clone, Debug)]
pub struct SpendQuery {
    pub tenant: Option<TenantId>,
    pub run: Option<RunId>,
    /// Only usage recorded at or after this instant.
    pub since: Option<Timestamp>,
    pub by: SpendBy,
}

/// One group of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpendRow {
    /// The run id, `run/deliverable`, the model, the day (`2026-11-30`) or the tenant.
    pub key: String,
    pub tokens: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micro_usd: i64,
    /// Step attempts that reported usage.
    pub steps: u64,
}

/// A run's spend, in all and per deliverable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSpend {
    pub total: Spend,
    pub deliverables: Vec<(DeliverableId, Spend)>,
}

/// The UTC day of `at`, as the ledger keys it: `2026-11-30`.
pub fn day_of(at: Timestamp) -> String {
    let text = at.to_string();
    text.get(..10).unwrap_or(&text).to_owned()
}

fn unsigned(row: &AnyRow, column: &str) -> Result<u64, Error> {
    u64::try_from(int(row, column)?).map_err(|e| Error::Corrupt(format!("column `{column}`: {e}")))
}

impl Store {
    /// A run's spend so far, in all and per deliverable.
    pub async fn run_spend(&self, run: &RunId) -> Result<RunSpend, Error> {
        let rows = sqlx::query(self.sql.select_run_spend.sql())
            .bind(run.as_str())
            .fetch_all(&self.pool)
            .await?;
        let mut spend = RunSpend::default();
        for row in &rows {
            let one = Spend {
                tokens: unsigned(row, "tokens")?,
                cost_micro_usd: int(row, "cost")?,
            };
            spend.total.add(one);
            spend
                .deliverables
                .push((DeliverableId::parse(text(row, "deliverable")?)?, one));
        }
        Ok(spend)
    }

    /// What the tenant spent on `day` (UTC, `2026-11-30`).
    pub async fn tenant_day_spend(&self, tenant: &TenantId, day: &str) -> Result<Spend, Error> {
        let row = sqlx::query(self.sql.select_tenant_day_spend.sql())
            .bind(tenant.as_str())
            .bind(day)
            .fetch_one(&self.pool)
            .await?;
        Ok(Spend {
            tokens: unsigned(&row, "tokens")?,
            cost_micro_usd: int(&row, "cost")?,
        })
    }

    /// The ledger summed by run, deliverable, model, day or tenant, largest cost first.
    pub async fn spend(&self, query: &SpendQuery) -> Result<Vec<SpendRow>, Error> {
        // The grouping column is one of a fixed few, never user text.
        let sql = crate::sql::spend_by(self.backend, query.by.column());
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(query.tenant.as_ref().map(ToString::to_string))
            .bind(query.run.as_ref().map(ToString::to_string))
            .bind(query.since.map(Timestamp::as_millis))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SpendRow {
                    key: text(row, "key")?,
                    tokens: unsigned(row, "tokens")?,
                    input_tokens: unsigned(row, "input_tokens")?,
                    output_tokens: unsigned(row, "output_tokens")?,
                    cost_micro_usd: int(row, "cost")?,
                    steps: unsigned(row, "steps")?,
                })
            })
            .collect()
    }
}

/// The rows of a batch's usage, for the set-based insert.
pub(crate) fn rows(records: &[&UsageRecord]) -> Value {
    Value::Array(
        records
            .iter()
            .map(|r| {
                json!({
                    "tenant": r.tenant, "run": r.run, "deliverable": r.deliverable,
                    "step": r.step, "step_attempt": r.step_attempt, "agent": r.agent,
                    "model": r.model, "input": r.input_tokens, "output": r.output_tokens,
                    "cache_read": r.cache_read_tokens, "cache_write": r.cache_write_tokens,
                    "tokens": r.tokens(), "cost": r.cost_micro_usd, "day": day_of(r.at),
                    "at": r.at.as_millis(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(
            day_of(Timestamp::from_millis(1_795_000_000_123)),
            "2026-11-18"
        );
        assert_eq!(day_of(Timestamp::from_millis(0)), "1970-01-01");
    }
}
