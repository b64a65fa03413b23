//! What differs between SQLite and PostgreSQL: connection setup, migrations, how a JSON array
//! parameter becomes rows, and how a write transaction begins. Everything else is one SQL text
//! for both (see [`crate::sql`]).

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, AssertSqlSafe, Executor, SqlSafeStr};

use crate::Error;

/// The database behind a store, chosen by the URL's scheme at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, Error> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(Error::UnsupportedUrl(crate::redact_url(url)))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// Rewrites the portable SQL of [`crate::sql`] for this backend: `json_rows($N)` becomes a
    /// row source over the JSON array bound to `$N`, with columns `value` (one element) and
    /// `key` (its position, for ordering).
    pub(crate) fn rewrite(self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len() + 32);
        let mut rest = sql;
        while let Some(start) = rest.find("json_rows($") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "json_rows($".len()..];
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            let tail = &after[digits.len()..];
            let tail = tail.strip_prefix(')').unwrap_or(tail);
            match self {
                // jsonb_each yields each element in SQLite's binary JSON form, which `->>`
                // reads directly; json_each would hand out text that every `->>` re-parses.
                Self::Sqlite => out.push_str(&format!("jsonb_each(${digits})")),
                Self::Postgres => out.push_str(&format!(
                    "jsonb_array_elements(${digits}::jsonb) WITH ORDINALITY AS json_rows(value, key)"
                )),
            }
            rest = tail;
        }
        out.push_str(rest);
        out
    }

    /// How a transaction that will write begins. SQLite takes the write lock up front, so two
    /// processes never deadlock upgrading a read lock; PostgreSQL locks rows as it goes.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Self::Sqlite => "BEGIN IMMEDIATE",
            Self::Postgres => "BEGIN",
        }
    }

    /// A statement run first in every transaction that appends events. On PostgreSQL it
    /// serialises those transactions, so event sequence numbers become visible in order and a
    /// reader that resumes after the last number it saw cannot miss one committed later with a
    /// smaller number. SQLite already admits one writer at a time.
    pub(crate) fn event_order_lock(self) -> Option<&'static str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres => Some("SELECT pg_advisory_xact_lock(7270010)"),
        }
    }

    fn migrator(self) -> Migrator {
        let files: &[(i64, &str, &'static str)] = match self {
            Self::Sqlite => &[
                (
                    20261122000000,
                    "runs",
                    include_str!("../migrations/sqlite/20261122000000_runs.sql"),
                ),
                (
                    20261122100000,
                    "tokens",
                    include_str!("../migrations/sqlite/20261122100000_tokens.sql"),
                ),
                (
                    20261130000000,
                    "policy",
                    include_str!("../migrations/sqlite/20261130000000_policy.sql"),
                ),
                (
                    20261130100000,
                    "usage",
                    include_str!("../migrations/sqlite/20261130100000_usage.sql"),
                ),
                (
                    20261130200000,
                    "controls",
                    include_str!("../migrations/sqlite/20261130200000_controls.sql"),
                ),
                (
                    20261130300000,
                    "rollbacks",
                    include_str!("../migrations/sqlite/20261130300000_rollbacks.sql"),
                ),
                (
                    20261201000000,
                    "governance",
                    include_str!("../migrations/sqlite/20261201000000_governance.sql"),
                ),
            ],
            Self::Postgres => &[
                (
                    20261122000000,
                    "runs",
                    include_str!("../migrations/postgres/20261122000000_runs.sql"),
                ),
                (
                    20261122100000,
                    "tokens",
                    include_str!("../migrations/postgres/20261122100000_tokens.sql"),
                ),
                (
                    20261130000000,
                    "policy",
                    include_str!("../migrations/postgres/20261130000000_policy.sql"),
                ),
                (
                    20261130100000,
                    "usage",
                    include_str!("../migrations/postgres/20261130100000_usage.sql"),
                ),
                (
                    20261130200000,
                    "controls",
                    include_str!("../migrations/postgres/20261130200000_controls.sql"),
                ),
                (
                    20261130300000,
                    "rollbacks",
                    include_str!("../migrations/postgres/20261130300000_rollbacks.sql"),
                ),
                (
                    20261201000000,
                    "governance",
                    include_str!("../migrations/postgres/20261201000000_governance.sql"),
                ),
            ],
        };
        Migrator::with_migrations(
            files
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect(),
        )
    }

    /// Connects and brings the schema up to date (forward-only migrations).
    pub(crate) async fn connect(self, url: &str, max_connections: u32) -> Result<AnyPool, Error> {
        sqlx::any::install_default_drivers();
        let options = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(30));
        let options = match self {
            // A local file does not drop connections: no round trip to test each one before
            // use (sqlx's default, meant for network databases).
            // WAL lets readers (`kamachiq status` in another terminal) work while a run writes;
            // synchronous=FULL keeps every commit durable through a power cut; the busy timeout
            // makes a second process wait for the write lock instead of failing.
            Self::Sqlite => options.test_before_acquire(false).after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 30000",
                        "PRAGMA foreign_keys = ON",
                    ] {
                        conn.execute(pragma).await?;
                    }
                    Ok(())
                })
            }),
            Self::Postgres => options,
        };
        let pool = options
            .connect(url)
            .await
            .map_err(|source| Error::Connect {
                url: crate::redact_url(url),
                source,
            })?;
        self.migrator().run(&pool).await?;
        Ok(pool)
    }
}

/// Portable SQL rewritten for one backend, ready to execute.
#[derive(Clone, Debug)]
pub(crate) struct Stmt(std::sync::Arc<str>);

impl Stmt {
    pub(crate) fn new(backend: Backend, portable: &str) -> Self {
        Self(backend.rewrite(portable).into())
    }

    pub(crate) fn sql(&self) -> AssertSqlSafe<std::sync::Arc<str>> {
        AssertSqlSafe(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_become_backend_row_sources() {
        let sql = "SELECT value ->> 'id' FROM json_rows($2) ORDER BY key";
        assert_eq!(
            Backend::Sqlite.rewrite(sql),
            "SELECT value ->> 'id' FROM jsonb_each($2) ORDER BY key"
        );
        assert_eq!(
            Backend::Postgres.rewrite(sql),
            "SELECT value ->> 'id' FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS json_rows(value, key) ORDER BY key"
        );
    }

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(
            Backend::from_url("sqlite:///tmp/x.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("mysql://u:secret@h/db").is_err());
    }
}
