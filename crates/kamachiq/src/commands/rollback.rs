//! `kamachiq rollback`: undo a promotion with a new commit on its target branch, list the
//! rollback points, and forget old ones. Local only: it needs the target repository.

use kamachiq_domain::run::RollbackPoint;
use kamachiq_domain::{DeliverableId, Timestamp};
use kamachiq_engine::{RollbackDone, RollbackTarget};
use kamachiq_store::{RollbackEntry, RollbackQuery};
use serde::Serialize;

use crate::cli::{RollbackArgs, RollbackCommand};
use crate::commands::inspect::short_time;
use crate::commands::{engine, open_store, resolve_run};
use crate::config::Config;
use crate::{InvalidInput, exit, output};

/// A rollback point as `rollback list --json` prints it.
#[derive(Debug, Serialize)]
struct PointView {
    id: String,
    run: String,
    deliverable: String,
    repo: String,
    branch: String,
    merge_commit: String,
    before_commit: String,
    created_at: Timestamp,
    /// `null` until the point is rolled back.
    rolled_back: Option<RolledBackView>,
}

#[derive(Debug, Serialize)]
struct RolledBackView {
    by: String,
    at: Timestamp,
    revert_commit: String,
}

/// What `kamachiq rollback --json` prints.
#[derive(Debug, Serialize)]
struct DoneView {
    rollback_point: String,
    run: String,
    deliverable: String,
    repo: String,
    branch: String,
    merge_commit: String,
    before_commit: String,
    revert_commit: String,
    by: String,
    at: Timestamp,
    duration_ms: u64,
}

#[derive(Debug, Serialize)]
struct CleanupView {
    forgotten: u64,
    /// Points created before this instant were forgotten.
    before: Timestamp,
}

fn point_view(entry: &RollbackEntry) -> PointView {
    let p = &entry.point;
    PointView {
        id: p.id.clone(),
        run: p.run_id.to_string(),
        deliverable: p.deliverable.to_string(),
        repo: p.repo.clone(),
        branch: p.branch.clone(),
        merge_commit: p.merge_commit.clone(),
        before_commit: p.before_commit.clone(),
        created_at: p.created_at,
        rolled_back: entry.rollback.as_ref().map(|r| RolledBackView {
            by: r.by.clone(),
            at: r.at,
            revert_commit: r.revert_commit.clone(),
        }),
    }
}

