//! Where a deliverable's steps run and how their work reaches the target branch.
//!
//! With a target repository, each deliverable gets a git worktree on its own branch,
//! `kamachiq/<run>/<deliverable>`, created from the target branch when it starts (so it sees
//! every dependency already merged). After each successful step its changes are committed to
//! that branch; before a retry or a resumed step the worktree is reset to the last commit, so
//! every attempt starts from the state the previous step left.
//!
//! Merging never touches a working tree of the user's: the merge is computed with
//! `git merge-tree --write-tree`, committed with `commit-tree`, and the target branch moves by a
//! compare-and-swap (`update-ref NEW OLD`), or, when the target branch is checked out
//! somewhere, by `merge --ff-only` in that checkout, which moves the branch, index and files
//! together and refuses rather than overwrite local changes. Merges into one target happen one
//! at a time. A merge that already happened (the process died before recording it) is found
//! and reported, never repeated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kamachiq_domain::{DeliverableId, RunId};

use crate::Error;
use crate::git::{Git, Identity};

/// How far back along the target's first-parent history to look for an earlier merge.
const MERGE_SEARCH_DEPTH: &str = "1000";

/// The result of merging a deliverable's branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged (now or, found afterwards, before a crash): `before` is the rollback point.
    Merged {
        before: String,
        commit: String,
    },
    /// The branch has no commits the target lacks: nothing to merge.
    NothingToMerge,
    Conflict {
        files: Vec<String>,
    },
    /// The target branch is checked out with local changes the merge would overwrite.
    TargetDirty {
        checkout: PathBuf,
        detail: String,
    },
}

/// A target repository and branch, checked: the repository exists, git is new enough and the
/// branch has commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Top level of the repository (its git directory when it is bare).
    pub repo: PathBuf,
    pub branch: String,
}

impl Target {
    /// Resolves `repo` (any directory inside it) and the branch (`None`: the checked-out one).
    pub async fn resolve(repo: &Path, branch: Option<&str>) -> Result<Self, Error> {
        let git = Git::new(repo, Identity::default());
        git.check_version().await?;
        if !repo.is_dir() {
            return Err(Error::NotARepository {
                path: repo.to_path_buf(),
                detail: "no such directory".into(),
            });
        }
        let not_repo = |e: Error| Error::NotARepository {
            path: repo.to_path_buf(),
            detail: e.to_string(),
        };
        let bare = git
            .run(&["rev-parse", "--is-bare-repository"])
            .await
            .map_err(not_repo)?
            == "true";
        let top = if bare {
            git.run(&["rev-parse", "--absolute-git-dir"])
                .await
                .map_err(not_repo)?
        } else {
            git.run(&["rev-parse", "--show-toplevel"])
                .await
                .map_err(not_repo)?
        };
        let branch = match branch {
            Some(b) => b.to_owned(),
            None => git
                .run(&["symbolic-ref", "--short", "-q", "HEAD"])
                .await
                .map_err(|_| Error::DetachedHead {
                    repo: PathBuf::from(&top),
                })?,
        };
        let full = format!("refs/heads/{branch}");
        if !git
            .check(&["rev-parse", "--verify", "--quiet", &full])
            .await?
        {
            return Err(Error::NoSuchBranch {
                repo: PathBuf::from(&top),
                branch,
            });
        }
        Ok(Self {
            repo: PathBuf::from(top),
            branch,
        })
    }
}

/// Serialises merges into the same repository within this process.
#[derive(Debug, Default)]
pub struct MergeLocks(Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>);

impl MergeLocks {
    pub(crate) fn for_repo(&self, repo: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(repo.to_path_buf()).or_default().clone()
    }
}

/// The workspaces of one run.
#[derive(Clone, Debug)]
pub enum Workspaces {
    Git(GitWorkspaces),
    /// No repository (benchmarks, plain command runs): every step runs in one scratch directory
    /// and nothing is merged.
    Scratch(PathBuf),
}

