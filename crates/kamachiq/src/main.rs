//! The `kamachiq` binary: the command line over the engine and the store, with configuration
//! loading and the terminal display. Everything it does is a thin layer over the library
//! crates; errors end as a message on stderr and an exit code that scripts can tell apart.

mod cli;
mod client;
mod commands;
mod config;
mod health;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand, PlanCommand};

/// Exit codes (documented in `kamachiq --help`).
pub mod exit {
    pub const OK: u8 = 0;
    pub const RUN_FAILED: u8 = 1;
    pub const INVALID: u8 = 2;
    pub const CANCELLED: u8 = 3;
    pub const ERROR: u8 = 4;
    pub const BLOCKED: u8 = 5;
    pub const HALTED: u8 = 6;
    pub const INTERRUPTED: u8 = 130;
}

/// Input that is wrong (a plan, a flag, the configuration, an unknown run): exit code 2.
#[derive(Debug)]
pub struct InvalidInput(String);

impl InvalidInput {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// How many malloc arenas glibc may keep, unless `MALLOC_ARENA_MAX` says otherwise.
const MALLOC_ARENAS: i32 = 2;

/// glibc gives threads that allocate at once arenas of their own, up to eight per core, and
/// keeps what is freed in each for later. kamachiq allocates a decision on an engine thread and
/// frees it on the writer's, so every arena grows to its own peak: at 10,000 deliverables the
/// process held 123 MiB for a heap that never exceeded 25 MiB. Two arenas hold 94 MiB for the
/// same run, about 5% slower in the median (README, "Speed"). An arena limit set the glibc way
/// (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`) wins: these are glibc's own
/// variables, read here only to leave them in charge, not kamachiq configuration.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    let tuned = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
    if !tuned {
        // SAFETY: mallopt sets one allocator parameter; it is called before any other thread
        // exists and touches no memory of ours.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // The sandbox replaces this process with the program it confines: no runtime, no
    // configuration, nothing else.
    if let Command::Sandbox(args) = &cli.command {
        return ExitCode::from(commands::sandbox::sandbox(args));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::note(format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(exit::ERROR);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Do not wait for background tasks (a signal watcher) once the command is done.
    runtime.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::note(format!("error: {e:#}"));
            let invalid = e.chain().any(|cause| cause.is::<InvalidInput>());
            ExitCode::from(if invalid { exit::INVALID } else { exit::ERROR })
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let flags = config::Raw {
        home: cli.home.as_ref().map(|p| p.display().to_string()),
        database_url: cli.database_url.clone(),
        log_level: cli.log_level.clone(),
        server_url: cli.server.clone(),
        token: cli.token.clone(),
        server: config::RawServer {
            listen: match &cli.command {
                Command::Serve(args) => args.listen.clone(),
                _ => None,
            },
            ..config::RawServer::default()
        },
        concurrency: match &cli.command {
            Command::Run(args) => args.concurrency,
            _ => None,
        },
        ..config::Raw::default()
    };
    let config = config::load(cli.config.as_deref(), flags)?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(config.log_level)
        .with_target(false)
        // Colour only for a person at a terminal; log files and pipes get plain text.
        .with_ansi(console::colors_enabled_stderr())
        .init();

    if config.server_url.is_some() && matches!(cli.command, Command::Logs(_)) {
        return Err(InvalidInput::new(
            "`kamachiq logs` reads the local store; run it where the server's database is (without --server)",
        )
        .into());
    }
    let remote = matches!(
        cli.command,
        Command::Run(_)
            | Command::Runs(_)
            | Command::Status(_)
            | Command::Cancel(_)
            | Command::Resume(_)
    );
    if remote && let Some(client) = commands::remote::client(&config)? {
        match &cli.command {
            Command::Run(args) => return commands::remote::run(&client, &config, args).await,
            Command::Runs(args) => return commands::remote::runs(&client, args).await,
            Command::Status(args) => return commands::remote::status(&client, args).await,
            Command::Cancel(args) => return commands::remote::cancel(&client, args).await,
            Command::Resume(args) => return commands::remote::resume(&client, args).await,
            _ => {}
        }
    }
    let server_client = match &cli.command {
        Command::Stop(_) | Command::ResumeAll(_) | Command::Pause(_) => {
            commands::remote::client(&config)?
        }
        _ => None,
    };
    match &cli.command {
        Command::Stop(args) => commands::control::stop(&config, server_client.as_ref(), args).await,
        Command::Sandbox(args) => Ok(commands::sandbox::sandbox(args)),
        Command::ResumeAll(args) => {
            commands::control::resume_all(&config, server_client.as_ref(), args).await
        }
        Command::Pause(args) => {
            commands::control::pause(&config, server_client.as_ref(), args).await
        }
        Command::Demo(args) => commands::demo::demo(&config, args).await,
        Command::Run(args) => commands::run::run(&config, args).await,
        Command::Plan(PlanCommand::Validate { plan, json }) => {
            commands::plan::validate(plan, *json)
        }
        Command::Runs(args) => commands::inspect::runs(&config, args).await,
        Command::Status(args) => commands::inspect::status(&config, args).await,
        Command::Logs(args) => commands::inspect::logs(&config, args).await,
        Command::Cancel(args) => commands::cancel::cancel(&config, args).await,
        Command::Resume(args) => commands::run::resume(&config, args).await,
        Command::Serve(_) => commands::serve::serve(&config).await,
        Command::Openapi => {
            output::line(kamachiq_server::openapi_json().trim_end());
            Ok(exit::OK)
        }
        Command::Token(command) => commands::token::token(&config, command).await,
        Command::Tenant(command) => commands::tenant::tenant(&config, command).await,
        Command::Policy(command) => commands::policy::policy(&config, command).await,
        Command::Requeue(command) => commands::requeue::requeue(&config, command).await,
        Command::Audit(command) => commands::audit::audit(&config, command).await,
        Command::Metrics(command) => commands::metrics::metrics(&config, command).await,
        Command::Workspaces(command) => commands::workspaces::workspaces(&config, command).await,
        Command::Bench(args) => commands::bench::bench(&config, args).await,
        Command::Config(ConfigCommand::Validate) => Ok(commands::config::validate(&config)),
        Command::Config(ConfigCommand::Example) => Ok(commands::config::print_example()),
        Command::Doctor(args) => {
            // Each agent's program: configured in `agents.programs`, else its usual name.
            let agents = ["claude", "codex", "aider", "gemini"].map(|a| {
                let program = config.agents.programs.get(a).map_or(a, String::as_str);
                (a.to_owned(), program.to_owned())
            });
            commands::doctor::doctor(&config, args, &agents).await
        }
        Command::Rollback(args) => commands::rollback::rollback(&config, args).await,
        Command::Governance(command) => {
            let client = commands::remote::client(&config)?;
            commands::governance::governance(&config, client, command).await
        }
        Command::Breaker(command) => {
            let client = commands::remote::client(&config)?;
            commands::breaker::breaker(&config, client, command).await
        }
        Command::Readiness(command) => {
            let client = commands::remote::client(&config)?;
            commands::breaker::readiness(&config, client, command).await
        }
        Command::Approvals(command) => {
            let client = commands::remote::client(&config)?;
            commands::approvals::approvals(&config, client, command).await
        }
    }
}
