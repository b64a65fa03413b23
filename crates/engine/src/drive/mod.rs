//! Driving a run: the scheduling loop and the life of one deliverable.
//!
//! The loop holds the run's lease, keeps up to `concurrency` deliverable tasks running, starts
//! the ones that become ready as their dependencies succeed (the store says which, from the
//! counters it decrements in the same transaction), renews its leases, and watches for a cancel
//! requested from elsewhere. Each task claims its deliverable, prepares its worktree, runs the
//! remaining steps with retries, merges, and records the result.

mod hold;
mod launch;
mod step;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use kamachiq_domain::plan::{Deliverable, Step, Work};
use kamachiq_domain::run::Run;
use kamachiq_domain::{DeliverableId, DeliverableState, Reason, ReasonCode, RunId, RunState};
use kamachiq_governance::Outcome;
use kamachiq_policy as policy;
use kamachiq_store::{
    Applied, Change, ClaimKind, LeaseKey, Merge, NewAction, Purpose, Rejected, StepRef, Then,
    approval_scope,
};

use hold::block;
pub(crate) use hold::{Held, approval_request};
use step::{Next, StepResult, StepWork, run_step};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::agents::Counter;
use crate::committer::Committed;
use crate::engine::{Ending, Engine};
use crate::gate::{Judged, Waiver};
use crate::lease::{Driving, acquire};
use crate::probe::{Action, Point};
use crate::runner::reap_orphans;
use crate::workspace::{GitWorkspaces, MergeOutcome, Target, Workspaces};

/// Why a driver is stopping its tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The run was cancelled: running deliverables end `cancelled`.
    Cancel,
    /// The driver is going away (shutdown, lost lease, store failure): running deliverables
    /// are handed back unfinished, for the next driver.
    Release,
    /// The emergency stop is on: everything is handed back, as for `Release`, and nothing
    /// starts until it is lifted.
    Emergency,
    /// An operator paused the run: handed back, as for `Release`, until it is resumed.
    Pause,
}

/// How a deliverable task ended.
#[derive(Debug)]
enum TaskEnd {
    Succeeded {
        ready: Vec<DeliverableId>,
    },
    Failed,
    Cancelled,
    Released,
    /// Policy held it back; it waits in the requeue.
    Blocked(DeliverableId),
    /// The emergency stop denied its next action; it was handed back (or never claimed).
    Halted,
    /// Somebody else holds it (a claim or write was rejected).
    NotHeld,
    Crashed,
    Error(Error),
}