fn done_view(done: &RollbackDone, by: &str) -> DoneView {
    let p: &RollbackPoint = &done.point;
    DoneView {
        rollback_point: p.id.clone(),
        run: p.run_id.to_string(),
        deliverable: p.deliverable.to_string(),
        repo: p.repo.clone(),
        branch: p.branch.clone(),
        merge_commit: p.merge_commit.clone(),
        before_commit: p.before_commit.clone(),
        revert_commit: done.revert_commit.clone(),
        by: by.to_owned(),
        at: done.at,
        duration_ms: u64::try_from(done.duration.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The first ten digits of a commit hash, as people compare them.
fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

pub async fn rollback(config: &Config, args: &RollbackArgs) -> anyhow::Result<u8> {
    match &args.command {
        Some(RollbackCommand::List { run, limit, json }) => {
            list(config, run.as_deref(), *limit, *json).await
        }
        Some(RollbackCommand::Cleanup { older_than, json }) => {
            cleanup(config, older_than, *json).await
        }
        None => roll_back(config, args).await,
    }
}

async fn list(config: &Config, run: Option<&str>, limit: u32, json: bool) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let run = match run {
        Some(reference) => Some(resolve_run(&store, reference).await?),
        None => None,
    };
    let entries = store
        .rollback_entries(&RollbackQuery {
            run,
            limit,
            ..RollbackQuery::default()
        })
        .await?;
    let views: Vec<PointView> = entries.iter().map(point_view).collect();
    if json {
        output::json_pretty(&views);
        return Ok(exit::OK);
    }
    if views.is_empty() {
        output::note("no rollback points: nothing was merged (or they were cleaned up)");
        return Ok(exit::OK);
    }
    let mut table = output::table(&[
        "id",
        "run",
        "deliverable",
        "repo",
        "branch",
        "merge",
        "before",
        "created",
        "rolled back",
    ]);
    for v in &views {
        table.add_row(vec![
            v.id.clone(),
            v.run.chars().take(10).collect(),
            v.deliverable.clone(),
            v.repo.clone(),
            v.branch.clone(),
            short(&v.merge_commit).to_owned(),
            short(&v.before_commit).to_owned(),
            short_time(v.created_at),
            match &v.rolled_back {
                Some(r) => format!(
                    "{} by {}, revert {}",
                    short_time(r.at),
                    r.by,
                    short(&r.revert_commit)
                ),
                None => String::new(),
            },
        ]);
    }
    output::line(table);
    Ok(exit::OK)
}

async fn roll_back(config: &Config, args: &RollbackArgs) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let target = if let Some(id) = &args.id {
        RollbackTarget::Point(id.trim().to_owned())
    } else if let Some(deliverable) = &args.deliverable {
        let deliverable = DeliverableId::parse(deliverable.trim())
            .map_err(|e| InvalidInput::new(format!("--deliverable: {e}")))?;
        let run = match &args.run {
            Some(reference) => Some(resolve_run(&store, reference).await?),
            None => None,
        };
        RollbackTarget::Deliverable { run, deliverable }
    } else if let Some(commit) = &args.commit {
        RollbackTarget::Commit(commit.clone())
    } else {
        RollbackTarget::Latest {
            repo: args.repo.clone(),
        }
    };
    let engine = engine(config, store)?;
    let done = match engine.rollback(target, &config.actor).await {
        Ok(done) => done,
        Err(e) => return refused(e, args),
    };
    // A rollback is an outcome the breakers judge ("High Rollback Rate").
    engine
        .breakers_settled(crate::commands::BREAKERS_SETTLE)
        .await;
    if args.json {
        output::json(&done_view(&done, &config.actor));
        return Ok(exit::OK);
    }
    let p = &done.point;
    output::line(format!(
        "rolled back {}: {} of run {} on {} in {}",
        p.id, p.deliverable, p.run_id, p.branch, p.repo
    ));
    output::line(format!(
        "revert commit {} undoes merge {} ({})",
        short(&done.revert_commit),
        short(&p.merge_commit),
        output::duration(done.duration)
    ));
    Ok(exit::OK)
}

/// Why a rollback did not happen, as an exit code: a refusal because of the repository's state
/// is 1 (the message names the files), bad or stale input 2, a failure of git or the store 4.
fn refused(e: kamachiq_engine::Error, args: &RollbackArgs) -> anyhow::Result<u8> {
    use kamachiq_engine::Error as E;
    match e {
        E::RollbackConflict { .. } | E::RollbackTargetDirty { .. } => {
            output::note(format!("error: {e}"));
            Ok(exit::RUN_FAILED)
        }
        E::NoRollbackPoint(_)
        | E::AmbiguousRollbackPoint { .. }
        | E::AlreadyRolledBack { .. }
        | E::MergeNotOnBranch { .. }
        | E::NothingToRevert { .. } => Err(InvalidInput::new(e.to_string()).into()),
        E::NotARepository { ref path, .. } if args.repo.as_ref() == Some(path) => {
            Err(InvalidInput::new(format!("--repo: {e}")).into())
        }
        other => Err(other.into()),
    }
}

async fn cleanup(config: &Config, older_than: &str, json: bool) -> anyhow::Result<u8> {
    let age = humantime::parse_duration(older_than.trim()).map_err(|e| {
        InvalidInput::new(format!(
            "--older-than: `{older_than}` is not a duration like 30d or 12h ({e})"
        ))
    })?;
    let engine = engine(config, open_store(config).await?)?;
    let (forgotten, before) = engine.forget_rollback_points(age).await?;
    if json {
        output::json(&CleanupView { forgotten, before });
    } else {
        output::line(format!(
            "forgot {forgotten} rollback point(s) created before {}",
            short_time(before)
        ));
    }
    Ok(exit::OK)
}
