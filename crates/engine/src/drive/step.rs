//! One step of a deliverable: its attempts (each decided by the gate), the process, the
//! commit of its changes, its end recorded with what follows it and with its outcome, and its
//! retries.

use std::path::Path;
use std::time::Instant;

use kamachiq_domain::plan::{Deliverable, Step};
use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableId, Reason, ReasonCode};
use kamachiq_governance::Outcome;
use kamachiq_policy as policy;
use kamachiq_store::{Applied, Change, LeaseKey, StepEnd, StepRef, Then, approval_scope};

use super::{Shared, Stop, launch};
use crate::Error;
use crate::gate::{Judged, Waiver};
use crate::probe::{Action, Point};
use crate::runner::{Exit, StepOutcome};

/// What was committed with a step's success.
pub(super) enum Next {
    /// The next step started, as this attempt.
    Started(u32),
    /// The deliverable succeeded; these became ready.
    Succeeded(Vec<DeliverableId>),
    /// Nothing more (the merge comes next).
    Nothing,
}

pub(super) enum StepResult {
    Passed(Next),
    /// Policy held back the step's next attempt, or the step after it (with its scope).
    HeldBack(Box<Judged>, String),
    Failed(Reason),
    Stopped,
    NotHeld,
    Crashed,
}

/// Runs one step to success or to its last retry.
/// One step of a deliverable to run.
pub(super) struct StepWork<'a> {
    pub(super) lease: &'a LeaseKey,
    pub(super) worktree: &'a Path,
    pub(super) deliverable: &'a Deliverable,
    /// What lets the deliverable past policy (an override, actions a person approved).
    pub(super) waiver: &'a Waiver,
    pub(super) index: u32,
    pub(super) step: &'a Step,
    /// The attempt already started for it (with the claim or the previous step's end).
    pub(super) started: Option<u32>,
    /// What its success commits with it.
    pub(super) then: Then,
}

