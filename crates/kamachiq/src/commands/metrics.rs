//! `kamachiq metrics cost`: spend from the usage ledger (seed 003's `metrics cost`).

use kamachiq_domain::{TenantId, Timestamp};
use kamachiq_store::SpendQuery;

use crate::cli::MetricsCommand;
use crate::commands::policy::since;
use crate::commands::{open_store, resolve_run};
use crate::config::Config;
use crate::{InvalidInput, exit, output};

pub async fn metrics(config: &Config, command: &MetricsCommand) -> anyhow::Result<u8> {
    let MetricsCommand::Cost {
        by,
        tenant,
        run,
        since: since_text,
        json,
    } = command;
    let by =
        kamachiq_server::spend_by(Some(by)).map_err(|e| InvalidInput::new(format!("--by: {e}")))?;
    let tenant = tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
    let store = open_store(config).await?;
    let run = match run {
        Some(reference) => Some(resolve_run(&store, reference).await?),
        None => None,
    };
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let since = since_text
        .as_deref()
        .map(|t| since(t, now))
        .transpose()
        .map_err(|e| InvalidInput::new(format!("--since: {e}")))?;
    let rows = store
        .spend(&SpendQuery {
            tenant,
            run,
            since,
            by,
        })
        .await?;
    let view = kamachiq_server::cost_view(by, &rows);
    if *json {
        output::json_pretty(&view);
        return Ok(exit::OK);
    }
    if view.rows.is_empty() {
        output::note("no agent usage recorded");
        return Ok(exit::OK);
    }
    let mut table = output::table(&[&view.by, "tokens", "input", "output", "cost", "steps"]);
    for r in &view.rows {
        table.add_row(vec![
            r.key.clone(),
            r.tokens.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            format!("${:.2}", r.cost_usd),
            r.steps.to_string(),
        ]);
    }
    output::line(table);
    output::line(format!(
        "total: {} tokens, ${:.2}",
        view.total_tokens, view.total_cost_usd
    ));
    Ok(exit::OK)
}
