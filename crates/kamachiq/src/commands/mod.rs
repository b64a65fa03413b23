//! The commands, and what they share: opening the store, building the engine, finding a run
//! from what the user typed, and driving a run with its display.

pub mod approvals;
pub mod audit;
pub mod bench;
pub mod breaker;
pub mod cancel;
pub mod config;
pub mod control;
pub mod demo;
pub mod doctor;
pub mod governance;
pub mod inspect;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod remote;
pub mod requeue;
pub mod rollback;
pub mod run;
pub mod sandbox;
pub mod serve;
pub mod tenant;
pub mod token;
pub mod workspaces;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use kamachiq_api::RunView;
use kamachiq_domain::{DeliverableState, RunId, RunState};
use kamachiq_engine::{Ending, Engine, EngineOptions, Identity, Parts, ProcessRunner, SystemClock};
use kamachiq_store::Store;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::progress::{Mode, Progress};
use crate::{InvalidInput, exit, output};

/// How long a command waits for the circuit breakers to judge its last outcomes.
pub const BREAKERS_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Creates the home directory if needed. It ignores itself in git (a `.gitignore` of `*`), so
/// a home inside a repository never shows up as untracked files there.
pub fn ensure_home(home: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(home)
        .with_context(|| format!("cannot create the home directory {}", home.display()))?;
    let ignore = home.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(
            &ignore,
            "# kamachiq's state; not part of any repository\n*\n",
        )
        .with_context(|| format!("cannot write {}", ignore.display()))?;
    }
    Ok(())
}

/// Opens the configured store (creating the SQLite home when that is where it lives).
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    if config.database_url.is_none() {
        ensure_home(&config.home)?;
    }
    Ok(Store::open(&config.database_url()).await?)
}

/// The production engine: real processes, the wall clock.
pub fn engine(config: &Config, store: Store) -> anyhow::Result<Engine> {
    ensure_home(&config.home)?;
    let home = std::fs::canonicalize(&config.home).with_context(|| {
        format!(
            "cannot resolve the home directory {}",
            config.home.display()
        )
    })?;
    let mut options = EngineOptions::new(home);
    options.lease_ttl = config.lease_ttl;
    options.heartbeat = config.heartbeat;
    options.identity = Identity {
        name: config.author_name.clone(),
        email: config.author_email.clone(),
    };
    options.agents = config.agents.clone();
    options.review = config.review.clone();
    options.max_workspace_bytes = config.max_workspace_bytes;
    let runner = ProcessRunner {
        kill_grace: config.kill_grace,
        ..ProcessRunner::default()
    };
    Ok(Engine::new(Parts::new(
        store,
        Arc::new(runner),
        Arc::new(SystemClock),
        options,
    ))?)
}

/// The run the user means: an id, a unique prefix, or `latest`. Unknown or ambiguous
/// references are input errors.
pub async fn resolve_run(store: &Store, reference: &str) -> anyhow::Result<RunId> {
    store.resolve_run(reference).await.map_err(|e| match e {
        kamachiq_store::Error::RunNotFound(_) | kamachiq_store::Error::AmbiguousRun { .. } => {
            InvalidInput::new(e.to_string()).into()
        }
        other => other.into(),
    })
}

pub async fn run_view(store: &Store, run: &RunId) -> anyhow::Result<RunView> {
    let stored = store.run(run).await?;
    let deliverables = store.deliverables(run).await?;
    let attempts = store.step_attempts(run, None).await?;
    Ok(RunView::new(&stored, &deliverables, &attempts))
}

