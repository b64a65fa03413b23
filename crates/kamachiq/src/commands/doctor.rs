//! `kamachiq doctor`: is this machine and this setup fit to run kamachiq? Every probe runs at
//! once and on its own (one that fails or hangs costs only its component), and the report is
//! as bad as its worst component: exit code 0 healthy, 1 degraded, 4 unhealthy.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::cli::DoctorArgs;
use crate::commands::open_store;
use crate::config::Config;
use crate::health::{self, Component, Facts, Report, Status};
use crate::{exit, output};

/// How long the store may take to open and answer. sqlx keeps retrying a refused connection
/// for half a minute; the doctor reports it instead.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The outer bound of every probe, should one hang where it was not expected to.
const PROBE_LIMIT: Duration = Duration::from_secs(8);

/// Checks everything, prints the report, and returns its exit code. `agents` are (agent name,
/// program) pairs; a program other than the agent's own name counts as configured explicitly.
pub async fn doctor(
    config: &Config,
    args: &DoctorArgs,
    agents: &[(String, String)],
) -> anyhow::Result<u8> {
    let report = check(config, agents).await;
    if args.json {
        output::json_pretty(&report);
    } else {
        print(&report);
    }
    Ok(exit_code(report.status))
}

/// 0 healthy, 1 degraded (something needs a look), 4 unhealthy (kamachiq cannot work as is,
/// like its other "could not do it" errors).
pub fn exit_code(status: Status) -> u8 {
    match status {
        Status::Healthy => exit::OK,
        Status::Degraded => exit::RUN_FAILED,
        Status::Unhealthy => exit::ERROR,
    }
}

/// Runs every probe concurrently and gathers the report.
pub async fn check(config: &Config, agents: &[(String, String)]) -> Report {
    let bounded = |name: &str, label: &str, status: Status| {
        let (name, label) = (name.to_owned(), label.to_owned());
        move || {
            Component::new(
                &name,
                &label,
                status,
                "timed out",
                format!("no answer within {}s", PROBE_LIMIT.as_secs()),
            )
        }
    };
    let agents = join_all(agents.iter().map(|(name, program)| {
        health::within(
            PROBE_LIMIT,
            health::agent(name, program),
            bounded(name, &health::agent_label(name), Status::Degraded),
        )
    }));
    let (cpu, memory, disk, git, agents, store) = tokio::join!(
        health::within(
            PROBE_LIMIT,
            health::cpu(),
            bounded("cpu", "CPU Usage", Status::Degraded)
        ),
        health::within(
            PROBE_LIMIT,
            health::memory(),
            bounded("memory", "Memory", Status::Degraded)
        ),
        health::within(
            PROBE_LIMIT,
            health::disk(&config.home),
            bounded("disk", "Disk Space", Status::Degraded)
        ),
        health::within(
            PROBE_LIMIT,
            health::git(),
            bounded("git", "Git", Status::Unhealthy)
        ),
        agents,
        store(config),
    );
    let mut components = vec![cpu, memory, disk, git];
    components.extend(agents);
    components.push(store);
    components.push(configuration(config));
    Report::new(components)
}

/// The store opens (which brings its schema up to date) and answers a read.
async fn store(config: &Config) -> Component {
    const NAME: &str = "store";
    const LABEL: &str = "Store";
    let url = config.database_url_display();
    let started = Instant::now();
    let answered = tokio::time::timeout(STORE_TIMEOUT, async {
        let store = open_store(config).await?;
        let tokens = store.live_token_count().await;
        store.close().await;
        Ok::<_, anyhow::Error>((store.backend(), tokens?))
    })
    .await;
    let facts = |backend: Option<String>| Facts {
        backend,
        url: Some(url.clone()),
        ..Facts::default()
    };
    match answered {
        Ok(Ok((backend, tokens))) => {
            let backend = match backend {
                kamachiq_store::Backend::Sqlite => "sqlite",
                kamachiq_store::Backend::Postgres => "postgres",
            };
            Component::new(
                NAME,
                LABEL,
                Status::Healthy,
                format!("answered in {}", output::duration(started.elapsed())),
                format!("{url}: schema up to date, {tokens} live API token(s)"),
            )
            .with(facts(Some(backend.to_owned())))
        }
        Ok(Err(e)) => Component::new(
            NAME,
            LABEL,
            Status::Unhealthy,
            "unreachable",
            // The store's messages redact the URL already; this is in case a driver's does not.
            one_line(&format!("{e:#}")).replace(&config.database_url(), &url),
        )
        .with(facts(None)),
        Err(_) => Component::new(
            NAME,
            LABEL,
            Status::Unhealthy,
            "unreachable",
            format!(
                "{url} did not answer within {}s (is the database running and reachable?)",
                STORE_TIMEOUT.as_secs()
            ),
        )
        .with(facts(None)),
    }
}

/// The configuration: loading it already validated it (an invalid one stops every command with
/// exit code 2), so this shows where it came from.
fn configuration(config: &Config) -> Component {
    Component::new(
        "config",
        "Configuration",
        Status::Healthy,
        "valid",
        format!("from {}", config.sources.join(" < ")),
    )
    .with(Facts {
        sources: Some(config.sources.clone()),
        ..Facts::default()
    })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The report for people, in the runbook's shape:
///
/// ```text
/// Overall Status: HEALTHY
///
/// Components:
/// ✓ CPU Usage: 45% (HEALTHY) — 2 CPU(s), sampled over 200ms (degraded at 80%)
/// ```
fn print(report: &Report) {
    output::line(format!(
        "Overall Status: {}",
        styled(report.status, report.status.as_str().to_ascii_uppercase())
    ));
    output::line("");
    output::line("Components:");
    for c in &report.components {
        let mark = match c.status {
            Status::Healthy => "✓",
            Status::Degraded => "!",
            Status::Unhealthy => "✗",
        };
        output::line(format!(
            "{} {}: {} ({}) — {}",
            styled(c.status, mark),
            c.label,
            c.value,
            styled(c.status, c.status.as_str().to_ascii_uppercase()),
            c.detail
        ));
    }
}

/// Green, yellow or red on a terminal; plain text otherwise.
fn styled<D>(status: Status, text: D) -> console::StyledObject<D> {
    let style = console::style(text);
    match status {
        Status::Healthy => style.green(),
        Status::Degraded => style.yellow(),
        Status::Unhealthy => style.red(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_overall_status() {
        assert_eq!(exit_code(Status::Healthy), 0);
        assert_eq!(exit_code(Status::Degraded), 1);
        assert_eq!(exit_code(Status::Unhealthy), 4);
    }

    #[test]
    fn details_stay_on_one_line() {
        assert_eq!(
            one_line("cannot open\n  the database:\tgone\n"),
            "cannot open the database: gone"
        );
    }
}
