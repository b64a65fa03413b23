//! `kamachiq governance ...`: autonomy governance on the local store (the tenant from
//! `--tenant`, the actor `local:<login>`) or through a server's `/api/...` with `--server`
//! (the tenant and the person are the token's). Both print the API's views. What the other
//! governance commands share (where they act, parsing flags, local errors) is here too.

use std::time::Duration;

use kamachiq_api::{
    GovernanceStateView, MetricsView, ProposalDecisionView, ProposalView, ReportView,
    WindowMetricsView,
};
use kamachiq_domain::{TenantId, Timestamp};
use kamachiq_engine::{EnableOptions, Engine, GovernanceUpdate};
use kamachiq_governance::Settings;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::cli::{GovernanceCommand, TenantArg};
use crate::client::Client;
use crate::commands::inspect::short_time;
use crate::commands::{engine, open_store, resolve_run};
use crate::config::Config;
use crate::{InvalidInput, exit, output};

/// Where the command acts.
pub enum Target {
    Local { engine: Engine, actor: String },
    Remote(Client),
}

impl Target {
    pub async fn open(config: &Config, client: Option<Client>) -> anyhow::Result<Self> {
        Ok(match client {
            Some(client) => Self::Remote(client),
            None => Self::Local {
                engine: engine(config, open_store(config).await?)?,
                actor: config.actor.clone(),
            },
        })
    }
}

/// The tenant a local command acts on.
pub(crate) fn tenant_of(arg: &TenantArg) -> anyhow::Result<TenantId> {
    let Some(name) = &arg.tenant else {
        return Err(InvalidInput::new(
            "name the tenant with --tenant (with --server, the token's tenant is used)",
        )
        .into());
    };
    TenantId::parse(name.as_str()).map_err(|e| InvalidInput::new(format!("--tenant: {e}")).into())
}

/// A value of a governance enum (`supervised`, `escalate`, `high`, `merge`) from a flag.
pub fn parse<T: DeserializeOwned>(flag: &str, text: &str) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|e| InvalidInput::new(format!("--{flag} {text}: {e}")).into())
}

fn phase(flag: &str, text: &str) -> anyhow::Result<kamachiq_governance::Phase> {
    text.parse()
        .map_err(|e: kamachiq_governance::Error| InvalidInput::new(format!("--{flag}: {e}")).into())
}

pub(crate) fn window(flag: &str, text: &str) -> anyhow::Result<Duration> {
    kamachiq_governance::window::parse(text)
        .map_err(|e| InvalidInput::new(format!("--{flag}: {e}")).into())
}

/// Engine errors that are the user's to fix are input errors (exit code 2).
pub fn local(e: kamachiq_engine::Error) -> anyhow::Error {
    use kamachiq_engine::Error as E;
    let input = match &e {
        E::NotGoverned(_)
        | E::Governance(_)
        | E::PhaseNotLower { .. }
        | E::UnknownItem { .. }
        | E::ItemMeasured { .. }
        | E::ProposalNotFound(_)
        | E::ProposalClosed { .. }
        | E::ProposalRefused(_)
        | E::ProposalBlocked { .. }
        | E::ProposalStale(_)
        | E::ApprovalNotFound(_)
        | E::ApprovalClosed { .. }
        | E::ApprovalExpired { .. } => true,
        E::Store(s) => matches!(
            **s,
            kamachiq_store::Error::AlreadyGoverned(_)
                | kamachiq_store::Error::NotGoverned(_)
                | kamachiq_store::Error::RuleExists { .. }
                | kamachiq_store::Error::RuleNotFound(_)
                | kamachiq_store::Error::BreakerEventNotFound(_)
                | kamachiq_store::Error::BreakerEventResolved { .. }
        ),
        _ => false,
    };
    if input {
        InvalidInput::new(e.to_string()).into()
    } else {
        e.into()
    }
}

pub(crate) fn print<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> u8 {
    if json {
        output::json_pretty(value);
    } else {
        human(value);
    }
    exit::OK
}

