//! The guards compiled from [`Options`], and what they report about a diff.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::diff::{Diff, DiffStats, FileDiff, FileStatus};
use crate::glob::PathSet;
use crate::secret::{self, FileKind};
use crate::{Error, Options, code};

/// [`Options`] compiled: the path patterns are built once, and checking a diff allocates only
/// what it reports. Cheap to clone and safe to share between threads.
#[derive(Clone, Debug)]
pub struct Guards {
    options: Options,
    protected: PathSet,
    allow_secrets_in: PathSet,
}

/// Which guard a finding comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// A protected path is added, changed, deleted, renamed or copied.
    ProtectedPath,
    /// The diff touches more files than allowed.
    FileCount,
    /// The diff changes more lines than allowed.
    DiffSize,
    /// An added line holds what looks like a secret.
    Secret,
}

impl Guard {
    /// The guard's stable snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::ProtectedPath => "protected_path",
            Guard::FileCount => "file_count",
            Guard::DiffSize => "diff_size",
            Guard::Secret => "secret",
        }
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One violation. Its message names what was found and where, and never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub guard: Guard,
    /// Stable snake_case code, one of [`crate::code`].
    pub code: String,
    /// The file concerned, when the finding is about one file.
    pub path: Option<String>,
    /// The 1-based line in the new file, when the finding is about one line.
    pub line: Option<u32>,
    pub message: String,
}

/// What the guards found in one diff.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub stats: DiffStats,
    /// Size findings first, then protected paths in diff order, then secrets by file and line.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether no guard found anything.
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

impl Guards {
    /// Compiles `options`. A bad glob is an [`Error::Glob`] naming the field and the glob; an
    /// entropy threshold that is not a positive number is an [`Error::EntropyThreshold`].
    pub fn new(options: &Options) -> Result<Guards, Error> {
        let threshold = options.entropy_threshold;
        if !threshold.is_finite() || threshold <= 0.0 {
            return Err(Error::EntropyThreshold { value: threshold });
        }
        Ok(Guards {
            options: options.clone(),
            protected: PathSet::new("protected", &options.protected)?,
            allow_secrets_in: PathSet::new("allow_secrets_in", &options.allow_secrets_in)?,
        })
    }

    /// The options these guards were compiled from.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Runs every guard over `diff`.
    pub fn check(&self, diff: &Diff) -> Report {
        let stats = diff.stats();
        let mut findings = Vec::new();
        self.check_size(&stats, &mut findings);
        for file in &diff.files {
            if let Some(finding) = self.check_protected(file) {
                findings.push(finding);
            }
        }
        if self.options.secret_scan {
            for file in &diff.files {
                self.check_secrets(file, &mut findings);
            }
        }
        Report { stats, findings }
    }

    fn check_size(&self, stats: &DiffStats, findings: &mut Vec<Finding>) {
        if let Some(limit) = self.options.max_files
            && stats.files > limit
        {
            findings.push(Finding {
                guard: Guard::FileCount,
                code: code::TOO_MANY_FILES.to_owned(),
                path: None,
                line: None,
                message: format!(
                    "the diff touches {} files; the limit is {limit}",
                    stats.files
                ),
            });
        }
        if let Some(limit) = self.options.max_changed_lines
            && stats.lines_changed() > limit
        {
            findings.push(Finding {
                guard: Guard::DiffSize,
                code: code::DIFF_TOO_LARGE.to_owned(),
                path: None,
                line: None,
                message: format!(
                    "the diff changes {} lines ({} added, {} removed); the limit is {limit}",
                    stats.lines_changed(),
                    stats.lines_added,
                    stats.lines_removed
                ),
            });
        }
    }

    /// A file is caught when its path before or after the change is protected, so deleting or
    /// renaming a protected file away is caught as surely as editing it.
    fn check_protected(&self, file: &FileDiff) -> Option<Finding> {
        let old = file.old_path.as_deref();
        let new = file.new_path.as_deref();
        let old_match = old.and_then(|p| self.protected.first_match(p).map(|g| (p, g)));
        let new_match = new.and_then(|p| self.protected.first_match(p).map(|g| (p, g)));
        let (path, glob) = old_match.or(new_match)?;
        let old_is_protected = old_match.is_some();
        let message = match (file.status, old, new) {
            (FileStatus::Renamed | FileStatus::Copied, Some(old), Some(new)) => {
                let verb = if file.status == FileStatus::Renamed {
                    "renames"
                } else {
                    "copies"
                };
                if old_is_protected {
                    format!("{verb} protected path `{old}` to `{new}` (matches `{glob}`)")
                } else {
                    format!("{verb} `{old}` to protected path `{new}` (matches `{glob}`)")
                }
            }
            (status, _, _) => {
                let verb = match status {
                    FileStatus::Added => "adds",
                    FileStatus::Deleted => "deletes",
                    FileStatus::ModeChanged => "changes the mode of",
                    _ => "modifies",
                };
                format!("{verb} protected path `{path}` (matches `{glob}`)")
            }
        };
        Some(Finding {
            guard: Guard::ProtectedPath,
            code: code::PROTECTED_PATH.to_owned(),
            path: Some(path.to_owned()),
            line: None,
            message,
        })
    }

    fn check_secrets(&self, file: &FileDiff, findings: &mut Vec<Finding>) {
        let path = file.path();
        if file.binary || file.added.is_empty() || self.allow_secrets_in.is_match(path) {
            return;
        }
        let kind = FileKind::of(path);
        for added in &file.added {
            let Some(hit) = secret::scan(&added.text, kind, self.options.entropy_threshold) else {
                continue;
            };
            findings.push(Finding {
                guard: Guard::Secret,
                code: code::SECRET.to_owned(),
                path: Some(path.to_owned()),
                line: Some(added.line),
                message: format!(
                    "{} at {path}:{} ({})",
                    hit.what(),
                    added.line,
                    hit.redacted()
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests;
