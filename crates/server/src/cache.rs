//! Answers kept in memory: the JSON of finished runs, and tenants' summaries.
//!
//! A finished run changes only when it is reopened, and a reopen moves the run's `updated_at`
//! in the same transaction. So a finished run's JSON is kept under its `updated_at` and served
//! after one cheap read of that stamp: never stale, and no deliverables or steps to read, no
//! view to build.
//!
//! A summary aggregates every run of a tenant (tens of milliseconds at ten thousand runs). It is
//! served from memory and recomputed in the background once it is older than its time to live,
//! one computation at a time per tenant. A request waits for the computation only when nothing
//! younger than three times the time to live is known (a tenant's first request, or one after
//! a quiet spell). A summary served is therefore at most three times the time to live old, and
//! under steady polling about one time to live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use kamachiq_domain::{RunId, TenantId, Timestamp};
use kamachiq_store::{Store, Summary};

use crate::error::ApiError;

/// Most finished runs kept; the cache is emptied when full (it refills with what is asked).
const MAX_RUNS: usize = 20_000;

#[derive(Debug, Default)]
pub struct RunCache {
    runs: Mutex<HashMap<RunId, (Timestamp, Bytes)>>,
}

impl RunCache {
    /// The kept JSON of `run`, if it was kept at this `updated_at`.
    pub fn get(&self, run: &RunId, updated_at: Timestamp) -> Option<Bytes> {
        let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        match runs.get(run) {
            Some((at, body)) if *at == updated_at => Some(body.clone()),
            _ => None,
        }
    }

    pub fn put(&self, run: RunId, updated_at: Timestamp, body: Bytes) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if runs.len() >= MAX_RUNS {
            runs.clear();
        }
        runs.insert(run, (updated_at, body));
    }
}

#[derive(Debug)]
struct Entry {
    summary: Option<(Summary, Instant)>,
    refreshing: bool,
}

#[derive(Debug)]
pub struct SummaryCache {
    ttl: Duration,
    tenants: Arc<Mutex<HashMap<TenantId, Entry>>>,
    /// Held while a first summary is computed, so a burst of first requests computes it once.
    cold: tokio::sync::Mutex<()>,
}

impl SummaryCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tenants: Arc::new(Mutex::new(HashMap::new())),
            cold: tokio::sync::Mutex::new(()),
        }
    }

    fn known(&self, tenant: &TenantId) -> Option<Summary> {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants
            .get(tenant)
            .and_then(|e| e.summary.as_ref())
            .map(|(summary, _)| summary.clone())
    }

    pub async fn get(&self, store: &Store, tenant: &TenantId) -> Result<Summary, ApiError> {
        let stale = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = tenants.entry(tenant.clone()).or_insert(Entry {
                summary: None,
                refreshing: false,
            });
            match &entry.summary {
                // Too old to serve even while a fresh one is computed (nobody asked for a
                // while): compute it now, as for a first request.
                Some((_, at)) if at.elapsed() >= self.ttl * 3 => {
                    entry.summary = None;
                    None
                }
                Some((summary, at)) => {
                    let old = at.elapsed() >= self.ttl;
                    if old && !entry.refreshing {
                        entry.refreshing = true;
                        Some(summary.clone())
                    } else {
                        return Ok(summary.clone());
                    }
                }
                None => None,
            }
        };
        match stale {
            // Serve what is known; one task brings it up to date.
            Some(summary) => {
                let (store, tenant, tenants) =
                    (store.clone(), tenant.clone(), self.tenants.clone());
                tokio::spawn(async move {
                    let fresh = store.summary(&tenant).await;
                    let mut tenants = tenants.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(entry) = tenants.get_mut(&tenant) {
                        entry.refreshing = false;
                        match fresh {
                            Ok(fresh) => entry.summary = Some((fresh, Instant::now())),
                            Err(e) => tracing::warn!(%tenant, "cannot refresh the summary: {e}"),
                        }
                    }
                });
                Ok(summary)
            }
            // Nothing known yet: the first request computes it, the others wait for that.
            None => {
                let _cold = self.cold.lock().await;
                if let Some(known) = self.known(tenant) {
                    return Ok(known);
                }
                let fresh = store.summary(tenant).await?;
                self.tenants
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(
                        tenant.clone(),
                        Entry {
                            summary: Some((fresh.clone(), Instant::now())),
                            refreshing: false,
                        },
                    );
                Ok(fresh)
            }
        }
    }
}
