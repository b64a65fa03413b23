//! `kamachiq policy test|eval|load|show|replay`: Rego policies and the decisions they make.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kamachiq_api::DecisionView;
use kamachiq_domain::{TenantId, Timestamp};
use kamachiq_policy::{Decision, Input, Module, PolicySet, Recorded, Verdict};
use kamachiq_server::policy_view;
use kamachiq_store::{DecisionQuery, DecisionRecord, Store};
use serde::Serialize;

use crate::cli::PolicyCommand;
use crate::commands::{engine, open_store};
use crate::config::Config;
use crate::{InvalidInput, exit, output};

pub async fn policy(config: &Config, command: &PolicyCommand) -> anyhow::Result<u8> {
    match command {
        PolicyCommand::Test { dir, json } => test(dir, *json),
        PolicyCommand::Eval {
            input,
            policy,
            json,
        } => eval(config, input, policy.as_deref(), *json).await,
        PolicyCommand::Load {
            dir,
            tenant,
            skip_tests,
            json,
        } => load(config, dir, tenant, *skip_tests, *json).await,
        PolicyCommand::Show {
            tenant,
            version,
            json,
        } => show(config, tenant, *version, *json).await,
        PolicyCommand::Replay {
            policy,
            since,
            tenant,
            json,
        } => replay(config, policy, since.as_deref(), tenant.as_deref(), *json).await,
    }
}

/// The policies in `dir`, compiled: any problem is the user's input (exit 2).
fn compile(dir: &Path) -> anyhow::Result<(Vec<Module>, PolicySet)> {
    let modules = kamachiq_policy::load_dir(dir).map_err(|e| InvalidInput::new(e.to_string()))?;
    let set =
        PolicySet::compile(0, modules.clone()).map_err(|e| InvalidInput::new(e.to_string()))?;
    Ok((modules, set))
}

fn test(dir: &Path, json: bool) -> anyhow::Result<u8> {
    let (_, set) = compile(dir)?;
    let report = set.run_tests();
    if json {
        output::json_pretty(&report);
    } else {
        for r in &report.results {
            let mark = match (&r.error, r.passed) {
                (Some(_), _) => "ERROR",
                (None, true) => "PASS",
                (None, false) => "FAIL",
            };
            let took = output::duration(r.duration);
            match &r.error {
                Some(e) => output::line(format!("{mark}  {}.{} ({took}): {e}", r.package, r.name)),
                None => output::line(format!("{mark}  {}.{} ({took})", r.package, r.name)),
            }
        }
        output::line(format!(
            "{} passed, {} failed, {} errors",
            report.passed_count(),
            report.failed_count(),
            report.errored_count()
        ));
    }
    if report.results.is_empty() {
        output::note(format!("no test_* rules found in {}", dir.display()));
    }
    Ok(if report.passed() {
        exit::OK
    } else {
        exit::RUN_FAILED
    })
}

async fn eval(
    config: &Config,
    file: &Path,
    policies: Option<&Path>,
    json: bool,
) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| InvalidInput::new(format!("cannot read the input {}: {e}", file.display())))?;
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| InvalidInput::new(format!("{}: not valid JSON: {e}", file.display())))?;
    let engine = engine(config, open_store(config).await?)?;
    if let Some(fields) = value.as_object_mut()
        && !fields.contains_key("at")
    {
        fields.insert("at".to_owned(), engine.now().to_string().into());
    }
    let input: Input = serde_json::from_value(value)
        .map_err(|e| InvalidInput::new(format!("{}: {e}", file.display())))?;
    let tenant = TenantId::parse(input.tenant.as_str())
        .map_err(|e| InvalidInput::new(format!("{}: `tenant`: {e}", file.display())))?;
    let decision = match policies {
        Some(dir) => {
            let (_, set) = compile(dir)?;
            let settings = engine.store().tenant_or_default(&tenant).await?;
            kamachiq_policy::decide(&input, &settings, Some(&set))
        }
        None => engine.gate().decide(&tenant, input).await?.decision,
    };
    if json {
        output::json_pretty(&DecisionView::from(&decision));
    } else {
        print_decision(&decision);
    }
    Ok(exit::OK)
}

fn print_decision(d: &Decision) {
    let source = d.policy_version.map_or_else(
        || "built-in guards only".to_owned(),
        |v| format!("policy v{v}"),
    );
    output::line(format!(
        "{} (score {:.2}, threshold {:.2}, risk {}; {source}, tenant settings v{})",
        d.verdict, d.score, d.threshold, d.risk, d.tenant_version
    ));
    for r in &d.reasons {
        output::line(format!("  {}: {} [{}]", r.code, r.message, r.rule));
    }
}