pub(super) async fn run_step(shared: &Shared, work: StepWork<'_>) -> Result<StepResult, Error> {
    let StepWork {
        lease,
        worktree,
        deliverable,
        waiver,
        index,
        step,
        mut started,
        then,
    } = work;
    let inner = &shared.engine.inner;
    let id = &lease.deliverable;
    let mut failures: u32 = 0;
    loop {
        if shared.stopping().is_some() {
            return Ok(StepResult::Stopped);
        }
        let step_attempt = match started.take() {
            Some(attempt) => attempt,
            None => {
                // Every attempt is an action: a retry may find its budget gone.
                let judged = shared
                    .decide(deliverable, policy::Action::RunStep, Some(step))
                    .await?;
                let scope = approval_scope(policy::Action::RunStep, index);
                if !judged.proceeds(waiver, &scope) {
                    return Ok(StepResult::HeldBack(Box::new(judged), scope));
                }
                let mut changes = vec![Change::StepStarted {
                    lease: lease.clone(),
                    step: StepRef {
                        index,
                        name: step.name.clone(),
                    },
                }];
                changes.extend(judged.into_changes(waiver, &scope));
                let committed = shared.engine.inner.committer.commit_many(changes).await?;
                let Some(Ok(Applied::StepStarted { step_attempt })) =
                    committed.first().map(|c| c.result.clone())
                else {
                    return Ok(StepResult::NotHeld);
                };
                step_attempt
            }
        };
        if failures > 0
            && let Err(e) = shared.workspaces.reset(worktree).await
        {
            return Ok(StepResult::Failed(Reason::new(
                ReasonCode::WorkspaceError,
                format!("cannot reset the worktree before a retry: {e}"),
            )));
        }
        if shared.probe(id, &Point::StepStarting { index }) == Action::Crash {
            return Ok(StepResult::Crashed);
        }

        let attempt = launch::Attempt {
            lease,
            deliverable,
            step,
            index,
            step_attempt,
            worktree,
        };
        let prepared = launch::prepare(shared, &attempt).await?;
        let agent = prepared.as_ref().ok().and_then(|l| l.agent.clone());
        if agent.is_some() {
            let agents = &inner.options.agents;
            let launched = inner
                .gate
                .launch(
                    &shared.run.tenant,
                    agents.launches_per_minute,
                    agents.launch_burst,
                    &shared.stop,
                )
                .await;
            if !launched {
                return Ok(StepResult::Stopped);
            }
        }
        let began = Instant::now();
        let mut outcome = match prepared {
            Ok(launch) => launch::run(shared, launch).await?,
            Err(reason) => StepOutcome {
                output: format!("[kamachiq] {}\n", reason.detail),
                output_bytes: 0,
                exit: Exit::SpawnFailed(reason.detail),
            },
        };
        let duration = began.elapsed();
        let (tokens, cost_micro_usd) = agent.as_ref().map_or((0, 0), |a| a.totals());
        shared.add_spent(id, tokens);
        if outcome.exit == Exit::Stopped {
            // Keep what the step printed before it was stopped, with the attempt's end.
            let state = match shared.stopping() {
                Some(Stop::Cancel) => StepState::Cancelled,
                _ => StepState::Interrupted,
            };
            let reason = Reason::new(
                ReasonCode::Cancelled,
                format!("step `{}` was stopped before it finished", step.name),
            );
            shared
                .commit(Change::StepFinished(Box::new(StepEnd {
                    lease: lease.clone(),
                    index,
                    step: step.name.clone(),
                    step_attempt,
                    state,
                    exit_code: None,
                    reason: Some(reason),
                    output: outcome.output,
                    output_bytes: outcome.output_bytes,
                    tokens,
                    cost_micro_usd,
                    duration,
                    advance: false,
                    then: Then::Stay,
                })))
                .await?;
            return Ok(StepResult::Stopped);
        }
        let mut reason = failure_reason(&outcome, step);
        // An agent that exits 0 after reporting an error did not do its work.
        if reason.is_none()
            && let Some(agent) = &agent
            && let (failure, finished) = agent.verdict()
            && (failure.is_some() || finished == Some(false))
        {
            reason = Some(Reason::new(
                ReasonCode::AgentFailed,
                format!(
                    "the agent of step `{}` reported an error: {}",
                    step.name,
                    failure.unwrap_or_else(|| "its result says it failed".to_owned())
                ),
            ));
        }
        if reason.is_none()
            && let Err(e) = shared
                .workspaces
                .commit_step(worktree, id, step.name.as_str())
                .await
        {
            let detail = format!("cannot commit the step's changes: {e}");
            outcome.output.push_str(&format!("\n[kamachiq] {detail}\n"));
            reason = Some(Reason::new(ReasonCode::WorkspaceError, detail));
        }
        if shared.probe(id, &Point::StepEnded { index }) == Action::Crash {
            return Ok(StepResult::Crashed);
        }
        let passed = reason.is_none();
        // Nothing new starts with this step's end once the driver is stopping.
        let mut then = if passed && shared.stopping().is_none() {
            then.clone()
        } else {
            Then::Stay
        };
        // The next step starts with this one's end only if policy lets it; its decision is
        // committed with them.
        let mut next_decision = Vec::new();
        let mut held_back = None;
        if let Then::Start(next) = &then {
            let next_step = usize::try_from(next.index)
                .ok()
                .and_then(|i| deliverable.steps.get(i));
            let judged = shared
                .decide(deliverable, policy::Action::RunStep, next_step)
                .await?;
            let scope = approval_scope(policy::Action::RunStep, next.index);
            if judged.proceeds(waiver, &scope) {
                next_decision = judged.into_changes(waiver, &scope);
            } else {
                then = Then::Stay;
                held_back = Some((judged, scope));
            }
        }
        let expects = then.clone();
        let acted = shared.step_outcome(
            id,
            if passed {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            },
            duration,
            tokens,
            cost_micro_usd,
        );
        let mut changes = vec![Change::StepFinished(Box::new(StepEnd {
            lease: lease.clone(),
            index,
            step: step.name.clone(),
            step_attempt,
            state: if passed {
                StepState::Succeeded
            } else {
                StepState::Failed
            },
            exit_code: match outcome.exit {
                Exit::Code(code) => Some(code),
                _ => None,
            },
            reason: reason.clone(),
            output: outcome.output,
            output_bytes: outcome.output_bytes,
            tokens,
            cost_micro_usd,
            duration,
            advance: passed,
            then,
        }))];
        changes.extend(next_decision);
        changes.push(acted);
        let finished = shared
            .engine
            .inner
            .committer
            .commit_many(changes)
            .await?
            .swap_remove(0);
        let Some(reason) = reason else {
            return Ok(match (expects, finished.result) {
                (Then::Stay, Ok(Applied::Done)) => match held_back {
                    Some((judged, scope)) => StepResult::HeldBack(Box::new(judged), scope),
                    None => StepResult::Passed(Next::Nothing),
                },
                (Then::Start(_), Ok(Applied::StepStarted { step_attempt })) => {
                    StepResult::Passed(Next::Started(step_attempt))
                }
                (Then::Succeed, Ok(Applied::Succeeded)) => {
                    StepResult::Passed(Next::Succeeded(finished.ready))
                }
                _ => StepResult::NotHeld,
            });
        };
        if finished.result.is_err() {
            return Ok(StepResult::NotHeld);
        }
        failures += 1;
        // A spent budget is not retried: the next attempt would find it spent too.
        if failures > step.retries || reason.code == ReasonCode::BudgetExhausted {
            let detail = if failures > 1 {
                format!("{} (after {failures} attempts)", reason.detail)
            } else {
                reason.detail
            };
            return Ok(StepResult::Failed(Reason::new(reason.code, detail)));
        }
        tokio::select! {
            () = tokio::time::sleep(step.backoff_before(failures)) => {}
            () = shared.stop.cancelled() => return Ok(StepResult::Stopped),
        }
    }
}

/// Why an outcome is a failure, or `None` for success.
fn failure_reason(outcome: &StepOutcome, step: &Step) -> Option<Reason> {
    let name = &step.name;
    match &outcome.exit {
        Exit::Code(0) => None,
        Exit::Code(code) => Some(Reason::new(
            ReasonCode::StepFailed,
            format!("step `{name}` exited with status {code}"),
        )),
        Exit::Signal(signal) => Some(Reason::new(
            ReasonCode::StepFailed,
            format!("step `{name}` was killed by signal {signal}"),
        )),
        Exit::TimedOut => Some(Reason::new(
            ReasonCode::Timeout,
            format!(
                "step `{name}` ran longer than its timeout of {}; its process group was killed",
                humantime_short(step.timeout)
            ),
        )),
        Exit::SpawnFailed(message) => Some(Reason::new(ReasonCode::SpawnFailed, message.clone())),
        Exit::Halted(halt) => Some(Reason::new(halt.code, halt.detail.clone())),
        Exit::Stopped => Some(Reason::new(
            ReasonCode::Cancelled,
            format!("step `{name}` was stopped"),
        )),
    }
}

fn humantime_short(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_print_in_their_plan_units() {
        assert_eq!(humantime_short(Duration::from_secs(600)), "10m");
        assert_eq!(humantime_short(Duration::from_secs(7200)), "2h");
        assert_eq!(humantime_short(Duration::from_secs(45)), "45s");
        assert_eq!(humantime_short(Duration::from_millis(1500)), "1500ms");
    }
}
