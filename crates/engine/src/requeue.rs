//! The requeue of deliverables held back by policy: re-evaluation (by an operator, or by the
//! retry loop with jittered backoff and a bounded number of attempts), and overrides. The
//! retry loop also expires approval requests nobody answered in time.
//!
//! A re-evaluation decides again on the input of the decision that held the deliverable back,
//! at the current time and with the tenant's settings and policies in force now. When policy
//! allows it, the deliverable is pending again, its decision recorded with the release. An
//! override lets it through whatever policy says (the emergency stop aside), audited in the
//! same transaction.

use std::time::Duration;

use kamachiq_domain::{DeliverableId, RunId, TenantId};
use kamachiq_policy::Decision;
use kamachiq_store::{Applied, AuditEntry, Change, RequeueEntry, Resolution};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::drive::{Held, approval_request};
use crate::engine::Engine;
use crate::gate::Waiver;

/// How the retry loop treats blocked deliverables.
#[derive(Clone, Debug)]
pub struct RequeueOptions {
    /// Wait before the first automatic re-evaluation; it doubles with each attempt (with up to
    /// a fifth of jitter either way) up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Automatic re-evaluations before the loop gives up on an entry; an operator decides then
    /// (a change of the tenant's policy or settings still brings it back once).
    pub max_attempts: u32,
    /// How often the loop looks for due entries.
    pub interval: Duration,
}

impl Default for RequeueOptions {
    fn default() -> Self {
        Self {
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(60 * 60),
            max_attempts: 8,
            interval: Duration::from_secs(1),
        }
    }
}

/// The wait before automatic re-evaluation number `attempts + 1`.
pub fn backoff(options: &RequeueOptions, attempts: u32) -> Duration {
    let base = options
        .backoff
        .saturating_mul(1u32 << attempts.min(20))
        .min(options.max_backoff.max(options.backoff));
    // Jitter in [-20 %, +20 %), so entries blocked together are not retried together.
    let random = ulid::Ulid::generate().random();
    let fraction = (random % 1000) as f64 / 1000.0;
    base.mul_f64(0.8 + 0.4 * fraction)
}

/// What resolving a requeue entry did.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    /// The deliverable is pending again and will run.
    LetThrough {
        run: RunId,
        deliverable: DeliverableId,
        resolution: Resolution,
    },
    /// Policy still holds it back.
    StillBlocked { decision: Decision },
}

/// What one pass of the retry loop did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryPass {
    pub let_through: u32,
    pub still_blocked: u32,
}

impl Engine {
    /// The open requeue entry `id`, or why there is none.
    async fn open_entry(&self, id: &str) -> Result<RequeueEntry, Error> {
        let entry = self
            .inner
            .store
            .requeue_entry(id)
            .await?
            .ok_or_else(|| Error::RequeueNotFound(id.to_owned()))?;
        if let (Some(resolution), Some(at)) = (entry.resolution, entry.resolved_at) {
            return Err(Error::RequeueResolved {
                id: id.to_owned(),
                resolution,
                at,
            });
        }
        Ok(entry)
    }

    /// A requeue entry, for callers that check whose it is before acting on it.
    pub async fn requeue_entry(&self, id: &str) -> Result<Option<RequeueEntry>, Error> {
        Ok(self.inner.store.requeue_entry(id).await?)
    }

    /// Re-evaluates a blocked deliverable with the policy in force; lets it through when
    /// policy allows it. `by` names who asked, for the record.
    pub async fn reevaluate(&self, id: &str, by: Option<String>) -> Result<Resolved, Error> {
        let entry = self.open_entry(id).await?;
        self.retry(&entry, by, false).await
    }

    /// Overrides a block: the deliverable runs whatever policy says of it from now on (the
    /// emergency stop aside). Who, why and when go to the audit trail.
    pub async fn override_block(
        &self,
        id: &str,
        by: &str,
        justification: &str,
    ) -> Result<Resolved, Error> {
        let entry = self.open_entry(id).await?;
        let audit = AuditEntry {
            tenant: entry.tenant.clone(),
            actor: by.to_owned(),
            action: "requeue_override".to_owned(),
            subject: entry.id.clone(),
            detail: json!({
                "run": entry.run, "deliverable": entry.deliverable, "action": entry.action,
                "justification": justification, "reasons": entry.reasons,
                "decision_id": entry.decision_id,
            }),
        };
        let committed = self
            .inner
            .committer
            .commit(Change::Unblock {
                requeue_id: entry.id.clone(),
                resolution: Resolution::Overridden,
                by: Some(by.to_owned()),
                justification: Some(justification.to_owned()),
                decision_id: None,
                audit: Some(Box::new(audit)),
            })
            .await?;
        if committed.result != Ok(Applied::Done) {
            return Err(Error::RequeueNotFound(id.to_owned()));
        }
        tracing::info!(requeue = %entry.id, run = %entry.run, deliverable = %entry.deliverable,
            by, "policy block overridden");
        self.inner.submitted.notify_one();
        Ok(Resolved::LetThrough {
            run: entry.run,
            deliverable: entry.deliverable,
            resolution: Resolution::Overridden,
        })
    }