pub(crate) async fn drive(
    engine: Engine,
    run_id: RunId,
    reopen: Vec<DeliverableState>,
    stop: CancellationToken,
) -> Result<Ending, Error> {
    let inner = &engine.inner;
    let run = inner.store.run(&run_id).await?;
    if run.state.is_terminal() && reopen.is_empty() {
        return Err(Error::RunFinished {
            run: run_id,
            state: run.state,
        });
    }
    let purpose = if reopen.is_empty() {
        Purpose::Driving
    } else {
        Purpose::Reopening
    };
    if inner.gate.emergency_stop().await?.is_some() || stop_file(&engine).await {
        return Ok(Ending::EmergencyStop);
    }
    if inner.store.run_control(&run_id).await?.paused {
        return Ok(Ending::Paused);
    }
    let deliverables = inner.store.deliverables(&run_id).await?;
    let Some(_driving) = Driving::enter(&engine, &run_id) else {
        return Err(Error::RunBusy {
            run: run_id,
            owner: inner.owner.to_string(),
            expires_at: inner.clock.now().plus(inner.options.lease_ttl),
        });
    };
    acquire(
        &engine,
        &run,
        deliverables.iter().any(|d| d.attempt > 0),
        purpose,
    )
    .await?;
    // Reopening happens under the lease, so nobody else is driving the run meanwhile.
    let deliverables = if reopen.is_empty() {
        deliverables
    } else {
        let reopened = async {
            inner
                .committer
                .commit(Change::Reopen {
                    run: run_id.clone(),
                    states: reopen,
                    driver: inner.owner.to_string(),
                })
                .await?;
            Ok::<_, Error>(inner.store.deliverables(&run_id).await?)
        }
        .await;
        match reopened {
            Ok(deliverables) => deliverables,
            Err(e) => {
                // Give the lease back: a finished run must not stay held by a drive that
                // never started.
                let _ = inner
                    .store
                    .release_driver(&run_id, &inner.owner.to_string())
                    .await;
                return Err(e);
            }
        }
    };

    let workspaces = workspaces_for(&engine, &run);
    if let Err(e) = workspaces.open().await {
        let _ = inner
            .store
            .release_driver(&run_id, &inner.owner.to_string())
            .await;
        return Err(e);
    }
    // Deliverables by id, with the step each resumes at and its policy waiver: looked up once
    // per task, so it must not be a scan of the plan. A deliverable's next step does not
    // change while it waits, so the value read now is the one its claim will find; one held
    // back by policy and let through is read again when it is.
    let known: HashMap<&str, (u32, Waiver)> = deliverables
        .iter()
        .map(|d| {
            let waiver = Waiver {
                overridden: d.policy_override.clone(),
                approved: d.approved_actions.clone(),
            };
            (d.id.as_str(), (d.next_step, waiver))
        })
        .collect();
    let mut by_id: HashMap<DeliverableId, Job> = run
        .plan
        .deliverables
        .iter()
        .map(|d| {
            let (next_step, waiver) = known.get(d.id.as_str()).cloned().unwrap_or_default();
            let work = Job {
                deliverable: Arc::new(d.clone()),
                next_step,
                waiver,
            };
            (d.id.clone(), work)
        })
        .collect();
    let mut ready: VecDeque<(DeliverableId, ClaimKind)> = VecDeque::new();
    let mut blocked: Vec<DeliverableId> = Vec::new();
    for d in &deliverables {
        match d.state {
            // Left running by a driver that is gone: take it over first.
            DeliverableState::Running => ready.push_front((d.id.clone(), ClaimKind::Takeover)),
            DeliverableState::Pending if d.waiting_on == 0 => {
                ready.push_back((d.id.clone(), ClaimKind::Ready));
            }
            DeliverableState::Blocked => blocked.push(d.id.clone()),
            _ => {}
        }
    }

    let spend = match inner.store.run_spend(&run_id).await {
        Ok(spend) => spend,
        Err(e) => {
            let _ = inner
                .store
                .release_driver(&run_id, &inner.owner.to_string())
                .await;
            return Err(e.into());
        }
    };
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        run: run.clone(),
        workspaces,
        stop: CancellationToken::new(),
        why: OnceLock::new(),
        run_spend: Arc::new(Counter::new(spend.total.tokens, spend.total.cost_micro_usd)),
        spent: std::sync::Mutex::new(
            spend
                .deliverables
                .into_iter()
                .map(|(id, s)| (id, s.tokens))
                .collect(),
        ),
    });
    let mut tasks: JoinSet<TaskEnd> = JoinSet::new();
    let mut tick = tokio::time::interval(inner.options.watch_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_renewal = tokio::time::Instant::now();
    let mut failure: Option<Error> = None;
    let concurrency = usize::try_from(run.concurrency.max(1)).unwrap_or(1);

    loop {
        if !shared.stop.is_cancelled() {
            while tasks.len() < concurrency {
                let Some((id, kind)) = ready.pop_front() else {
                    break;
                };
                let Some(work) = by_id.get(&id).cloned() else {
                    continue;
                };
                tasks.spawn(execute(shared.clone(), work, kind));
            }
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(TaskEnd::Succeeded { ready: next })) => {
                    ready.extend(next.into_iter().map(|id| (id, ClaimKind::Ready)));
                }
                Some(Ok(TaskEnd::Crashed)) => {
                    tasks.abort_all();
                    return Err(Error::Crashed);
                }
                Some(Ok(TaskEnd::NotHeld)) => {
                    failure.get_or_insert(Error::LostLease { run: run_id.clone() });
                    shared.stop_all(Stop::Release);
                }
                Some(Ok(TaskEnd::Error(e))) => {
                    tracing::error!(run = %run_id, error = %e, "deliverable task failed");
                    failure.get_or_insert(e);
                    shared.stop_all(Stop::Release);
                }
                Some(Ok(TaskEnd::Blocked(id))) => blocked.push(id),
                Some(Ok(TaskEnd::Halted)) => {
                    // The deliverable was not started: it is ready again after the stop.
                    shared.stop_all(Stop::Emergency);
                }
                Some(Ok(TaskEnd::Failed | TaskEnd::Cancelled | TaskEnd::Released)) | None => {}
                Some(Err(join)) => {
                    failure.get_or_insert(Error::Io(format!("a deliverable task died: {join}")));
                    shared.stop_all(Stop::Release);
                }
            },
            _ = tick.tick() => {
                if !blocked.is_empty() && !shared.stop.is_cancelled() {
                    match inner.store.ready_among(&run_id, &blocked).await {
                        Ok(let_through) => {
                            for r in let_through {
                                blocked.retain(|b| *b != r.id);
                                if let Some(work) = by_id.get_mut(&r.id) {
                                    work.next_step = r.next_step;
                                    work.waiver = Waiver {
                                        overridden: r.policy_override,
                                        approved: r.approved_actions,
                                    };
                                }
                                ready.push_back((r.id, ClaimKind::Ready));
                            }
                        }
                        Err(e) => tracing::warn!(run = %run_id, error = %e, "cannot check held-back work; retrying"),
                    }
                }
                match watch(&engine, &run_id, &mut last_renewal).await {
                    Ok(Watch::Continue) => {}
                    Ok(Watch::Cancelled) => shared.stop_all(Stop::Cancel),
                    Ok(Watch::Stopped) => shared.stop_all(Stop::Emergency),
                    Ok(Watch::Paused) => shared.stop_all(Stop::Pause),
                    Ok(Watch::LostLease) => {
                        failure.get_or_insert(Error::LostLease { run: run_id.clone() });
                        shared.stop_all(Stop::Release);
                    }
                    Err(e) => tracing::warn!(run = %run_id, error = %e, "cannot check the run; retrying"),
                }
            },
            () = stop.cancelled(), if !shared.stop.is_cancelled() => shared.stop_all(Stop::Release),
        }
    }

    if let Some(e) = failure {
        let _ = inner
            .store
            .release_driver(&run_id, &inner.owner.to_string())
            .await;
        return Err(e);
    }
    match shared.why.get() {
        Some(why @ (Stop::Release | Stop::Emergency | Stop::Pause)) => {
            inner
                .store
                .release_driver(&run_id, &inner.owner.to_string())
                .await?;
            Ok(match why {
                Stop::Emergency => Ending::EmergencyStop,
                Stop::Pause => Ending::Paused,
                _ => Ending::Interrupted,
            })
        }
        Some(Stop::Cancel) => {
            inner
                .committer
                .commit(Change::CancelWaiting {
                    run: run_id.clone(),
                })
                .await?;
            settle(&engine, &run_id).await
        }
        None => settle(&engine, &run_id).await,
    }
}

