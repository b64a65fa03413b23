//! From a step of the plan to a process: a command as written, or an agent with its command
//! line, prompt, minimal environment, budget caps and a monitor reading its output. While an
//! agent runs, what its monitor gathered is written to the ledger every [`FLUSH`], with a
//! progress event; the rest when it ends.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kamachiq_agent::{AgentKind, InvocationSpec, PromptParts};
use kamachiq_domain::plan::{Deliverable, Step, Work};
use kamachiq_domain::{Reason, ReasonCode};
use kamachiq_store::{Change, LeaseKey, Progress};

use super::Shared;
use crate::Error;
use crate::agents::{AgentMonitor, Caps, Owner, agent_of, prompt_file};
use crate::runner::{StepOutcome, StepSpec};

/// How often an agent's usage and progress are written while it runs.
pub(super) const FLUSH: Duration = Duration::from_secs(2);

/// A step ready to start.
pub(super) struct Launch {
    pub spec: StepSpec,
    /// The agent's monitor, for an agent step.
    pub agent: Option<Arc<AgentMonitor>>,
}

/// What a step attempt is, and what it reserves from the budgets.
pub(super) struct Attempt<'a> {
    pub lease: &'a LeaseKey,
    pub deliverable: &'a Deliverable,
    pub step: &'a Step,
    pub index: u32,
    pub step_attempt: u32,
    pub worktree: &'a Path,
}