    /// Re-evaluates every entry whose retry is due: one pass of the retry loop.
    pub async fn retry_due(&self) -> Result<RetryPass, Error> {
        // Requests nobody answered in time expire whatever else happens.
        if let Err(e) = self.expire_approvals().await {
            tracing::warn!(error = %e, "cannot expire approval requests; trying again");
        }
        // Under the emergency stop every decision is a deny: retrying would only spend
        // attempts.
        if self.inner.gate.emergency_stop().await?.is_some() {
            return Ok(RetryPass::default());
        }
        let now = self.inner.clock.now();
        let due = self.inner.store.requeue_due(now, 100).await?;
        let mut pass = RetryPass::default();
        for entry in due {
            match self.retry(&entry, None, true).await {
                Ok(Resolved::LetThrough { .. }) => pass.let_through += 1,
                Ok(Resolved::StillBlocked { .. }) => pass.still_blocked += 1,
                Err(e) => {
                    tracing::warn!(requeue = %entry.id, error = %e, "cannot re-evaluate a blocked deliverable");
                }
            }
        }
        Ok(pass)
    }

    /// The tenant's policy or settings changed: forget what the gate cached of them and make
    /// its blocked deliverables due for re-evaluation at once.
    pub async fn policy_changed(&self, tenant: &TenantId) -> Result<u64, Error> {
        self.inner.gate.forget(tenant);
        let due = self
            .inner
            .store
            .requeue_due_now(tenant, self.inner.clock.now())
            .await?;
        self.inner.requeue_due.notify_one();
        Ok(due)
    }

    /// Decides again on the input that held `entry` back. `automatic`: the retry loop, which
    /// counts the attempt and schedules the next.
    async fn retry(
        &self,
        entry: &RequeueEntry,
        by: Option<String>,
        automatic: bool,
    ) -> Result<Resolved, Error> {
        let held = self
            .inner
            .store
            .decision(&entry.decision_id)
            .await?
            .ok_or_else(|| {
                Error::Io(format!(
                    "the decision {} that held back requeue entry {} is missing",
                    entry.decision_id, entry.id
                ))
            })?;
        let judged = self.inner.gate.decide(&entry.tenant, held.input).await?;
        let no_waiver = Waiver::default();
        if judged.proceeds(&no_waiver, "") {
            let decision_id = judged.record.id.clone();
            let mut changes = vec![Change::Unblock {
                requeue_id: entry.id.clone(),
                resolution: Resolution::Allowed,
                by,
                justification: None,
                decision_id: Some(decision_id),
                audit: None,
            }];
            changes.extend(judged.into_changes(&no_waiver, ""));
            let committed = self.inner.committer.commit_many(changes).await?;
            if committed.first().map(|c| &c.result) != Some(&Ok(Applied::Done)) {
                return Err(Error::RequeueNotFound(entry.id.clone()));
            }
            tracing::info!(requeue = %entry.id, run = %entry.run, deliverable = %entry.deliverable,
                "policy now allows a blocked deliverable");
            self.inner.submitted.notify_one();
            return Ok(Resolved::LetThrough {
                run: entry.run.clone(),
                deliverable: entry.deliverable.clone(),
                resolution: Resolution::Allowed,
            });
        }
        // A person must approve it now, and nobody was asked yet (it was denied by policy
        // before, say, or its last request was denied and a person asked again): ask.
        let approval = if judged.needs_person()
            && self
                .inner
                .store
                .open_approval_of(&entry.id)
                .await?
                .is_none()
        {
            let steps = self
                .inner
                .store
                .step_attempts(&entry.run, Some(&entry.deliverable))
                .await?;
            let held = Held {
                id: &entry.id,
                tenant: &entry.tenant,
                run: &entry.run,
                deliverable: &entry.deliverable,
            };
            Some(Box::new(approval_request(
                &judged,
                &held,
                &steps,
                self.inner.clock.now(),
            )))
        } else {
            None
        };
        let (verdict, reasons) = judged.held_as();
        let attempts = entry.attempts + u32::from(automatic);
        let options = &self.inner.options.requeue;
        let next_retry_at = if automatic {
            (attempts < options.max_attempts)
                .then(|| self.inner.clock.now().plus(backoff(options, attempts)))
        } else {
            entry.next_retry_at
        };
        self.inner
            .committer
            .commit_many(vec![
                Change::Retried {
                    requeue_id: entry.id.clone(),
                    attempts,
                    next_retry_at,
                    decision_id: judged.record.id.clone(),
                    verdict,
                    reasons,
                    approval,
                },
                Change::Decided(Box::new(judged.record)),
            ])
            .await?;
        Ok(Resolved::StillBlocked {
            decision: judged.decision,
        })
    }
}

/// Runs the retry loop until `stop` fires: a pass every `interval`, and at once when a
/// tenant's policy or settings change in this process.
pub async fn retry_loop(engine: Engine, stop: CancellationToken) {
    let interval = engine.inner.options.requeue.interval;
    loop {
        if let Err(e) = engine.retry_due().await {
            tracing::warn!(error = %e, "the requeue's retry pass failed; trying again");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            () = engine.inner.requeue_due.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let options = RequeueOptions {
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            ..RequeueOptions::default()
        };
        for attempts in 0..3 {
            let base = 10.0 * f64::from(1u32 << attempts);
            for _ in 0..50 {
                let wait = backoff(&options, attempts).as_secs_f64();
                assert!(
                    wait >= base * 0.8 && wait < base * 1.2,
                    "{attempts}: {wait}"
                );
            }
        }
        for _ in 0..50 {
            let wait = backoff(&options, 30).as_secs_f64();
            assert!((48.0..72.0).contains(&wait), "{wait}");
        }
    }
}
