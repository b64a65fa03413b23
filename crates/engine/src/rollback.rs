//! Rolling back a promotion: a new commit on the target branch undoes one merge, and history
//! is kept (nothing is reset or force-moved).
//!
//! The revert is computed like a merge, without a working tree: a three-way merge of the
//! branch tip and the commit before the merge, on the merge commit as base
//! (`git merge-tree --write-tree --merge-base=MERGE TIP BEFORE`), so later work is kept and
//! only the merge's own changes are undone. That is `git revert -m 1 MERGE`, with no checkout.
//! The commit (`commit-tree`, the tip as its parent) names the rollback point, run and
//! deliverable, and the branch moves the way merges move it: compare-and-swap, or
//! `merge --ff-only` in the checkout that has it, which refuses rather than overwrite local
//! changes. Later changes that conflict with the revert refuse it, naming the files, and
//! change nothing.
//!
//! A rollback holds the repository's merge lock, so it never races a merge of this process
//! into the same branch; against other processes, the compare-and-swap keeps it safe. It is
//! recorded after the branch moved, with its audit record and event in one transaction. A
//! revert that reached the branch but was not recorded (the process died in between) is found
//! on the branch by its `Rollback-Point:` trailer and recorded, never made twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kamachiq_domain::run::RollbackPoint;
use kamachiq_domain::{DeliverableId, RunId, Timestamp};
use kamachiq_store::{NewRollback, RollbackEntry, RollbackQuery};

use crate::Error;
use crate::engine::Engine;
use crate::git::Git;
use crate::workspace::{Advance, GitWorkspaces, Target};

/// How many rollback points a lookup reads to tell a unique match from an ambiguous one.
const MATCHES_SHOWN: u32 = 10;

/// Which promotion to roll back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackTarget {
    /// A rollback point by its id (`rb-...`).
    Point(String),
    /// The rollback point of a deliverable's merge, in one run, or in any run when it is the
    /// only one.
    Deliverable {
        run: Option<RunId>,
        deliverable: DeliverableId,
    },
    /// The rollback point whose merge commit this is: a full hash or a unique abbreviation.
    Commit(String),
    /// The newest rollback point not rolled back yet, of one repository (any directory in it)
    /// or of every repository.
    Latest { repo: Option<PathBuf> },
}

/// A promotion that was rolled back: the outcome a record of actions counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackDone {
    pub point: RollbackPoint,
    /// The new commit on the target branch that undoes the merge.
    pub revert_commit: String,
    /// When the rollback was recorded.
    pub at: Timestamp,
    /// How long it took, from the request to the record.
    pub duration: Duration,
}

impl Engine {
    /// Rolls back the promotion `target` names: a new commit on its target branch undoes the
    /// merge. `by` is who asked (`local:<login>`, a token's name), for the audit trail.
    ///
    /// Refused, with nothing changed, when the point is unknown or ambiguous, already rolled
    /// back, its merge is no longer on the branch, later changes conflict with the revert, or
    /// the checkout that has the branch holds local changes the revert would overwrite.
    pub async fn rollback(&self, target: RollbackTarget, by: &str) -> Result<RollbackDone, Error> {
        let started = self.inner.clock.now();
        let entry = self.find_rollback_point(&target).await?;
        refuse_if_rolled_back(&entry)?;
        let point = entry.point;
        let repo = PathBuf::from(&point.repo);
        let lock = self.inner.merge_locks.for_repo(&repo);
        let _serial = lock.lock().await;
        // Another rollback in this process may have recorded it while this one waited.
        if let Some(entry) = self.inner.store.rollback_entry(&point.id).await? {
            refuse_if_rolled_back(&entry)?;
        }
        let revert_commit = self.revert(&point, by).await?;
        let at = self.inner.clock.now();
        let event = self
            .inner
            .store
            .record_rollback(&NewRollback {
                point: point.clone(),
                revert_commit: revert_commit.clone(),
                by: by.to_owned(),
                at,
                duration_ms: u64::try_from(at.since(started).as_millis()).unwrap_or(u64::MAX),
            })
            .await
            .map_err(|e| match e {
                kamachiq_store::Error::AlreadyRolledBack {
                    point,
                    at,
                    revert_commit,
                } => Error::AlreadyRolledBack {
                    point,
                    at,
                    revert_commit,
                },
                other => other.into(),
            })?;
        // The rollback's outcome was recorded with it: circuit breakers judge it now.
        self.inner
            .governor
            .notify(crate::governor::Notice::Outcomes(event.tenant.clone()));
        let _ = self.inner.events.send(event);
        tracing::info!(point = %point.id, run = %point.run_id, deliverable = %point.deliverable,
            branch = %point.branch, revert = %revert_commit, by, "merge rolled back");
        Ok(RollbackDone {
            point,
            revert_commit,
            at,
            duration: at.since(started),
        })
    }

