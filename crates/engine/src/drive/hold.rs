//! Holding a deliverable back: the block and its requeue entry, and the approval request
//! opened with them when a person must approve the action.

use kamachiq_domain::{DeliverableId, RunId};
use kamachiq_store::{
    ApprovalStatus, Change, Evidence, LeaseKey, NewApproval, NewRequeue, StepEvidence,
};

use super::{Shared, Stop, TaskEnd, hand_back};
use crate::Error;
use crate::gate::{Judged, Waiver, new_approval_id};

/// Holds a deliverable back after `decided` (the last of which said no; each with the scope
/// of its action): it becomes blocked, waits in the requeue, and the decisions are recorded
/// with the block. When a person must approve the action, an approval request is opened in
/// the same transaction; the deliverable holds no worker slot while it waits. `attempt`: the
/// claim it held, when it was running.
pub(super) async fn block(
    shared: &Shared,
    id: &DeliverableId,
    attempt: Option<u32>,
    decided: Vec<(Judged, String)>,
) -> Result<TaskEnd, Error> {
    let Some((last, _)) = decided.last() else {
        return Ok(TaskEnd::NotHeld);
    };
    if last.stopped() {
        // Not a block: nothing may act until the stop is lifted, and then it goes on.
        shared.stop_all(Stop::Emergency);
        return match attempt {
            Some(attempt) => {
                let lease = LeaseKey {
                    run: shared.run.id.clone(),
                    deliverable: id.clone(),
                    attempt,
                };
                hand_back(shared, lease).await
            }
            None => Ok(TaskEnd::Halted),
        };
    }
    let options = &shared.engine.inner.options;
    let now = shared.engine.inner.clock.now();
    let (verdict, reasons) = last.held_as();
    let entry = NewRequeue {
        id: format!("rq-{}", ulid::Ulid::generate().to_string().to_lowercase()),
        tenant: shared.run.tenant.clone(),
        action: last.record.input.action,
        decision_id: last.record.id.clone(),
        verdict,
        reasons,
        next_retry_at: Some(now.plus(crate::requeue::backoff(&options.requeue, 0))),
    };
    let approval = if last.needs_person() {
        let steps = shared
            .engine
            .inner
            .store
            .step_attempts(&shared.run.id, Some(id))
            .await?;
        let held = Held {
            id: &entry.id,
            tenant: &shared.run.tenant,
            run: &shared.run.id,
            deliverable: id,
        };
        Some(Box::new(approval_request(last, &held, &steps, now)))
    } else {
        None
    };
    tracing::info!(run = %shared.run.id, deliverable = %id, requeue = %entry.id,
        action = %entry.action, approval = approval.as_ref().map(|a| a.id.as_str()),
        "held back by policy");
    // The decisions before the last let their actions through (the provisioning before a
    // held-back step, say): what lets each through is committed with it.
    let last_index = decided.len() - 1;
    let mut changes: Vec<Change> = Vec::with_capacity(decided.len() + 1);
    for (i, (j, scope)) in decided.iter().enumerate() {
        if i < last_index {
            changes.extend(j.clone().into_changes(&Waiver::default(), scope));
        } else {
            changes.push(Change::Decided(Box::new(j.record.clone())));
        }
    }
    changes.push(Change::Block {
        run: shared.run.id.clone(),
        deliverable: id.clone(),
        attempt,
        reason: last.block_reason(),
        entry: Box::new(entry),
        approval,
    });
    let committed = shared.engine.inner.committer.commit_many(changes).await?;
    Ok(match committed.last().map(|c| &c.result) {
        Some(Ok(_)) => TaskEnd::Blocked(id.clone()),
        _ => TaskEnd::NotHeld,
    })
}

/// A deliverable held back, by its requeue entry.
pub(crate) struct Held<'a> {
    pub id: &'a str,
    pub tenant: &'a kamachiq_domain::TenantId,
    pub run: &'a RunId,
    pub deliverable: &'a DeliverableId,
}

/// The approval request opened when `judged` holds a deliverable back for a person: the
/// reasons, the diff a merge would bring in, how its steps went so far (`steps`, every attempt
/// of the deliverable's steps; the latest of each is kept).
pub(crate) fn approval_request(
    judged: &Judged,
    entry: &Held<'_>,
    steps: &[kamachiq_domain::run::StepAttempt],
    now: kamachiq_domain::Timestamp,
) -> NewApproval {
    let record = &judged.record;
    let (_, reasons) = judged.held_as();
    let mut latest: Vec<StepEvidence> = Vec::new();
    for a in steps {
        let evidence = StepEvidence {
            step: a.step.clone(),
            attempt: a.attempt,
            state: a.state.to_string(),
            exit_code: a.exit_code,
            reason: a
                .reason
                .as_ref()
                .map(|r| format!("{}: {}", r.code, r.detail)),
        };
        match latest.iter_mut().find(|e| e.step == a.step) {
            Some(slot) if slot.attempt <= a.attempt => *slot = evidence,
            Some(_) => {}
            None => latest.push(evidence),
        }
    }
    NewApproval {
        id: new_approval_id(),
        requeue_id: Some(entry.id.to_owned()),
        tenant: entry.tenant.clone(),
        run: entry.run.clone(),
        deliverable: entry.deliverable.clone(),
        action: record.input.action,
        step: record.input.step.as_ref().map(|s| s.name.clone()),
        risk: judged.decision.risk,
        cause: judged.need.as_ref().map(|n| n.cause),
        evidence: Evidence {
            reasons,
            diff: record.input.diff.clone(),
            steps: latest,
        },
        requested_at: now,
        expires_at: kamachiq_governance::approval::expires_at(now, judged.approval_ttl),
        status: ApprovalStatus::Pending,
        decided_by: None,
    }
}