/// Records how the run ended, from its deliverables' states.
pub(crate) async fn settle(engine: &Engine, run_id: &RunId) -> Result<Ending, Error> {
    let inner = &engine.inner;
    let control = inner.store.run_control(run_id).await?;
    let counts = inner.store.counts(run_id).await?;
    match RunState::settle(&counts, control.cancel_requested) {
        Some(state) => {
            inner
                .committer
                .commit(Change::FinishRun {
                    run: run_id.clone(),
                    state,
                })
                .await?;
            Ok(Ending::Finished(state))
        }
        // Work is waiting on something outside this driver (held back for review): the run
        // stays open, and the lease is given up for whoever continues it.
        None => {
            inner
                .store
                .release_driver(run_id, &inner.owner.to_string())
                .await?;
            Ok(if counts.blocked > 0 {
                Ending::Blocked {
                    blocked: counts.blocked,
                }
            } else {
                Ending::Interrupted
            })
        }
    }
}

enum Watch {
    Continue,
    Cancelled,
    LostLease,
    Stopped,
    Paused,
}

/// One look at the run from the outside: renew the leases when due, and see whether someone
/// asked for a cancel.
async fn watch(
    engine: &Engine,
    run: &RunId,
    last_renewal: &mut tokio::time::Instant,
) -> Result<Watch, Error> {
    let inner = &engine.inner;
    if last_renewal.elapsed() >= inner.options.heartbeat {
        let until = inner.clock.now().plus(inner.options.lease_ttl);
        if !inner
            .store
            .renew_leases(run, &inner.owner.to_string(), until)
            .await?
        {
            return Ok(Watch::LostLease);
        }
        *last_renewal = tokio::time::Instant::now();
    }
    let control = inner.store.run_control(run).await?;
    if !control.stopped && stop_file(engine).await {
        let file = inner.options.home.join(STOP_FILE);
        tracing::warn!(file = %file.display(), "the STOP file is there: stopping everything");
        engine
            .stop_all(
                &format!("file:{}", file.display()),
                "the STOP file was created",
            )
            .await?;
        return Ok(Watch::Stopped);
    }
    Ok(if control.stopped {
        Watch::Stopped
    } else if control.paused {
        Watch::Paused
    } else if control.cancel_requested {
        Watch::Cancelled
    } else {
        Watch::Continue
    })
}