impl Workspaces {
    /// Makes the run's workspace root ready: the scratch directory of a run without a
    /// repository is created here, once, not per deliverable.
    pub async fn open(&self) -> Result<(), Error> {
        match self {
            Self::Git(_) => Ok(()),
            Self::Scratch(dir) => tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display()))),
        }
    }

    /// A clean working directory for `deliverable`, at its branch's last commit.
    pub async fn prepare(&self, deliverable: &DeliverableId) -> Result<PathBuf, Error> {
        match self {
            Self::Git(git) => git.prepare(deliverable).await,
            // Created once, when the run's driver starts (see `Workspaces::open`).
            Self::Scratch(dir) => Ok(dir.clone()),
        }
    }

    /// Discards what an unsuccessful attempt left, back to the branch's last commit.
    pub async fn reset(&self, worktree: &Path) -> Result<(), Error> {
        match self {
            Self::Git(git) => git.reset(worktree).await,
            Self::Scratch(_) => Ok(()),
        }
    }

    /// Commits the step's changes to the deliverable's branch; the new commit, if any.
    pub async fn commit_step(
        &self,
        worktree: &Path,
        deliverable: &DeliverableId,
        step: &str,
    ) -> Result<Option<String>, Error> {
        match self {
            Self::Git(git) => git.commit_step(worktree, deliverable, step).await,
            Self::Scratch(_) => Ok(None),
        }
    }

    pub async fn merge(&self, deliverable: &DeliverableId) -> Result<MergeOutcome, Error> {
        match self {
            Self::Git(git) => git.merge(deliverable).await,
            Self::Scratch(_) => Ok(MergeOutcome::NothingToMerge),
        }
    }

    /// The deliverable's changes, as `git diff` text against where its branch left the
    /// target (for the review guards); `None` without a repository.
    pub async fn diff(&self, deliverable: &DeliverableId) -> Result<Option<String>, Error> {
        match self {
            Self::Git(git) => git.diff(deliverable).await.map(Some),
            Self::Scratch(_) => Ok(None),
        }
    }

    /// After a success: removes the worktree and the merged branch. A failed deliverable keeps
    /// both, for inspection.
    pub async fn remove(&self, deliverable: &DeliverableId) -> Result<(), Error> {
        match self {
            Self::Git(git) => git.remove(deliverable).await,
            Self::Scratch(_) => Ok(()),
        }
    }

    /// Whether a deliverable's success waits for a merge.
    pub fn merges(&self) -> bool {
        matches!(self, Self::Git(_))
    }

    pub fn branch_of(&self, deliverable: &DeliverableId) -> Option<String> {
        match self {
            Self::Git(git) => Some(git.branch_of(deliverable)),
            Self::Scratch(_) => None,
        }
    }
}

/// Worktrees of one run in one target repository.
#[derive(Clone, Debug)]
pub struct GitWorkspaces {
    git: Git,
    target: Target,
    run: RunId,
    /// Directory holding this run's worktrees.
    root: PathBuf,
    merge_lock: Arc<tokio::sync::Mutex<()>>,
    /// Serialises worktree administration (`worktree add/remove/prune`) in this process.
    admin_lock: Arc<tokio::sync::Mutex<()>>,
}

impl GitWorkspaces {
    pub fn new(
        target: Target,
        run: RunId,
        root: PathBuf,
        identity: Identity,
        locks: &MergeLocks,
    ) -> Self {
        Self {
            git: Git::new(&target.repo, identity),
            merge_lock: locks.for_repo(&target.repo),
            admin_lock: locks.for_repo(&target.repo.join(".kamachiq-admin")),
            target,
            run,
            root,
        }
    }

    fn branch_of(&self, deliverable: &DeliverableId) -> String {
        format!("kamachiq/{}/{}", self.run, deliverable)
    }

