//! The group-commit writer. Every task of every run sends its changes here and waits for the
//! commit; the writer takes whatever has queued up (up to a batch limit), applies it in one
//! transaction, answers each waiter, and publishes the committed events. Under load, batches
//! grow by themselves, so one fsync covers hundreds of transitions; when idle, a lone change is
//! committed at once.

use std::sync::Arc;
use std::time::Duration;

use kamachiq_domain::{DeliverableId, Event};
use kamachiq_store::{Applied, Change, Rejected, Store};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::task::TaskTracker;

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

struct Request {
    change: Change,
    reply: oneshot::Sender<Result<Committed, Error>>,
}

/// A handle for sending changes to the writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Committer {
    queue: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the writer on `tracker`. It stops when every handle is dropped.
    pub fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        events: broadcast::Sender<Event>,
        tracker: &TaskTracker,
    ) -> Self {
        let (queue, rx) = mpsc::channel(MAX_BATCH * 4);
        tracker.spawn(write_loop(store, clock, events, rx));
        Self { queue }
    }

    /// Commits `change` (with others queued at the same time) and returns its result.
    pub async fn commit(&self, change: Change) -> Result<Committed, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { change, reply })
            .await
            .map_err(|_| Error::EngineStopped)?;
        answer.await.map_err(|_| Error::EngineStopped)?
    }
}

async fn write_loop(
    store: Store,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<Event>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let changes: Vec<Change> = batch.iter().map(|r| r.change.clone()).collect();
        let began = std::time::Instant::now();
        let mut applied = store.apply(clock.now(), &changes).await;
        tracing::debug!(changes = changes.len(), micros = began.elapsed().as_micros() as u64, "batch committed");
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
                let mut ready = kamachiq_store::by_run(&outcome.ready);
                for (request, result) in batch.drain(..).zip(outcome.results) {
                    // Only successes make deliverables ready; the first accepted success of a
                    // run in the batch carries them all to the run's driver.
                    let ready = match (&request.change, &result) {
                        (Change::Succeeded { lease, .. }, Ok(_)) => ready.remove(&lease.run).unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    let _ = request.reply.send(Ok(Committed { result, ready }));
                }
                for event in outcome.events {
                    let _ = events.send(event);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, changes = batch.len(), "store write failed");
                let shared = Arc::new(e);
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(Error::Store(shared.clone())));
                }
            }
        }
    }
}
