//! What the guards enforce, and the defaults.

use serde::{Deserialize, Serialize};

/// At most this many files in one deliverable's diff, by default.
pub const DEFAULT_MAX_FILES: u32 = 20;

/// At most this many changed lines (added plus removed) in one deliverable's diff, by default.
pub const DEFAULT_MAX_CHANGED_LINES: u32 = 1000;

/// Shannon entropy, in bits per character, above which a base64-like token of 32 or more
/// characters is taken for a secret (see the crate documentation for shorter and hex tokens).
pub const DEFAULT_ENTROPY_THRESHOLD: f64 = 4.5;

/// The paths protected by default, grouped as the crate documentation lists them. Pattern
/// syntax: see the crate documentation ("Path patterns").
pub const DEFAULT_PROTECTED: &[&str] = &[
    // Environment files.
    ".env",
    "*.env",
    "*.env.*",
    ".envrc",
    // Git's own data.
    ".git/",
    // Credentials and private keys.
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    ".npmrc",
    ".pypirc",
    ".netrc",
    "credentials*",
    "secrets.*",
    // CI configuration.
    ".github/workflows/**",
    ".gitlab-ci.yml",
    ".circleci/**",
    "Jenkinsfile",
    ".buildkite/**",
    "azure-pipelines.yml",
    ".travis.yml",
    // Database schema and migrations.
    "**/migrations/**",
    "**/*.sql",
    "**/schema.rb",
    "**/schema.prisma",
];

/// Settings of the guards. Every field has a default, so a configuration names only what it
/// changes; an unknown field is an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Path patterns no deliverable may touch without review. Replaces the defaults: to add to
    /// them, start from [`DEFAULT_PROTECTED`].
    pub protected: Vec<String>,
    /// Most files one diff may touch; `None`: no limit.
    pub max_files: Option<u32>,
    /// Most lines one diff may add and remove together; `None`: no limit.
    pub max_changed_lines: Option<u32>,
    /// Whether added lines are scanned for secrets.
    pub secret_scan: bool,
    /// Bits per character above which a token is high-entropy; must be finite and positive.
    /// No token can exceed 7, so 7 or more turns the entropy rule off (the other rules stay).
    pub entropy_threshold: f64,
    /// Path patterns whose added lines are not scanned for secrets (test fixtures, say).
    pub allow_secrets_in: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            protected: DEFAULT_PROTECTED.iter().map(|p| (*p).to_owned()).collect(),
            max_files: Some(DEFAULT_MAX_FILES),
            max_changed_lines: Some(DEFAULT_MAX_CHANGED_LINES),
            secret_scan: true,
            entropy_threshold: DEFAULT_ENTROPY_THRESHOLD,
            allow_secrets_in: Vec::new(),
        }
    }
}
