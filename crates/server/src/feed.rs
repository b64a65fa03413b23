//! The event feed: one task tails the store's event log and tells event streams and metrics
//! what is new. It reads the log, not only this process's broadcast, so events written by any
//! process on the same store (a `kamachiq run` in a terminal, another server) reach clients,
//! and a stream that fell behind catches up from the log without a gap.

use std::time::Duration;

use kamachiq_domain::Event;
use kamachiq_engine::Engine;
use kamachiq_store::EventFilter;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the log is read when this process committed nothing.
const POLL: Duration = Duration::from_millis(250);
/// Most events read from the log at once.
const PAGE: u32 = 1000;

/// The sequence number of the newest event seen, as a watch.
#[derive(Clone, Debug)]
pub struct Feed {
    latest: watch::Receiver<i64>,
}

impl Feed {
    pub async fn start(
        engine: Engine,
        metrics: Metrics,
        stop: CancellationToken,
    ) -> Result<Self, crate::Error> {
        let store = engine.store().clone();
        let mut after = store.latest_event_seq().await?;
        let (tx, latest) = watch::channel(after);
        let mut committed = engine.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    received = committed.recv() => {
                        if let Err(broadcast::error::RecvError::Closed) = received {
                            break;
                        }
                    }
                    () = tokio::time::sleep(POLL) => {}
                }
                loop {
                    match store
                        .events_after(after, &EventFilter::default(), PAGE)
                        .await
                    {
                        Ok(events) => {
                            let Some(last) = events.last() else { break };
                            after = last.seq;
                            events.iter().for_each(|e: &Event| metrics.observe(e));
                            tx.send_replace(after);
                            if events.len() < PAGE as usize {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("cannot read the event log: {e}");
                            break;
                        }
                    }
                }
            }
        });
        Ok(Self { latest })
    }

    /// A receiver that changes whenever new events are in the log.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.latest.clone()
    }
}
