//! Running git. Every call gets a clean environment for locating repositories (no inherited
//! `GIT_DIR`), never prompts, speaks C-locale English for parsing, and commits as kamachiq.

use std::path::PathBuf;
use std::process::Output;

use crate::Error;

/// Oldest git with `merge-tree --write-tree`, which merges without touching any checkout.
const MIN_VERSION: (u32, u32) = (2, 38);

/// Who kamachiq's commits are by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            name: "kamachiq".to_owned(),
            email: "kamachiq@localhost".to_owned(),
        }
    }
}

/// git, run in one directory.
#[derive(Clone, Debug)]
pub struct Git {
    dir: PathBuf,
    identity: Identity,
}

impl Git {
    pub fn new(dir: impl Into<PathBuf>, identity: Identity) -> Self {
        Self {
            dir: dir.into(),
            identity,
        }
    }

    pub fn at(&self, dir: impl Into<PathBuf>) -> Self {
        Self::new(dir, self.identity.clone())
    }

    /// Runs git and returns its raw output, whatever its exit status.
    pub async fn output(&self, args: &[&str]) -> Result<Output, Error> {
        let mut command = tokio::process::Command::new("git");
        command
            .arg("-c")
            .arg("commit.gpgsign=false")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env("GIT_AUTHOR_NAME", &self.identity.name)
            .env("GIT_AUTHOR_EMAIL", &self.identity.email)
            .env("GIT_COMMITTER_NAME", &self.identity.name)
            .env("GIT_COMMITTER_EMAIL", &self.identity.email)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_COMMON_DIR",
        ] {
            command.env_remove(var);
        }
        command
            .output()
            .await
            .map_err(|e| Error::GitUnavailable(e.to_string()))
    }

    /// Runs git; its trimmed stdout on success, an error naming the command otherwise.
    pub async fn run(&self, args: &[&str]) -> Result<String, Error> {
        let out = self.output(args).await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(self.failure(args, &out))
        }
    }

    /// Whether git exits 0 (for questions such as `merge-base --is-ancestor`).
    pub async fn check(&self, args: &[&str]) -> Result<bool, Error> {
        Ok(self.output(args).await?.status.success())
    }

    pub fn failure(&self, args: &[&str], out: &Output) -> Error {
        Error::Git {
            dir: self.dir.clone(),
            command: args.join(" "),
            status: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }
    }

    /// Fails unless git is new enough for kamachiq.
    pub async fn check_version(&self) -> Result<(), Error> {
        let text = self.run(&["--version"]).await?;
        let version = text.trim_start_matches("git version ").to_owned();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if found < MIN_VERSION {
            return Err(Error::GitTooOld { found: version });
        }
        Ok(())
    }
}
