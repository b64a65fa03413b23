//! `kamachiq breaker ...` and `kamachiq readiness ...`: circuit-breaker rules and events, and
//! readiness, on the local store or through a server (see [`super::governance`]).

use kamachiq_api::{BreakerEventView, ChecklistView, ReadinessScoreView, ReadinessView, RuleView};
use kamachiq_engine::RulePatch;
use kamachiq_governance::Rule;
use reqwest::Method;
use serde_json::json;

use crate::cli::{BreakerCommand, ReadinessCommand};
use crate::client::Client;
use crate::commands::governance::{Target, local, names, parse, print, tenant_of, window};
use crate::commands::inspect::short_time;
use crate::config::Config;
use crate::{InvalidInput, exit, output};

fn show_rules(rules: &[RuleView]) {
    let mut table = output::table(&[
        "name",
        "enabled",
        "condition",
        "window",
        "action",
        "severity",
        "type",
    ]);
    for r in rules {
        table.add_row(vec![
            r.name.clone(),
            r.enabled.to_string(),
            r.condition.clone(),
            r.window.clone(),
            names(&[r.action]),
            names(&[r.alert_severity]),
            r.action_type
                .map_or_else(|| "all".to_owned(), |a| a.to_string()),
        ]);
    }
    output::line(table);
}

fn show_events(events: &[BreakerEventView]) {
    if events.is_empty() {
        output::note("no circuit breaker event: all clear");
        return;
    }
    let mut table = output::table(&["id", "rule", "severity", "effect", "at", "resolved"]);
    for e in events {
        table.add_row(vec![
            e.id.clone(),
            e.rule_name.clone(),
            names(&[e.severity]),
            e.effect["kind"].as_str().unwrap_or("?").to_owned(),
            short_time(e.timestamp),
            match (&e.resolved_by, e.resolved_at) {
                (Some(by), Some(at)) => format!("{} by {by}", short_time(at)),
                _ => "no".to_owned(),
            },
        ]);
    }
    output::line(table);
}

fn show_score(s: &ReadinessScoreView) {
    output::line(format!(
        "readiness {:.2}% ({} of {} points): {} at phase {}",
        s.score * 100.0,
        s.points,
        s.max_points,
        names(&[s.status]),
        s.phase
    ));
    for c in &s.categories {
        output::line(format!(
            "  {:<15} {} of {}",
            names(&[c.name]),
            c.points,
            c.max_points
        ));
    }
    for b in &s.blockers {
        output::line(format!("  blocker: {b}"));
    }
}

fn show_readiness(r: &ReadinessView) {
    let mut table = output::table(&["item", "weight", "required", "passed", "evidence"]);
    for i in &r.items {
        table.add_row(vec![
            i.id.clone(),
            i.weight.to_string(),
            if i.required { "yes" } else { "" }.to_owned(),
            if i.passed { "yes" } else { "NO" }.to_owned(),
            i.evidence.clone(),
        ]);
    }
    output::line(table);
    output::line(format!(
        "score {:.2}% ({} of {}), {}",
        r.score * 100.0,
        r.points,
        r.max_points,
        names(&[r.status])
    ));
}

fn show_checklist(c: &ChecklistView) {
    let mut table = output::table(&["item", "category", "weight", "required", "check"]);
    for i in &c.items {
        table.add_row(vec![
            i.id.clone(),
            names(&[i.category]),
            i.weight.to_string(),
            if i.required { "yes" } else { "" }.to_owned(),
            i.condition.clone().unwrap_or_else(|| "attested".to_owned()),
        ]);
    }
    output::line(table);
}

/// A checklist file: the JSON `readiness checklist --json` prints.
fn read_checklist(file: &std::path::Path) -> anyhow::Result<ChecklistView> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        InvalidInput::new(format!("cannot read the checklist {}: {e}", file.display()))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        InvalidInput::new(format!(
            "{}: not a checklist ({{\"items\": [...]}} as `readiness checklist --json` prints): {e}",
            file.display()
        ))
        .into()
    })
}