pub(crate) fn names<T: serde::Serialize>(items: &[T]) -> String {
    let names: Vec<String> = items
        .iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn show_state(s: &GovernanceStateView) {
    if !s.governed {
        output::line(format!(
            "tenant {} is not governed: policy alone decides its actions. An admin enables it \
             with `kamachiq governance enable --tenant {}` (it would start at {} with nothing \
             whitelisted, in {} mode).",
            s.tenant, s.tenant, s.current_phase, s.approval_mode
        ));
        return;
    }
    let validation = match s.validation_ends_at {
        Some(end) => format!("; validation until {}", short_time(end)),
        None => String::new(),
    };
    output::line(format!(
        "tenant {}: phase {} since {} ({} day(s){validation})",
        s.tenant,
        s.current_phase,
        short_time(s.phase_started_at),
        s.days_in_phase
    ));
    output::line(format!("  whitelist: {}", names(&s.command_whitelist)));
    output::line(format!("  paused:    {}", names(&s.paused_actions)));
    output::line(format!(
        "  mode {}; approvals wait {}, then {}; risk threshold {}; low risk auto-approved: {}",
        s.approval_mode,
        s.settings.approval_ttl,
        names(&[s.settings.on_expiry]),
        s.settings.risk_threshold,
        if s.settings.auto_approve_low_risk {
            "yes"
        } else {
            "no"
        }
    ));
}

fn show_proposals(list: &[ProposalView]) {
    if list.is_empty() {
        output::note("no proposal");
        return;
    }
    let mut table = output::table(&[
        "id",
        "move",
        "status",
        "risk",
        "needs",
        "approved by",
        "requested by",
    ]);
    for p in list {
        let approved: Vec<String> = p
            .approvals
            .iter()
            .map(|a| format!("{} ({})", a.by, a.role))
            .collect();
        table.add_row(vec![
            p.id.clone(),
            format!("{} -> {}", p.from_phase, p.target_phase),
            names(&[p.status]),
            p.risk.to_string(),
            names(&p.remaining_approvers),
            approved.join(", "),
            p.requested_by.clone(),
        ]);
    }
    output::line(table);
}

fn show_report(r: &ReportView) {
    output::line(format!(
        "report {} ({} by {}), phase {}",
        r.id,
        short_time(r.generated_at),
        r.requested_by,
        r.phase
    ));
    show_metrics_line("  week", &r.metrics);
    output::line(format!(
        "  readiness {:.2}% ({} of {} points), {}",
        r.readiness.score * 100.0,
        r.readiness.points,
        r.readiness.max_points,
        names(&[r.readiness.status])
    ));
    output::line(format!(
        "  breaker events this week: {}",
        r.circuit_breaker_events.len()
    ));
    output::line(format!(
        "  recommendation: {}",
        names(&[r.recommendation.kind])
    ));
    for reason in &r.recommendation.reasons {
        output::line(format!("    - {reason}"));
    }
    if let Some(p) = &r.proposal {
        output::line(format!(
            "  proposal {}: {} -> {}, whitelist + {}, risk {}, validated {} days, approvers: {}",
            p.id,
            p.from_phase,
            p.target_phase,
            names(&p.whitelist_add),
            p.risk,
            p.validation_days,
            names(&p.required_approvers)
        ));
    }
}

fn show_metrics_line(label: &str, m: &WindowMetricsView) {
    let o = &m.overall;
    output::line(format!(
        "{label}: {} actions, {:.2}% succeeded, {:.2}% failed, {:.2}% rolled back, ${:.2}, p95 {} ms",
        o.total,
        o.success_rate * 100.0,
        o.error_rate * 100.0,
        o.rollback_rate * 100.0,
        o.cost_usd,
        o.p95_ms
    ));
}

pub async fn governance(
    config: &Config,
    client: Option<Client>,
    command: &GovernanceCommand,
) -> anyhow::Result<u8> {
    let target = Target::open(config, client).await?;
    match command {
        GovernanceCommand::Enable {
            tenant,
            phase: p,
            mode,
            auto_approve_low_risk,
            approval_ttl,
            on_expiry,
            risk_threshold,
            json,
        } => {
            let defaults = Settings::default();
            let settings = Settings {
                auto_approve_low_risk: *auto_approve_low_risk,
                approval_ttl: match approval_ttl {
                    Some(t) => window("approval-ttl", t)?,
                    None => defaults.approval_ttl,
                },
                on_expiry: match on_expiry {
                    Some(x) => parse("on-expiry", x)?,
                    None => defaults.on_expiry,
                },
                risk_threshold: match risk_threshold {
                    Some(r) => parse("risk-threshold", r)?,
                    None => defaults.risk_threshold,
                },
            };
            let options = EnableOptions {
                phase: phase("phase", p)?,
                mode: parse("mode", mode)?,
                settings,
            };
            let view = match &target {
                Target::Local { engine, actor } => {
                    let tenant = tenant_of(tenant)?;
                    let governed = engine
                        .enable_governance(&tenant, &options, actor)
                        .await
                        .map_err(local)?;
                    kamachiq_server::state_view(&tenant, Some(&governed), engine.now())
                }
                Target::Remote(client) => {
                    let body = json!({
                        "phase": options.phase, "mode": options.mode,
                        "autoApproveLowRisk": options.settings.auto_approve_low_risk,
                        "approvalTtl": kamachiq_governance::window::format(options.settings.approval_ttl),
                        "onExpiry": options.settings.on_expiry,
                        "riskThreshold": options.settings.risk_threshold,
                    });
                    client
                        .call::<GovernanceStateView>(
                            Method::POST,
                            "/api/governance/enable",
                            Some(&body),
                        )
                        .await?
                }
            };
            Ok(print(*json, &view, show_state))
        }
        GovernanceCommand::State { tenant, json } => {
            let view = state(&target, tenant).await?;
            Ok(print(*json, &view, show_state))
        }
        GovernanceCommand::Configure {
            tenant,
            mode,
            auto_approve_low_risk,
            approval_ttl,
            on_expiry,
            risk_threshold,
            json,
        } => {
            let update = GovernanceUpdate {
                mode: mode.as_deref().map(|m| parse("mode", m)).transpose()?,
                auto_approve_low_risk: *auto_approve_low_risk,
                approval_ttl: approval_ttl
                    .as_deref()
                    .map(|t| window("approval-ttl", t))
                    .transpose()?,
                on_expiry: on_expiry
                    .as_deref()
                    .map(|x| parse("on-expiry", x))
                    .transpose()?,
                risk_threshold: risk_threshold
                    .as_deref()
                    .map(|r| parse("risk-threshold", r))
                    .transpose()?,
            };
            if update.is_empty() {
                return Err(InvalidInput::new(
                    "nothing to change: give --mode, --auto-approve-low-risk, --approval-ttl, \
                     --on-expiry or --risk-threshold",
                )
                .into());
            }
            let view = match &target {
                Target::Local { engine, actor } => {
                    let tenant = tenant_of(tenant)?;
                    let governed = engine
                        .configure_governance(&tenant, &update, actor)
                        .await
                        .map_err(local)?;
                    kamachiq_server::state_view(&tenant, Some(&governed), engine.now())
                }
                Target::Remote(client) => {
                    let mut body = serde_json::Map::new();
                    if let Some(m) = update.mode {
                        body.insert("mode".into(), json!(m));
                    }
                    if let Some(a) = update.auto_approve_low_risk {
                        body.insert("autoApproveLowRisk".into(), json!(a));
                    }
                    if let Some(t) = update.approval_ttl {
                        body.insert(
                            "approvalTtl".into(),
                            json!(kamachiq_governance::window::format(t)),
                        );
                    }
                    if let Some(x) = update.on_expiry {
                        body.insert("onExpiry".into(), json!(x));
                    }
                    if let Some(r) = update.risk_threshold {
                        body.insert("riskThreshold".into(), json!(r));
                    }
                    client
                        .call(
                            Method::PATCH,
                            "/api/governance/settings",
                            Some(&serde_json::Value::Object(body)),
                        )
                        .await?
                }
            };
            Ok(print(*json, &view, show_state))
        }
        GovernanceCommand::Rollback {
            tenant,
            target: to,
            reason,
            json,
        } => {
            let to = phase("to", to)?;
            if reason.trim().is_empty() {
                return Err(InvalidInput::new("--reason must not be empty").into());
            }
            let view = match &target {
                Target::Local { engine, actor } => {
                    let tenant = tenant_of(tenant)?;
                    let governed = engine
                        .rollback_phase(&tenant, to, reason.trim(), actor)
                        .await
                        .map_err(local)?;
                    kamachiq_server::state_view(&tenant, Some(&governed), engine.now())
                }
                Target::Remote(client) => {
                    client
                        .call(
                            Method::POST,
                            "/api/governance/rollback",
                            Some(&json!({"targetPhase": to, "reason": reason})),
                        )
                        .await?
                }
            };
            Ok(print(*json, &view, show_state))
        }
        GovernanceCommand::Incident {
            tenant,
            action,
            description,
            run,
            json,
        } => {
            let action: kamachiq_policy::Action = parse("action", action)?;
            if description.trim().is_empty() {
                return Err(InvalidInput::new("--description must not be empty").into());
            }
            let view = match &target {
                Target::Local { engine, actor } => {
                    let tenant = tenant_of(tenant)?;
                    let run = match run {
                        Some(r) => Some(resolve_run(engine.store(), r).await?),
                        None => None,
                    };
                    engine
                        .record_incident(&tenant, action, description.trim(), run, actor)
                        .await
                        .map_err(local)?;
                    // The breakers judge it at once; show the state after them.
                    engine.breakers_settled(super::BREAKERS_SETTLE).await;
                    state_local(engine, &tenant).await?
                }
                Target::Remote(client) => {
                    let view: kamachiq_api::IncidentView = client
                        .call(
                            Method::POST,
                            "/api/governance/incidents",
                            Some(&json!({
                                "actionType": action, "description": description,
                                "runId": run,
                            })),
                        )
                        .await?;
                    view.state
                }
            };
            if !*json {
                output::note(format!("critical incident recorded against {action}"));
            }
            Ok(print(*json, &view, show_state))
        }
        GovernanceCommand::Cycle { tenant, json } => {
            let report = match &target {
                Target::Local { engine, actor } => {
                    let tenant = tenant_of(tenant)?;
                    let outcome = engine.run_cycle(&tenant, actor).await.map_err(local)?;
                    kamachiq_server::report_view(&outcome.report, outcome.proposal.as_ref())
                }
                Target::Remote(client) => {
                    client
                        .call(Method::POST, "/api/governance/run-cycle", None)
                        .await?
                }
            };
            Ok(print(*json, &report, show_report))
        }
        GovernanceCommand::Reports {
            tenant,
            latest,
            id,
            json,
        } => {
            let reports = reports(&target, tenant, *latest, id.as_deref()).await?;
            Ok(print(*json, &reports, |list| {
                if list.is_empty() {
                    output::note("no governance cycle ran yet");
                }
                for r in list {
                    show_report(r);
                }
            }))
        }
        GovernanceCommand::Proposals { tenant, all, json } => {
            let list: Vec<ProposalView> = match &target {
                Target::Local { engine, .. } => {
                    let tenant = tenant_of(tenant)?;
                    engine
                        .store()
                        .proposals(&tenant, !*all, 500)
                        .await?
                        .iter()
                        .map(kamachiq_server::proposal_view)
                        .collect()
                }
                Target::Remote(client) => {
                    let path = if *all {
                        "/api/governance/proposals?all=true"
                    } else {
                        "/api/governance/proposals"
                    };
                    client.get(path).await?
                }
            };
            Ok(print(*json, &list, |l| show_proposals(l)))
        }
        GovernanceCommand::Approve {
            proposal,
            comment,
            json,
        } => {
            let Target::Remote(client) = &target else {
                return Err(approver_needed());
            };
            let decision: ProposalDecisionView = client
                .call(
                    Method::POST,
                    &format!("/api/governance/proposals/{proposal}/approve"),
                    Some(&json!({"comment": comment})),
                )
                .await?;
            Ok(print(*json, &decision, show_decision))
        }
        GovernanceCommand::Reject {
            proposal,
            reason,
            json,
        } => {
            let Target::Remote(client) = &target else {
                return Err(approver_needed());
            };
            let decision: ProposalDecisionView = client
                .call(
                    Method::POST,
                    &format!("/api/governance/proposals/{proposal}/reject"),
                    Some(&json!({"reason": reason})),
                )
                .await?;
            Ok(print(*json, &decision, show_decision))
        }
        GovernanceCommand::Metrics {
            tenant,
            window: w,
            json,
        } => {
            let length = window("window", w)?;
            let view: MetricsView = match &target {
                Target::Local { engine, .. } => {
                    let tenant = tenant_of(tenant)?;
                    let to = engine.now();
                    let from = Timestamp::from_millis(
                        to.as_millis()
                            .saturating_sub(i64::try_from(length.as_millis()).unwrap_or(i64::MAX)),
                    );
                    let metrics = engine
                        .action_metrics(&tenant, from, to)
                        .await
                        .map_err(local)?;
                    MetricsView {
                        tenant: tenant.to_string(),
                        from,
                        to,
                        window: kamachiq_governance::window::format(length),
                        metrics: WindowMetricsView::from(&metrics),
                    }
                }
                Target::Remote(client) => {
                    client
                        .get(&format!("/api/metrics/latest?window={w}"))
                        .await?
                }
            };
            Ok(print(*json, &view, |v| {
                show_metrics_line(&format!("last {}", v.window), &v.metrics);
                for (action, m) in &v.metrics.by_action {
                    output::line(format!(
                        "  {action:<10} {} actions, {:.2}% failed",
                        m.total,
                        m.error_rate * 100.0
                    ));
                }
            }))
        }
    }
}

fn approver_needed() -> anyhow::Error {
    InvalidInput::new(
        "a proposal is approved by an authenticated person holding the role it names: run this \
         with --server URL and KAMACHIQ_TOKEN set to your own token",
    )
    .into()
}

fn show_decision(d: &ProposalDecisionView) {
    let p = &d.proposal;
    if d.phase_advanced {
        output::line(format!(
            "proposal {} approved: tenant {} is now at {} (whitelist: {})",
            p.id,
            d.state.tenant,
            d.state.current_phase,
            names(&d.state.command_whitelist)
        ));
    } else {
        output::line(format!(
            "proposal {} is {}; still needed: {}",
            p.id,
            names(&[p.status]),
            names(&p.remaining_approvers)
        ));
    }
}

async fn state_local(engine: &Engine, tenant: &TenantId) -> anyhow::Result<GovernanceStateView> {
    let governed = engine.governance(tenant).await?;
    Ok(kamachiq_server::state_view(
        tenant,
        governed.as_ref(),
        engine.now(),
    ))
}

async fn state(target: &Target, tenant: &TenantArg) -> anyhow::Result<GovernanceStateView> {
    match target {
        Target::Local { engine, .. } => state_local(engine, &tenant_of(tenant)?).await,
        Target::Remote(client) => client.get("/api/governance/state").await,
    }
}

async fn reports(
    target: &Target,
    tenant: &TenantArg,
    latest: bool,
    id: Option<&str>,
) -> anyhow::Result<Vec<ReportView>> {
    match target {
        Target::Local { engine, .. } => {
            let tenant = tenant_of(tenant)?;
            let store = engine.store();
            let stored = match id {
                Some(id) => match store.report(id).await?.filter(|r| r.tenant == tenant) {
                    Some(r) => vec![r],
                    None => {
                        return Err(
                            InvalidInput::new(format!("no governance report `{id}`")).into()
                        );
                    }
                },
                None => store.reports(&tenant, if latest { 1 } else { 50 }).await?,
            };
            let mut views = Vec::with_capacity(stored.len());
            for r in &stored {
                let proposal = match &r.report.proposal_id {
                    Some(p) => store.proposal(p).await?,
                    None => None,
                };
                views.push(kamachiq_server::report_view(r, proposal.as_ref()));
            }
            Ok(views)
        }
        Target::Remote(client) => Ok(match (id, latest) {
            (Some(id), _) => vec![client.get(&format!("/api/governance/reports/{id}")).await?],
            (None, true) => vec![client.get("/api/governance/reports/latest").await?],
            (None, false) => client.get("/api/governance/reports").await?,
        }),
    }
}