    /// Forgets rollback points (and their rollback records) older than `age`; runs, events,
    /// the audit trail and git are not touched. Returns how many points were forgotten and
    /// the instant they were older than.
    pub async fn forget_rollback_points(&self, age: Duration) -> Result<(u64, Timestamp), Error> {
        let now = self.inner.clock.now();
        let before = Timestamp::from_millis(
            now.as_millis()
                .saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)),
        );
        Ok((
            self.inner.store.forget_rollback_points(before).await?,
            before,
        ))
    }

    /// The rollback point `target` names, with its rollback if it had one.
    pub async fn find_rollback_point(
        &self,
        target: &RollbackTarget,
    ) -> Result<RollbackEntry, Error> {
        let store = &self.inner.store;
        match target {
            RollbackTarget::Point(id) => store.rollback_entry(id).await?.ok_or_else(|| {
                Error::NoRollbackPoint(format!(
                    "no rollback point `{id}` (see `kamachiq rollback list`)"
                ))
            }),
            RollbackTarget::Deliverable { run, deliverable } => {
                let found = store
                    .rollback_entries(&RollbackQuery {
                        run: run.clone(),
                        deliverable: Some(deliverable.clone()),
                        limit: MATCHES_SHOWN,
                        ..RollbackQuery::default()
                    })
                    .await?;
                let what = match run {
                    Some(run) => format!("deliverable `{deliverable}` of run {run}"),
                    None => format!("deliverable `{deliverable}`"),
                };
                unique(found, &what, "name one by its id, or the run with --run")
            }
            RollbackTarget::Commit(commit) => {
                let prefix = commit.trim().to_ascii_lowercase();
                if prefix.len() < 4
                    || prefix.len() > 64
                    || !prefix.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(Error::NoRollbackPoint(format!(
                        "`{commit}` is not a commit hash (4 to 64 hex digits)"
                    )));
                }
                let found = store
                    .rollback_entries(&RollbackQuery {
                        merge_commit_prefix: Some(prefix),
                        limit: MATCHES_SHOWN,
                        ..RollbackQuery::default()
                    })
                    .await?;
                unique(
                    found,
                    &format!("merge commit `{commit}`"),
                    "give more of the hash, or the point's id",
                )
            }
            RollbackTarget::Latest { repo } => {
                let root = match repo {
                    Some(dir) => Some(repository_root(dir).await?),
                    None => None,
                };
                let mut newest = store
                    .rollback_entries(&RollbackQuery {
                        repo: root.clone(),
                        open: true,
                        limit: 1,
                        ..RollbackQuery::default()
                    })
                    .await?;
                newest.pop().ok_or_else(|| {
                    Error::NoRollbackPoint(match root {
                        Some(root) => format!(
                            "nothing to roll back in {root}: every merge kamachiq recorded there \
                             is rolled back already (or none was)"
                        ),
                        None => "nothing to roll back: every merge kamachiq recorded is rolled \
                                 back already (or none was)"
                            .to_owned(),
                    })
                })
            }
        }
    }

    /// Puts the revert of `point` on its branch; returns the revert commit.
    async fn revert(&self, point: &RollbackPoint, by: &str) -> Result<String, Error> {
        let identity = self.inner.options.identity.clone();
        let repo = PathBuf::from(&point.repo);
        if !repo.is_dir() {
            return Err(Error::NotARepository {
                path: repo,
                detail: "no such directory".into(),
            });
        }
        let git = Git::new(&repo, identity.clone());
        git.check_version().await?;
        let workspaces = GitWorkspaces::new(
            Target {
                repo: repo.clone(),
                branch: point.branch.clone(),
            },
            point.run_id.clone(),
            self.inner
                .options
                .home
                .join("worktrees")
                .join(point.run_id.as_str()),
            identity,
            &self.inner.merge_locks,
        );
        let target_ref = format!("refs/heads/{}", point.branch);
        let merge = point.merge_commit.as_str();
        // The branch may move under us (a person committing, another process); each round
        // re-reads it, and the branch only moves if it has not moved since.
        for _ in 0..5 {
            let tip = git
                .run(&["rev-parse", "--verify", "--quiet", &target_ref])
                .await
                .map_err(|_| Error::NoSuchBranch {
                    repo: repo.clone(),
                    branch: point.branch.clone(),
                })?;
            if !git
                .check(&["merge-base", "--is-ancestor", merge, &tip])
                .await?
            {
                return Err(Error::MergeNotOnBranch {
                    point: point.id.clone(),
                    commit: point.merge_commit.clone(),
                    branch: point.branch.clone(),
                });
            }
            if let Some(earlier) = earlier_revert(&git, point, &tip).await? {
                return Ok(earlier);
            }
            let base = format!("--merge-base={merge}");
            let args = [
                "merge-tree",
                "--write-tree",
                "--name-only",
                "--no-messages",
                &base,
                &tip,
                &point.before_commit,
            ];
            let out = git.output(&args).await?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            match out.status.code() {
                Some(0) => {}
                Some(1) => {
                    let mut files: Vec<String> = stdout
                        .lines()
                        .skip(1)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect();
                    files.dedup();
                    return Err(Error::RollbackConflict {
                        point: point.id.clone(),
                        branch: point.branch.clone(),
                        files,
                    });
                }
                _ => return Err(git.failure(&args, &out)),
            }
            let tree = stdout.lines().next().unwrap_or_default().to_owned();
            if tree == git.run(&["rev-parse", &format!("{tip}^{{tree}}")]).await? {
                return Err(Error::NothingToRevert {
                    point: point.id.clone(),
                    branch: point.branch.clone(),
                });
            }
            let message = revert_message(point, by);
            let commit = git
                .run(&["commit-tree", &tree, "-p", &tip, "-m", &message])
                .await?;
            match workspaces
                .advance_target(&target_ref, &tip, &commit)
                .await?
            {
                Advance::Done => return Ok(commit),
                Advance::Moved => continue,
                Advance::Dirty { checkout, detail } => {
                    return Err(Error::RollbackTargetDirty {
                        point: point.id.clone(),
                        branch: point.branch.clone(),
                        checkout,
                        detail,
                    });
                }
            }
        }
        Err(Error::TargetKeepsMoving {
            branch: point.branch.clone(),
        })
    }
}

