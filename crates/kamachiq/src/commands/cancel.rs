//! `kamachiq cancel`.

use std::time::Duration;

use kamachiq_domain::RunState;
use kamachiq_engine::CancelOutcome;
use serde_json::json;

use crate::cli::CancelArgs;
use crate::commands::{engine, open_store, resolve_run};
use crate::config::Config;
use crate::{exit, output};

/// How long `cancel` waits for a driver to stop the run before saying so and returning.
const WAIT: Duration = Duration::from_secs(60);

/// Polls `state` until the run has ended, for at most [`WAIT`]. `None`: it had not by then.
pub async fn wait_for_end<F, Fut>(mut state: F) -> anyhow::Result<Option<RunState>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<RunState>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = state().await?;
        if now.is_terminal() {
            return Ok(Some(now));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What `cancel` reports after waiting for a driver: label, message, exit code.
pub fn waited(run: &str, driver: &str, ended: Option<RunState>) -> (&'static str, String, u8) {
    match ended {
        Some(state) => ("cancelled", format!("run {run} {state}"), exit::OK),
        None => (
            "requested",
            format!(
                "run {run}: cancel requested, but its driver ({driver}) has not stopped it within {}s",
                WAIT.as_secs()
            ),
            exit::ERROR,
        ),
    }
}

pub async fn cancel(config: &Config, args: &CancelArgs) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let run = resolve_run(&store, &args.run).await?;
    let engine = engine(config, store.clone())?;
    let outcome = engine.cancel(&run).await?;
    let (label, message, code) = match outcome {
        CancelOutcome::Cancelled => ("cancelled", format!("run {run} cancelled"), exit::OK),
        CancelOutcome::AlreadyFinished(state) => (
            "already_finished",
            format!("run {run} had already {state}; nothing to cancel"),
            exit::OK,
        ),
        CancelOutcome::Requested { driver } if args.no_wait => (
            "requested",
            format!("run {run}: cancel requested; its driver ({driver}) is stopping it"),
            exit::OK,
        ),
        CancelOutcome::Requested { driver } => {
            let ended = wait_for_end(|| async { Ok(store.run_control(&run).await?.state) }).await?;
            waited(run.as_str(), &driver, ended)
        }
    };
    if args.json {
        let state = store.run_control(&run).await?.state;
        output::json(&json!({"id": run, "outcome": label, "state": state}));
    } else {
        output::line(message);
    }
    Ok(code)
}
