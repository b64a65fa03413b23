//! The group-commit writer. Every task of every run sends its changes here and waits for the
//! commit; the writer takes whatever has queued up (up to a batch limit), applies it in one
//! transaction, answers each waiter, and publishes the committed events. Under load, batches
//! grow by themselves, so one fsync covers hundreds of transitions; when idle, a lone change is
//! committed at once.
//!
//! After each batch the writer tells the governor (when one listens) which tenants had
//! action outcomes committed, so circuit breakers judge them at once.

use std::sync::Arc;
use std::time::Duration;

use kamachiq_domain::{DeliverableId, Event, RunId};
use kamachiq_store::{Applied, Change, Rejected, Store};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::Error;
use crate::clock::Clock;

/// Most changes per transaction.
const MAX_BATCH: usize = 512;
/// Store errors are retried this many times (with growing pauses) before a batch fails; a
/// PostgreSQL failover or a locked SQLite file should not fail a run.
const RETRY_PAUSES: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// What a waiter learns when its change is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub result: Result<Applied, Rejected>,
    /// Deliverables of the same run that became ready in this batch (given to the first
    /// accepted success of each run in a batch, so the run's driver sees each exactly once).
    pub ready: Vec<DeliverableId>,
}

/// Changes that must be committed in one transaction, and who waits for them.
struct Request {
    changes: Vec<Change>,
    reply: oneshot::Sender<Result<Vec<Committed>, Error>>,
}

/// A handle for sending changes to the writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Committer {
    queue: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the writer on a thread of its own, so its turn never waits behind the tasks it
    /// answers: while it commits one batch, they prepare the next. It stops when every handle
    /// is dropped; the returned receiver resolves once its last batch is done.
    pub fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        events: broadcast::Sender<Event>,
    ) -> Result<(Self, oneshot::Receiver<()>), Error> {
        Self::start_watched(store, clock, events, None)
    }

    /// [`Committer::start`], telling `outcomes` the tenant of every action outcome committed
    /// (once per tenant and batch).
    pub(crate) fn start_watched(
        store: Store,
        clock: Arc<dyn Clock>,
        events: broadcast::Sender<Event>,
        outcomes: Option<mpsc::UnboundedSender<crate::governor::Notice>>,
    ) -> Result<(Self, oneshot::Receiver<()>), Error> {
        let (queue, rx) = mpsc::channel(MAX_BATCH * 4);
        let (done, finished) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("cannot start the store writer: {e}")))?;
        std::thread::Builder::new()
            .name("kamachiq-writer".to_owned())
            .spawn(move || {
                runtime.block_on(write_loop(store, clock, events, outcomes, rx));
                let _ = done.send(());
            })
            .map_err(|e| Error::Io(format!("cannot start the store writer: {e}")))?;
        Ok((Self { queue }, finished))
    }

    /// Commits `change` (with others queued at the same time) and returns its result.
    pub async fn commit(&self, change: Change) -> Result<Committed, Error> {
        let mut committed = self.commit_many(vec![change]).await?;
        committed.pop().ok_or(Error::EngineStopped)
    }

    /// Commits `changes` together, in one transaction (with others queued at the same time),
    /// and returns their results in order.
    pub async fn commit_many(&self, changes: Vec<Change>) -> Result<Vec<Committed>, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { changes, reply })
            .await
            .map_err(|_| Error::EngineStopped)?;
        answer.await.map_err(|_| Error::EngineStopped)?
    }
}

async fn write_loop(
    store: Store,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<Event>,
    outcomes: Option<mpsc::UnboundedSender<crate::governor::Notice>>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut requests: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut requests, MAX_BATCH).await > 0 {
        // The changes are moved out of their requests (some are large: decisions carry their
        // input), remembering for each the run whose driver its readiness goes to.
        let mut changes: Vec<Change> = Vec::new();
        let mut routes: Vec<Vec<Option<RunId>>> = Vec::with_capacity(requests.len());
        for request in &mut requests {
            let taken = std::mem::take(&mut request.changes);
            let keys = taken
                .iter()
                .map(|change| match change {
                    Change::Succeeded { lease, .. } => Some(lease.run.clone()),
                    Change::StepFinished(end) => Some(end.lease.run.clone()),
                    _ => None,
                })
                .collect();
            routes.push(keys);
            changes.extend(taken);
        }
        let began = std::time::Instant::now();
        let mut applied = store.apply(clock.now(), &changes).await;
        tracing::debug!(
            changes = changes.len(),
            micros = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
            "batch committed"
        );
        for pause in RETRY_PAUSES {
            match &applied {
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "store write failed; retrying");
                    tokio::time::sleep(pause).await;
                    applied = store.apply(clock.now(), &changes).await;
                }
                _ => break,
            }
        }
        match applied {
            Ok(outcome) => {
                if let Some(outcomes) = &outcomes {
                    let mut tenants: Vec<&kamachiq_domain::TenantId> = Vec::new();
                    for (change, result) in changes.iter().zip(&outcome.results) {
                        if let (Change::Acted(a), Ok(_)) = (change, result)
                            && !tenants.contains(&&a.tenant)
                        {
                            tenants.push(&a.tenant);
                        }
                    }
                    for tenant in tenants {
                        let _ = outcomes.send(crate::governor::Notice::Outcomes(tenant.clone()));
                    }
                }
                let mut ready = kamachiq_store::by_run(&outcome.ready);
                let mut results = outcome.results.into_iter();
                for (request, keys) in requests.drain(..).zip(routes) {
                    let committed = keys
                        .into_iter()
                        .zip(results.by_ref())
                        .map(|(run, result)| {
                            // Only successes make deliverables ready; the first accepted
                            // success of a run in the batch carries them all to its driver.
                            let ready = match (run, &result) {
                                (Some(run), Ok(Applied::Succeeded)) => {
                                    ready.remove(&run).unwrap_or_default()
                                }
                                _ => Vec::new(),
                            };
                            Committed { result, ready }
                        })
                        .collect();
                    let _ = request.reply.send(Ok(committed));
                }
                for event in outcome.events {
                    let _ = events.send(event);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, changes = changes.len(), "store write failed");
                let shared = Arc::new(e);
                for request in requests.drain(..) {
                    let _ = request.reply.send(Err(Error::Store(shared.clone())));
                }
            }
        }
    }
}
