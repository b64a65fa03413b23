//! The safety guards kamachiq runs on a deliverable's diff before promoting (merging) it:
//! protected paths, limits on how many files and lines a diff may change, and a secret scan of
//! the lines it adds. Each violation is a [`Finding`]; the engine turns findings into policy
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
//! `protected` and `allow_secrets_in` hold globs matched against the whole repository-relative
//! path, read as `.gitignore` reads them: `*` and `?` do not match `/`, `**` matches any
//! number of directories; a pattern without a `/` (`*.pem`, `Jenkinsfile`) matches that name at
//! any depth (`certs/prod/server.pem`); a pattern with a `/` (`.github/workflows/**`,
//! `/build.rs`) is anchored at the root; a pattern matching a directory matches everything in
//! it, and a trailing `/` matches only what is inside. Matching is case-sensitive.
//!
//! # Secret scan
//!
//! Code `secret`. Only added lines of text files are scanned: binary files never are, nor
//! files matching `allow_secrets_in` (empty by default). At most one finding per line. A
//! finding's message says which kind of secret and where (`path:line`), and shows no more of
//! the secret than its first characters (a quarter of it, at most 4) followed by `…` and its
//! length: `GitHub token at src/config.rs:12 (ghp_…, 40 characters)`.
//!
//! Known formats, found wherever they are on the line:
//!
//! - private key blocks: `-----BEGIN … PRIVATE KEY-----` (RSA, EC, OPENSSH, PGP, …);
//! - AWS access key ids: `AKIA` or `ASIA` and 16 upper-case letters or digits;
//! - GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36 or more letters and digits,
//!   `github_pat_` and 50 or more;
//! - GitLab personal access tokens: `glpat-` and 20 or more;
//! - Slack tokens (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, carrying numeric ids) and
//!   incoming webhook URLs (`https://hooks.slack.com/services/…`);
//! - Stripe live keys: `sk_live_`, `rk_live_`;
//! - Google API keys: `AIza` and 35 characters;
//! - OpenAI keys: `sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-` and 32 or more characters;
//! - Anthropic keys: `sk-ant-` and 32 or more characters;
//! - JSON web tokens: three base64url segments, the first starting `eyJ`;
//! - kamachiq API tokens: `kq_` and 64 lower-case hex digits;
//! - URLs with a password: `scheme://user:password@host`, unless the host is reserved for
//!   documentation (`example.com`, `*.example`, `*.test`, `*.invalid`).
//!
//! Then values assigned to a secret's name: a name whose last word is `password`, `passwd`,
//! `passphrase`, `pass`, `secret`, `token` or `apikey`, or `key` after `api`, `access`,
//! `secret`, `private`, `auth`, `signing`, `encryption`, `master` or `client` (`DB_PASSWORD`,
//! `apiKey`, `aws_secret_access_key`; not `token_type`, `max_tokens`, `primary_key`, nor an
//! enum variant such as `Plugin::Sha256Password`), then `=`, `:`, `:=` or `=>` (a type
//! annotation may come between: `const API_KEY: &str = …`), then a value of 8 or more
//! characters with a letter and a digit in it and no spaces. Quoted values count anywhere; bare
//! values only outside program source (configuration, shell scripts, docs), since in code a
//! bare value is an expression (`password = os.environ["DB_PASSWORD"]`).
//!
//! Placeholders are never findings: templates and references (`${VAR}`, `{{ x }}`, `{name}`,
//! `<token>`, `$VAR`, `%(x)s`, `os.environ[...]`, `process.env.X`, `getenv`, `secrets.X`),
//! stand-in words (`changeme`, `placeholder`, `example`, `dummy`, `redacted`, `your_…`, `xxxx`,
//! `****`, `...`, and values that name what they stand for: `my-secret-1`, `token_2`), values
//! of fewer than 4 distinct characters and values that are mostly runs of consecutive
//! characters (`abcd1234`, an alphabet). AWS's documented example keys end in `EXAMPLE` and are
//! skipped the same way.
//!
//! Last, high-entropy strings: a token of 20 or more base64 or hex characters inside a string
//! literal, or (outside program source, where it would be an identifier) right after `=` or
//! `:`, whose Shannon entropy exceeds the threshold. The threshold
//! ([`DEFAULT_ENTROPY_THRESHOLD`], 4.5 bits per character) applies as it is to base64-like
//! tokens of 32 characters or more; a shorter token cannot carry that much (a string of n
//! characters has at most log2(n) bits per character), so below 32 it is scaled by
//! (log2(n) − 0.5) / 4.5, down to 0.85 of it at 20 characters. Hex tokens carry at most 4 bits
//! per character and are held to two thirds of the threshold (3.0). A base64-like token must
//! mix upper case, lower case and digits and must not read as words (a mean word length of 3
//! or more when split at case changes, digits and punctuation: `Utf8CharsWithHandler`), which
//! leaves out identifiers, ULIDs and most paths; a hex token needs digits and two different
//! letters. Never flagged: hex of 40, 64, 96 or 128 digits (git object ids and SHA digests),
//! hex that spells ASCII text, UUIDs, paths, ids inside URLs, subresource-integrity hashes
//! (`sha512-…`, as in `package-lock.json` and `yarn.lock`), `data:…;base64,` payloads, and
//! any token in a package manager's lock file (`Cargo.lock`, `package-lock.json`, `yarn.lock`,
//! `go.sum`, …), where known formats are still looked for.
//!
//! Test data that needs real-looking secrets belongs under a path in `allow_secrets_in`.

mod diff;
mod glob;
mod guards;
mod options;
mod secret;

#[cfg(test)]
mod fake;

pub use diff::{AddedLine, Diff, DiffStats, FileDiff, FileStatus};
pub use guards::{Finding, Guard, Guards, Report};
pub use options::{
    DEFAULT_ENTROPY_THRESHOLD, DEFAULT_MAX_CHANGED_LINES, DEFAULT_MAX_FILES, DEFAULT_PROTECTED,
    Options,
};

/// The stable codes of findings, one per kind of violation.
pub mod code {
    /// A protected path is touched ([`crate::Guard::ProtectedPath`]).
    pub const PROTECTED_PATH: &str = "protected_path";
    /// More files than `max_files` ([`crate::Guard::FileCount`]).
    pub const TOO_MANY_FILES: &str = "too_many_files";
    /// More changed lines than `max_changed_lines` ([`crate::Guard::DiffSize`]).
    pub const DIFF_TOO_LARGE: &str = "diff_too_large";
    /// An added line holds what looks like a secret ([`crate::Guard::Secret`]).
    pub const SECRET: &str = "secret";
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
    /// `entropy_threshold` is not a finite positive number.
    #[error("entropy_threshold: must be a positive number of bits per character (got {value})")]
    EntropyThreshold { value: f64 },
}
