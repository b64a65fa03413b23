//! The engine's public face: submit a plan, drive a run, cancel it, reopen it, watch its events.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kamachiq_domain::{DeliverableState, Event, Plan, RunId, RunState};
use kamachiq_store::{Change, NewRun, Purpose, Store};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::clock::Clock;
use crate::committer::Committer;
use crate::git::Identity;
use crate::owner::Owner;
use crate::probe::{NoProbe, Probe};
use crate::runner::{Runner, reap_orphans};
use crate::workspace::{MergeLocks, Target};

/// Tunables of the engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// kamachiq's home: step logs and worktrees live under it.
    pub home: PathBuf,
    /// How long a lease lasts without renewal; a driver silent for longer is taken over.
    pub lease_ttl: Duration,
    /// How often a driver renews its leases.
    pub heartbeat: Duration,
    /// How often a driver checks whether its run was cancelled from elsewhere.
    pub watch_interval: Duration,
    /// Who commits to deliverable branches and merges.
    pub identity: Identity,
    /// How blocked deliverables are retried.
    pub requeue: crate::requeue::RequeueOptions,
    /// How agent steps run.
    pub agents: crate::agents::AgentOptions,
    /// The guards a deliverable's diff passes before it is promoted.
    pub review: kamachiq_review::Options,
    /// Most disk the worktrees under the home may use before no new one is made.
    pub max_workspace_bytes: Option<u64>,
}

impl EngineOptions {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            lease_ttl: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            watch_interval: Duration::from_millis(500),
            identity: Identity::default(),
            requeue: crate::requeue::RequeueOptions::default(),
            agents: crate::agents::AgentOptions::default(),
            review: kamachiq_review::Options::default(),
            max_workspace_bytes: None,
        }
    }
}

/// What the engine is built from. Tests swap the runner, clock and probe.
#[derive(Debug)]
pub struct Parts {
    pub store: Store,
    pub runner: Arc<dyn Runner>,
    pub clock: Arc<dyn Clock>,
    pub probe: Arc<dyn Probe>,
    pub options: EngineOptions,
}

impl Parts {
    pub fn new(
        store: Store,
        runner: Arc<dyn Runner>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Self {
        Self {
            store,
            runner,
            clock,
            probe: Arc::new(NoProbe),
            options,
        }
    }
}

/// How a drive of a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The run settled in this state.
    Finished(RunState),
    /// The driver was asked to stop; running work was handed back and the run can be resumed.
    Interrupted,
    /// Nothing more can run until policy lets held-back work through: `blocked` deliverables
    /// wait in the requeue (and what depends on them waits too). The run stays open.
    Blocked { blocked: u32 },
    /// The emergency stop is on: running work was handed back and the run waits, open, until
    /// it is lifted (`resume-all`) and the run is driven again.
    EmergencyStop,
    /// The run is paused: running work was handed back until it is resumed.
    Paused,
}

/// What `cancel` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run's live driver was asked to cancel it; it stops within a moment.
    Requested { driver: String },
    /// Nobody drove the run, so it was cancelled here.
    Cancelled,
    /// The run had already ended.
    AlreadyFinished(RunState),
}

/// Who drives a submitted run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrivenBy {
    /// The submitter, which calls [`Engine::drive`] next: the run is leased to this engine
    /// from birth, so no scheduler takes it in between.
    Submitter,
    /// Whichever [`crate::Scheduler`] finds it first.
    Scheduler,
}

/// A plan to run, with where and how.
#[derive(Clone, Debug)]
pub struct Submission {
    pub plan: Plan,
    /// Where deliverables merge (`None`: no repository; steps run in a scratch directory).
    pub target: Option<Target>,
    pub concurrency: u32,
    /// Who asked for the run (a token's name), for the record.
    pub submitted_by: Option<String>,
    pub driven_by: DrivenBy,
}