fn refuse_if_rolled_back(entry: &RollbackEntry) -> Result<(), Error> {
    match &entry.rollback {
        Some(done) => Err(Error::AlreadyRolledBack {
            point: entry.point.id.clone(),
            at: done.at,
            revert_commit: done.revert_commit.clone(),
        }),
        None => Ok(()),
    }
}

/// The one entry of `found`, or why there is not exactly one.
fn unique(mut found: Vec<RollbackEntry>, what: &str, hint: &str) -> Result<RollbackEntry, Error> {
    match found.len() {
        0 => Err(Error::NoRollbackPoint(format!(
            "no rollback point for {what} (see `kamachiq rollback list`)"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(Error::AmbiguousRollbackPoint {
            what: what.to_owned(),
            matches: found
                .iter()
                .map(|e| {
                    format!(
                        "{} (run {}, deliverable {})",
                        e.point.id, e.point.run_id, e.point.deliverable
                    )
                })
                .collect(),
            hint: hint.to_owned(),
        }),
    }
}

/// The trailer that marks a revert commit as the rollback of one point.
fn trailer(point: &RollbackPoint) -> String {
    format!("Rollback-Point: {}", point.id)
}

fn revert_message(point: &RollbackPoint, by: &str) -> String {
    format!(
        "kamachiq: roll back {deliverable} (run {run})\n\n\
         Undoes merge {merge} on {branch}: the changes it brought are reverted, later work is \
         kept.\n\n\
         {trailer}\nRun: {run}\nDeliverable: {deliverable}\nRolled-back-by: {by}\n",
        deliverable = point.deliverable,
        run = point.run_id,
        merge = point.merge_commit,
        branch = point.branch,
        trailer = trailer(point),
    )
}

/// A revert of `point` already on the branch after its merge (made by a process that died
/// before recording it), if any.
async fn earlier_revert(
    git: &Git,
    point: &RollbackPoint,
    tip: &str,
) -> Result<Option<String>, Error> {
    let range = format!("{}..{tip}", point.merge_commit);
    let grep = format!("--grep=^{}$", trailer(point));
    let found = git
        .run(&["rev-list", "--first-parent", &grep, &range])
        .await?;
    Ok(found.lines().next().map(str::to_owned))
}

/// The top level of the repository holding `dir` (its git directory when it is bare), as
/// [`Target::resolve`] records it.
async fn repository_root(dir: &Path) -> Result<String, Error> {
    if !dir.is_dir() {
        return Err(Error::NotARepository {
            path: dir.to_path_buf(),
            detail: "no such directory".into(),
        });
    }
    let git = Git::new(dir, crate::git::Identity::default());
    let not_repo = |e: Error| Error::NotARepository {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    };
    let bare = git
        .run(&["rev-parse", "--is-bare-repository"])
        .await
        .map_err(not_repo)?
        == "true";
    let question = if bare {
        "--absolute-git-dir"
    } else {
        "--show-toplevel"
    };
    git.run(&["rev-parse", question]).await.map_err(not_repo)
}
