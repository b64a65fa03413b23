//! Usage reported by agents: rows of the ledger, and progress events.

use kamachiq_domain::EventKind;
use kamachiq_domain::event::NewEvent;
use serde_json::json;
use sqlx::{Any, Transaction};

use super::Batch;
use crate::change::{Applied, Change};
use crate::usage::{UsageRecord, rows};
use crate::{Error, Store};

impl Store {
    /// Every usage record of the batch in one statement, and one event per progress report.
    pub(super) async fn apply_usage(
        &self,
        tx: &mut Transaction<'static, Any>,
        batch: &mut Batch<'_>,
    ) -> Result<(), Error> {
        let mut records: Vec<&UsageRecord> = Vec::new();
        for (i, change) in batch.changes.iter().enumerate() {
            if let Change::Warn { run, detail } = change {
                batch.results[i] = Ok(Applied::Done);
                batch.events.push(
                    i,
                    run,
                    NewEvent::run(EventKind::BudgetWarning, json!({ "detail": detail })),
                );
                continue;
            }
            let Change::Usage {
                records: r,
                progress,
            } = change
            else {
                continue;
            };
            records.extend(r.iter());
            batch.results[i] = Ok(Applied::Done);
            if let Some(p) = progress {
                batch.events.push(
                    i,
                    &p.run,
                    NewEvent::deliverable(
                        EventKind::StepProgress,
                        &p.deliverable,
                        json!({
                            "step": p.step, "attempt": p.step_attempt, "text": p.text,
                            "tokens": p.tokens, "cost_micro_usd": p.cost_micro_usd,
                        }),
                    ),
                );
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        sqlx::query(self.sql.insert_usage.sql())
            .bind(rows(&records).to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
