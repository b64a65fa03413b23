//! `kamachiq stop`, `kamachiq resume-all` and `kamachiq pause RUN`: on the local store, or on a
//! server with `--server`.

use std::time::{Duration, Instant};

use kamachiq_api::StopView;

use crate::cli::{PauseArgs, StopArgs, StopStatusArgs};
use crate::client::Client;
use crate::commands::{engine, open_store, resolve_run};
use crate::config::Config;
use crate::{InvalidInput, exit, output};

pub async fn stop(config: &Config, client: Option<&Client>, args: &StopArgs) -> anyhow::Result<u8> {
    let reason = args.reason.trim();
    if reason.is_empty() {
        return Err(InvalidInput::new("--reason must not be empty").into());
    }
    let view = match client {
        Some(client) => client.stop(reason).await?,
        None => {
            let engine = engine(config, open_store(config).await?)?;
            let (stop, changed) = engine.stop_all(&config.actor, reason).await?;
            kamachiq_server::stop_view(Some(&stop), true, changed)
        }
    };
    if args.json {
        output::json(&view);
    } else {
        show(&view, "on");
    }
    // The drivers stop their steps on their next look (twice a second); this host's are
    // counted until they are gone.
    if client.is_none() && !args.no_wait {
        let began = Instant::now();
        let deadline = began + config.kill_grace + Duration::from_secs(3);
        let mut left = kamachiq_engine::step_processes();
        while left > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = kamachiq_engine::step_processes();
        }
        if !args.json {
            if left == 0 {
                output::note(format!(
                    "no step is running on this host ({} after the stop)",
                    output::duration(began.elapsed())
                ));
            } else {
                output::note(format!(
                    "{left} step process(es) still running on this host after {}: is a driver of this store stuck?",
                    output::duration(began.elapsed())
                ));
                return Ok(exit::ERROR);
            }
        }
    }
    Ok(exit::OK)
}

pub async fn resume_all(
    config: &Config,
    client: Option<&Client>,
    args: &StopStatusArgs,
) -> anyhow::Result<u8> {
    let view = match client {
        Some(client) => client.resume_all().await?,
        None => {
            let engine = engine(config, open_store(config).await?)?;
            let lifted = engine.resume_all(&config.actor).await?;
            kamachiq_server::stop_view(lifted.as_ref(), false, lifted.is_some())
        }
    };
    if args.json {
        output::json(&view);
    } else if view.changed {
        output::line(format!(
            "emergency stop lifted (it was turned on by {} at {}: {})",
            view.by.as_deref().unwrap_or("?"),
            view.at.map(|t| t.to_string()).unwrap_or_default(),
            view.reason.as_deref().unwrap_or("")
        ));
        if client.is_none() {
            let store = open_store(config).await?;
            let waiting = store.running_runs().await?;
            if !waiting.is_empty() {
                output::note(format!(
                    "{} run(s) wait for a driver: a running `kamachiq serve` takes them, or `kamachiq resume RUN` ({})",
                    waiting.len(),
                    waiting
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    } else {
        output::line("the emergency stop was not on; nothing changed");
    }
    Ok(exit::OK)
}

pub async fn pause(
    config: &Config,
    client: Option<&Client>,
    args: &PauseArgs,
) -> anyhow::Result<u8> {
    let (run, changed) = match client {
        Some(client) => {
            let id = client.resolve(&args.run).await?;
            let view = client.pause(&id).await?;
            (id, view.changed)
        }
        None => {
            let store = open_store(config).await?;
            let run = resolve_run(&store, &args.run).await?;
            let stored = store.run(&run).await?;
            if stored.state.is_terminal() {
                return Err(InvalidInput::new(format!(
                    "run {run} has already {}; there is nothing to pause",
                    stored.state
                ))
                .into());
            }
            let engine = engine(config, store)?;
            let changed = engine.pause(&run, &config.actor).await?;
            (run.to_string(), changed)
        }
    };
    if args.json {
        output::json(&serde_json::json!({"run_id": run, "paused": true, "changed": changed}));
    } else if changed {
        output::line(format!(
            "run {run} paused: its driver hands its work back within a second. Continue it with: kamachiq resume {run}"
        ));
    } else {
        output::line(format!("run {run} was paused already"));
    }
    Ok(exit::OK)
}

fn show(view: &StopView, state: &str) {
    if view.changed {
        output::line(format!(
            "emergency stop {state}: no new action starts; running steps are stopped with their state saved. Lift it with: kamachiq resume-all"
        ));
    } else {
        output::line(format!(
            "the emergency stop was already on (by {} at {}: {})",
            view.by.as_deref().unwrap_or("?"),
            view.at.map(|t| t.to_string()).unwrap_or_default(),
            view.reason.as_deref().unwrap_or("")
        ));
    }
}