/// Drives `run` to its end with a live display (or JSON events), stopping cleanly on Ctrl-C
/// or SIGTERM (a second Ctrl-C quits at once). Prints the summary and returns the exit code.
pub async fn drive_with_display(
    engine: &Engine,
    run: &RunId,
    mode: Mode,
    drive: Drive,
) -> anyhow::Result<u8> {
    let Drive {
        mut events,
        reopen,
        since,
    } = drive;
    let store = engine.store().clone();
    let mut progress = Progress::new(mode, &run_view(&store, run).await?);
    progress.last_seq = since;
    // Show what happened after `since` but before the display existed.
    catch_up(&store, run, &mut progress).await?;

    let stop = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(stop.clone()));
    output::stop_on_closed_stdout(Some(stop.clone()));
    let driving = engine.resume(run, reopen, stop);
    tokio::pin!(driving);
    let ending = loop {
        tokio::select! {
            ending = &mut driving => break ending,
            received = events.recv() => match received {
                Ok(event) => progress.show(&event),
                Err(RecvError::Lagged(_)) => catch_up(&store, run, &mut progress).await?,
                Err(RecvError::Closed) => {}
            },
        }
    };
    output::stop_on_closed_stdout(None);
    signals.abort();
    // The breakers judge this run's last outcomes before the command exits.
    engine.breakers_settled(BREAKERS_SETTLE).await;
    catch_up(&store, run, &mut progress).await?;
    progress.finish();
    let ending = ending.map_err(|e| match e {
        kamachiq_engine::Error::RunBusy { .. } | kamachiq_engine::Error::RunFinished { .. } => {
            anyhow::Error::from(InvalidInput::new(e.to_string()))
        }
        other => other.into(),
    })?;
    let view = run_view(&store, run).await?;
    if mode != Mode::Json {
        summary(&view);
    }
    Ok(match ending {
        Ending::Finished(RunState::Succeeded) => exit::OK,
        Ending::Finished(RunState::Failed) => exit::RUN_FAILED,
        Ending::Finished(RunState::Cancelled) => exit::CANCELLED,
        Ending::Blocked { blocked } => {
            if mode != Mode::Json {
                output::note(format!(
                    "run {run} waits: policy held back {blocked} deliverable(s). See them with \
                     `kamachiq requeue list --run {run}`; let one through with \
                     `kamachiq requeue resolve ID` (re-evaluate) or `--allow --justification TEXT`."
                ));
            }
            exit::BLOCKED
        }
        Ending::EmergencyStop => {
            if mode != Mode::Json {
                output::note(format!(
                    "run {run} halted: the emergency stop is on; its state is saved. After \
                     `kamachiq resume-all`, continue it with: kamachiq resume {run}"
                ));
            }
            exit::HALTED
        }
        Ending::Paused => {
            if mode != Mode::Json {
                output::note(format!(
                    "run {run} is paused; its state is saved. Continue it with: kamachiq resume {run}"
                ));
            }
            exit::HALTED
        }
        Ending::Finished(RunState::Running) | Ending::Interrupted => {
            if mode != Mode::Json {
                output::note(format!(
                    "run {run} stopped; its state is saved. Continue it with: kamachiq resume {run}"
                ));
            }
            exit::INTERRUPTED
        }
    })
}

async fn catch_up(store: &Store, run: &RunId, progress: &mut Progress) -> anyhow::Result<()> {
    let filter = kamachiq_store::EventFilter {
        run: Some(run.clone()),
        tenant: None,
    };
    loop {
        let events = store.events_after(progress.last_seq, &filter, 1000).await?;
        if events.is_empty() {
            return Ok(());
        }
        for event in &events {
            progress.show(event);
        }
    }
}

/// How a run is to be driven with its display.
pub struct Drive {
    /// Subscribed before the run was submitted or resumed, so no event is missed.
    pub events: tokio::sync::broadcast::Receiver<kamachiq_domain::Event>,
    /// Deliverable states to put back to pending first (resume of a finished run).
    pub reopen: Vec<DeliverableState>,
    /// Show the run's events after this sequence number (0: all of them).
    pub since: i64,
}

/// Ctrl-C, SIGTERM or SIGHUP (the terminal went away) stops the run cleanly. A second signal
/// quits at once, killing every step's process group first so that none outlives kamachiq.
async fn watch_signals(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hangup), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot watch for signals; Ctrl-C will end kamachiq without stopping steps");
        return;
    };
    let mut received = 0;
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
            _ = hangup.recv() => {}
        }
        received += 1;
        if received == 1 {
            output::note(
                "stopping: running steps are being stopped and handed back (Ctrl-C again to quit at once)",
            );
            stop.cancel();
        } else {
            let killed = kamachiq_engine::kill_all_steps();
            output::note(format!("quitting at once; killed {killed} running step(s)"));
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    }
}
/// The table printed when a run ends.
pub fn summary(view: &RunView) {
    let mut table = output::table(&[
        "deliverable",
        "state",
        "attempts",
        "steps",
        "time",
        "detail",
    ]);
    for d in &view.deliverables {
        let time = match (d.started_at, d.finished_at) {
            (Some(start), Some(end)) => output::duration(end.since(start)),
            _ => String::new(),
        };
        let detail = match (&d.reason, &d.current_step) {
            (Some(reason), _) => format!("{}: {}", reason.code, reason.detail),
            (None, Some(step)) => format!("at step {step}"),
            (None, None) => String::new(),
        };
        table.add_row(vec![
            d.id.clone(),
            d.state.to_string(),
            d.attempts.to_string(),
            format!("{}/{}", d.steps_done, d.steps_total),
            time,
            detail,
        ]);
    }
    output::line(table);
    let took = match view.finished_at {
        Some(end) => format!(" in {}", output::duration(end.since(view.created_at))),
        None => String::new(),
    };
    let c = view.counts;
    let blocked = if c.blocked > 0 {
        format!(", {} blocked", c.blocked)
    } else {
        String::new()
    };
    output::line(format!(
        "\nrun {} {}{took}: {} succeeded, {} failed, {} skipped, {} cancelled{blocked} of {}",
        view.id, view.state, c.succeeded, c.failed, c.skipped, c.cancelled, c.total
    ));
    if c.blocked > 0 {
        output::line(format!("see why: kamachiq requeue list --run {}", view.id));
    }
    if let Some(d) = view
        .deliverables
        .iter()
        .find(|d| d.reason.is_some() && d.state != DeliverableState::Blocked)
    {
        output::line(format!(
            "see what it printed: kamachiq logs {} {}",
            view.id, d.id
        ));
    }
}
