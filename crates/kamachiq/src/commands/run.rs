//! `kamachiq run` and `kamachiq resume`.

use std::path::{Path, PathBuf};

use kamachiq_domain::NotResumable;
use kamachiq_engine::Target;

use crate::cli::{ResumeArgs, RunArgs};
use crate::commands::{Drive, drive_with_display, engine, open_store, resolve_run};
use crate::config::Config;
use crate::progress::Mode;
use crate::{InvalidInput, output};

pub async fn run(config: &Config, args: &RunArgs) -> anyhow::Result<u8> {
    let plan = super::plan::load(&args.plan)?;
    let repo = target_repo(&args.plan, args.repo.as_deref(), plan.repo.as_deref())?;
    let branch = args.branch.as_deref().or(plan.branch.as_deref());
    let target = Target::resolve(&repo, branch).await.map_err(target_error)?;
    let concurrency = args.concurrency.unwrap_or(config.concurrency);
    if concurrency == 0 {
        return Err(InvalidInput::new("--concurrency must be at least 1").into());
    }

    let store = open_store(config).await?;
    let engine = engine(config, store)?;
    let events = engine.subscribe();
    let run = engine.submit(plan, Some(&target), concurrency).await?;
    let mode = Mode::pick(args.json);
    if mode != Mode::Json {
        output::note(format!(
            "run {run}: target {} ({}); state in {}",
            target.repo.display(),
            target.branch,
            config.home.display()
        ));
    }
    let drive = Drive {
        events,
        reopen: Vec::new(),
        since: 0,
    };
    drive_with_display(&engine, &run, mode, drive).await
}

/// A target that does not exist is bad input (exit 2); git missing or too old is not.
fn target_error(e: kamachiq_engine::Error) -> anyhow::Error {
    match e {
        kamachiq_engine::Error::NotARepository { .. }
        | kamachiq_engine::Error::NoSuchBranch { .. }
        | kamachiq_engine::Error::DetachedHead { .. } => InvalidInput::new(e.to_string()).into(),
        other => other.into(),
    }
}

/// `--repo` (relative to the working directory) wins over the plan's `repo:` (relative to the
/// plan file).
fn target_repo(
    plan_file: &Path,
    flag: Option<&Path>,
    in_plan: Option<&str>,
) -> anyhow::Result<PathBuf> {
    if let Some(repo) = flag {
        return Ok(repo.to_path_buf());
    }
    match in_plan {
        Some(repo) => {
            let base = plan_file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Ok(base.join(repo))
        }
        None => Err(InvalidInput::new(format!(
            "{}: no target repository: pass --repo DIR or set `repo:` in the plan",
            plan_file.display()
        ))
        .into()),
    }
}

pub async fn resume(config: &Config, args: &ResumeArgs) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let run = resolve_run(&store, &args.run).await?;
    let stored = store.run(&run).await?;
    let engine = engine(config, store)?;
    let reopen = match stored.state.resume(args.retry_failed) {
        Ok(reopen) => reopen,
        Err(NotResumable::FailedNeedsRetry) => {
            return Err(InvalidInput::new(format!(
                "run {run} has failed; `kamachiq resume {run} --retry-failed` runs its failed deliverables again"
            ))
            .into());
        }
        Err(NotResumable::Succeeded) => {
            return Err(InvalidInput::new(format!(
                "run {run} has already succeeded; nothing to resume"
            ))
            .into());
        }
    };
    let since = store_since(&engine, &run).await?;
    let events = engine.subscribe();
    // Resuming a paused run lifts its pause.
    engine.unpause(&run, &config.actor).await?;
    let drive = Drive {
        events,
        reopen,
        since,
    };
    drive_with_display(&engine, &run, Mode::pick(args.json), drive).await
}

/// The run's last event so far: a resume shows what happens from now on.
async fn store_since(
    engine: &kamachiq_engine::Engine,
    run: &kamachiq_domain::RunId,
) -> anyhow::Result<i64> {
    Ok(engine.store().last_event_seq(run).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_repo_is_relative_to_the_plan_file() {
        let repo = target_repo(Path::new("plans/p.yaml"), None, Some("../service")).unwrap();
        assert_eq!(repo, PathBuf::from("plans/../service"));
        let repo = target_repo(Path::new("p.yaml"), None, Some("svc")).unwrap();
        assert_eq!(repo, PathBuf::from("./svc"));
        let flag =
            target_repo(Path::new("plans/p.yaml"), Some(Path::new("x")), Some("svc")).unwrap();
        assert_eq!(flag, PathBuf::from("x"));
        let err = target_repo(Path::new("p.yaml"), None, None).unwrap_err();
        assert!(err.to_string().contains("no target repository"), "{err}");
    }
}