/// The engine. Cheap to clone; all clones share one writer.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub store: Store,
    pub committer: Committer,
    pub runner: Arc<dyn Runner>,
    pub clock: Arc<dyn Clock>,
    pub probe: Arc<dyn Probe>,
    pub options: EngineOptions,
    pub owner: Owner,
    pub events: broadcast::Sender<Event>,
    pub merge_locks: MergeLocks,
    /// Stores submissions in batches; started on first use.
    pub intake: std::sync::OnceLock<crate::intake::Intake>,
    /// Woken when a run is submitted for a scheduler (or held-back work is let through).
    pub submitted: tokio::sync::Notify,
    /// Woken when blocked deliverables became due for re-evaluation.
    pub requeue_due: tokio::sync::Notify,
    /// The policy gate every action passes.
    pub gate: crate::gate::Gate,
    /// Circuit breakers: told of every tenant with new action outcomes.
    pub governor: crate::governor::Governor,
    /// The review guards, compiled once.
    pub review: kamachiq_review::Guards,
    /// The worktrees' disk use, measured now and then.
    pub disk: crate::disk::Meter,
    /// Runs this engine is driving right now. A lease held in this engine's name by a run it
    /// does not drive (submitted, not driven yet) is no sign of life.
    pub driving: std::sync::Mutex<std::collections::HashSet<RunId>>,
    /// Resolves when the writer has committed its last batch and stopped.
    pub writer_done: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl Engine {
    pub fn new(parts: Parts) -> Result<Self, Error> {
        let (events, _) = broadcast::channel(4096);
        let (governor, notices) = crate::governor::Governor::channel();
        let (committer, writer_done) = Committer::start_watched(
            parts.store.clone(),
            parts.clock.clone(),
            events.clone(),
            Some(governor.sender()),
        )?;
        let gate = crate::gate::Gate::new(parts.store.clone(), parts.clock.clone());
        let review = kamachiq_review::Guards::new(&parts.options.review)
            .map_err(|e| Error::Io(format!("the review guards: {e}")))?;
        let engine = Self {
            inner: Arc::new(Inner {
                store: parts.store,
                committer,
                runner: parts.runner,
                clock: parts.clock,
                probe: parts.probe,
                options: parts.options,
                owner: Owner::current(),
                events,
                merge_locks: MergeLocks::default(),
                intake: std::sync::OnceLock::new(),
                submitted: tokio::sync::Notify::new(),
                requeue_due: tokio::sync::Notify::new(),
                gate,
                governor,
                review,
                disk: crate::disk::Meter::default(),

                driving: std::sync::Mutex::new(std::collections::HashSet::new()),
                writer_done: std::sync::Mutex::new(Some(writer_done)),
            }),
        };
        // Circuit breakers run beside the writer, on the caller's runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(crate::governor::run(Arc::downgrade(&engine.inner), notices));
            }
            Err(_) => tracing::warn!(
                "no async runtime: circuit breakers will not react to outcomes of this engine"
            ),
        }
        Ok(engine)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The policy gate.
    pub fn gate(&self) -> &crate::gate::Gate {
        &self.inner.gate
    }

    /// The time, from the engine's clock.
    pub fn now(&self) -> kamachiq_domain::Timestamp {
        self.inner.clock.now()
    }

    /// This engine's identity as a lease holder.
    pub fn owner(&self) -> &Owner {
        &self.inner.owner
    }

    /// Committed events, as they are committed. A receiver that falls behind is told how many
    /// it missed and can read them from the store's event log.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Stores a validated plan as a new run, to be driven by the caller. `target` is where
    /// deliverables merge (`None`: no repository; steps run in a scratch directory).
    pub async fn submit(
        &self,
        plan: Plan,
        target: Option<&Target>,
        concurrency: u32,
    ) -> Result<RunId, Error> {
        self.submit_run(Submission {
            plan,
            target: target.cloned(),
            concurrency,
            submitted_by: None,
            driven_by: DrivenBy::Submitter,
        })
        .await
    }

    /// Stores a submission as a new run. Concurrent submissions share a transaction.
    pub async fn submit_run(&self, submission: Submission) -> Result<RunId, Error> {
        // A lowercase ULID is 26 letters and digits: always a valid run id.
        #[allow(clippy::expect_used)]
        let id = RunId::parse(ulid::Ulid::generate().to_string().to_lowercase())
            .expect("a lowercase ULID is a valid run id");
        let now = self.inner.clock.now();
        let driver = match submission.driven_by {
            DrivenBy::Submitter => Some(kamachiq_domain::run::Lease {
                owner: self.inner.owner.to_string(),
                expires_at: now.plus(self.inner.options.lease_ttl),
            }),
            DrivenBy::Scheduler => None,
        };
        let target = submission.target.as_ref();
        let new = NewRun {
            id: id.clone(),
            plan: submission.plan,
            repo: target.map(|t| t.repo.to_string_lossy().into_owned()),
            branch: target.map(|t| t.branch.clone()),
            concurrency: submission.concurrency.max(1),
            at: now,
            driver,
            submitted_by: submission.submitted_by,
        };
        let event = self
            .inner
            .intake
            .get_or_init(|| crate::intake::Intake::start(self.inner.store.clone()))
            .submit(new)
            .await?;
        let _ = self.inner.events.send(event);
        if submission.driven_by == DrivenBy::Scheduler {
            self.inner.submitted.notify_one();
        }
        Ok(id)
    }

    /// Drives `run` until it settles, or until `stop` fires (then running work is handed back
    /// and the run can be resumed). Takes the run over from a driver that is gone.
    pub async fn drive(&self, run: &RunId, stop: CancellationToken) -> Result<Ending, Error> {
        crate::drive::drive(self.clone(), run.clone(), Vec::new(), stop).await
    }

    /// Like [`Engine::drive`], after putting the run's deliverables in `reopen` back to pending
    /// (a finished run is reopened). The reopening happens only once this engine holds the
    /// run's lease, so a run driven elsewhere is never changed.
    pub async fn resume(
        &self,
        run: &RunId,
        reopen: Vec<DeliverableState>,
        stop: CancellationToken,
    ) -> Result<Ending, Error> {
        crate::drive::drive(self.clone(), run.clone(), reopen, stop).await
    }

    /// Cancels `run`: asks its driver, or, when nobody drives it, cancels it here.
    pub async fn cancel(&self, run: &RunId) -> Result<CancelOutcome, Error> {
        self.cancel_by(run, None).await
    }

    /// [`Engine::cancel`], recording who asked.
    pub async fn cancel_by(&self, run: &RunId, by: Option<String>) -> Result<CancelOutcome, Error> {
        let store = &self.inner.store;
        let control = store.run_control(run).await?;
        if control.state.is_terminal() {
            return Ok(CancelOutcome::AlreadyFinished(control.state));
        }
        self.inner
            .committer
            .commit(Change::RequestCancel {
                run: run.clone(),
                by,
            })
            .await?;
        if let Some(driver) = &control.driver
            && self.driver_alive(run, driver)
        {
            return Ok(CancelOutcome::Requested {
                driver: driver.owner.clone(),
            });
        }
        // Nobody drives it: take the lease so no driver starts meanwhile, and cancel here.
        let me = self.inner.owner.to_string();
        let Some(_cancelling) = crate::lease::Driving::enter(self, run) else {
            return Ok(CancelOutcome::Requested { driver: me });
        };
        let now = self.inner.clock.now();
        let replacing = control.driver.as_ref().map(|d| d.owner.as_str());
        if !store
            .acquire_driver(
                run,
                &me,
                now.plus(self.inner.options.lease_ttl),
                now,
                replacing,
                Purpose::Driving,
            )
            .await?
        {
            let control = store.run_control(run).await?;
            return Ok(match control.driver {
                Some(driver) => CancelOutcome::Requested {
                    driver: driver.owner,
                },
                None => CancelOutcome::AlreadyFinished(control.state),
            });
        }
        reap_orphans(run.as_str(), None);
        for change in [
            Change::CancelWaiting { run: run.clone() },
            Change::CancelOrphans { run: run.clone() },
        ] {
            self.inner.committer.commit(change).await?;
        }
        crate::drive::settle(self, run).await?;
        Ok(CancelOutcome::Cancelled)
    }

    /// Whether a run's driver may still be alive (its lease has not expired and it is not a
    /// process of this host that has exited): if so, the run is its to drive.
    pub fn lease_is_live(&self, run: &RunId, lease: &kamachiq_domain::run::Lease) -> bool {
        self.driver_alive(run, lease)
    }

    /// Whether the lease holder may still be alive: its lease has not expired, and it is not a
    /// process of this host that has exited. When the holder is this engine: whether it is
    /// driving the run now.
    pub(crate) fn driver_alive(&self, run: &RunId, lease: &kamachiq_domain::run::Lease) -> bool {
        if lease.owner == self.inner.owner.to_string() {
            return self
                .inner
                .driving
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(run);
        }
        let expired = lease.expires_at <= self.inner.clock.now();
        let dead =
            Owner::parse(&lease.owner).is_some_and(|o| o.is_certainly_dead(&self.inner.owner));
        !expired && !dead
    }

    /// Waits (at most `within`) until the circuit breakers have judged every outcome this
    /// engine committed so far: a command that exits right after its last action calls it, so
    /// a breach by that action is not left for a later one to find.
    pub async fn breakers_settled(&self, within: Duration) {
        let (reply, done) = tokio::sync::oneshot::channel();
        self.inner
            .governor
            .notify(crate::governor::Notice::Flush(reply));
        let _ = tokio::time::timeout(within, done).await;
    }

    /// Stops the writer once every clone of this engine is gone, and waits for it to finish
    /// its last batch.
    pub async fn close(self) {
        let done = self
            .inner
            .writer_done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(self);
        if let Some(done) = done {
            let _ = done.await;
        }
    }
}
