//! The approvals inbox (seed 003): a person approves or denies an action that waits for one,
//! and requests nobody answered in time expire.
//!
//! Approving lets the blocked deliverable through for exactly that action: its scope
//! (`merge`, `run_step:2`) joins the deliverable's approved actions, and every later action is
//! decided afresh (an approved step does not approve its merge). Denying keeps the deliverable
//! in the requeue with the denial among its reasons, and nothing retries it on its own; an
//! operator may still override or re-evaluate it. A request expires at its time: denied, or
//! escalated when the tenant says so (it then waits without a deadline). Each decision is an
//! `approval_decided` event and an audit record, written with the change.

use kamachiq_governance::ExpiryAction;
use kamachiq_store::{Applied, Approval, ApprovalStatus, Change};

use crate::Error;
use crate::engine::Engine;

/// Who expires requests, in the record.
pub const EXPIRY: &str = "expiry";

impl Engine {
    /// One approval request.
    pub async fn approval(&self, id: &str) -> Result<Option<Approval>, Error> {
        Ok(self.inner.store.approval(id).await?)
    }

    /// Approves the request `id` as `by` (the approver's identity), with an optional
    /// comment: the deliverable runs the action it waited for.
    pub async fn approve(
        &self,
        id: &str,
        by: &str,
        comment: Option<&str>,
    ) -> Result<Approval, Error> {
        self.decide_approval(id, ApprovalStatus::Approved, by, comment)
            .await
    }

    /// Denies the request `id` as `by`, for `reason`: the deliverable stays in the requeue.
    pub async fn deny(&self, id: &str, by: &str, reason: &str) -> Result<Approval, Error> {
        self.decide_approval(id, ApprovalStatus::Denied, by, Some(reason))
            .await
    }

    async fn decide_approval(
        &self,
        id: &str,
        status: ApprovalStatus,
        by: &str,
        comment: Option<&str>,
    ) -> Result<Approval, Error> {
        let current = self.open_approval(id).await?;
        let committed = self
            .inner
            .committer
            .commit(Change::DecideApproval {
                id: id.to_owned(),
                status,
                by: by.to_owned(),
                comment: comment.map(str::to_owned),
            })
            .await?;
        if committed.result != Ok(Applied::Done) {
            // Decided meanwhile, or its deliverable was let through otherwise.
            let now = self.approval(id).await?.unwrap_or(current);
            return Err(Error::ApprovalClosed {
                id: id.to_owned(),
                status: if now.status.is_open() {
                    ApprovalStatus::Withdrawn
                } else {
                    now.status
                },
            });
        }
        tracing::info!(approval = id, status = status.as_str(), by, run = %current.run,
            deliverable = %current.deliverable, action = %current.action, "approval decided");
        if status == ApprovalStatus::Approved {
            self.inner.submitted.notify_one();
        }
        self.approval(id)
            .await?
            .ok_or_else(|| Error::ApprovalNotFound(id.to_owned()))
    }

    /// The request `id` while a person may still decide it.
    async fn open_approval(&self, id: &str) -> Result<Approval, Error> {
        let approval = self
            .approval(id)
            .await?
            .ok_or_else(|| Error::ApprovalNotFound(id.to_owned()))?;
        if !approval.status.is_open() {
            return Err(Error::ApprovalClosed {
                id: id.to_owned(),
                status: approval.status,
            });
        }
        if approval.status == ApprovalStatus::Pending
            && kamachiq_governance::approval::is_expired(approval.expires_at, self.now())
        {
            return Err(Error::ApprovalExpired {
                id: id.to_owned(),
                at: approval.expires_at,
            });
        }
        Ok(approval)
    }

    /// Expires every pending request whose time ran out: denied, or escalated when the
    /// tenant's governance says so. Returns how many.
    pub async fn expire_approvals(&self) -> Result<u32, Error> {
        let now = self.now();
        let due = self.inner.store.expired_approvals(now, 100).await?;
        let mut expired = 0;
        for approval in due {
            let on_expiry = self
                .inner
                .gate
                .governance(&approval.tenant)
                .await?
                .map_or(ExpiryAction::Deny, |g| g.settings.on_expiry);
            let status = match on_expiry {
                ExpiryAction::Deny => ApprovalStatus::Expired,
                ExpiryAction::Escalate => ApprovalStatus::Escalated,
            };
            let committed = self
                .inner
                .committer
                .commit(Change::DecideApproval {
                    id: approval.id.clone(),
                    status,
                    by: EXPIRY.to_owned(),
                    comment: None,
                })
                .await?;
            if committed.result == Ok(Applied::Done) {
                expired += 1;
                tracing::info!(approval = %approval.id, status = status.as_str(),
                    run = %approval.run, deliverable = %approval.deliverable,
                    "an approval request expired unanswered");
            }
        }
        Ok(expired)
    }
}