    async fn prepare(&self, deliverable: &DeliverableId) -> Result<PathBuf, Error> {
        let path = self.root.join(deliverable.as_str());
        let branch = self.branch_of(deliverable);
        if path.join(".git").exists() {
            let wt = self.git.at(&path);
            if wt
                .run(&["rev-parse", "--abbrev-ref", "HEAD"])
                .await
                .ok()
                .as_deref()
                == Some(branch.as_str())
            {
                self.reset(&path).await?;
                return Ok(path);
            }
        }
        let _admin = self.admin_lock.lock().await;
        if path.exists() {
            tokio::fs::remove_dir_all(&path)
                .await
                .map_err(|e| Error::Io(format!("cannot clear {}: {e}", path.display())))?;
        }
        self.git.run(&["worktree", "prune"]).await?;
        let path_text = path.to_string_lossy().into_owned();
        let full = format!("refs/heads/{branch}");
        if self
            .git
            .check(&["rev-parse", "--verify", "--quiet", &full])
            .await?
        {
            self.git
                .run(&["worktree", "add", "--quiet", &path_text, &branch])
                .await?;
        } else {
            let start = format!("refs/heads/{}", self.target.branch);
            self.git
                .run(&[
                    "worktree", "add", "--quiet", "-b", &branch, &path_text, &start,
                ])
                .await?;
        }
        Ok(path)
    }

    async fn reset(&self, worktree: &Path) -> Result<(), Error> {
        let wt = self.git.at(worktree);
        wt.run(&["reset", "--hard", "--quiet", "HEAD"]).await?;
        wt.run(&["clean", "-fdq"]).await?;
        Ok(())
    }

    async fn commit_step(
        &self,
        worktree: &Path,
        deliverable: &DeliverableId,
        step: &str,
    ) -> Result<Option<String>, Error> {
        let wt = self.git.at(worktree);
        wt.run(&["add", "--all"]).await?;
        if wt.check(&["diff", "--cached", "--quiet"]).await? {
            return Ok(None);
        }
        let message = format!("kamachiq: {deliverable} step {step}\n\nRun: {}", self.run);
        wt.run(&["commit", "--quiet", "--no-verify", "-m", &message])
            .await?;
        wt.run(&["rev-parse", "HEAD"]).await.map(Some)
    }

