//! Tenants and their policy sets. Every change is audited in its own transaction, and every
//! change bumps a version that decisions record, so a decision can always be traced to the
//! settings and the policies that made it.

use kamachiq_domain::tenant::{TenantSettings, TenantUpdate};
use kamachiq_domain::{Tenant, TenantId, Timestamp};
use kamachiq_policy::Module;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use crate::audit::AuditEntry;
use crate::decode::{count, opt_int, text, time};
use crate::{Error, Store};

/// A version of a tenant's policy set, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicy {
    pub tenant: TenantId,
    pub version: u32,
    pub modules: Vec<Module>,
    /// SHA-256 of the modules' names and sources: equal digests, equal policies.
    pub digest: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// The versions in force for a tenant: what a cached policy gate compares to know it is
/// current. Zero when the tenant is not configured, has no policy set, or is not governed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyStamp {
    pub tenant_version: u32,
    pub policy_version: u32,
    /// The version of the tenant's governance; 0 while it is not governed.
    pub governance_version: u32,
}

/// The digest of a policy set.
pub fn policy_digest(modules: &[Module]) -> String {
    let mut hasher = Sha256::new();
    for m in modules {
        hasher.update(m.name.as_bytes());
        hasher.update([0]);
        hasher.update(m.source.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

impl Store {
    /// The tenant's stored settings, or `None` if it was never configured.
    pub async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, Error> {
        let row = sqlx::query(self.sql.select_tenant.sql())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant).transpose()
    }

    /// The tenant's settings; the defaults for a tenant that was never configured.
    pub async fn tenant_or_default(&self, id: &TenantId) -> Result<Tenant, Error> {
        Ok(self
            .tenant(id)
            .await?
            .unwrap_or_else(|| Tenant::unconfigured(id.clone())))
    }

    /// Every configured tenant, by id.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, Error> {
        let rows = sqlx::query(self.sql.select_tenants_all.sql())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant).collect()
    }

    /// Configures a new tenant. `settings` must have been checked.
    pub async fn create_tenant(
        &self,
        id: &TenantId,
        settings: &TenantSettings,
        actor: &str,
        at: Timestamp,
    ) -> Result<Tenant, Error> {
        let settings = settings.clone().normalised();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(self.sql.insert_tenant.sql())
            .bind(id.as_str())
            .bind(encode(&settings)?)
            .bind(at.as_millis())
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_none() {
            return Err(Error::TenantExists(id.to_string()));
        }
        let entry = AuditEntry {
            tenant: id.clone(),
            actor: actor.to_owned(),
            action: "tenant_created".to_owned(),
            subject: id.to_string(),
            detail: json!({ "settings": settings }),
        };
        self.append_audit(&mut tx, at.as_millis(), &[&entry])
            .await?;
        tx.commit().await?;
        Ok(Tenant {
            id: id.clone(),
            settings,
            version: 1,
            created_at: at,
            updated_at: at,
        })
    }

    /// Applies `update` to a configured tenant. The new settings are checked as a whole; an
    /// invalid one changes nothing.
    pub async fn update_tenant(
        &self,
        id: &TenantId,
        update: &TenantUpdate,
        actor: &str,
        at: Timestamp,
    ) -> Result<Tenant, Error> {
        let mut tx = self.begin_write().await?;
        let current = sqlx::query(self.sql.select_tenant.sql())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::TenantNotFound(id.to_string()))?;
        let current = tenant(&current)?;
        let settings = current
            .settings
            .updated(update)
            .map_err(Error::InvalidSetting)?
            .normalised();
        let version = current.version + 1;
        sqlx::query(self.sql.update_tenant.sql())
            .bind(id.as_str())
            .bind(encode(&settings)?)
            .bind(i64::from(version))
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await?;
        let entry = AuditEntry {
            tenant: id.clone(),
            actor: actor.to_owned(),
            action: "tenant_updated".to_owned(),
            subject: id.to_string(),
            detail: json!({ "before": current.settings, "after": settings, "version": version }),
        };
        self.append_audit(&mut tx, at.as_millis(), &[&entry])
            .await?;
        tx.commit().await?;
        Ok(Tenant {
            settings,
            version,
            updated_at: at,
            ..current
        })
    }

    /// The tenant's policy set in force (its highest version), if it has one.
    pub async fn policy(&self, tenant: &TenantId) -> Result<Option<StoredPolicy>, Error> {
        let row = sqlx::query(self.sql.select_latest_policy.sql())
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(policy).transpose()
    }

    /// One version of the tenant's policy set.
    pub async fn policy_version(
        &self,
        tenant: &TenantId,
        version: u32,
    ) -> Result<Option<StoredPolicy>, Error> {
        let row = sqlx::query(self.sql.select_policy_version.sql())
            .bind(tenant.as_str())
            .bind(i64::from(version))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(policy).transpose()
    }

    /// Every version of the tenant's policy set, oldest first.
    pub async fn policy_history(&self, tenant: &TenantId) -> Result<Vec<StoredPolicy>, Error> {
        let rows = sqlx::query(self.sql.select_policies.sql())
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(policy).collect()
    }

    /// Stores `modules` as the tenant's next policy version (they must have compiled), unless
    /// they equal the version in force, which is returned unchanged with `false`.
    pub async fn add_policy(
        &self,
        tenant: &TenantId,
        modules: &[Module],
        actor: &str,
        at: Timestamp,
    ) -> Result<(StoredPolicy, bool), Error> {
        let digest = policy_digest(modules);
        let mut tx = self.begin_write().await?;
        let latest = sqlx::query(self.sql.select_latest_policy.sql())
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = &latest {
            let current = policy(row)?;
            if current.digest == digest {
                return Ok((current, false));
            }
        }
        let version = match &latest {
            Some(row) => count(row, "version")? + 1,
            None => 1,
        };
        let encoded = serde_json::to_string(modules)
            .map_err(|e| Error::Corrupt(format!("cannot encode policy modules: {e}")))?;
        sqlx::query(self.sql.insert_policy.sql())
            .bind(tenant.as_str())
            .bind(i64::from(version))
            .bind(encoded)
            .bind(digest.as_str())
            .bind(actor)
            .bind(at.as_millis())
            .execute(&mut *tx)
            .await?;
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        let entry = AuditEntry {
            tenant: tenant.clone(),
            actor: actor.to_owned(),
            action: "policy_added".to_owned(),
            subject: format!("policy v{version}"),
            detail: json!({ "version": version, "digest": digest, "modules": names }),
        };
        self.append_audit(&mut tx, at.as_millis(), &[&entry])
            .await?;
        tx.commit().await?;
        Ok((
            StoredPolicy {
                tenant: tenant.clone(),
                version,
                modules: modules.to_vec(),
                digest,
                created_by: actor.to_owned(),
                created_at: at,
            },
            true,
        ))
    }

    /// The tenant's settings and policy versions in force, in one cheap read.
    pub async fn policy_stamp(&self, tenant: &TenantId) -> Result<PolicyStamp, Error> {
        let row = sqlx::query(self.sql.select_policy_stamp.sql())
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await?;
        let version = |column| -> Result<u32, Error> {
            u32::try_from(opt_int(&row, column)?.unwrap_or(0))
                .map_err(|e| Error::Corrupt(format!("column `{column}`: {e}")))
        };
        Ok(PolicyStamp {
            tenant_version: version("tenant_version")?,
            policy_version: version("policy_version")?,
            governance_version: version("governance_version")?,
        })
    }
}

fn encode(settings: &TenantSettings) -> Result<String, Error> {
    serde_json::to_string(settings)
        .map_err(|e| Error::Corrupt(format!("cannot encode tenant settings: {e}")))
}

fn tenant(row: &AnyRow) -> Result<Tenant, Error> {
    let id = TenantId::parse(text(row, "id")?)?;
    let settings: TenantSettings = serde_json::from_str(&text(row, "settings")?)
        .map_err(|e| Error::Corrupt(format!("settings of tenant {id}: {e}")))?;
    Ok(Tenant {
        id,
        settings,
        version: count(row, "version")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn policy(row: &AnyRow) -> Result<StoredPolicy, Error> {
    let tenant = TenantId::parse(text(row, "tenant")?)?;
    let modules: Vec<Module> = serde_json::from_str(&text(row, "modules")?)
        .map_err(|e| Error::Corrupt(format!("policy modules of tenant {tenant}: {e}")))?;
    Ok(StoredPolicy {
        tenant,
        version: count(row, "version")?,
        modules,
        digest: text(row, "digest")?,
        created_by: text(row, "created_by")?,
        created_at: time(row, "created_at")?,
    })
}
