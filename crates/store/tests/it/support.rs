use std::time::{SystemTime, UNIX_EPOCH};

use kamachiq_store::Store;
use sqlx::Executor;

pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("kamachiq.db"))
        .await
        .unwrap();
    (store, dir)
}

fn postgres_url() -> String {
    std::env::var("KAMACHIQ_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A store on a fresh schema of the test PostgreSQL server, or `None` when the server is absent
/// and the PostgreSQL tests were explicitly skipped.
pub async fn postgres() -> Option<Store> {
    let url = postgres_url();
    sqlx::any::install_default_drivers();
    let admin = match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url),
    )
    .await
    {
        Ok(Ok(pool)) => pool,
        failure => {
            let why = match failure {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            if std::env::var("KAMACHIQ_SKIP_POSTGRES").as_deref() == Ok("1") {
                eprintln!("PostgreSQL tests NOT RUN (KAMACHIQ_SKIP_POSTGRES=1): {why}");
                return None;
            }
            panic!(
                "PostgreSQL tests were not run: no server at {} ({why}). Start PostgreSQL, set \
                 KAMACHIQ_TEST_DATABASE_URL, or set KAMACHIQ_SKIP_POSTGRES=1 to skip them knowingly.",
                kamachiq_store::redact_url(&url)
            );
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Schemas of earlier test runs older than an hour are dropped, so they do not pile up.
    let stale: Vec<(String,)> =
        sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'kq\\_t\\_%'")
            .fetch_all(&admin)
            .await
            .unwrap();
    for (schema,) in stale {
        let born: u64 = schema
            .split('_')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if born + 3600 < now {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .await;
        }
    }
    let schema = format!(
        "kq_t_{now}_{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = Store::open(&format!("{url}{sep}options=-c%20search_path%3D{schema}"))
        .await
        .unwrap();
    Some(store)
}
