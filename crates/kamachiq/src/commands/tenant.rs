//! `kamachiq tenant create|show|list|update`: the settings the built-in policy guards enforce,
//! in the local store. Every change is audited and re-evaluates the tenant's blocked work.

use kamachiq_api::TenantView;
use kamachiq_domain::TenantId;
use kamachiq_domain::tenant::{TenantSettings, TenantUpdate};

use crate::cli::{TenantCommand, TenantField, TenantSettingsArgs};
use crate::commands::{engine, open_store};
use crate::config::Config;
use crate::{InvalidInput, exit, output};

pub async fn tenant(config: &Config, command: &TenantCommand) -> anyhow::Result<u8> {
    match command {
        TenantCommand::Create { id, settings, json } => {
            let id = tenant_id(id)?;
            let update = update_from(settings, &[])?;
            let settings = TenantSettings::default()
                .updated(&update)
                .map_err(|e| InvalidInput::new(flag_message(&e)))?;
            let engine = engine(config, open_store(config).await?)?;
            let tenant = engine
                .store()
                .create_tenant(&id, &settings, &config.actor, engine.now())
                .await
                .map_err(store_input)?;
            let due = engine.policy_changed(&id).await?;
            show(&TenantView::from(&tenant), *json);
            note_due(due, *json);
            Ok(exit::OK)
        }
        TenantCommand::Show { id, json } => {
            let id = tenant_id(id)?;
            let store = open_store(config).await?;
            let tenant = store.tenant_or_default(&id).await?;
            show(&TenantView::from(&tenant), *json);
            Ok(exit::OK)
        }
        TenantCommand::List { json } => {
            let store = open_store(config).await?;
            let views: Vec<TenantView> = store
                .tenants()
                .await?
                .iter()
                .map(TenantView::from)
                .collect();
            if *json {
                output::json_pretty(&views);
            } else if views.is_empty() {
                output::note("no tenant is configured; every tenant has the defaults");
            } else {
                let mut table = output::table(&["tenant", "regions", "threshold", "version"]);
                for v in &views {
                    table.add_row(vec![
                        v.id.clone(),
                        list_or_any(&v.regions),
                        v.threshold.to_string(),
                        v.version.to_string(),
                    ]);
                }
                output::line(table);
            }
            Ok(exit::OK)
        }
        TenantCommand::Update {
            id,
            settings,
            clear,
            json,
        } => {
            let id = tenant_id(id)?;
            let update = update_from(settings, clear)?;
            if update.is_empty() {
                return Err(InvalidInput::new(
                    "nothing to change: give a setting (--region, --threshold, ...) or --clear FIELD",
                )
                .into());
            }
            let engine = engine(config, open_store(config).await?)?;
            let tenant = engine
                .store()
                .update_tenant(&id, &update, &config.actor, engine.now())
                .await
                .map_err(store_input)?;
            let due = engine.policy_changed(&id).await?;
            show(&TenantView::from(&tenant), *json);
            note_due(due, *json);
            Ok(exit::OK)
        }
    }
}

fn tenant_id(id: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(id).map_err(|e| InvalidInput::new(e.to_string()).into())
}

/// The flags as a settings change; `clear` removes restrictions and caps.
fn update_from(args: &TenantSettingsArgs, clear: &[TenantField]) -> anyhow::Result<TenantUpdate> {
    let list = |values: &[String], field: TenantField| -> Option<Vec<String>> {
        if clear.contains(&field) {
            Some(Vec::new())
        } else if values.is_empty() {
            None
        } else {
            Some(values.to_vec())
        }
    };
    for (field, given) in [
        (TenantField::Regions, !args.regions.is_empty()),
        (TenantField::Personas, !args.personas.is_empty()),
        (TenantField::Tools, !args.tools.is_empty()),
        (
            TenantField::DeliverableTokens,
            args.deliverable_tokens.is_some(),
        ),
        (TenantField::RunTokens, args.run_tokens.is_some()),
        (TenantField::DayTokens, args.day_tokens.is_some()),
        (TenantField::DayCost, args.day_cost.is_some()),
    ] {
        if given && clear.contains(&field) {
            return Err(InvalidInput::new(format!(
                "--clear {} and a value for it at once: give one or the other",
                clap::ValueEnum::to_possible_value(&field)
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default()
            ))
            .into());
        }
    }
    let cap = |value: Option<u64>, field: TenantField| {
        if clear.contains(&field) {
            Some(None)
        } else {
            value.map(Some)
        }
    };
    let day_cost = match args.day_cost {
        None => None,
        Some(usd) if usd.is_finite() && usd > 0.0 => Some((usd * 1_000_000.0).round() as u64),
        Some(usd) => {
            return Err(InvalidInput::new(format!(
                "--day-cost: must be a positive number of dollars (got {usd})"
            ))
            .into());
        }
    };
    Ok(TenantUpdate {
        regions: list(&args.regions, TenantField::Regions),
        threshold: args.threshold,
        deliverable_tokens: cap(args.deliverable_tokens, TenantField::DeliverableTokens),
        run_tokens: cap(args.run_tokens, TenantField::RunTokens),
        day_tokens: cap(args.day_tokens, TenantField::DayTokens),
        day_cost_micro_usd: cap(day_cost, TenantField::DayCost),
        personas: list(&args.personas, TenantField::Personas),
        tools: list(&args.tools, TenantField::Tools),
    })
}

