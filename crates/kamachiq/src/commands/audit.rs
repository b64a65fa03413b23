//! `kamachiq audit list|verify`: the append-only, hash-chained record of operator actions.

use kamachiq_domain::TenantId;
use kamachiq_store::AuditRecord;

use crate::cli::AuditCommand;
use crate::commands::inspect::short_time;
use crate::commands::open_store;
use crate::config::Config;
use crate::{InvalidInput, exit, output};

pub async fn audit(config: &Config, command: &AuditCommand) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    match command {
        AuditCommand::List {
            tenant,
            limit,
            json,
        } => {
            let tenant = tenant
                .as_deref()
                .map(TenantId::parse)
                .transpose()
                .map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
            // The trail is read in pages from the start; the last `limit` records are shown.
            let keep = usize::try_from(*limit).unwrap_or(usize::MAX);
            let mut records: std::collections::VecDeque<AuditRecord> =
                std::collections::VecDeque::new();
            let mut after = 0;
            loop {
                let page = store.audit_records(tenant.as_ref(), after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for record in page {
                    records.push_back(record);
                    if records.len() > keep {
                        records.pop_front();
                    }
                }
            }
            if *json {
                output::json_pretty(&records);
                return Ok(exit::OK);
            }
            if records.is_empty() {
                output::note("the audit trail is empty");
                return Ok(exit::OK);
            }
            let mut table = output::table(&[
                "seq", "at", "tenant", "actor", "action", "subject", "detail",
            ]);
            for r in &records {
                let mut detail = r.detail.to_string();
                if detail.chars().count() > 80 {
                    detail = detail.chars().take(79).collect::<String>() + "…";
                }
                table.add_row(vec![
                    r.seq.to_string(),
                    short_time(r.at),
                    r.tenant.to_string(),
                    r.actor.clone(),
                    r.action.clone(),
                    r.subject.clone(),
                    detail,
                ]);
            }
            output::line(table);
            Ok(exit::OK)
        }
        AuditCommand::Verify { json } => {
            let check = store.verify_audit().await?;
            if *json {
                output::json(&check);
            } else {
                match check.broken_at {
                    None => output::line(format!(
                        "the audit trail is intact: {} records, every hash and link checks",
                        check.records
                    )),
                    Some(seq) => output::line(format!(
                        "the audit trail was altered: record {seq} does not match its hash or its \
                         link to the record before it"
                    )),
                }
            }
            Ok(if check.broken_at.is_none() {
                exit::OK
            } else {
                exit::RUN_FAILED
            })
        }
    }
}
