//! `kamachiq approvals list|view|approve|deny` (seed 003's inbox): on the local store, where
//! the approver is `local:<login>`, or with `--server`, where it is the token's identity.

use kamachiq_api::ApprovalView;
use kamachiq_domain::Timestamp;
use reqwest::Method;
use serde_json::json;

use crate::cli::ApprovalsCommand;
use crate::client::Client;
use crate::commands::governance::{Target, local};
use crate::commands::inspect::short_time;
use crate::config::Config;
use crate::{InvalidInput, exit, output};

/// `2 hours ago`, `in 22 hours`.
fn relative(t: Timestamp, now: Timestamp) -> String {
    let (span, past) = if t <= now {
        (now.since(t), true)
    } else {
        (t.since(now), false)
    };
    let text = output::duration(std::time::Duration::from_secs(span.as_secs()));
    if past {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

fn show_list(list: &[ApprovalView], now: Timestamp, all: bool) {
    if list.is_empty() {
        output::note(if all {
            "no approval request"
        } else {
            "nothing waits for a person"
        });
        return;
    }
    let mut table = output::table(&["id", "operation", "risk", "requested", "expires", "status"]);
    for a in list {
        table.add_row(vec![
            a.id.clone(),
            a.operation.clone(),
            a.risk.to_string().to_ascii_uppercase(),
            relative(a.requested_at, now),
            if a.status == "escalated" {
                "no deadline".to_owned()
            } else {
                relative(a.expires_at, now)
            },
            a.status.clone(),
        ]);
    }
    output::line(table);
}

fn show_one(a: &ApprovalView) {
    output::line(format!("ID: {}", a.id));
    output::line(format!("Operation: {}", a.operation));
    output::line(format!("Run: {}  Deliverable: {}", a.run_id, a.deliverable));
    output::line(format!(
        "Risk Level: {}",
        a.risk.to_string().to_ascii_uppercase()
    ));
    output::line(format!("Status: {}", a.status));
    output::line(format!("Requested: {}", short_time(a.requested_at)));
    output::line(format!("Expires: {}", short_time(a.expires_at)));
    if let (Some(by), Some(at)) = (&a.decided_by, a.decided_at) {
        let comment = a
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        output::line(format!("Decided: {} by {by}{comment}", short_time(at)));
    }
    output::line("Why:");
    for r in &a.evidence.reasons {
        output::line(format!("  - {}: {}", r.code, r.message));
    }
    if let Some(d) = &a.evidence.diff {
        output::line(format!(
            "Changes: {} file(s), +{} -{}",
            d.files, d.lines_added, d.lines_removed
        ));
        for f in &d.findings {
            output::line(format!("  ! {f}"));
        }
    }
    if !a.evidence.steps.is_empty() {
        output::line("Steps so far:");
        for s in &a.evidence.steps {
            let why = s
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            output::line(format!("  {} #{}: {}{why}", s.step, s.attempt, s.state));
        }
    }
}

pub async fn approvals(
    config: &Config,
    client: Option<Client>,
    command: &ApprovalsCommand,
) -> anyhow::Result<u8> {
    let target = Target::open(config, client).await?;
    let now = match &target {
        Target::Local { engine, .. } => engine.now(),
        Target::Remote(_) => Timestamp::from_system_time(std::time::SystemTime::now()),
    };
    match command {
        ApprovalsCommand::List { tenant, all, json } => {
            let list: Vec<ApprovalView> = match &target {
                Target::Local { engine, .. } => {
                    let Some(name) = &tenant.tenant else {
                        return Err(InvalidInput::new(
                            "name the tenant with --tenant (with --server, the token's tenant is used)",
                        )
                        .into());
                    };
                    let tenant = kamachiq_domain::TenantId::parse(name.as_str())
                        .map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
                    engine
                        .store()
                        .approvals(&tenant, !*all, 500)
                        .await?
                        .iter()
                        .map(kamachiq_server::approval_view)
                        .collect()
                }
                Target::Remote(client) => {
                    let path = if *all {
                        "/api/approvals?all=true&limit=500"
                    } else {
                        "/api/approvals?limit=500"
                    };
                    client.get(path).await?
                }
            };
            if *json {
                output::json_pretty(&list);
            } else {
                show_list(&list, now, *all);
            }
            Ok(exit::OK)
        }
        ApprovalsCommand::View { id, json } => {
            let view = view(&target, id).await?;
            if *json {
                output::json_pretty(&view);
            } else {
                show_one(&view);
            }
            Ok(exit::OK)
        }
        ApprovalsCommand::Approve { ids, comment, json } => {
            for id in ids {
                let view = decide(&target, id, true, comment.as_deref()).await?;
                if *json {
                    output::json(&view);
                } else {
                    output::line(format!(
                        "{}: {} approved by {}",
                        view.id,
                        view.operation,
                        view.decided_by.as_deref().unwrap_or("?")
                    ));
                    if matches!(target, Target::Local { .. }) {
                        output::note(format!(
                            "run {} goes on where a server drives it, or with `kamachiq resume {}`",
                            view.run_id, view.run_id
                        ));
                    }
                }
            }
            Ok(exit::OK)
        }
        ApprovalsCommand::Deny { id, reason, json } => {
            if reason.trim().is_empty() {
                return Err(InvalidInput::new("--reason must not be empty").into());
            }
            let view = decide(&target, id, false, Some(reason.trim())).await?;
            if *json {
                output::json(&view);
            } else {
                output::line(format!(
                    "{}: {} denied; the deliverable stays in the requeue (`kamachiq requeue list`)",
                    view.id, view.operation
                ));
            }
            Ok(exit::OK)
        }
    }
}

async fn view(target: &Target, id: &str) -> anyhow::Result<ApprovalView> {
    match target {
        Target::Local { engine, .. } => match engine.approval(id).await.map_err(local)? {
            Some(a) => Ok(kamachiq_server::approval_view(&a)),
            None => Err(InvalidInput::new(format!(
                "no approval request `{id}` (see `kamachiq approvals list`)"
            ))
            .into()),
        },
        Target::Remote(client) => client.get(&format!("/api/approvals/{id}")).await,
    }
}

async fn decide(
    target: &Target,
    id: &str,
    approve: bool,
    text: Option<&str>,
) -> anyhow::Result<ApprovalView> {
    match target {
        Target::Local { engine, actor } => {
            let decided = if approve {
                engine.approve(id, actor, text).await
            } else {
                engine.deny(id, actor, text.unwrap_or_default()).await
            }
            .map_err(local)?;
            Ok(kamachiq_server::approval_view(&decided))
        }
        Target::Remote(client) => {
            let (path, body) = if approve {
                ("approve", json!({"comment": text}))
            } else {
                ("deny", json!({"reason": text}))
            };
            client
                .call(
                    Method::POST,
                    &format!("/api/approvals/{id}/{path}"),
                    Some(&body),
                )
                .await
        }
    }
}
