//! Rollback points and their rollbacks. A rollback point is written with the merge it precedes
//! (through [`Store::apply`](crate::Store::apply)); this module lists them, records that one
//! was rolled back, and forgets old ones.
//!
//! Recording a rollback writes four things in one transaction: the `rollbacks` row (one per
//! point: a second rollback of the same point is refused here, whatever raced to do it), the
//! audit record, the action's outcome (`rollback`, `rolled_back`), and the
//! `deliverable_rolled_back` event on the point's run.

use kamachiq_domain::event::NewEvent;
use kamachiq_domain::run::RollbackPoint;
use kamachiq_domain::{DeliverableId, Event, EventKind, RunId, TenantId, Timestamp};
use kamachiq_governance::Outcome;
use kamachiq_policy::Action;
use serde_json::json;
use sqlx::any::AnyRow;

use crate::actions::NewAction;
use crate::audit::AuditEntry;
use crate::decode::{self, opt_text, opt_time, text};
use crate::{Error, Store};

/// That a rollback point was rolled back: the commit that undid its merge, who asked, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollback {
    pub revert_commit: String,
    pub by: String,
    pub at: Timestamp,
}

/// A rollback point and, once it happened, its rollback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackEntry {
    pub point: RollbackPoint,
    pub rollback: Option<Rollback>,
}

/// Which rollback points [`Store::rollback_entries`] lists, newest first. Every filter given
/// must match.
#[derive(Clone, Debug, Default)]
pub struct RollbackQuery {
    pub run: Option<RunId>,
    pub deliverable: Option<DeliverableId>,
    /// The target repository, as stored (the absolute path of its top level).
    pub repo: Option<String>,
    /// The start of the merge commit's hash (lowercase hex).
    pub merge_commit_prefix: Option<String>,
    /// Only points not rolled back yet.
    pub open: bool,
    pub limit: u32,
}

/// A rollback to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRollback {
    pub point: RollbackPoint,
    /// The commit on the target branch that undoes the merge.
    pub revert_commit: String,
    /// Who asked (`local:<login>`, or a token's name).
    pub by: String,
    pub at: Timestamp,
    /// How long the rollback took, for its action outcome.
    pub duration_ms: u64,
}

impl Store {
    /// Rollback points with their rollbacks, newest first.
    pub async fn rollback_entries(
        &self,
        query: &RollbackQuery,
    ) -> Result<Vec<RollbackEntry>, Error> {
        self.select_rollback_entries(None, query).await
    }

    /// One rollback point with its rollback.
    pub async fn rollback_entry(&self, id: &str) -> Result<Option<RollbackEntry>, Error> {
        let query = RollbackQuery {
            limit: 1,
            ..RollbackQuery::default()
        };
        Ok(self.select_rollback_entries(Some(id), &query).await?.pop())
    }

    async fn select_rollback_entries(
        &self,
        id: Option<&str>,
        query: &RollbackQuery,
    ) -> Result<Vec<RollbackEntry>, Error> {
        let rows = sqlx::query(self.sql.select_rollback_entries.sql())
            .bind(id.map(str::to_owned))
            .bind(query.run.as_ref().map(ToString::to_string))
            .bind(query.deliverable.as_ref().map(ToString::to_string))
            .bind(query.repo.clone())
            .bind(query.merge_commit_prefix.as_ref().map(|p| format!("{p}%")))
            .bind(i64::from(query.open))
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry).collect()
    }

    /// Records that `new.point` was rolled back, with its audit record and its
    /// `deliverable_rolled_back` event, in one transaction. A point already rolled back is
    /// refused ([`Error::AlreadyRolledBack`]) and nothing is written. Returns the event.
    pub async fn record_rollback(&self, new: &NewRollback) -> Result<Event, Error> {
        let point = &new.point;
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(self.sql.insert_rollback.sql())
            .bind(point.id.as_str())
            .bind(new.revert_commit.as_str())
            .bind(new.by.as_str())
            .bind(new.at.as_millis())
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            let earlier = self
                .rollback_entry(&point.id)
                .await?
                .and_then(|e| e.rollback)
                .ok_or_else(|| {
                    Error::Corrupt(format!("rollback of {} refused but not found", point.id))
                })?;
            return Err(Error::AlreadyRolledBack {
                point: point.id.clone(),
                at: earlier.at,
                revert_commit: earlier.revert_commit,
            });
        }
        let run = sqlx::query(self.sql.select_run_stamp.sql())
            .bind(point.run_id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::RunNotFound(point.run_id.to_string()))?;
        let tenant = TenantId::parse(text(&run, "tenant")?)?;
        let detail = json!({
            "run": point.run_id, "deliverable": point.deliverable, "repo": point.repo,
            "branch": point.branch, "merge_commit": point.merge_commit,
            "before_commit": point.before_commit, "revert_commit": new.revert_commit,
        });
        let audit = AuditEntry {
            tenant,
            actor: new.by.clone(),
            action: "rollback".to_owned(),
            subject: point.id.clone(),
            detail,
        };
        self.append_audit(&mut tx, new.at.as_millis(), &[&audit])
            .await?;
        // The rollback is an automated action's outcome too: what undoes a promotion counts
        // toward the rollback rate circuit breakers and readiness watch.
        let outcome = NewAction {
            tenant: audit.tenant.clone(),
            run: Some(point.run_id.clone()),
            deliverable: Some(point.deliverable.clone()),
            action: Action::Rollback,
            outcome: Outcome::RolledBack,
            duration_ms: new.duration_ms,
            tokens: 0,
            cost_micro_usd: 0,
            critical: false,
        };
        self.insert_actions(&mut tx, new.at.as_millis(), &[&outcome])
            .await?;
        let event = NewEvent::deliverable(
            EventKind::DeliverableRolledBack,
            &point.deliverable,
            json!({
                "rollback_point": point.id, "branch": point.branch,
                "merge_commit": point.merge_commit, "before": point.before_commit,
                "revert_commit": new.revert_commit, "by": new.by,
            }),
        );
        let mut events = self
            .insert_run_events(&mut tx, new.at, &point.run_id, vec![event])
            .await?;
        tx.commit().await?;
        events
            .pop()
            .ok_or_else(|| Error::Corrupt("deliverable_rolled_back event was not written".into()))
    }

    /// Forgets rollback points created before `before`, with their rollback records. Runs,
    /// events, the audit trail and git are not touched. Returns how many points went.
    pub async fn forget_rollback_points(&self, before: Timestamp) -> Result<u64, Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query(self.sql.delete_rollbacks_before.sql())
            .bind(before.as_millis())
            .execute(&mut *tx)
            .await?;
        let forgotten = sqlx::query(self.sql.delete_rollback_points_before.sql())
            .bind(before.as_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(forgotten)
    }
}

fn entry(row: &AnyRow) -> Result<RollbackEntry, Error> {
    let rollback = match (
        opt_text(row, "revert_commit")?,
        opt_text(row, "rolled_back_by")?,
        opt_time(row, "rolled_back_at")?,
    ) {
        (Some(revert_commit), Some(by), Some(at)) => Some(Rollback {
            revert_commit,
            by,
            at,
        }),
        _ => None,
    };
    Ok(RollbackEntry {
        point: decode::rollback_point(row)?,
        rollback,
    })
}
