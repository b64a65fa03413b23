//! `kamachiq serve`: the HTTP API, the scheduler and a worker in one process.

use std::future::IntoFuture;

use anyhow::Context;
use kamachiq_engine::SchedulerOptions;
use kamachiq_server::{AppState, ServerOptions, app};

use crate::commands::{engine, open_store};
use crate::config::Config;
use crate::{exit, output};

pub async fn serve(config: &Config) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let tokens = store.live_token_count().await?;
    let engine = engine(config, store)?;
    let options = ServerOptions {
        default_concurrency: config.concurrency,
        repo_roots: config.repo_roots.clone(),
        scheduler: SchedulerOptions {
            max_runs: usize::try_from(config.max_runs).unwrap_or(usize::MAX),
            ..SchedulerOptions::default()
        },
        ..ServerOptions::default()
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let state = AppState::start(engine.clone(), options).await?;
    output::note(format!(
        "kamachiq serving on http://{} (store: {}); Ctrl-C stops",
        config.listen,
        config.database_url_display()
    ));
    if tokens == 0 {
        output::note(format!(
            "no API token exists yet; create the first admin token with:\n  kamachiq{} token create --tenant default --name admin --role admin",
            home_flag(config)
        ));
    }

    let stopping = state.stopping().clone();
    let signals = tokio::spawn(async move {
        wait_for_signal().await;
        output::note(
            "stopping: no new work is taken; running work is being handed back (Ctrl-C again to quit at once)",
        );
        stopping.cancel();
        wait_for_signal().await;
        let killed = kamachiq_engine::kill_all_steps();
        output::note(format!("quitting at once; killed {killed} running step(s)"));
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
    // From the first signal on: the scheduler hands its runs back at once, while open
    // requests get until the same deadline to finish.
    let handing_back = {
        let state = state.clone();
        let grace = config.shutdown_grace;
        tokio::spawn(async move {
            state.stopping().cancelled().await;
            state.shutdown(grace).await
        })
    };
    let stopping = state.stopping().clone();
    let server = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(stopping.clone().cancelled_owned())
        .into_future();
    tokio::pin!(server);
    let drained = tokio::select! {
        served = &mut server => {
            served.context("the HTTP server failed")?;
            true
        }
        () = async {
            stopping.cancelled().await;
            tokio::time::sleep(config.shutdown_grace).await;
        } => false,
    };
    if !drained {
        output::note(format!(
            "requests still open after {} were cut off",
            humantime::format_duration(config.shutdown_grace)
        ));
    }
    let handed_back = handing_back.await.unwrap_or(false);
    if !handed_back {
        let killed = kamachiq_engine::kill_all_steps();
        output::note(format!(
            "running work was not handed back within {}; killed {killed} step(s); their runs resume when their leases expire",
            humantime::format_duration(config.shutdown_grace)
        ));
    }
    signals.abort();
    drop(state);
    engine.close().await;
    output::note("kamachiq stopped; every run's state is saved");
    Ok(exit::OK)
}

/// `--home DIR` when the home is not the default, for hints that must reach the same store.
fn home_flag(config: &Config) -> String {
    match (&config.database_url, config.home.as_os_str() == ".kamachiq") {
        (Some(url), _) => format!(" --database-url '{}'", kamachiq_store::redact_url(url)),
        (None, true) => String::new(),
        (None, false) => format!(" --home {}", config.home.display()),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot watch for signals");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
}