/// A settings error in the words of the flags that set it.
fn flag_message(e: &kamachiq_domain::tenant::InvalidSetting) -> String {
    let field = e.field.split('[').next().unwrap_or(&e.field);
    let flag = match field {
        "regions" => "--region",
        "personas" => "--persona",
        "tools" => "--tool",
        "threshold" => "--threshold",
        "budgets.deliverable_tokens" => "--deliverable-tokens",
        "budgets.run_tokens" => "--run-tokens",
        "budgets.day_tokens" => "--day-tokens",
        "budgets.day_cost_micro_usd" => "--day-cost",
        other => other,
    };
    format!("{flag}: {}", e.why)
}

/// Store errors that are the user's input (exit 2).
fn store_input(e: kamachiq_store::Error) -> anyhow::Error {
    match e {
        kamachiq_store::Error::InvalidSetting(invalid) => {
            InvalidInput::new(flag_message(&invalid)).into()
        }
        e @ (kamachiq_store::Error::TenantExists(_) | kamachiq_store::Error::TenantNotFound(_)) => {
            InvalidInput::new(e.to_string()).into()
        }
        other => other.into(),
    }
}

fn list_or_any(values: &[String]) -> String {
    if values.is_empty() {
        "any".to_owned()
    } else {
        values.join(", ")
    }
}

fn show(view: &TenantView, json: bool) {
    if json {
        output::json_pretty(view);
        return;
    }
    let cap = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |n| n.to_string());
    let b = &view.budgets;
    output::line(format!(
        "tenant {}{}",
        view.id,
        if view.version == 0 {
            " (not configured: the defaults apply)".to_owned()
        } else {
            format!(" (version {})", view.version)
        }
    ));
    output::line(format!("  regions    {}", list_or_any(&view.regions)));
    output::line(format!("  threshold  {}", view.threshold));
    output::line(format!("  personas   {}", list_or_any(&view.personas)));
    output::line(format!("  tools      {}", list_or_any(&view.tools)));
    output::line(format!(
        "  budgets    deliverable {} tokens · run {} tokens · day {} tokens · day ${}",
        cap(b.deliverable_tokens),
        cap(b.run_tokens),
        cap(b.day_tokens),
        b.day_cost_micro_usd
            .map_or_else(|| "none".to_owned(), |m| format!("{:.2}", m as f64 / 1e6))
    ));
}

fn note_due(due: u64, json: bool) {
    if due > 0 && !json {
        output::note(format!(
            "{due} blocked deliverable(s) of this tenant are due for re-evaluation; a running \
             `kamachiq serve` does it at once, or `kamachiq requeue resolve ID`"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_an_update_and_clear_removes() {
        let args = TenantSettingsArgs {
            regions: vec!["eu-west-1".into()],
            day_cost: Some(12.5),
            ..TenantSettingsArgs::default()
        };
        let update = update_from(&args, &[TenantField::Tools, TenantField::RunTokens]).unwrap();
        assert_eq!(update.regions, Some(vec!["eu-west-1".to_owned()]));
        assert_eq!(update.day_cost_micro_usd, Some(Some(12_500_000)));
        assert_eq!(update.tools, Some(Vec::new()));
        assert_eq!(update.run_tokens, Some(None));
        assert_eq!(update.personas, None);
        assert!(update_from(&args, &[TenantField::Regions]).is_err());
        let negative = TenantSettingsArgs {
            day_cost: Some(-1.0),
            ..TenantSettingsArgs::default()
        };
        assert!(update_from(&negative, &[]).is_err());
    }
}
