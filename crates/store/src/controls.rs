//! The emergency stop (seed 004's `STOP` file, a command and an API call) and the pausing of
//! one run. Both live in the store, so every driver and scheduler on it, on any machine, sees
//! them on its next look; each switch is audited in the transaction that flips it.

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::{EventKind, RunId, TenantId, Timestamp};
use serde::Serialize;
use serde_json::json;

use crate::audit::AuditEntry;
use crate::decode::{text, time};
use crate::{Error, Store};

const EMERGENCY_STOP: &str = "emergency_stop";

/// Who turned the emergency stop on, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StopState {
    pub by: String,
    pub at: Timestamp,
    pub reason: String,
}

/// The tenant that audit records of the emergency stop are filed under: it is not one
/// tenant's action but the whole installation's.
pub fn system_tenant() -> TenantId {
    #[allow(clippy::expect_used)]
    TenantId::parse("system").expect("`system` is a valid tenant id: letters only")
}

impl Store {
    /// Whether the emergency stop is on, and who turned it on.
    pub async fn emergency_stop(&self) -> Result<Option<StopState>, Error> {
        let row = sqlx::query(self.sql.select_control.sql())
            .bind(EMERGENCY_STOP)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(StopState {
                by: text(&row, "by")?,
                at: time(&row, "at")?,
                reason: text(&row, "reason")?,
            })
        })
        .transpose()
    }

    /// Turns the emergency stop on. Returns the stop in force: this one, or the one already on
    /// (then nothing was written).
    pub async fn stop_all(
        &self,
        by: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<(StopState, bool), Error> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(self.sql.insert_control.sql())
            .bind(EMERGENCY_STOP)
            .bind(reason)
            .bind(by)
            .bind(at.as_millis())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !inserted {
            tx.rollback().await?;
            let current = self.emergency_stop().await?.ok_or_else(|| {
                Error::Corrupt("the emergency stop vanished while it was read".into())
            })?;
            return Ok((current, false));
        }
        let entry = AuditEntry {
            tenant: system_tenant(),
            actor: by.to_owned(),
            action: "emergency_stop".to_owned(),
            subject: "all runs".to_owned(),
            detail: json!({ "reason": reason }),
        };
        self.append_audit(&mut tx, at.as_millis(), &[&entry])
            .await?;
        tx.commit().await?;
        Ok((
            StopState {
                by: by.to_owned(),
                at,
                reason: reason.to_owned(),
            },
            true,
        ))
    }

    /// Lifts the emergency stop. Returns the stop that was lifted, if one was on.
    pub async fn resume_all(&self, by: &str, at: Timestamp) -> Result<Option<StopState>, Error> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(self.sql.delete_control.sql())
            .bind(EMERGENCY_STOP)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let lifted = StopState {
            by: text(&row, "by")?,
            at: time(&row, "at")?,
            reason: text(&row, "reason")?,
        };
        let stopped_for = at.since(lifted.at);
        let entry = AuditEntry {
            tenant: system_tenant(),
            actor: by.to_owned(),
            action: "resume_all".to_owned(),
            subject: "all runs".to_owned(),
            detail: json!({
                "stopped_by": lifted.by, "stopped_at": lifted.at, "reason": lifted.reason,
                "stopped_for_ms": u64::try_from(stopped_for.as_millis()).unwrap_or(u64::MAX),
            }),
        };
        self.append_audit(&mut tx, at.as_millis(), &[&entry])
            .await?;
        tx.commit().await?;
        Ok(Some(lifted))
    }

    /// Pauses (or, with `paused` false, unpauses) a running run, with its event and an audit
    /// record. Returns false when the run was already so, or has finished.
    pub async fn set_paused(
        &self,
        run: &RunId,
        paused: bool,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, Error> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(self.sql.set_paused.sql())
            .bind(run.as_str())
            .bind(i64::from(paused))
            .bind(at.as_millis())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let tenant = TenantId::parse(text(&row, "tenant")?)?;
        let kind = if paused {
            EventKind::RunPaused
        } else {
            EventKind::RunUnpaused
        };
        self.insert_run_events(
            &mut tx,
            at,
            run,
            vec![NewEvent::run(kind, json!({"by": by}))],
        )
        .await?;
        let entry = AuditEntry {
            tenant,
            actor: by.to_owned(),
            action: if paused { "run_paused" } else { "run_unpaused" }.to_owned(),
            subject: run.to_string(),
            detail: json!({}),
        };
        self.append_audit(&mut tx, at.as_millis(), &[&entry])
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Running runs, by id: what an emergency stop halts.
    pub async fn running_runs(&self) -> Result<Vec<RunId>, Error> {
        let rows = sqlx::query(self.sql.select_stoppable_runs.sql())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(RunId::parse(text(r, "id")?)?))
            .collect()
    }
}