/// The emergency stop file in kamachiq's home (seed 004's `.agent-workspace/STOP`).
pub(crate) const STOP_FILE: &str = "STOP";

/// Whether the emergency stop file exists.
pub(crate) async fn stop_file(engine: &Engine) -> bool {
    tokio::fs::try_exists(engine.inner.options.home.join(STOP_FILE))
        .await
        .unwrap_or(false)
}

fn workspaces_for(engine: &Engine, run: &Run) -> Workspaces {
    let home = &engine.inner.options.home;
    match (&run.repo, &run.branch) {
        (Some(repo), Some(branch)) => Workspaces::Git(GitWorkspaces::new(
            Target {
                repo: PathBuf::from(repo),
                branch: branch.clone(),
            },
            run.id.clone(),
            home.join("worktrees").join(run.id.as_str()),
            engine.inner.options.identity.clone(),
            &engine.inner.merge_locks,
        )),
        _ => Workspaces::Scratch(home.join("scratch").join(run.id.as_str())),
    }
}

/// What the tasks of one drive share.
struct Shared {
    engine: Engine,
    run: Run,
    workspaces: Workspaces,
    /// Fires when the driver stops its tasks; `why` says why.
    stop: CancellationToken,
    why: OnceLock<Stop>,
    /// What the run's agent steps spent, live (the ledger's figure when the drive began, plus
    /// what every step reported since).
    run_spend: Arc<Counter>,
    /// Tokens each deliverable spent in steps that ended.
    spent: std::sync::Mutex<HashMap<DeliverableId, u64>>,
}

impl Shared {
    fn stop_all(&self, why: Stop) {
        let _ = self.why.set(why);
        self.stop.cancel();
    }

    fn stopping(&self) -> Option<Stop> {
        self.stop
            .is_cancelled()
            .then(|| self.why.get().copied().unwrap_or(Stop::Release))
    }

    async fn commit(&self, change: Change) -> Result<Committed, Error> {
        self.engine.inner.committer.commit(change).await
    }

    fn probe(&self, deliverable: &DeliverableId, point: &Point) -> Action {
        self.engine.inner.probe.at(deliverable, point)
    }