    async fn diff(&self, deliverable: &DeliverableId) -> Result<String, Error> {
        let branch = format!("refs/heads/{}", self.branch_of(deliverable));
        let target_ref = format!("refs/heads/{}", self.target.branch);
        let base = self.git.run(&["merge-base", &target_ref, &branch]).await?;
        // Prefixes are named so that a user's `diff.noprefix` cannot change the text.
        let args = [
            "diff",
            "--no-color",
            "--no-ext-diff",
            "-M",
            "--unified=0",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            base.as_str(),
            branch.as_str(),
        ];
        let out = self.git.output(&args).await?;
        if !out.status.success() {
            return Err(Error::Git {
                dir: self.target.repo.clone(),
                command: "diff".to_owned(),
                status: out.status.code(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn merge(&self, deliverable: &DeliverableId) -> Result<MergeOutcome, Error> {
        let _serial = self.merge_lock.lock().await;
        let branch = self.branch_of(deliverable);
        let target_ref = format!("refs/heads/{}", self.target.branch);
        let tip = self
            .git
            .run(&["rev-parse", &format!("refs/heads/{branch}")])
            .await?;
        // The target may move under us (a person committing, another kamachiq process); each
        // round re-reads it and the update only lands if it has not moved since.
        for _ in 0..5 {
            let old = self.git.run(&["rev-parse", &target_ref]).await?;
            if self
                .git
                .check(&["merge-base", "--is-ancestor", &tip, &old])
                .await?
            {
                return self.earlier_merge(&tip, &target_ref).await;
            }
            let out = self
                .git
                .output(&[
                    "merge-tree",
                    "--write-tree",
                    "--name-only",
                    "--no-messages",
                    &old,
                    &tip,
                ])
                .await?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            match out.status.code() {
                Some(0) => {}
                Some(1) => {
                    let files = stdout
                        .lines()
                        .skip(1)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect();
                    return Ok(MergeOutcome::Conflict { files });
                }
                _ => return Err(self.git.failure(&["merge-tree", &old, &tip], &out)),
            }
            let tree = stdout.lines().next().unwrap_or_default().to_owned();
            let message = format!("kamachiq: merge {deliverable} (run {})", self.run);
            let commit = self
                .git
                .run(&["commit-tree", &tree, "-p", &old, "-p", &tip, "-m", &message])
                .await?;
            match self.advance_target(&target_ref, &old, &commit).await? {
                Advance::Done => {
                    return Ok(MergeOutcome::Merged {
                        before: old,
                        commit,
                    });
                }
                Advance::Moved => continue,
                Advance::Dirty { checkout, detail } => {
                    return Ok(MergeOutcome::TargetDirty { checkout, detail });
                }
            }
        }
        Err(Error::TargetKeepsMoving {
            branch: self.target.branch.clone(),
        })
    }

    /// Moves the target branch from `old` to `commit`, through the checkout that has it, if any.
    pub(crate) async fn advance_target(
        &self,
        target_ref: &str,
        old: &str,
        commit: &str,
    ) -> Result<Advance, Error> {
        match self.checkout_of(target_ref).await? {
            Some(checkout) => {
                let out = self
                    .git
                    .at(&checkout)
                    .output(&["merge", "--ff-only", "--quiet", commit])
                    .await?;
                if out.status.success() {
                    return Ok(Advance::Done);
                }
                let now = self.git.run(&["rev-parse", target_ref]).await?;
                if now != old {
                    return Ok(Advance::Moved);
                }
                Ok(Advance::Dirty {
                    checkout,
                    detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                })
            }
            None => {
                let message = format!("kamachiq: merge into {}", self.target.branch);
                let out = self
                    .git
                    .output(&["update-ref", "-m", &message, target_ref, commit, old])
                    .await?;
                Ok(if out.status.success() {
                    Advance::Done
                } else {
                    Advance::Moved
                })
            }
        }
    }

    /// The working tree where `target_ref` is checked out, if any.
    async fn checkout_of(&self, target_ref: &str) -> Result<Option<PathBuf>, Error> {
        let list = self.git.run(&["worktree", "list", "--porcelain"]).await?;
        let mut current: Option<PathBuf> = None;
        for line in list.lines() {
            if let Some(path) = line.strip_prefix("worktree ") {
                current = Some(PathBuf::from(path));
            } else if line.strip_prefix("branch ") == Some(target_ref) {
                return Ok(current);
            } else if line == "bare" {
                current = None;
            }
        }
        Ok(None)
    }

    /// The branch tip is already in the target: either an earlier attempt merged it (find that
    /// merge, whose first parent is the rollback point) or it has nothing new.
    async fn earlier_merge(&self, tip: &str, target_ref: &str) -> Result<MergeOutcome, Error> {
        let history = self
            .git
            .run(&[
                "rev-list",
                "--first-parent",
                "--parents",
                "-n",
                MERGE_SEARCH_DEPTH,
                target_ref,
            ])
            .await?;
        for line in history.lines() {
            let ids: Vec<&str> = line.split_whitespace().collect();
            if let [commit, first, second] = ids.as_slice()
                && *second == tip
            {
                return Ok(MergeOutcome::Merged {
                    before: (*first).to_owned(),
                    commit: (*commit).to_owned(),
                });
            }
        }
        Ok(MergeOutcome::NothingToMerge)
    }

    async fn remove(&self, deliverable: &DeliverableId) -> Result<(), Error> {
        let _admin = self.admin_lock.lock().await;
        let path = self.root.join(deliverable.as_str());
        if path.exists() {
            self.git
                .run(&["worktree", "remove", "--force", &path.to_string_lossy()])
                .await?;
        }
        let branch = self.branch_of(deliverable);
        let full = format!("refs/heads/{branch}");
        if self
            .git
            .check(&["rev-parse", "--verify", "--quiet", &full])
            .await?
        {
            self.git.run(&["branch", "-D", "--quiet", &branch]).await?;
        }
        // The run's directory goes when its last worktree does.
        let _ = std::fs::remove_dir(&self.root);
        Ok(())
    }
}

pub(crate) enum Advance {
    Done,
    Moved,
    Dirty { checkout: PathBuf, detail: String },
}
