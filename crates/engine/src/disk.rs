//! How much disk the worktrees take, and keeping it bounded: a deliverable does not get a new
//! worktree while the worktrees under kamachiq's home use more than `max_workspace_bytes`.
//! Measuring walks the tree, so a measure is reused for [`REMEASURE`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Error;

/// How long a measure of the worktrees' disk use is reused.
pub const REMEASURE: Duration = Duration::from_secs(30);

/// The bytes of regular files beneath `dir` (symbolic links not followed; unreadable entries
/// skipped). Blocking: call it off the async threads.
pub fn usage(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file()
                && let Ok(meta) = entry.metadata()
            {
                total = total.saturating_add(meta.len());
            }
        }
    }
    total
}

/// The worktrees' disk use, measured at most every [`REMEASURE`].
#[derive(Debug, Default)]
pub struct Meter {
    last: std::sync::Mutex<Option<(u64, Instant)>>,
}

impl Meter {
    pub async fn usage(&self, dir: &Path) -> Result<u64, Error> {
        if let Some((bytes, at)) = *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            && at.elapsed() < REMEASURE
        {
            return Ok(bytes);
        }
        let dir = dir.to_path_buf();
        let bytes = tokio::task::spawn_blocking(move || usage(&dir))
            .await
            .map_err(|e| Error::Io(format!("cannot measure the worktrees' disk use: {e}")))?;
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((bytes, Instant::now()));
        Ok(bytes)
    }
}

/// `1.5 GiB`, `120 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_files_in_nested_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/one"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("a/b/two"), vec![0u8; 24]).unwrap();
        assert_eq!(usage(dir.path()), 1024);
        assert_eq!(usage(&dir.path().join("missing")), 0);
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
