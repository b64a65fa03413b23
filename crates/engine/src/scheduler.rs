//! The scheduler of `kamachiq serve`: it drives every run that needs a driver, up to a limit of
//! runs at once. A run needs one when it was submitted for a scheduler, when the server starts
//! and finds it in flight, or when its driver's lease expired (a `kamachiq run` that was
//! killed, a server that died). It looks on every submission, when a drive ends, and every
//! poll interval, so runs left by another process are found without being told.
//!
//! Taking a run is the store's compare-and-set on the run's lease, so several schedulers (or a
//! scheduler and a CLI) never drive one run twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kamachiq_domain::{DeliverableState, RunId};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{Ending, Engine, Error};

/// Tunables of the scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Most runs driven at once; further runs wait their turn, oldest first.
    pub max_runs: usize,
    /// How often to look for runs nobody drives, when nothing else wakes the scheduler.
    pub poll: Duration,
    /// After a drive fails, how long before the scheduler tries that run again.
    pub retry_after: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            max_runs: 16,
            poll: Duration::from_secs(2),
            retry_after: Duration::from_secs(10),
        }
    }
}

/// A handle on a running scheduler.
#[derive(Debug)]
pub struct Scheduler {
    requests: mpsc::Sender<Request>,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A run to drive now, reopening deliverables in these states first.
#[derive(Debug)]
struct Request {
    run: RunId,
    reopen: Vec<DeliverableState>,
}

impl Scheduler {
    /// Starts scheduling on the current runtime.
    pub fn start(engine: Engine, options: SchedulerOptions) -> Self {
        let (requests, rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let task = tokio::spawn(schedule(engine, options, rx, stop.clone()));
        Self {
            requests,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Drives `run` as soon as a slot is free, reopening its deliverables in `reopen` first
    /// (under the run's lease). When the run is being driven here already, the request waits
    /// until that drive has ended, so a retry asked for while a run finishes is not lost.
    pub async fn resume(&self, run: RunId, reopen: Vec<DeliverableState>) -> Result<(), Error> {
        self.requests
            .send(Request { run, reopen })
            .await
            .map_err(|_| Error::EngineStopped)
    }

    /// Stops taking runs, hands every run being driven back (running steps are stopped and
    /// re-run by the next driver), and waits for that at most `deadline`. Returns whether every
    /// drive was handed back in time; those that were not keep their leases until they expire.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut task) = task else {
            return true;
        };
        if tokio::time::timeout(deadline, &mut task).await.is_ok() {
            return true;
        }
        task.abort();
        false
    }
}

async fn schedule(
    engine: Engine,
    options: SchedulerOptions,
    mut requests: mpsc::Receiver<Request>,
    stop: CancellationToken,
) {
    let mut drives = Drives::default();
    let mut active: HashSet<RunId> = HashSet::new();
    let mut waiting: Vec<Request> = Vec::new();
    let mut cooling: HashMap<RunId, Instant> = HashMap::new();
    let drives_stop = CancellationToken::new();
    loop {
        cooling.retain(|_, until| *until > Instant::now());
        // While the emergency stop is on, nothing starts; drives in flight end by themselves.
        let stopped = match engine.inner.gate.emergency_stop().await {
            Ok(stop) => stop.is_some(),
            Err(e) => {
                tracing::warn!("cannot read the emergency stop: {e}");
                true
            }
        };
        // Requested resumes first (one for a run driven right now waits until that drive has
        // ended, then reopens what it left), then runs nobody drives, oldest first.
        let mut i = 0;
        while !stopped && active.len() < options.max_runs && i < waiting.len() {
            if active.contains(&waiting[i].run) {
                i += 1;
                continue;
            }
            let request = waiting.remove(i);
            cooling.remove(&request.run);
            active.insert(request.run.clone());
            spawn(&mut drives, &engine, request, drives_stop.child_token());
        }
        let free = options.max_runs.saturating_sub(active.len());
        if free > 0 && !stopped {
            let limit = u32::try_from(free + active.len() + cooling.len()).unwrap_or(u32::MAX);
            match engine
                .store()
                .runs_awaiting_driver(engine.inner.clock.now(), limit)
                .await
            {
                Ok(runs) => {
                    for run in runs {
                        if active.len() >= options.max_runs {
                            break;
                        }
                        if cooling.contains_key(&run) || active.contains(&run) {
                            continue;
                        }
                        active.insert(run.clone());
                        let request = Request {
                            run,
                            reopen: Vec::new(),
                        };
                        spawn(&mut drives, &engine, request, drives_stop.child_token());
                    }
                }
                Err(e) => tracing::warn!("cannot look for runs to drive: {e}"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = engine.inner.submitted.notified() => {}
            Some(request) = requests.recv() => {
                match waiting.iter_mut().find(|w| w.run == request.run) {
                    Some(queued) => {
                        for state in request.reopen {
                            if !queued.reopen.contains(&state) {
                                queued.reopen.push(state);
                            }
                        }
                    }
                    None => waiting.push(request),
                }
            }
            Some((run, joined)) = drives.next(), if !drives.set.is_empty() => {
                active.remove(&run);
                match joined {
                    Ok(result) => {
                        match result {
                            Ok(ending) => tracing::debug!(%run, ?ending, "drive ended"),
                            Err(Error::RunBusy { .. } | Error::RunFinished { .. }) => {
                                cooling.insert(run, Instant::now() + options.poll);
                            }
                            Err(e) => {
                                tracing::warn!(%run, "driving the run failed: {e}; retrying in {:?}", options.retry_after);
                                cooling.insert(run, Instant::now() + options.retry_after);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(%run, "the drive task died: {e}");
                        cooling.insert(run, Instant::now() + options.retry_after);
                    }
                }
            }
            () = tokio::time::sleep(options.poll) => {}
        }
    }
    // Hand every run back: drivers release their leases and stop their steps.
    drives_stop.cancel();
    while let Some((run, joined)) = drives.next().await {
        if let Ok(Err(e)) = joined {
            tracing::warn!(%run, "stopping the drive: {e}");
        }
    }
}

/// The drive tasks, each known by its run even when it panics.
#[derive(Default)]
struct Drives {
    set: JoinSet<Result<Ending, Error>>,
    runs: HashMap<tokio::task::Id, RunId>,
}

impl Drives {
    async fn next(
        &mut self,
    ) -> Option<(RunId, Result<Result<Ending, Error>, tokio::task::JoinError>)> {
        let joined = self.set.join_next_with_id().await?;
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let run = self.runs.remove(&id)?;
        Some((run, joined.map(|(_, result)| result)))
    }
}

fn spawn(drives: &mut Drives, engine: &Engine, request: Request, stop: CancellationToken) {
    let engine = engine.clone();
    let run = request.run.clone();
    let handle = drives
        .set
        .spawn(async move { engine.resume(&request.run, request.reopen, stop).await });
    drives.runs.insert(handle.id(), run);
}
