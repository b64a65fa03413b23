//! `kamachiq workspaces list|prune`: the worktrees under the home, their disk use, and freeing
//! the space of finished runs. A failed deliverable keeps its worktree for inspection until
//! it is pruned; its branch stays in the repository either way.

use std::path::Path;
use std::time::Duration;

use kamachiq_domain::{RunId, Timestamp};
use kamachiq_engine::{disk_usage, format_bytes};
use serde::Serialize;

use crate::cli::WorkspacesCommand;
use crate::commands::open_store;
use crate::config::Config;
use crate::{InvalidInput, exit, output};

#[derive(Debug, Serialize)]
struct RunWorkspaces {
    run: String,
    /// The run's state, or `unknown` for a directory no run of this store owns.
    state: String,
    worktrees: usize,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct Listing {
    runs: Vec<RunWorkspaces>,
    total_bytes: u64,
    limit_bytes: Option<u64>,
}

pub async fn workspaces(config: &Config, command: &WorkspacesCommand) -> anyhow::Result<u8> {
    let store = open_store(config).await?;
    let root = config.home.join("worktrees");
    let mut runs = Vec::new();
    let mut entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries.flatten().collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let stored = match RunId::parse(name.clone()) {
            Ok(id) => store.run(&id).await.ok(),
            Err(_) => None,
        };
        runs.push((name, path, stored));
    }
    match command {
        WorkspacesCommand::List { json } => {
            let mut listing = Listing {
                runs: Vec::new(),
                total_bytes: 0,
                limit_bytes: config.max_workspace_bytes,
            };
            for (name, path, stored) in &runs {
                let bytes = measure(path).await;
                listing.total_bytes += bytes;
                listing.runs.push(RunWorkspaces {
                    run: name.clone(),
                    state: stored
                        .as_ref()
                        .map_or_else(|| "unknown".to_owned(), |r| r.state.to_string()),
                    worktrees: count_dirs(path),
                    bytes,
                });
            }
            if *json {
                output::json_pretty(&listing);
                return Ok(exit::OK);
            }
            let mut table = output::table(&["run", "state", "worktrees", "disk"]);
            for r in &listing.runs {
                table.add_row(vec![
                    r.run.clone(),
                    r.state.clone(),
                    r.worktrees.to_string(),
                    format_bytes(r.bytes),
                ]);
            }
            if !listing.runs.is_empty() {
                output::line(table);
            }
            output::line(format!(
                "total {} in {}{}",
                format_bytes(listing.total_bytes),
                root.display(),
                listing
                    .limit_bytes
                    .map(|l| format!(" (limit {})", format_bytes(l)))
                    .unwrap_or_default()
            ));
            Ok(exit::OK)
        }
        WorkspacesCommand::Prune { older_than, json } => {
            let age = older_than
                .as_deref()
                .map(|t| {
                    humantime::parse_duration(t.trim()).map_err(|e| {
                        InvalidInput::new(format!("--older-than: invalid duration `{t}`: {e}"))
                    })
                })
                .transpose()?
                .unwrap_or(Duration::ZERO);
            let now = Timestamp::from_system_time(std::time::SystemTime::now());
            let mut pruned = Vec::new();
            let mut freed = 0u64;
            for (name, path, stored) in runs {
                let Some(run) = stored else { continue };
                let done = run
                    .finished_at
                    .filter(|at| run.state.is_terminal() && now.since(*at) >= age);
                if done.is_none() {
                    continue;
                }
                freed += measure(&path).await;
                tokio::fs::remove_dir_all(&path)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", path.display()))?;
                // git forgets the worktrees whose directories are gone.
                if let Some(repo) = &run.repo {
                    let _ = tokio::process::Command::new("git")
                        .args(["worktree", "prune"])
                        .current_dir(repo)
                        .output()
                        .await;
                }
                pruned.push(name);
            }
            if *json {
                output::json(&serde_json::json!({"pruned": pruned, "freed_bytes": freed}));
            } else {
                output::line(format!(
                    "removed the worktrees of {} finished run(s), {} freed (their branches are kept)",
                    pruned.len(),
                    format_bytes(freed)
                ));
            }
            Ok(exit::OK)
        }
    }
}

async fn measure(path: &Path) -> u64 {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || disk_usage(&path))
        .await
        .unwrap_or(0)
}

fn count_dirs(path: &Path) -> usize {
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0)
}
