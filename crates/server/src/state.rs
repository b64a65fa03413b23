//! What every handler shares: the engine, the scheduler, the requeue's retry loop, the token
//! cache, the event feed and the metrics. Built once by [`AppState::start`]; cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use kamachiq_engine::{Engine, Scheduler, SchedulerOptions};
use tokio_util::sync::CancellationToken;

use crate::auth::TokenCache;
use crate::cache::{RunCache, SummaryCache};
use crate::feed::Feed;
use crate::metrics::Metrics;

/// Largest request body accepted by default (a plan of a few thousand deliverables fits).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Tunables of the server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// How long a token lookup is remembered.
    pub token_cache_ttl: Duration,
    /// How old a tenant's summary may get before it is recomputed (in the background).
    pub summary_ttl: Duration,
    /// Concurrency of a submitted run that asks for none.
    pub default_concurrency: u32,
    /// Directories that submitted runs may merge into (a repository must be inside one).
    /// Empty: any repository the server can reach, which suits one team; a server shared by
    /// tenants should list each tenant's repositories here.
    pub repo_roots: Vec<std::path::PathBuf>,
    pub scheduler: SchedulerOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            token_cache_ttl: Duration::from_secs(5),
            summary_ttl: Duration::from_secs(5),
            default_concurrency: 4,
            repo_roots: Vec::new(),
            scheduler: SchedulerOptions::default(),
        }
    }
}

/// The server's shared state.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    scheduler: Scheduler,
    tokens: TokenCache,
    feed: Feed,
    metrics: Metrics,
    summaries: SummaryCache,
    runs: RunCache,
    stopping: CancellationToken,
    /// The requeue's retry loop; stops with `stopping`.
    retries: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    options: ServerOptions,
}

impl AppState {
    /// Starts the scheduler (which resumes every run in flight) and the event feed.
    pub async fn start(engine: Engine, options: ServerOptions) -> Result<Self, crate::Error> {
        let stopping = CancellationToken::new();
        let metrics = Metrics::new();
        let feed = Feed::start(engine.clone(), metrics.clone(), stopping.clone()).await?;
        let scheduler = Scheduler::start(engine.clone(), options.scheduler.clone());
        let retries = tokio::spawn(kamachiq_engine::retry_loop(
            engine.clone(),
            stopping.clone(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                tokens: TokenCache::new(options.token_cache_ttl),
                summaries: SummaryCache::new(options.summary_ttl),
                runs: RunCache::default(),
                engine,
                scheduler,
                feed,
                metrics,
                stopping,
                retries: std::sync::Mutex::new(Some(retries)),
                options,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }

    pub(crate) fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    pub(crate) fn feed(&self) -> &Feed {
        &self.inner.feed
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn summaries(&self) -> &SummaryCache {
        &self.inner.summaries
    }

    pub(crate) fn runs(&self) -> &RunCache {
        &self.inner.runs
    }

    pub fn options(&self) -> &ServerOptions {
        &self.inner.options
    }

    /// Fires when the server begins to stop: event streams end, readiness fails.
    pub fn stopping(&self) -> &CancellationToken {
        &self.inner.stopping
    }

    /// Stops: ends event streams, hands every driven run back (running steps are stopped and
    /// re-run by the next driver) and waits for that at most `deadline`. Returns whether
    /// everything was handed back in time.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.inner.stopping.cancel();
        let retries = self
            .inner
            .retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(retries) = retries {
            let _ = retries.await;
        }
        self.inner.scheduler.shutdown(deadline).await
    }
}
