//! Submissions, group-committed. Each submitted run costs one transaction commit, and on a
//! disk where a synchronous write takes milliseconds that would cap a server at a few hundred
//! submissions a second. The intake collects whatever submissions are waiting and stores them
//! in one transaction, so a burst of a thousand shares a handful of commits.

use std::sync::Arc;

use kamachiq_domain::Event;
use kamachiq_store::{NewRun, Store};
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// Most runs stored per transaction.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Event, Error>>;

/// A handle on the intake task. Cheap to clone; the task stops when every handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Intake {
    queue: mpsc::Sender<(NewRun, Reply)>,
}

impl Intake {
    /// Starts the intake task on the current runtime.
    pub(crate) fn start(store: Store) -> Self {
        let (queue, mut rx) = mpsc::channel::<(NewRun, Reply)>(MAX_BATCH * 4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (runs, replies): (Vec<NewRun>, Vec<Reply>) = batch.drain(..).unzip();
                match store.create_runs(&runs).await {
                    Ok(events) => {
                        for (reply, event) in replies.into_iter().zip(events) {
                            let _ = reply.send(Ok(event));
                        }
                    }
                    // Nothing of the batch was stored. Store each on its own, so a submission
                    // the database refuses fails alone and not its batch mates.
                    Err(e) if runs.len() > 1 => {
                        tracing::warn!(
                            "a batch of {} submissions failed ({e}); storing them one by one",
                            runs.len()
                        );
                        for (run, reply) in runs.iter().zip(replies) {
                            let result = store
                                .create_run(run)
                                .await
                                .map_err(|e| Error::Store(Arc::new(e)));
                            let _ = reply.send(result);
                        }
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for reply in replies {
                            let _ = reply.send(Err(Error::Store(e.clone())));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Stores `run` (with others waiting at the same moment) and returns its `run_started`
    /// event once committed.
    pub(crate) async fn submit(&self, run: NewRun) -> Result<Event, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((run, reply))
            .await
            .map_err(|_| Error::EngineStopped)?;
        answer.await.map_err(|_| Error::EngineStopped)?
    }
}