pub async fn breaker(
    config: &Config,
    client: Option<Client>,
    command: &BreakerCommand,
) -> anyhow::Result<u8> {
    let target = Target::open(config, client).await?;
    match command {
        BreakerCommand::Rules {
            tenant,
            enabled,
            json,
        } => {
            let rules: Vec<RuleView> = match &target {
                Target::Local { engine, .. } => engine
                    .breaker_rules(&tenant_of(tenant)?)
                    .await
                    .map_err(local)?
                    .iter()
                    .filter(|r| r.enabled || !*enabled)
                    .map(RuleView::from)
                    .collect(),
                Target::Remote(client) => {
                    let path = if *enabled {
                        "/api/circuit-breaker/rules/enabled"
                    } else {
                        "/api/circuit-breaker/rules"
                    };
                    client.get(path).await?
                }
            };
            Ok(print(*json, &rules, |r| show_rules(r)))
        }
        BreakerCommand::Add {
            tenant,
            name,
            condition,
            window: w,
            action,
            severity,
            action_type,
            disabled,
            json,
        } => {
            let rule = Rule {
                name: name.clone(),
                enabled: !*disabled,
                condition: condition.clone(),
                window: window("window", w)?,
                action: parse("action", action)?,
                severity: parse("severity", severity)?,
                action_type: action_type
                    .as_deref()
                    .map(|a| parse("action-type", a))
                    .transpose()?,
            };
            let view = match &target {
                Target::Local { engine, actor } => {
                    engine
                        .add_rule(&tenant_of(tenant)?, &rule, actor)
                        .await
                        .map_err(local)?;
                    RuleView::from(&rule)
                }
                Target::Remote(client) => {
                    client
                        .call(
                            Method::POST,
                            "/api/circuit-breaker/rules",
                            Some(&serde_json::to_value(&rule)?),
                        )
                        .await?
                }
            };
            Ok(print(*json, &view, |r| show_rules(std::slice::from_ref(r))))
        }
        BreakerCommand::Update {
            name,
            tenant,
            condition,
            window: w,
            action,
            severity,
            action_type,
            enable,
            disable,
            json,
        } => {
            let patch = RulePatch {
                enabled: (*enable || *disable).then_some(*enable),
                condition: condition.clone(),
                window: w.as_deref().map(|w| window("window", w)).transpose()?,
                action: action.as_deref().map(|a| parse("action", a)).transpose()?,
                severity: severity
                    .as_deref()
                    .map(|s| parse("severity", s))
                    .transpose()?,
                action_type: match action_type.as_deref() {
                    None => None,
                    Some("all") => Some(None),
                    Some(a) => Some(Some(parse("action-type", a)?)),
                },
            };
            let view = match &target {
                Target::Local { engine, actor } => RuleView::from(
                    &engine
                        .update_rule(&tenant_of(tenant)?, name, &patch, actor)
                        .await
                        .map_err(local)?,
                ),
                Target::Remote(client) => {
                    let mut body = serde_json::Map::new();
                    if let Some(e) = patch.enabled {
                        body.insert("enabled".into(), json!(e));
                    }
                    if let Some(c) = &patch.condition {
                        body.insert("condition".into(), json!(c));
                    }
                    if let Some(w) = w {
                        body.insert("window".into(), json!(w));
                    }
                    if let Some(a) = patch.action {
                        body.insert("action".into(), json!(a));
                    }
                    if let Some(s) = patch.severity {
                        body.insert("alertSeverity".into(), json!(s));
                    }
                    if let Some(t) = patch.action_type {
                        body.insert("actionType".into(), json!(t));
                    }
                    client
                        .call(
                            Method::PATCH,
                            &format!("/api/circuit-breaker/rules/{}", encode(name)),
                            Some(&serde_json::Value::Object(body)),
                        )
                        .await?
                }
            };
            Ok(print(*json, &view, |r| show_rules(std::slice::from_ref(r))))
        }
        BreakerCommand::Delete { name, tenant } => {
            match &target {
                Target::Local { engine, actor } => engine
                    .delete_rule(&tenant_of(tenant)?, name, actor)
                    .await
                    .map_err(local)?,
                Target::Remote(client) => {
                    client
                        .delete(&format!("/api/circuit-breaker/rules/{}", encode(name)))
                        .await?;
                }
            }
            output::line(format!("rule `{name}` deleted"));
            Ok(exit::OK)
        }
        BreakerCommand::Events {
            tenant,
            unresolved,
            json,
        } => {
            let events: Vec<BreakerEventView> = match &target {
                Target::Local { engine, .. } => engine
                    .store()
                    .breaker_events(&tenant_of(tenant)?, *unresolved, None, 500)
                    .await?
                    .iter()
                    .map(kamachiq_server::breaker_event_view)
                    .collect(),
                Target::Remote(client) => {
                    let path = if *unresolved {
                        "/api/circuit-breaker/events/unresolved"
                    } else {
                        "/api/circuit-breaker/events"
                    };
                    client.get(path).await?
                }
            };
            Ok(print(*json, &events, |e| show_events(e)))
        }
        BreakerCommand::Resolve {
            id,
            tenant,
            note,
            json,
        } => {
            let view: BreakerEventView = match &target {
                Target::Local { engine, actor } => kamachiq_server::breaker_event_view(
                    &engine
                        .resolve_breaker_event(&tenant_of(tenant)?, id, note.as_deref(), actor)
                        .await
                        .map_err(local)?,
                ),
                Target::Remote(client) => {
                    client
                        .call(
                            Method::POST,
                            &format!("/api/circuit-breaker/events/{id}/resolve"),
                            Some(&json!({"note": note})),
                        )
                        .await?
                }
            };
            Ok(print(*json, &view, |e| {
                show_events(std::slice::from_ref(e));
            }))
        }
    }
}

