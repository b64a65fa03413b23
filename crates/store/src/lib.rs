//! kamachiq's durable state: runs, their deliverables and dependency edges, step attempts and
//! their output, rollback points, the event log, API tokens, tenants and their policy sets,
//! policy decisions, the requeue of blocked deliverables, the hash-chained audit trail, and
//! autonomy governance: the outcome of every automated action, governed tenants' phases and
//! settings, circuit-breaker rules and events, the approvals inbox, readiness attestations,
//! the weekly cycle's reports and proposals.
//!
//! One implementation serves SQLite (the embedded default) and PostgreSQL (for many machines),
//! chosen by the database URL at run time through sqlx's `Any` driver. The SQL is written once
//! in the dialect both accept ([`sql`]); the few differences live in [`dialect`]. Migrations are
//! forward-only, embedded, and applied when a store opens.
//!
//! Writes go through [`Store::apply`]: a batch of [`Change`]s in one transaction, set-based, each
//! state change committed together with its event. This crate depends on the domain, policy
//! and governance crates only (their types are stored here, never evaluated); it knows nothing
//! of processes, git or HTTP, and never reads the clock (callers pass times in).

mod actions;
mod analytics;
mod apply;
mod approvals;
mod audit;
mod change;
mod controls;
mod decode;
mod dialect;
mod governance;
mod readiness;
mod requeue;
mod rollbacks;
mod runs;
mod sql;
mod tenants;
mod tokens;
mod usage;

pub use actions::{NewAction, StoredAction};
pub use analytics::{Load, RunCounts, Summary};
pub use approvals::{
    Approval, ApprovalDecisions, ApprovalStatus, Evidence, NewApproval, StepEvidence,
    approval_scope,
};
pub use audit::{AuditCheck, AuditEntry, AuditRecord};
pub use change::{
    Applied, Change, ClaimKind, LeaseKey, Merge, Outcome, Progress, Rejected, StepEnd, StepRef,
    Then, by_run,
};
pub use controls::{StopState, system_tenant};
pub use dialect::Backend;
pub use governance::{BreakerEvent, Governed};
pub use readiness::{
    CycleReport, EventSummary, METRICS_SCRAPED, NewProposal, StoredProposal, StoredReport,
};
pub use requeue::{
    DecisionQuery, DecisionRecord, NewRequeue, RequeueEntry, RequeueQuery, Resolution,
};
pub use rollbacks::{NewRollback, Rollback, RollbackEntry, RollbackQuery};
pub use runs::{EventFilter, NewRun, Purpose, Ready, RunControl, RunQuery, RunStamp};
pub use tenants::{PolicyStamp, StoredPolicy, policy_digest};
pub use tokens::{NewToken, Token};
pub use usage::{RunSpend, Spend, SpendBy, SpendQuery, SpendRow, UsageRecord, day_of};

use sqlx::AnyPool;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("cannot open the database at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("no run `{0}`")]
    RunNotFound(String),
    #[error("`{prefix}` matches more than one run ({}); give more of the id", matches.join(", "))]
    AmbiguousRun {
        prefix: String,
        matches: Vec<String>,
    },
    #[error(
        "tenant `{tenant}` already has a live token named `{name}`; revoke it or pick another name"
    )]
    TokenNameTaken { tenant: String, name: String },
    #[error("no live token `{0}`")]
    TokenNotFound(String),
    #[error("tenant `{0}` already exists; change it with `kamachiq tenant update`")]
    TenantExists(String),
    #[error("no tenant `{0}`; create it with `kamachiq tenant create`")]
    TenantNotFound(String),
    #[error(transparent)]
    InvalidSetting(kamachiq_domain::tenant::InvalidSetting),
    #[error("stored data does not fit the model: {0}")]
    Corrupt(String),
    #[error("tenant `{0}` is governed already; change its settings instead")]
    AlreadyGoverned(String),
    #[error("tenant `{0}` is not governed; an admin enables governance first")]
    NotGoverned(String),
    #[error("tenant `{tenant}` already has a circuit breaker rule named `{name}`")]
    RuleExists { tenant: String, name: String },
    #[error("no circuit breaker rule `{0}`")]
    RuleNotFound(String),
    #[error("no circuit breaker event `{0}`")]
    BreakerEventNotFound(String),
    #[error("circuit breaker event `{id}` was already resolved at {at}")]
    BreakerEventResolved {
        id: String,
        at: kamachiq_domain::Timestamp,
    },
    #[error(
        "rollback point `{point}` was already rolled back at {at}, revert commit {revert_commit}"
    )]
    AlreadyRolledBack {
        point: String,
        at: kamachiq_domain::Timestamp,
        revert_commit: String,
    },
}

impl Error {
    /// Whether retrying is safe and may succeed: the database was busy or a transaction was
    /// rolled back for a conflict, so nothing was written. A connection lost mid-commit is not
    /// transient: the commit may have landed, and a retry could apply it twice.
    pub fn is_transient(&self) -> bool {
        let Self::Database(db) = self else {
            return false;
        };
        match db {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(e) => matches!(
                e.code().as_deref(),
                // SQLite: busy, locked. PostgreSQL: serialization failure, deadlock.
                Some("5" | "6" | "517" | "40001" | "40P01")
            ),
            _ => false,
        }
    }
}

impl From<kamachiq_domain::Error> for Error {
    fn from(e: kamachiq_domain::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    sql: std::sync::Arc<sql::Sql>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    /// `sqlite://PATH` (the file is created) or `postgres://...`.
    pub async fn open(url: &str) -> Result<Self, Error> {
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let max = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        };
        let pool = backend.connect(&url, max).await?;
        Ok(Self {
            pool,
            backend,
            sql: std::sync::Arc::new(sql::Sql::new(backend)),
        })
    }

    /// Opens the SQLite database file at `path`.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<Self, Error> {
        Self::open(&format!("sqlite://{}", path.display())).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a transaction that will write, holding the lock that orders event and audit
    /// appends (see [`Backend::event_order_lock`](dialect::Backend)).
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, Error> {
        use sqlx::Executor;
        let mut tx = self.pool.begin_with(self.backend.begin_write()).await?;
        if let Some(lock) = self.backend.event_order_lock() {
            tx.execute(lock).await?;
        }
        Ok(tx)
    }

    /// Closes every connection; waits for them to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `url` with any password replaced by `***` (in `user:password@` and in `password=` query
/// parameters), for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    };
    if let Some(query_start) = out.find('?') {
        let (base, query) = out.split_at(query_start + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("pass") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}{}", redacted.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_leave_in_messages() {
        assert_eq!(
            redact_url("postgres://kq:s3cret@db.example:5432/kq"),
            "postgres://kq:***@db.example:5432/kq"
        );
        assert_eq!(redact_url("postgres://kq@db/kq"), "postgres://kq@db/kq");
        assert_eq!(redact_url("sqlite:///tmp/a:b.db"), "sqlite:///tmp/a:b.db");
        let err = Error::UnsupportedUrl(redact_url("mysql://u:pw@h/db"));
        assert!(!err.to_string().contains("pw"));
        assert_eq!(
            redact_url("postgres://kq@db/kq?sslmode=require&password=hunter2"),
            "postgres://kq@db/kq?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://kq:a@db/kq?passfile=/x"),
            "postgres://kq:***@db/kq?passfile=***"
        );
    }
}
