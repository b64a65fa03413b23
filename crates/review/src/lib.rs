//! The safety guards kamachiq runs on a deliverable's diff before promoting (merging) it:
//! protected paths and limits on how many files and lines a diff may change. Each violation is a [`Finding`]; the engine turns findings into policy
//! inputs and reasons for a governance review.
//!
//! This crate is pure: diff text in, [`Report`] out. It must not depend on any other kamachiq
//! crate, nor do I/O, run git, read the environment or the clock, or be async; the engine runs
//! `git diff` and hands over the text.
//!
//! ```
//! use kamachiq_review::{Diff, Guards, Options};
//!
//! let text = "diff --git a/.github/workflows/ci.yml b/.github/workflows/ci.yml\n\
//!             deleted file mode 100644\n";
//! let guards = Guards::new(&Options::default())?;
//! let report = guards.check(&Diff::parse(text)?);
//! assert!(!report.passed());
//! assert_eq!(
//!     report.findings[0].message,
//!     "deletes protected path `.github/workflows/ci.yml` (matches `.github/workflows/**`)"
//! );
//! # Ok::<(), kamachiq_review::Error>(())
//! ```
//!
//! # Defaults
//!
//! [`Options::default`] is what a deliverable gets unless its configuration says otherwise.
//!
//! **Complexity.** At most 20 files ([`DEFAULT_MAX_FILES`], code `too_many_files`) and 1,000
//! changed lines, added plus removed ([`DEFAULT_MAX_CHANGED_LINES`], code `diff_too_large`).
//! Binary files count as files and add no lines. A diff exactly at a limit passes.
//!
//! **Protected paths** (code `protected_path`), [`DEFAULT_PROTECTED`]. A file is caught when its
//! path before *or* after the change matches, so deleting a protected file, renaming one away
//! or renaming another file onto one is caught as well as editing it.
//!
//! - environment files: `.env`, `*.env`, `*.env.*`, `.envrc`, at any depth (`.env`,
//!   `config/.env.production`, `app.env`; not `docs/environment.md` nor
//!   `src/app.environment.ts`);
//! - git's own data: `.git/` (anything inside a `.git` directory);
//! - credentials: `*.pem`, `*.key`, `id_rsa*`, `id_dsa*`, `id_ecdsa*`, `id_ed25519*`, `*.p12`,
//!   `*.pfx`, `*.keystore`, `*.jks`, `.npmrc`, `.pypirc`, `.netrc`, `credentials*`, `secrets.*`;
//! - CI configuration: `.github/workflows/**`, `.gitlab-ci.yml`, `.circleci/**`, `Jenkinsfile`,
//!   `.buildkite/**`, `azure-pipelines.yml`, `.travis.yml`;
//! - database schema: `**/migrations/**`, `**/*.sql` (so `structure.sql` too), `**/schema.rb`,
//!   `**/schema.prisma`.
//!
//! Lock files are not protected, since agents update dependencies. To protect them too, extend
//! the defaults rather than replace them:
//!
//! ```
//! use kamachiq_review::{DEFAULT_PROTECTED, Options};
//!
//! let mut options = Options::default();
//! options.protected.extend(["Cargo.lock", "package-lock.json", "yarn.lock"].map(String::from));
//! assert_eq!(options.protected.len(), DEFAULT_PROTECTED.len() + 3);
//! ```
//!
//! In a configuration file, `protected` replaces the list: copy [`DEFAULT_PROTECTED`] and add.
//!
//! # Path patterns
//!
//! `protected` holds globs matched against the whole repository-relative path, read as
//! `.gitignore` reads them: `*` and `?` do not match `/`, `**` matches any number of
//! directories; a pattern without a `/` (`*.pem`, `Jenkinsfile`) matches that name at
//! any depth (`certs/prod/server.pem`); a pattern with a `/` (`.github/workflows/**`,
//! `/build.rs`) is anchored at the root; a pattern matching a directory matches everything in
//! it, and a trailing `/` matches only what is inside. Matching is case-sensitive.

mod diff;
mod glob;
mod guards;
mod options;

pub use diff::{AddedLine, Diff, DiffStats, FileDiff, FileStatus};
pub use guards::{Finding, Guard, Guards, Report};
pub use options::{DEFAULT_MAX_CHANGED_LINES, DEFAULT_MAX_FILES, DEFAULT_PROTECTED, Options};

/// The stable codes of findings, one per kind of violation.
pub mod code {
    /// A protected path is touched ([`crate::Guard::ProtectedPath`]).
    pub const PROTECTED_PATH: &str = "protected_path";
    /// More files than `max_files` ([`crate::Guard::FileCount`]).
    pub const TOO_MANY_FILES: &str = "too_many_files";
    /// More changed lines than `max_changed_lines` ([`crate::Guard::DiffSize`]).
    pub const DIFF_TOO_LARGE: &str = "diff_too_large";
}

/// Errors of the review crate: a diff that cannot be read, or options that cannot be compiled.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// The diff text is not what `git diff` prints. `line` is 1-based; `found` quotes header
    /// lines but only describes content lines, which may hold secrets.
    #[error("diff line {line}: expected {expected}, found {found}")]
    Parse {
        line: u32,
        expected: &'static str,
        found: String,
    },
    /// A path pattern does not compile; `field` is the option and index, e.g. `protected[3]`.
    #[error("{field}: invalid glob `{glob}`: {reason}")]
    Glob {
        field: String,
        glob: String,
        reason: String,
    },
}
