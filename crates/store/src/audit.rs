//! The audit trail: who did what to whom, and when, for every operator action that changes how
//! kamachiq governs work (tenant settings, policies, overrides of policy, the emergency stop).
//!
//! The trail is append-only (database triggers refuse updates and deletions) and hash-chained:
//! each record's hash covers its content and the previous record's hash, so a record edited or
//! removed behind kamachiq's back breaks the chain, which [`Store::verify_audit`] finds. Records
//! are written in the same transaction as the change they describe.

use kamachiq_domain::{TenantId, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::decode::{int, text, time};
use crate::{Error, Store};

/// The hash before the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A record to append.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub tenant: TenantId,
    /// Who did it: a token's name, or `local:<user>` for the command line on the store's host.
    pub actor: String,
    /// What was done, a stable snake_case name (`tenant_created`, `requeue_override`, ...).
    pub action: String,
    /// What it was done to (a tenant, a requeue entry, a policy version).
    pub subject: String,
    /// The particulars: the change, the justification.
    pub detail: serde_json::Value,
}

/// A record of the trail.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: Timestamp,
    pub tenant: TenantId,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// What [`Store::verify_audit`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditCheck {
    /// Records checked.
    pub records: u64,
    /// The first record whose hash or link does not match, if any.
    pub broken_at: Option<i64>,
}

/// The hash of a record: SHA-256 over the previous hash and every field, each on its own line
/// (the detail as compact JSON), so no field can change without the hash changing.
fn chain_hash(prev: &str, at: i64, entry: &AuditEntry, detail: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [
        prev,
        &at.to_string(),
        entry.tenant.as_str(),
        &entry.actor,
        &entry.action,
        &entry.subject,
        detail,
    ] {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

impl Store {
    /// Appends `entries` in order inside `tx`. The caller's transaction must hold the write
    /// lock (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's event-order lock), so the chain cannot
    /// fork.
    pub(crate) async fn append_audit(
        &self,
        tx: &mut Transaction<'static, Any>,
        at: i64,
        entries: &[&AuditEntry],
    ) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut prev = match sqlx::query(self.sql.select_last_audit_hash.sql())
            .fetch_optional(&mut **tx)
            .await?
        {
            Some(row) => text(&row, "hash")?,
            None => GENESIS.to_owned(),
        };
        for entry in entries {
            let detail = entry.detail.to_string();
            let hash = chain_hash(&prev, at, entry, &detail);
            sqlx::query(self.sql.insert_audit.sql())
                .bind(at)
                .bind(entry.tenant.as_str())
                .bind(entry.actor.as_str())
                .bind(entry.action.as_str())
                .bind(entry.subject.as_str())
                .bind(detail)
                .bind(prev.as_str())
                .bind(hash.as_str())
                .execute(&mut **tx)
                .await?;
            prev = hash;
        }
        Ok(())
    }

    /// Appends one record in a transaction of its own.
    pub async fn audit(&self, at: Timestamp, entry: &AuditEntry) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        self.append_audit(&mut tx, at.as_millis(), &[entry]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records after `after` (a sequence number; 0 for the start), oldest first, of one tenant
    /// or of all.
    pub async fn audit_records(
        &self,
        tenant: Option<&TenantId>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, Error> {
        self.audit_rows(tenant, after, limit)
            .await?
            .into_iter()
            .map(|(record, _)| Ok(record))
            .collect()
    }

    /// Records with the detail exactly as stored (the hash covers that text).
    async fn audit_rows(
        &self,
        tenant: Option<&TenantId>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(AuditRecord, String)>, Error> {
        let rows = sqlx::query(self.sql.select_audit.sql())
            .bind(after)
            .bind(tenant.map(ToString::to_string))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record).collect()
    }

    /// Walks the whole trail and recomputes every hash and link.
    pub async fn verify_audit(&self) -> Result<AuditCheck, Error> {
        let mut prev = GENESIS.to_owned();
        let mut after = 0;
        let mut records = 0;
        loop {
            let page = self.audit_rows(None, after, 1000).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.seq;
            for (r, detail) in &page {
                records += 1;
                let entry = AuditEntry {
                    tenant: r.tenant.clone(),
                    actor: r.actor.clone(),
                    action: r.action.clone(),
                    subject: r.subject.clone(),
                    detail: r.detail.clone(),
                };
                let expected = chain_hash(&prev, r.at.as_millis(), &entry, detail);
                if r.prev_hash != prev || r.hash != expected {
                    return Ok(AuditCheck {
                        records,
                        broken_at: Some(r.seq),
                    });
                }
                prev.clone_from(&r.hash);
            }
        }
        Ok(AuditCheck {
            records,
            broken_at: None,
        })
    }
}

fn record(row: &AnyRow) -> Result<(AuditRecord, String), Error> {
    let detail = text(row, "detail")?;
    let record = AuditRecord {
        seq: int(row, "seq")?,
        at: time(row, "at")?,
        tenant: TenantId::parse(text(row, "tenant")?)?,
        actor: text(row, "actor")?,
        action: text(row, "action")?,
        subject: text(row, "subject")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| Error::Corrupt(format!("audit detail: {e}")))?,
        prev_hash: text(row, "prev_hash")?,
        hash: text(row, "hash")?,
    };
    Ok((record, detail))
}
