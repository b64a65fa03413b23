//! `kamachiq runs`, `kamachiq status` and `kamachiq logs`: reading what the store knows.

use kamachiq_api::{RunSummaryView, RunView};
use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableId, TenantId, Timestamp};
use kamachiq_engine::read_capped;
use kamachiq_store::RunQuery;

use crate::cli::{LogsArgs, RunsArgs, StatusArgs};
use crate::commands::{open_store, resolve_run, run_view};
use crate::config::Config;
use crate::{InvalidInput, exit, output};

pub async fn runs(config: &Config, args: &RunsArgs) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let tenant = match &args.tenant {
        Some(t) => Some(
            TenantId::parse(t.clone()).map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?,
        ),
        None => None,
    };
    let runs = store
        .runs(&RunQuery {
            tenant,
            before: None,
            limit: args.limit,
        })
        .await?;
    let views: Vec<RunSummaryView> = runs.iter().map(RunSummaryView::from).collect();
    if args.json {
        output::json_pretty(&views);
        return Ok(exit::OK);
    }
    if views.is_empty() {
        output::note(format!("no runs yet in {}", config.database_url_display()));
        return Ok(exit::OK);
    }
    print_runs(&views);
    Ok(exit::OK)
}

/// The table of `kamachiq runs`.
pub fn print_runs(views: &[RunSummaryView]) {
    let mut table = output::table(&[
        "run",
        "state",
        "tenant",
        "done",
        "failed",
        "created (utc)",
        "title",
    ]);
    for r in views {
        table.add_row(vec![
            r.id.clone(),
            r.state.to_string(),
            r.tenant.clone(),
            format!("{}/{}", r.counts.succeeded, r.counts.total),
            r.counts.failed.to_string(),
            short_time(r.created_at),
            r.title.clone().unwrap_or_default(),
        ]);
    }
    output::line(table);
}

pub async fn status(config: &Config, args: &StatusArgs) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let run = resolve_run(&store, &args.run).await?;
    let view = run_view(&store, &run).await?;
    if args.json {
        output::json_pretty(&view);
        return Ok(exit::OK);
    }
    print_status(&view);
    Ok(exit::OK)
}

pub fn print_status(view: &RunView) {
    output::line(format!("run       {}", view.id));
    if let Some(title) = &view.title {
        output::line(format!("title     {title}"));
    }
    output::line(format!(
        "state     {}{}",
        view.state,
        if view.cancel_requested && !view.state.is_terminal() {
            " (cancel requested)"
        } else {
            ""
        }
    ));
    output::line(format!("tenant    {} ({})", view.tenant, view.region));
    if let (Some(repo), Some(branch)) = (&view.repo, &view.branch) {
        output::line(format!("target    {repo} ({branch})"));
    }
    output::line(format!("created   {}", view.created_at));
    if let Some(end) = view.finished_at {
        output::line(format!(
            "finished  {end} (took {})",
            output::duration(end.since(view.created_at))
        ));
    }
    match &view.driver {
        Some(driver) => output::line(format!(
            "driver    {} (lease until {})",
            driver.owner, driver.lease_expires_at
        )),
        None if !view.state.is_terminal() => output::line(format!(
            "driver    none: the run is not being driven; continue it with `kamachiq resume {}`",
            view.id
        )),
        None => {}
    }
    output::line("");
    let mut table = output::table(&[
        "deliverable",
        "state",
        "attempts",
        "steps",
        "started (utc)",
        "finished (utc)",
        "detail",
    ]);
    for d in &view.deliverables {
        let detail = match (&d.reason, &d.current_step, d.waiting_on) {
            (Some(reason), _, _) => format!("{}: {}", reason.code, reason.detail),
            (None, Some(step), _) => format!("running {step}"),
            (None, None, n) if n > 0 => format!("waiting for {n} of {}", d.dependencies.join(", ")),
            _ => String::new(),
        };
        table.add_row(vec![
            d.id.clone(),
            d.state.to_string(),
            d.attempts.to_string(),
            format!("{}/{}", d.steps_done, d.steps_total),
            d.started_at.map(short_time).unwrap_or_default(),
            d.finished_at.map(short_time).unwrap_or_default(),
            detail,
        ]);
    }
    output::line(table);
}

pub async fn logs(config: &Config, args: &LogsArgs) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let run = resolve_run(&store, &args.run).await?;
    let stored = store.run(&run).await?;
    let Some(planned) = stored.plan.deliverable(&args.deliverable) else {
        let known: Vec<String> = stored
            .plan
            .deliverables
            .iter()
            .map(|d| d.id.to_string())
            .collect();
        return Err(InvalidInput::new(format!(
            "run {run} has no deliverable `{}` (it has: {})",
            args.deliverable,
            known.join(", ")
        ))
        .into());
    };
    if let Some(step) = &args.step
        && !planned.steps.iter().any(|s| s.name.as_str() == step)
    {
        let names: Vec<&str> = planned.steps.iter().map(|s| s.name.as_str()).collect();
        return Err(InvalidInput::new(format!(
            "deliverable `{}` has no step `{step}` (its steps: {})",
            planned.id,
            names.join(", ")
        ))
        .into());
    }
    let id = DeliverableId::parse(args.deliverable.clone())
        .map_err(|e| InvalidInput::new(e.to_string()))?;
    let attempts = store.step_attempts(&run, Some(&id)).await?;
    let mut shown = 0;
    for (index, step) in planned.steps.iter().enumerate() {
        if args
            .step
            .as_deref()
            .is_some_and(|s| s != step.name.as_str())
        {
            continue;
        }
        let of_step: Vec<_> = attempts
            .iter()
            .filter(|a| a.step_index as usize == index)
            .collect();
        let chosen = match args.attempt {
            Some(n) => of_step.iter().find(|a| a.attempt == n).copied(),
            None => of_step.last().copied(),
        };
        let Some(attempt) = chosen else {
            if args.step.is_some() {
                let which = args
                    .attempt
                    .map(|n| format!("attempt {n} of "))
                    .unwrap_or_default();
                return Err(
                    InvalidInput::new(format!("{which}step `{}` has not run", step.name)).into(),
                );
            }
            continue;
        };
        let exit = attempt
            .exit_code
            .map(|c| format!(", exit {c}"))
            .unwrap_or_default();
        output::line(format!(
            "── {} · attempt {} · {}{exit} ──",
            step.name, attempt.attempt, attempt.state
        ));
        // Finished attempts have their output in the store. A running one, or one whose
        // driver was killed before it could record it, still has its log file on this host.
        let recorded = store
            .step_output(&run, &id, attempt.step_index, attempt.attempt)
            .await?;
        let text = match recorded {
            Some(text) => text,
            None => {
                let log = config
                    .home
                    .join("logs")
                    .join(run.as_str())
                    .join(id.as_str())
                    .join(format!("{index}-{}.{}.log", step.name, attempt.attempt));
                match read_capped(&log, 1024 * 1024).await {
                    Ok((text, _)) => text,
                    Err(_) if attempt.state == StepState::Running => {
                        "(running on another machine; its output is kept when it ends)".to_owned()
                    }
                    Err(_) => "(no output was recorded)".to_owned(),
                }
            }
        };
        output::line(text.trim_end());
        shown += 1;
    }
    if shown == 0 {
        output::note(format!("deliverable `{id}` has not run any step yet"));
    }
    Ok(exit::OK)
}

/// `2026-11-22 10:04:05` for tables.
pub fn short_time(t: Timestamp) -> String {
    let text = t.to_string();
    text.get(..19).map_or(text.clone(), |s| s.replace('T', " "))
}
