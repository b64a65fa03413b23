//! Reading rows into domain types. A value that does not fit (an unknown state name, a
//! negative count) is reported as corrupt data, naming the column, rather than guessed at.

use kamachiq_domain::run::{DeliverableStatus, Lease, RollbackPoint, StepAttempt};
use kamachiq_domain::{DeliverableId, Event, Reason, ReasonCode, RunId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Error;

fn corrupt(column: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("column `{column}`: {e}"))
}

pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String, Error> {
    row.try_get::<String, _>(column)
        .map_err(|e| corrupt(column, e))
}

pub(crate) fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, Error> {
    row.try_get::<Option<String>, _>(column)
        .map_err(|e| corrupt(column, e))
}

pub(crate) fn int(row: &AnyRow, column: &str) -> Result<i64, Error> {
    row.try_get::<i64, _>(column)
        .map_err(|e| corrupt(column, e))
}

pub(crate) fn opt_int(row: &AnyRow, column: &str) -> Result<Option<i64>, Error> {
    row.try_get::<Option<i64>, _>(column)
        .map_err(|e| corrupt(column, e))
}

pub(crate) fn count(row: &AnyRow, column: &str) -> Result<u32, Error> {
    u32::try_from(int(row, column)?).map_err(|e| corrupt(column, e))
}

pub(crate) fn time(row: &AnyRow, column: &str) -> Result<Timestamp, Error> {
    int(row, column).map(Timestamp::from_millis)
}

pub(crate) fn opt_time(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, Error> {
    Ok(opt_int(row, column)?.map(Timestamp::from_millis))
}

pub(crate) fn parsed<T>(row: &AnyRow, column: &str) -> Result<T, Error>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text(row, column)?.parse().map_err(|e| corrupt(column, e))
}

fn reason(row: &AnyRow, code: &str, detail: &str) -> Result<Option<Reason>, Error> {
    match opt_text(row, code)? {
        None => Ok(None),
        Some(c) => Ok(Some(Reason::new(
            c.parse::<ReasonCode>().map_err(|e| corrupt(code, e))?,
            opt_text(row, detail)?.unwrap_or_default(),
        ))),
    }
}

pub(crate) fn event(row: &AnyRow) -> Result<Event, Error> {
    let data = text(row, "data")?;
    Ok(Event {
        seq: int(row, "seq")?,
        at: time(row, "at")?,
        run_id: RunId::parse(text(row, "run_id")?)?,
        tenant: TenantId::parse(text(row, "tenant")?)?,
        kind: parsed(row, "kind")?,
        deliverable: opt_text(row, "deliverable")?
            .map(DeliverableId::parse)
            .transpose()?,
        data: serde_json::from_str(&data).map_err(|e| corrupt("data", e))?,
    })
}

pub(crate) fn deliverable(row: &AnyRow) -> Result<DeliverableStatus, Error> {
    let lease = match (
        opt_text(row, "lease_owner")?,
        opt_time(row, "lease_expires_at")?,
    ) {
        (Some(owner), Some(expires_at)) => Some(Lease { owner, expires_at }),
        _ => None,
    };
    Ok(DeliverableStatus {
        run_id: RunId::parse(text(row, "run_id")?)?,
        id: DeliverableId::parse(text(row, "id")?)?,
        position: count(row, "position")?,
        state: parsed(row, "state")?,
        waiting_on: count(row, "waiting_on")?,
        attempt: count(row, "attempt")?,
        next_step: count(row, "next_step")?,
        current_step: opt_text(row, "current_step")?,
        lease,
        reason: reason(row, "reason", "reason_detail")?,
        merge_commit: opt_text(row, "merge_commit")?,
        started_at: opt_time(row, "started_at")?,
        finished_at: opt_time(row, "finished_at")?,
        policy_override: opt_text(row, "policy_override")?,
        approved_actions: approved_actions(row)?,
    })
}

/// The scopes a person approved for a deliverable (`approved_actions`, a JSON array).
pub(crate) fn approved_actions(row: &AnyRow) -> Result<Vec<String>, Error> {
    match opt_text(row, "approved_actions")? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| corrupt("approved_actions", e)),
    }
}

pub(crate) fn step_attempt(row: &AnyRow) -> Result<StepAttempt, Error> {
    Ok(StepAttempt {
        deliverable: DeliverableId::parse(text(row, "deliverable")?)?,
        step_index: count(row, "step_index")?,
        step: text(row, "step")?,
        attempt: count(row, "attempt")?,
        state: parsed(row, "state")?,
        exit_code: opt_int(row, "exit_code")?.and_then(|c| i32::try_from(c).ok()),
        reason: reason(row, "reason", "reason_detail")?,
        output_bytes: u64::try_from(int(row, "output_bytes")?).unwrap_or(0),
        started_at: time(row, "started_at")?,
        finished_at: opt_time(row, "finished_at")?,
    })
}

/// The run's driver lease, when one is held.
pub(crate) fn driver(row: &AnyRow) -> Result<Option<Lease>, Error> {
    Ok(
        match (
            opt_text(row, "driver")?,
            opt_time(row, "driver_expires_at")?,
        ) {
            (Some(owner), Some(expires_at)) => Some(Lease { owner, expires_at }),
            _ => None,
        },
    )
}

pub(crate) fn rollback_point(row: &AnyRow) -> Result<RollbackPoint, Error> {
    Ok(RollbackPoint {
        id: text(row, "id")?,
        run_id: RunId::parse(text(row, "run_id")?)?,
        deliverable: DeliverableId::parse(text(row, "deliverable")?)?,
        repo: text(row, "repo")?,
        branch: text(row, "branch")?,
        before_commit: text(row, "before_commit")?,
        merge_commit: text(row, "merge_commit")?,
        created_at: time(row, "created_at")?,
    })
}