async fn load(
    config: &Config,
    dir: &Path,
    tenant: &str,
    skip_tests: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let tenant =
        TenantId::parse(tenant).map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
    let (modules, set) = compile(dir)?;
    let report = set.run_tests();
    if !report.passed() && !skip_tests {
        for r in report.results.iter().filter(|r| !r.passed) {
            output::note(format!(
                "failed: {}.{}{}",
                r.package,
                r.name,
                r.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        return Err(InvalidInput::new(format!(
            "{} of the policies' own tests fail; nothing was stored (--skip-tests stores them anyway)",
            report.failed_count() + report.errored_count()
        ))
        .into());
    }
    let engine = engine(config, open_store(config).await?)?;
    let (stored, added) = engine
        .store()
        .add_policy(&tenant, &modules, &config.actor, engine.now())
        .await?;
    let due = if added {
        engine.policy_changed(&tenant).await?
    } else {
        0
    };
    if json {
        output::json_pretty(&policy_view(&stored));
    } else if added {
        output::line(format!(
            "tenant {tenant}: policy v{} in force ({} modules, {} tests passed)",
            stored.version,
            modules.len(),
            report.passed_count()
        ));
        if due > 0 {
            output::note(format!(
                "{due} blocked deliverable(s) are due for re-evaluation under it"
            ));
        }
    } else {
        output::line(format!(
            "tenant {tenant}: these policies are v{} already; nothing changed",
            stored.version
        ));
    }
    Ok(exit::OK)
}

async fn show(
    config: &Config,
    tenant: &str,
    version: Option<u32>,
    json: bool,
) -> anyhow::Result<u8> {
    let tenant =
        TenantId::parse(tenant).map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
    let store = open_store(config).await?;
    let stored = match version {
        Some(v) => store.policy_version(&tenant, v).await?,
        None => store.policy(&tenant).await?,
    };
    let Some(stored) = stored else {
        return Err(InvalidInput::new(match version {
            Some(v) => format!("tenant {tenant} has no policy version {v}"),
            None => format!(
                "tenant {tenant} has no policy set; only the built-in guards decide (`kamachiq policy load DIR --tenant {tenant}`)"
            ),
        })
        .into());
    };
    if json {
        output::json_pretty(&policy_view(&stored));
        return Ok(exit::OK);
    }
    output::line(format!(
        "tenant {tenant}: policy v{} by {} at {} (sha256 {})",
        stored.version,
        stored.created_by,
        stored.created_at,
        stored.digest.get(..12).unwrap_or(&stored.digest)
    ));
    for m in &stored.modules {
        output::line(format!("\n# {}\n{}", m.name, m.source.trim_end()));
    }
    Ok(exit::OK)
}

/// When `--since` means: a date, a time, or a duration back from `now`.
pub fn since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(Timestamp::from_millis(
            now.as_millis()
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        ));
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .map(Timestamp::from_system_time)
        .map_err(|_| {
            format!(
                "`{text}` is neither a date (2026-11-01), a time (RFC 3339) nor a duration (7d)"
            )
        })
}

/// One decision that the candidate would make differently.
#[derive(Debug, Serialize)]
struct Changed {
    decision_id: String,
    tenant: String,
    run: Option<String>,
    deliverable: Option<String>,
    action: String,
    at: Timestamp,
    before: Verdict,
    after: DecisionView,
    /// The tenant's settings (budgets, regions, personas, threshold) changed since the
    /// decision: it is replayed under today's, so part of the change may be theirs, not the
    /// candidate policy's.
    settings_changed: bool,
}

#[derive(Debug, Serialize)]
struct ReplayReport {
    replayed: u64,
    /// Replayed decisions made under tenant settings other than today's.
    under_other_settings: u64,
    changed: Vec<Changed>,
}

async fn replay(
    config: &Config,
    dir: &Path,
    since_text: Option<&str>,
    tenant: Option<&str>,
    json: bool,
) -> anyhow::Result<u8> {
    let (_, candidate) = compile(dir)?;
    let tenant = tenant
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
    let store = open_store(config).await?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let since = since_text
        .map(|t| since(t, now))
        .transpose()
        .map_err(|e| InvalidInput::new(format!("--since: {e}")))?;
    let started = std::time::Instant::now();
    let mut report = ReplayReport {
        replayed: 0,
        under_other_settings: 0,
        changed: Vec::new(),
    };
    let mut settings = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .decisions(&DecisionQuery {
                tenant: tenant.clone(),
                since,
                after: after.clone(),
                limit: 1000,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        report.replayed += page.len() as u64;
        replay_page(&store, &candidate, &page, &mut settings, &mut report).await?;
    }
    if json {
        output::json_pretty(&report);
    } else {
        print_replay(&report, started.elapsed());
    }
    Ok(exit::OK)
}

/// Replays one page of decisions, each under its tenant's settings in force now (counting
/// those decided under others).
async fn replay_page(
    store: &Store,
    candidate: &PolicySet,
    page: &[DecisionRecord],
    settings: &mut BTreeMap<TenantId, kamachiq_domain::Tenant>,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let mut by_tenant: BTreeMap<TenantId, Vec<&DecisionRecord>> = BTreeMap::new();
    for record in page {
        by_tenant
            .entry(record.tenant.clone())
            .or_default()
            .push(record);
    }
    for (tenant, records) in by_tenant {
        if !settings.contains_key(&tenant) {
            let loaded = store.tenant_or_default(&tenant).await?;
            settings.insert(tenant.clone(), loaded);
        }
        let Some(tenant_settings) = settings.get(&tenant) else {
            continue;
        };
        let recorded: Vec<Recorded> = records
            .iter()
            .map(|r| Recorded {
                id: r.id.clone(),
                input: r.input.clone(),
                verdict: r.decision.verdict,
            })
            .collect();
        let other_settings =
            |r: &DecisionRecord| r.decision.tenant_version != tenant_settings.version;
        report.under_other_settings += records.iter().filter(|r| other_settings(r)).count() as u64;
        let by_id: BTreeMap<&str, &&DecisionRecord> =
            records.iter().map(|r| (r.id.as_str(), r)).collect();
        for change in kamachiq_policy::replay(&recorded, tenant_settings, Some(candidate)) {
            let Some(record) = by_id.get(change.id.as_str()) else {
                continue;
            };
            report.changed.push(Changed {
                decision_id: change.id.clone(),
                tenant: tenant.to_string(),
                run: record.run.as_ref().map(ToString::to_string),
                deliverable: record.deliverable.as_ref().map(ToString::to_string),
                action: record.input.action.as_str().to_owned(),
                at: record.at,
                before: change.before,
                after: DecisionView::from(&change.after),
                settings_changed: other_settings(record),
            });
        }
    }
    Ok(())
}

fn print_replay(report: &ReplayReport, took: Duration) {
    let mut shifts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for c in &report.changed {
        *shifts
            .entry((c.before.as_str(), c.after.decision.as_str()))
            .or_default() += 1;
    }
    output::line(format!(
        "{} decisions replayed in {}; {} would change",
        report.replayed,
        output::duration(took),
        report.changed.len()
    ));
    for ((before, after), n) in &shifts {
        output::line(format!("  {before} -> {after}: {n}"));
    }
    if report.under_other_settings > 0 {
        output::line(format!(
            "  {} made under tenant settings since changed, and replayed under today's: a \
             change marked * may be the settings', not the policy's",
            match report.under_other_settings {
                1 => "1 decision was".to_owned(),
                n => format!("{n} decisions were"),
            }
        ));
    }
    if report.changed.is_empty() {
        return;
    }
    let mut table = output::table(&[
        "decision",
        "run",
        "deliverable",
        "action",
        "before",
        "after",
        "why",
    ]);
    for c in &report.changed {
        let why: Vec<String> = c.after.reasons.iter().map(|r| r.code.clone()).collect();
        table.add_row(vec![
            if c.settings_changed {
                format!("{}*", c.decision_id)
            } else {
                c.decision_id.clone()
            },
            c.run.as_deref().unwrap_or("-").chars().take(10).collect(),
            c.deliverable.clone().unwrap_or_default(),
            c.action.clone(),
            c.before.to_string(),
            c.after.decision.to_string(),
            why.join(", "),
        ]);
    }
    output::line(table);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_times_and_durations() {
        let now = Timestamp::from_millis(1_795_000_000_000);
        assert_eq!(
            since("7d", now).unwrap(),
            Timestamp::from_millis(1_795_000_000_000 - 7 * 86_400_000)
        );
        assert_eq!(
            since("2026-11-18", now).unwrap().to_string(),
            "2026-11-18T00:00:00.000Z"
        );
        assert_eq!(
            since("2026-11-18T11:06:40Z", now).unwrap().to_string(),
            "2026-11-18T11:06:40.000Z"
        );
        assert!(since("last tuesday", now).is_err());
    }
}