/// Builds the process of a step attempt, or says why it cannot start (a spawn failure).
pub(super) async fn prepare(
    shared: &Shared,
    a: &Attempt<'_>,
) -> Result<Result<Launch, Reason>, Error> {
    let inner = &shared.engine.inner;
    let step = a.step;
    let log = inner
        .options
        .home
        .join("logs")
        .join(a.lease.run.as_str())
        .join(a.deliverable.id.as_str())
        .join(format!("{}-{}.{}.log", a.index, step.name, a.step_attempt));
    let cwd = match &step.workdir {
        Some(dir) => a.worktree.join(dir),
        None => a.worktree.to_path_buf(),
    };
    let mut env = match resolve_env(step) {
        Ok(env) => env,
        Err(why) => return Ok(Err(Reason::new(ReasonCode::SpawnFailed, why))),
    };
    env.extend(kamachiq_env(shared, a));
    let (agent, prompt_text, model, budget) = match &step.work {
        Work::Run { run } => {
            let mut spec = StepSpec::command(run.argv(), cwd, step.timeout, log);
            spec.env = env;
            return Ok(Ok(Launch { spec, agent: None }));
        }
        Work::Agent {
            agent,
            prompt,
            model,
            budget_tokens,
        } => (agent.as_deref(), prompt, model, *budget_tokens),
    };
    let options = &inner.options.agents;
    let persona = a
        .deliverable
        .persona
        .as_deref()
        .and_then(|p| options.personas.get(p));
    let kind = match agent_of(agent, persona) {
        Some(Ok(kind)) => kind,
        Some(Err(e)) => return Ok(Err(Reason::new(ReasonCode::SpawnFailed, e))),
        None => {
            return Ok(Err(Reason::new(
                ReasonCode::SpawnFailed,
                format!(
                    "step `{}` has a prompt but no agent: name one with `agent:` or configure the agent of persona `{}`",
                    step.name,
                    a.deliverable.persona.as_deref().unwrap_or("(none)")
                ),
            )));
        }
    };
    let model = model
        .clone()
        .or_else(|| persona.and_then(|p| p.model.clone()));
    let text = kamachiq_agent::prompt(&PromptParts {
        deliverable_id: a.deliverable.id.to_string(),
        deliverable_title: a.deliverable.title.clone(),
        step_prompt: prompt_text.clone(),
        acceptance_criteria: a.deliverable.acceptance_criteria.clone(),
        instructions: persona.and_then(|p| p.instructions.clone()),
        context: context(shared, a),
    });
    let file = prompt_file(
        &inner.options.home,
        &a.lease.run,
        &a.deliverable.id,
        step.name.as_str(),
        a.step_attempt,
    );
    if let Err(e) = write_prompt(&file, &text).await {
        return Ok(Err(Reason::new(
            ReasonCode::SpawnFailed,
            format!("cannot write the prompt file {}: {e}", file.display()),
        )));
    }
    // Only Claude Code and Gemini CLI take a list of tools they may use without asking.
    let allowed_tools = match kind {
        AgentKind::Claude | AgentKind::Gemini => {
            persona.map(|p| p.tools.clone()).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let invocation = kamachiq_agent::invocation(
        kind,
        &InvocationSpec {
            program: options.programs.get(kind.as_str()).cloned(),
            prompt: text,
            model: model.clone(),
            allowed_tools,
            extra_args: options
                .extra_args
                .get(kind.as_str())
                .cloned()
                .unwrap_or_default(),
            template: options.template.clone(),
            prompt_file: Some(file),
            worktree: cwd.clone(),
        },
    );
    let invocation = match invocation {
        Ok(invocation) => invocation,
        Err(e) => {
            return Ok(Err(Reason::new(
                ReasonCode::SpawnFailed,
                format!("cannot run agent {kind} for step `{}`: {e}", step.name),
            )));
        }
    };

    let tenant = inner.gate.tenant(&shared.run.tenant).await?;
    let day = inner.gate.day_spend(&shared.run.tenant).await?;
    let budgets = tenant.settings.budgets;
    let deliverable_cap = match (budgets.deliverable_tokens, a.deliverable.budget_tokens) {
        (Some(t), Some(p)) => Some(t.min(p)),
        (t, p) => t.or(p),
    };
    let caps = Caps {
        step_tokens: budget,
        deliverable_tokens: deliverable_cap,
        deliverable_spent: shared.deliverable_spent(&a.deliverable.id),
        run_tokens: budgets.run_tokens,
        run: shared.run_spend.clone(),
        day_tokens: budgets.day_tokens,
        day_cost_micro_usd: budgets.day_cost_micro_usd,
        day,
    };
    let owner = Owner {
        tenant: shared.run.tenant.clone(),
        run: a.lease.run.clone(),
        deliverable: a.deliverable.id.clone(),
        step: step.name.to_string(),
        step_attempt: a.step_attempt,
        agent: kind.as_str().to_owned(),
        model,
    };
    let monitor = Arc::new(AgentMonitor::new(
        kind,
        owner,
        caps,
        options,
        inner.clock.clone(),
    ));
    let mut argv = invocation.argv;
    let mut extra_env = Vec::new();
    if let Some(sandbox) = &options.sandbox {
        match sandboxed(&inner.options.home, a, sandbox, argv).await {
            Ok((wrapped, tmp)) => {
                argv = wrapped;
                extra_env.push(("TMPDIR".to_owned(), tmp));
            }
            Err(why) => return Ok(Err(Reason::new(ReasonCode::SpawnFailed, why))),
        }
    }
    let mut spec = StepSpec::command(argv, cwd, step.timeout, log);
    let (inherit, mut agent_env) = match &options.environment {
        crate::agents::AgentEnv::Inherit => (true, Vec::new()),
        crate::agents::AgentEnv::Only(vars) => (false, vars.clone()),
    };
    agent_env.extend(invocation.env);
    agent_env.extend(env);
    agent_env.extend(extra_env);
    spec.env = agent_env;
    spec.clear_env = !inherit;
    spec.stdin = invocation.stdin;
    spec.stall = Some(options.stall);
    spec.monitor = Some(monitor.clone());
    Ok(Ok(Launch {
        spec,
        agent: Some(monitor),
    }))
}

/// Runs a prepared step. An agent's usage and progress are written while it runs, and what is
/// left when it ends.
pub(super) async fn run(shared: &Shared, launch: Launch) -> Result<StepOutcome, Error> {
    let inner = &shared.engine.inner;
    let Launch { spec, agent } = launch;
    let Some(monitor) = agent else {
        return Ok(inner.runner.run(spec, shared.stop.clone()).await);
    };
    let running = inner.runner.run(spec, shared.stop.clone());
    tokio::pin!(running);
    let mut tick = tokio::time::interval(FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let outcome = loop {
        tokio::select! {
            outcome = &mut running => break outcome,
            _ = tick.tick() => flush(shared, &monitor).await?,
        }
    };
    flush(shared, &monitor).await?;
    Ok(outcome)
}

/// Writes what the monitor gathered: usage into the ledger, progress as an event.
async fn flush(shared: &Shared, monitor: &AgentMonitor) -> Result<(), Error> {
    let mut gathered = monitor.drain();
    if let Some(warning) = gathered.warning.take() {
        tracing::warn!(tenant = %shared.run.tenant, "{warning}");
        shared
            .commit(Change::Warn {
                run: shared.run.id.clone(),
                detail: warning,
            })
            .await?;
    }
    if gathered.records.is_empty() && gathered.progress.is_none() {
        return Ok(());
    }
    let progress = gathered.records.first().map(|r| {
        Box::new(Progress {
            run: r.run.clone(),
            deliverable: r.deliverable.clone(),
            step: r.step.clone(),
            step_attempt: r.step_attempt,
            text: gathered.progress.clone(),
            tokens: gathered.tokens,
            cost_micro_usd: gathered.cost_micro_usd,
        })
    });
    let progress = progress.or_else(|| {
        gathered.progress.as_ref().map(|text| {
            let owner = monitor.owner();
            Box::new(Progress {
                run: owner.run.clone(),
                deliverable: owner.deliverable.clone(),
                step: owner.step.clone(),
                step_attempt: owner.step_attempt,
                text: Some(text.clone()),
                tokens: gathered.tokens,
                cost_micro_usd: gathered.cost_micro_usd,
            })
        })
    });
    shared
        .commit(Change::Usage {
            records: gathered.records,
            progress,
        })
        .await?;
    Ok(())
}

/// `argv` wrapped in the sandbox: writable are the worktree, the worktree's own git
/// directory (git keeps its index there), a temporary directory of the step's (returned, for
/// `TMPDIR`) and the configured places.
async fn sandboxed(
    home: &Path,
    a: &Attempt<'_>,
    sandbox: &crate::agents::Sandbox,
    argv: Vec<String>,
) -> Result<(Vec<String>, String), String> {
    let tmp = home
        .join("tmp")
        .join(a.lease.run.as_str())
        .join(a.deliverable.id.as_str());
    tokio::fs::create_dir_all(&tmp).await.map_err(|e| {
        format!(
            "cannot create the agent's temporary directory {}: {e}",
            tmp.display()
        )
    })?;
    let mut writable = vec![a.worktree.to_path_buf(), tmp.clone()];
    // A worktree's `.git` is a file naming its git directory: `gitdir: /repo/.git/worktrees/x`.
    if let Ok(pointer) = tokio::fs::read_to_string(a.worktree.join(".git")).await
        && let Some(dir) = pointer.trim().strip_prefix("gitdir:")
    {
        writable.push(dir.trim().into());
    }
    writable.extend(sandbox.write.iter().filter(|p| p.exists()).cloned());
    let mut wrapped = vec![
        sandbox.program.to_string_lossy().into_owned(),
        "sandbox".to_owned(),
    ];
    for dir in writable {
        wrapped.push("--write".to_owned());
        wrapped.push(dir.to_string_lossy().into_owned());
    }
    wrapped.push("--".to_owned());
    wrapped.extend(argv);
    Ok((wrapped, tmp.to_string_lossy().into_owned()))
}

async fn write_prompt(file: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::write(file, text).await
}

/// Facts about the run an agent is told.
fn context(shared: &Shared, a: &Attempt<'_>) -> Vec<(String, String)> {
    let run = &shared.run;
    let mut facts = vec![
        ("run".to_owned(), run.id.to_string()),
        ("tenant".to_owned(), run.tenant.to_string()),
        ("region".to_owned(), run.region.clone()),
    ];
    if let Some(title) = &run.title {
        facts.push(("plan".to_owned(), title.clone()));
    }
    if let Some(branch) = &run.branch {
        facts.push(("target branch".to_owned(), branch.clone()));
    }
    if !a.deliverable.dependencies.is_empty() {
        let done: Vec<&str> = a
            .deliverable
            .dependencies
            .iter()
            .map(kamachiq_domain::DeliverableId::as_str)
            .collect();
        facts.push((
            "merged before this (dependencies)".to_owned(),
            done.join(", "),
        ));
    }
    if let Some(persona) = &a.deliverable.persona {
        facts.push(("persona".to_owned(), persona.clone()));
    }
    facts.push(("step".to_owned(), a.step.name.to_string()));
    facts
}

/// The variables kamachiq sets for every step.
fn kamachiq_env(shared: &Shared, a: &Attempt<'_>) -> Vec<(String, String)> {
    vec![
        ("KAMACHIQ_RUN_ID".to_owned(), a.lease.run.to_string()),
        ("KAMACHIQ_TENANT".to_owned(), shared.run.tenant.to_string()),
        (
            "KAMACHIQ_DELIVERABLE".to_owned(),
            a.lease.deliverable.to_string(),
        ),
        ("KAMACHIQ_STEP".to_owned(), a.step.name.to_string()),
        (
            "KAMACHIQ_STEP_ATTEMPT".to_owned(),
            a.step_attempt.to_string(),
        ),
        (
            "KAMACHIQ_WORKTREE".to_owned(),
            a.worktree.to_string_lossy().into_owned(),
        ),
    ]
}

/// The step's `env`, with secret references (`env:NAME`, `file:PATH`) resolved now, at the
/// moment of use: the plan and the store keep only the reference.
fn resolve_env(step: &Step) -> Result<Vec<(String, String)>, String> {
    step.env
        .iter()
        .map(|(key, value)| {
            let resolved = if let Some(name) = value.strip_prefix("env:") {
                std::env::var(name).map_err(|_| {
                    format!(
                        "step `{}`: `{key}` refers to env:{name}, which is not set",
                        step.name
                    )
                })?
            } else if let Some(path) = value.strip_prefix("file:") {
                std::fs::read_to_string(path)
                    .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                    .map_err(|e| {
                        format!(
                            "step `{}`: `{key}` refers to file:{path}, which cannot be read: {e}",
                            step.name
                        )
                    })?
            } else {
                value.clone()
            };
            Ok((key.clone(), resolved))
        })
        .collect()
}