    /// Tokens the deliverable spent in steps that ended.
    fn deliverable_spent(&self, id: &DeliverableId) -> u64 {
        self.spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// Books the tokens of a step that ended on its deliverable.
    fn add_spent(&self, id: &DeliverableId, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let mut spent = self
            .spent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = spent.entry(id.clone()).or_insert(0);
        *total = total.saturating_add(tokens);
    }

    /// The outcome of an action of `deliverable` that began at `began`, to commit with the
    /// change that ends it.
    fn outcome(
        &self,
        deliverable: &DeliverableId,
        action: policy::Action,
        outcome: Outcome,
        began: Instant,
    ) -> Change {
        Change::Acted(Box::new(NewAction {
            tenant: self.run.tenant.clone(),
            run: Some(self.run.id.clone()),
            deliverable: Some(deliverable.clone()),
            action,
            outcome,
            duration_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
            tokens: 0,
            cost_micro_usd: 0,
            critical: false,
        }))
    }

    /// The outcome of a step attempt that ended, with what it spent.
    fn step_outcome(
        &self,
        deliverable: &DeliverableId,
        outcome: Outcome,
        duration: std::time::Duration,
        tokens: u64,
        cost_micro_usd: i64,
    ) -> Change {
        Change::Acted(Box::new(NewAction {
            tenant: self.run.tenant.clone(),
            run: Some(self.run.id.clone()),
            deliverable: Some(deliverable.clone()),
            action: policy::Action::RunStep,
            outcome,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            tokens,
            cost_micro_usd: u64::try_from(cost_micro_usd).unwrap_or(0),
            critical: false,
        }))
    }

    /// Asks the policy gate about `action` on `deliverable` (and `step`).
    async fn decide(
        &self,
        deliverable: &Deliverable,
        action: policy::Action,
        step: Option<&Step>,
    ) -> Result<Judged, Error> {
        self.decide_with(deliverable, action, step, None).await
    }

    /// [`Shared::decide`], with the diff a merge would bring in.
    async fn decide_with(
        &self,
        deliverable: &Deliverable,
        action: policy::Action,
        step: Option<&Step>,
        diff: Option<policy::DiffInput>,
    ) -> Result<Judged, Error> {
        let run = &self.run;
        let day = self.engine.inner.gate.day_spend(&run.tenant).await?;
        let input = policy::Input {
            action,
            tenant: run.tenant.to_string(),
            region: run.region.clone(),
            run: Some(policy::RunInput {
                id: run.id.to_string(),
                title: run.title.clone(),
            }),
            deliverable: Some(policy::DeliverableInput {
                id: deliverable.id.to_string(),
                persona: deliverable.persona.clone(),
                tools: deliverable.tools.clone(),
                budget_tokens: deliverable.budget_tokens,
            }),
            step: step.map(|s| {
                let (agent, model) = match &s.work {
                    Work::Agent { agent, model, .. } => {
                        let persona = deliverable
                            .persona
                            .as_deref()
                            .and_then(|p| self.engine.inner.options.agents.personas.get(p));
                        (
                            agent
                                .clone()
                                .or_else(|| persona.and_then(|p| p.agent.clone())),
                            model
                                .clone()
                                .or_else(|| persona.and_then(|p| p.model.clone())),
                        )
                    }
                    Work::Run { .. } => (None, None),
                };
                policy::StepInput {
                    name: s.name.to_string(),
                    agent,
                    model,
                }
            }),
            spent: policy::Spent {
                deliverable_tokens: self.deliverable_spent(&deliverable.id),
                run_tokens: self.run_spend.tokens(),
                tenant_day_tokens: day.tokens(),
                tenant_day_cost_usd: day.cost() as f64 / 1e6,
            },
            reserve: policy::Reserve {
                tokens: match step.map(|s| &s.work) {
                    Some(Work::Agent {
                        budget_tokens: Some(b),
                        ..
                    }) => *b,
                    _ => 0,
                },
                cost_usd: 0.0,
            },
            autonomy: policy::Autonomy::default(),
            emergency_stop: false,
            diff,
            at: self.engine.inner.clock.now(),
        };
        self.engine.inner.gate.decide(&run.tenant, input).await
    }
}

/// A deliverable to run: what the plan says of it, the step it resumes at, and what lets it
/// past policy (an override, actions a person approved).
#[derive(Clone, Debug)]
struct Job {
    deliverable: Arc<Deliverable>,
    next_step: u32,
    waiver: Waiver,
}

/// The life of one deliverable, from claim to merge.
async fn execute(shared: Arc<Shared>, work: Job, kind: ClaimKind) -> TaskEnd {
    match run_deliverable(&shared, &work, kind).await {
        Ok(end) => end,
        Err(e) => TaskEnd::Error(e),
    }
}

fn step_ref(deliverable: &Deliverable, index: u32) -> Option<StepRef> {
    let step = deliverable.steps.get(usize::try_from(index).ok()?)?;
    Some(StepRef {
        index,
        name: step.name.clone(),
    })
}

async fn run_deliverable(shared: &Shared, work: &Job, kind: ClaimKind) -> Result<TaskEnd, Error> {
    let inner = &shared.engine.inner;
    let deliverable = &*work.deliverable;
    let waiver = &work.waiver;
    let id = &deliverable.id;
    let run = &shared.run.id;
    if kind == ClaimKind::Takeover {
        let reaped = reap_orphans(run.as_str(), Some(id.as_str()));
        if reaped > 0 {
            tracing::info!(run = %run, deliverable = %id, reaped, "killed steps left by a previous driver");
        }
    }
    // Policy decides before anything starts: the deliverable's provisioning (unless it is
    // taken over, already under way), then the step its claim starts. What they decide is
    // committed with the claim, or with the block.
    let mut decided = Vec::new();
    if kind == ClaimKind::Ready {
        let judged = shared
            .decide(deliverable, policy::Action::Provision, None)
            .await?;
        let scope = approval_scope(policy::Action::Provision, 0);
        let proceeds = judged.proceeds(waiver, &scope);
        decided.push((judged, scope));
        if !proceeds {
            return block(shared, id, None, decided).await;
        }
    }
    let first = step_ref(deliverable, work.next_step);
    let mut start = None;
    if let Some(step) = deliverable
        .steps
        .get(usize::try_from(work.next_step).unwrap_or(usize::MAX))
    {
        let judged = shared
            .decide(deliverable, policy::Action::RunStep, Some(step))
            .await?;
        let scope = approval_scope(policy::Action::RunStep, work.next_step);
        if judged.proceeds(waiver, &scope) {
            start.clone_from(&first);
            decided.push((judged, scope));
        } else if kind == ClaimKind::Ready {
            decided.push((judged, scope));
            return block(shared, id, None, decided).await;
        } else {
            // Taken over: claimed without starting the step, then held back at that claim.
            decided.push((judged, scope));
        }
    }
    let mut changes: Vec<Change> = Vec::with_capacity(decided.len() + 1);
    changes.push(Change::Claim {
        run: run.clone(),
        deliverable: id.clone(),
        owner: inner.owner.to_string(),
        lease_until: inner.clock.now().plus(inner.options.lease_ttl),
        kind,
        start: start.clone(),
    });
    let held_back = start.is_none() && first.is_some();
    if !held_back {
        // Not needed after the claim unless held back: moved, not cloned.
        changes.extend(
            std::mem::take(&mut decided)
                .into_iter()
                .flat_map(|(j, scope)| j.into_changes(waiver, &scope)),
        );
    }
    let claim = shared.engine.inner.committer.commit_many(changes).await?;
    let Some(Ok(Applied::Claimed {
        attempt,
        next_step,
        step_attempt,
    })) = claim.first().map(|c| c.result.clone())
    else {
        return Ok(TaskEnd::NotHeld);
    };
    if held_back {
        return block(shared, id, Some(attempt), decided).await;
    }
    let lease = LeaseKey {
        run: run.clone(),
        deliverable: id.clone(),
        attempt,
    };
    if shared.probe(id, &Point::Claimed) == Action::Crash {
        return Ok(TaskEnd::Crashed);
    }

    if let Some(max) = inner.options.max_workspace_bytes {
        let dir = inner.options.home.join("worktrees");
        let used = inner.disk.usage(&dir).await?;
        if used >= max {
            let reason = Reason::new(
                ReasonCode::WorkspaceError,
                format!(
                    "the worktrees under {} use {}, at or over engine.max_workspace_disk ({}): \
                     free space with `kamachiq workspaces prune`, then `kamachiq resume {} --retry-failed`",
                    dir.display(),
                    crate::disk::bytes(used),
                    crate::disk::bytes(max),
                    run
                ),
            );
            return fail(shared, lease, reason).await;
        }
    }
    let worktree = match shared.workspaces.prepare(id).await {
        Ok(path) => path,
        Err(e) => {
            let reason = Reason::new(
                ReasonCode::WorkspaceError,
                format!("cannot prepare the worktree: {e}"),
            );
            return fail(shared, lease, reason).await;
        }
    };

    // The step already started with the claim, if it was the one expected.
    let mut started = step_attempt;
    let last = u32::try_from(deliverable.steps.len()).unwrap_or(u32::MAX);
    for index in next_step..last {
        let Some(step) = deliverable
            .steps
            .get(usize::try_from(index).unwrap_or(usize::MAX))
        else {
            break;
        };
        // What follows this step's success in the same transaction: the next step, or, when
        // there is nothing to merge, the deliverable's success.
        let then = match step_ref(deliverable, index + 1) {
            Some(next) => Then::Start(next),
            None if shared.workspaces.merges() => Then::Stay,
            None => Then::Succeed,
        };
        let work = StepWork {
            lease: &lease,
            worktree: &worktree,
            deliverable,
            waiver,
            index,
            step,
            started: started.take(),
            then,
        };
        match run_step(shared, work).await? {
            StepResult::HeldBack(judged, scope) => {
                return block(shared, id, Some(lease.attempt), vec![(*judged, scope)]).await;
            }
            StepResult::Passed(Next::Started(step_attempt)) => started = Some(step_attempt),
            StepResult::Passed(Next::Nothing) => {}
            StepResult::Passed(Next::Succeeded(ready)) => {
                return Ok(TaskEnd::Succeeded { ready });
            }
            StepResult::Failed(reason) => return fail(shared, lease, reason).await,
            StepResult::Stopped => return hand_back(shared, lease).await,
            StepResult::NotHeld => return Ok(TaskEnd::NotHeld),
            StepResult::Crashed => return Ok(TaskEnd::Crashed),
        }
    }

    if shared.stopping().is_some() {
        return hand_back(shared, lease).await;
    }
    if shared.probe(id, &Point::BeforeMerge) == Action::Crash {
        return Ok(TaskEnd::Crashed);
    }
    // A driver that lost its lease (paused past its expiry, then woken) must not move the
    // target branch: the store would refuse its writes, git would not.
    let me = inner.owner.to_string();
    let control = inner.store.run_control(run).await?;
    if control.driver.as_ref().map(|d| d.owner.as_str()) != Some(me.as_str()) {
        return Ok(TaskEnd::NotHeld);
    }
    // Promotion is an action of its own: the review guards read the deliverable's diff, and
    // policy decides on it (and on what they found) after every step passed.
    let diff = match shared.workspaces.diff(id).await {
        Ok(text) => text.map(|text| review(&inner.review, &text)),
        Err(e) => {
            let reason = Reason::new(
                ReasonCode::WorkspaceError,
                format!("cannot read the deliverable's changes for review: {e}"),
            );
            return fail(shared, lease, reason).await;
        }
    };
    let merge_decision = shared
        .decide_with(deliverable, policy::Action::Merge, None, diff)
        .await?;
    let merge_scope = approval_scope(policy::Action::Merge, 0);
    if !merge_decision.proceeds(waiver, &merge_scope) {
        return block(
            shared,
            id,
            Some(lease.attempt),
            vec![(merge_decision, merge_scope)],
        )
        .await;
    }
    let merging = Instant::now();
    let merged = shared.workspaces.merge(id).await;
    let merge_outcome = |outcome| shared.outcome(id, policy::Action::Merge, outcome, merging);
    let merge = match merged {
        Ok(MergeOutcome::Merged { before, commit }) => Some(Merge {
            rollback_id: format!("rb-{}", ulid::Ulid::generate().to_string().to_lowercase()),
            repo: shared.run.repo.clone().unwrap_or_default(),
            branch: shared.run.branch.clone().unwrap_or_default(),
            before,
            commit,
        }),
        Ok(MergeOutcome::NothingToMerge) => None,
        Ok(MergeOutcome::Conflict { files }) => {
            let branch = shared.workspaces.branch_of(id).unwrap_or_default();
            let reason = Reason::new(
                ReasonCode::MergeConflict,
                format!(
                    "branch {branch} conflicts with {} in {}; the branch is kept for inspection",
                    shared.run.branch.as_deref().unwrap_or("the target"),
                    if files.is_empty() {
                        "some files".to_owned()
                    } else {
                        files.join(", ")
                    }
                ),
            );
            return fail_with(shared, lease, reason, merge_outcome(Outcome::Failed)).await;
        }
        Ok(MergeOutcome::TargetDirty { checkout, detail }) => {
            let reason = Reason::new(
                ReasonCode::TargetCheckoutDirty,
                format!(
                    "the target branch is checked out in {} with local changes the merge would overwrite; \
                     commit or stash them, then `kamachiq resume {run} --retry-failed` ({detail})",
                    checkout.display()
                ),
            );
            return fail_with(shared, lease, reason, merge_outcome(Outcome::Failed)).await;
        }
        Err(e) => {
            let reason = Reason::new(ReasonCode::WorkspaceError, format!("cannot merge: {e}"));
            return fail_with(shared, lease, reason, merge_outcome(Outcome::Failed)).await;
        }
    };
    if shared.probe(id, &Point::AfterMerge) == Action::Crash {
        return Ok(TaskEnd::Crashed);
    }
    let mut changes = vec![];
    if merge.is_some() {
        changes.push(merge_outcome(Outcome::Succeeded));
    }
    changes.insert(0, Change::Succeeded { lease, merge });
    changes.extend(merge_decision.into_changes(waiver, &merge_scope));
    let done = shared
        .engine
        .inner
        .committer
        .commit_many(changes)
        .await?
        .swap_remove(0);
    if done.result != Ok(Applied::Succeeded) {
        return Ok(TaskEnd::NotHeld);
    }
    if let Err(e) = shared.workspaces.remove(id).await {
        tracing::warn!(run = %run, deliverable = %id, error = %e, "cannot remove the finished worktree");
    }
    Ok(TaskEnd::Succeeded { ready: done.ready })
}

async fn fail(shared: &Shared, lease: LeaseKey, reason: Reason) -> Result<TaskEnd, Error> {
    let committed = shared.commit(Change::Failed { lease, reason }).await?;
    Ok(match committed.result {
        Ok(_) => TaskEnd::Failed,
        Err(Rejected::NotApplicable) => TaskEnd::NotHeld,
    })
}

/// [`fail`], with the outcome of the action whose failure ends the deliverable, in the same
/// transaction.
async fn fail_with(
    shared: &Shared,
    lease: LeaseKey,
    reason: Reason,
    outcome: Change,
) -> Result<TaskEnd, Error> {
    let committed = shared
        .engine
        .inner
        .committer
        .commit_many(vec![Change::Failed { lease, reason }, outcome])
        .await?
        .swap_remove(0);
    Ok(match committed.result {
        Ok(_) => TaskEnd::Failed,
        Err(Rejected::NotApplicable) => TaskEnd::NotHeld,
    })
}

/// Ends a task that was told to stop: cancelled, or handed back to the next driver.
async fn hand_back(shared: &Shared, lease: LeaseKey) -> Result<TaskEnd, Error> {
    let (change, end) = match shared.stopping() {
        Some(Stop::Cancel) => (Change::Cancelled { lease }, TaskEnd::Cancelled),
        _ => (Change::Released { lease }, TaskEnd::Released),
    };
    let committed = shared.commit(change).await?;
    Ok(if committed.result.is_ok() {
        end
    } else {
        TaskEnd::NotHeld
    })
}

/// What the review guards find in a deliverable's diff, as policy reads it. A diff kamachiq
/// cannot read is itself a finding: what cannot be reviewed is not promoted unseen.
fn review(guards: &kamachiq_review::Guards, text: &str) -> policy::DiffInput {
    let diff = match kamachiq_review::Diff::parse(text) {
        Ok(diff) => diff,
        Err(e) => {
            return policy::DiffInput {
                findings: vec![policy::Finding {
                    guard: "review".to_owned(),
                    code: "diff_unreadable".to_owned(),
                    path: String::new(),
                    line: None,
                    message: format!("the diff could not be read for review: {e}"),
                }],
                ..policy::DiffInput::default()
            };
        }
    };
    let report = guards.check(&diff);
    policy::DiffInput {
        files: report.stats.files,
        lines_added: report.stats.lines_added,
        lines_removed: report.stats.lines_removed,
        findings: report
            .findings
            .into_iter()
            .map(|f| policy::Finding {
                guard: f.guard.as_str().to_owned(),
                code: f.code,
                path: f.path.unwrap_or_default(),
                line: f.line,
                message: f.message,
            })
            .collect(),
    }
}