/// A rule name in a URL path.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub async fn readiness(
    config: &Config,
    client: Option<Client>,
    command: &ReadinessCommand,
) -> anyhow::Result<u8> {
    let target = Target::open(config, client).await?;
    match command {
        ReadinessCommand::Score { tenant, json } => {
            let view: ReadinessScoreView = match &target {
                Target::Local { engine, .. } => ReadinessScoreView::from(
                    &engine.readiness(&tenant_of(tenant)?).await.map_err(local)?,
                ),
                Target::Remote(client) => client.get("/api/readiness/score").await?,
            };
            Ok(print(*json, &view, show_score))
        }
        ReadinessCommand::Current { tenant, json } => {
            let view: ReadinessView = match &target {
                Target::Local { engine, .. } => ReadinessView::from(
                    &engine.readiness(&tenant_of(tenant)?).await.map_err(local)?,
                ),
                Target::Remote(client) => client.get("/api/readiness/current").await?,
            };
            Ok(print(*json, &view, show_readiness))
        }
        ReadinessCommand::Checklist { tenant, set, json } => {
            let view: ChecklistView = match set {
                None => match &target {
                    Target::Local { engine, .. } => ChecklistView::from(
                        &engine.checklist(&tenant_of(tenant)?).await.map_err(local)?,
                    ),
                    Target::Remote(client) => client.get("/api/readiness/checklist").await?,
                },
                Some(file) => {
                    let wanted = read_checklist(file)?;
                    match &target {
                        Target::Local { engine, actor } => ChecklistView::from(
                            &engine
                                .set_checklist(&tenant_of(tenant)?, &wanted.into(), actor)
                                .await
                                .map_err(local)?
                                .checklist,
                        ),
                        Target::Remote(client) => {
                            client
                                .call(
                                    Method::PUT,
                                    "/api/readiness/checklist",
                                    Some(&serde_json::to_value(&wanted)?),
                                )
                                .await?
                        }
                    }
                }
            };
            Ok(print(*json, &view, show_checklist))
        }
        ReadinessCommand::Attest {
            item,
            tenant,
            evidence,
            json,
        } => {
            if evidence.trim().is_empty() {
                return Err(InvalidInput::new("--evidence must not be empty").into());
            }
            let view: kamachiq_api::AttestationView = match &target {
                Target::Local { engine, actor } => {
                    let a = engine
                        .attest(&tenant_of(tenant)?, item, evidence.trim(), actor)
                        .await
                        .map_err(local)?;
                    kamachiq_api::AttestationView {
                        item: a.item,
                        by: a.by,
                        evidence: a.evidence,
                        at: a.at,
                    }
                }
                Target::Remote(client) => {
                    client
                        .call(
                            Method::POST,
                            "/api/readiness/attest",
                            Some(&json!({"item": item, "evidence": evidence})),
                        )
                        .await?
                }
            };
            Ok(print(*json, &view, |a| {
                output::line(format!(
                    "{} attested by {} at {}",
                    a.item,
                    a.by,
                    short_time(a.at)
                ));
            }))
        }
    }
}
