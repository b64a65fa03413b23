//! The commands that act on a kamachiq server (`--server URL`): the same output as on the
//! local store, from the server's API.

use std::path::Path;

use kamachiq_api::{CancelOutcomeView, ExecuteParams, RunsParams};
use kamachiq_domain::{EventKind, RunState};
use serde_json::json;

use crate::cli::{CancelArgs, ResumeArgs, RunArgs, RunsArgs, StatusArgs};
use crate::client::Client;
use crate::commands::cancel::{wait_for_end, waited};
use crate::commands::inspect::{print_runs, print_status};
use crate::commands::summary;
use crate::config::Config;
use crate::progress::{Mode, Progress};
use crate::{InvalidInput, exit, output};

/// The client for `--server`, when one is configured.
pub fn client(config: &Config) -> anyhow::Result<Option<Client>> {
    let Some(url) = &config.server_url else {
        return Ok(None);
    };
    let Some(token) = &config.token else {
        return Err(InvalidInput::new(format!(
            "--server {url} needs a token: set KAMACHIQ_TOKEN (or pass --token)"
        ))
        .into());
    };
    Client::new(url, token).map(Some)
}

pub async fn runs(client: &Client, args: &RunsArgs) -> anyhow::Result<u8> {
    let page = client
        .runs(&RunsParams {
            tenant_id: args.tenant.clone(),
            limit: Some(args.limit.clamp(1, 500)),
            before: None,
        })
        .await?;
    if args.json {
        output::json_pretty(&page.runs);
    } else if page.runs.is_empty() {
        output::note(format!("no runs yet on {}", client.base()));
    } else {
        print_runs(&page.runs);
    }
    Ok(exit::OK)
}

pub async fn status(client: &Client, args: &StatusArgs) -> anyhow::Result<u8> {
    let id = client.resolve(&args.run).await?;
    let view = client.run(&id).await?;
    if args.json {
        output::json_pretty(&view);
    } else {
        print_status(&view);
    }
    Ok(exit::OK)
}

pub async fn cancel(client: &Client, args: &CancelArgs) -> anyhow::Result<u8> {
    let id = client.resolve(&args.run).await?;
    let answer = client.cancel(&id).await?;
    let (label, message, code) = match (answer.outcome, &answer.driver) {
        (CancelOutcomeView::Cancelled, _) => ("cancelled", format!("run {id} cancelled"), exit::OK),
        (CancelOutcomeView::AlreadyFinished, _) => (
            "already_finished",
            format!(
                "run {id} had already {}; nothing to cancel",
                answer
                    .state
                    .map_or_else(|| "finished".to_owned(), |s| s.to_string())
            ),
            exit::OK,
        ),
        (CancelOutcomeView::Requested, driver) => {
            let driver = driver.clone().unwrap_or_default();
            if args.no_wait {
                (
                    "requested",
                    format!("run {id}: cancel requested; its driver ({driver}) is stopping it"),
                    exit::OK,
                )
            } else {
                let ended = wait_for_end(|| async { Ok(client.run(&id).await?.state) }).await?;
                waited(&id, &driver, ended)
            }
        }
    };
    if args.json {
        let state = client.run(&id).await?.state;
        output::json(&json!({"id": id, "outcome": label, "state": state}));
    } else {
        output::line(message);
    }
    Ok(code)
}

pub async fn resume(client: &Client, args: &ResumeArgs) -> anyhow::Result<u8> {
    let id = client.resolve(&args.run).await?;
    let answer = client.resume(&id, args.retry_failed).await?;
    follow(client, &id, Mode::pick(args.json), answer.since).await
}

pub async fn run(client: &Client, config: &Config, args: &RunArgs) -> anyhow::Result<u8> {
    // Validate here first: problems are shown with this file's name and lines.
    let plan = super::plan::load(&args.plan)?;
    let text = std::fs::read_to_string(&args.plan)
        .map_err(|e| InvalidInput::new(format!("cannot read {}: {e}", args.plan.display())))?;
    let repo = match (&args.repo, &plan.repo) {
        (Some(repo), _) => Some(server_path(repo)?),
        (None, Some(repo)) => {
            let base = args
                .plan
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Some(server_path(&base.join(repo))?)
        }
        (None, None) => None,
    };
    let is_json = args
        .plan
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let accepted = client
        .execute(
            text,
            is_json,
            &ExecuteParams {
                repo,
                branch: args.branch.clone(),
                concurrency: Some(args.concurrency.unwrap_or(config.concurrency)),
            },
        )
        .await?;
    let mode = Mode::pick(args.json);
    if mode != Mode::Json {
        output::note(format!(
            "run {}: submitted to {} for tenant {}",
            accepted.run_id,
            client.base(),
            accepted.tenant
        ));
    }
    follow(client, &accepted.run_id, mode, 0).await
}

/// A repository path as the server should see it: absolute. A path that exists here is
/// resolved here (the usual case: the server runs on this machine).
fn server_path(path: &Path) -> anyhow::Result<String> {
    if let Ok(resolved) = std::fs::canonicalize(path) {
        return Ok(resolved.display().to_string());
    }
    if path.is_absolute() {
        return Ok(path.display().to_string());
    }
    Err(InvalidInput::new(format!(
        "--repo {}: not found here; give the repository's absolute path on the server",
        path.display()
    ))
    .into())
}

/// Shows the run's events after `since` until it finishes, then its summary; the exit code
/// tells how it ended. Ctrl-C stops following; the run goes on on the server.
async fn follow(client: &Client, id: &str, mode: Mode, since: i64) -> anyhow::Result<u8> {
    let view = client.run(id).await?;
    let mut progress = Progress::new(mode, &view);
    progress.last_seq = since;
    let following = client.follow(id, since, |event| {
        progress.show(event);
        event.kind != EventKind::RunFinished
    });
    let detached = tokio::select! {
        followed = following => {
            followed?;
            false
        }
        _ = tokio::signal::ctrl_c() => true,
    };
    progress.finish();
    let view = client.run(id).await?;
    if detached {
        if mode != Mode::Json {
            output::note(format!(
                "stopped following; run {id} goes on on the server: kamachiq --server {} status {id}",
                client.base()
            ));
        }
        return Ok(exit::INTERRUPTED);
    }
    if mode != Mode::Json {
        summary(&view);
    }
    Ok(match view.state {
        RunState::Succeeded => exit::OK,
        RunState::Failed => exit::RUN_FAILED,
        RunState::Cancelled => exit::CANCELLED,
        RunState::Running => exit::INTERRUPTED,
    })
}
