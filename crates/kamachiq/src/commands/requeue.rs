//! `kamachiq requeue list|resolve`: deliverables held back by policy, in the local store.

use kamachiq_api::RequeueEntryView;
use kamachiq_domain::TenantId;
use kamachiq_engine::Resolved;
use kamachiq_server::{check_justification, requeue_view, resolved_view};
use kamachiq_store::RequeueQuery;

use crate::cli::RequeueCommand;
use crate::commands::inspect::short_time;
use crate::commands::{Drive, drive_with_display, engine, open_store, resolve_run};
use crate::config::Config;
use crate::progress::Mode;
use crate::{InvalidInput, exit, output};

pub async fn requeue(config: &Config, command: &RequeueCommand) -> anyhow::Result<u8> {
    match command {
        RequeueCommand::List {
            run,
            tenant,
            all,
            json,
        } => list(config, run.as_deref(), tenant.as_deref(), *all, *json).await,
        RequeueCommand::Resolve {
            id,
            allow,
            justification,
            no_wait,
            json,
        } => {
            resolve(
                config,
                id,
                allow.then_some(justification.as_deref()),
                *no_wait,
                *json,
            )
            .await
        }
    }
}

async fn list(
    config: &Config,
    run: Option<&str>,
    tenant: Option<&str>,
    all: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let tenant = tenant
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
    let run = match run {
        Some(reference) => Some(resolve_run(&store, reference).await?),
        None => None,
    };
    let entries = store
        .requeue(&RequeueQuery {
            tenant,
            run,
            open: !all,
            limit: 1000,
        })
        .await?;
    let views: Vec<RequeueEntryView> = entries.iter().map(requeue_view).collect();
    if json {
        output::json_pretty(&views);
        return Ok(exit::OK);
    }
    if views.is_empty() {
        output::note(if all {
            "the requeue is empty"
        } else {
            "nothing is held back by policy"
        });
        return Ok(exit::OK);
    }
    let mut table = output::table(&["id", "run", "deliverable", "action", "since", "why"]);
    for v in &views {
        let why: Vec<String> = v
            .reasons
            .iter()
            .map(|r| format!("{}: {}", r.code, r.message))
            .collect();
        table.add_row(vec![
            v.id.clone(),
            v.run.chars().take(10).collect(),
            v.deliverable.clone(),
            v.action.clone(),
            short_time(v.created_at),
            match &v.resolution {
                Some(resolution) => format!("[{resolution}] {}", why.join("; ")),
                None => why.join("; "),
            },
        ]);
    }
    output::line(table);
    Ok(exit::OK)
}

/// `justification`: `Some` for an override (with the text, if given).
async fn resolve(
    config: &Config,
    id: &str,
    justification: Option<Option<&str>>,
    no_wait: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let engine = engine(config, open_store(config).await?)?;
    let Some(entry) = engine.requeue_entry(id).await? else {
        return Err(InvalidInput::new(format!(
            "no requeue entry `{id}` (see `kamachiq requeue list`)"
        ))
        .into());
    };
    let resolved = match justification {
        Some(text) => {
            let text = check_justification(text)
                .map_err(|e| InvalidInput::new(format!("--justification: {e}")))?;
            engine.override_block(id, &config.actor, text).await
        }
        None => engine.reevaluate(id, Some(config.actor.clone())).await,
    }
    .map_err(|e| match e {
        e @ kamachiq_engine::Error::RequeueResolved { .. } => {
            anyhow::Error::from(InvalidInput::new(e.to_string()))
        }
        other => other.into(),
    })?;
    let view = resolved_view(id, &resolved, &entry);
    if json {
        output::json(&view);
    }
    let run = match &resolved {
        Resolved::StillBlocked { decision } => {
            if !json {
                let why: Vec<String> = decision
                    .reasons
                    .iter()
                    .map(|r| format!("{}: {}", r.code, r.message))
                    .collect();
                output::line(format!(
                    "{id} is still held back ({}): {}",
                    decision.verdict,
                    why.join("; ")
                ));
                output::note(format!(
                    "override with `kamachiq requeue resolve {id} --allow --justification TEXT`"
                ));
            }
            return Ok(exit::BLOCKED);
        }
        Resolved::LetThrough {
            run,
            deliverable,
            resolution,
        } => {
            if !json {
                output::line(format!(
                    "{id}: {deliverable} of run {run} let through ({})",
                    resolution.as_str()
                ));
            }
            run.clone()
        }
    };
    if no_wait {
        return Ok(exit::OK);
    }
    // Drive the run here unless a live driver has it (it picks the deliverable up itself).
    let control = engine.store().run_control(&run).await?;
    if let Some(driver) = &control.driver
        && engine.lease_is_live(&run, driver)
    {
        if !json {
            output::note(format!(
                "run {run} is driven by {}; it runs the deliverable",
                driver.owner
            ));
        }
        return Ok(exit::OK);
    }
    let since = engine.store().last_event_seq(&run).await?;
    let drive = Drive {
        events: engine.subscribe(),
        reopen: Vec::new(),
        since,
    };
    drive_with_display(&engine, &run, Mode::pick(json), drive).await
}
