//! The plan: a DAG of deliverables, each with the steps that produce it.
//!
//! A plan arrives as YAML or JSON (the planner output of seed 001 plus what running needs),
//! is read into the loose [`raw`] form with source locations, and is validated into the types
//! below. Code that holds a [`Plan`] can rely on every rule in [`validate`]: ids unique and
//! well-formed, dependencies known and acyclic, every step with a command.

mod graph;
mod parse;
mod problem;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::id::{DeliverableId, StepName, TenantId};

pub use graph::Graph;
pub use parse::{Format, Source};
pub use problem::{Problem, ProblemKind, Problems};

/// Step timeout when the plan names none. Generous: agents can work for a long time.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// First retry delay when the plan names none; it doubles on each further retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// The longest a retry waits, however many retries came before.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// Tenant of a plan that names none.
pub const DEFAULT_TENANT: &str = "default";
/// Region of a plan that names none.
pub const DEFAULT_REGION: &str = "local";
/// The agents a step may name: the coding agents kamachiq has adapters for, and `command`, a
/// command line template from the configuration.
pub const AGENTS: [&str; 5] = ["claude", "codex", "aider", "gemini", "command"];

/// A validated plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub tenant: TenantId,
    pub region: String,
    /// Target repository as written in the plan; relative paths are relative to the plan file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Target branch; `None` means the repository's current branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub deliverables: Vec<Deliverable>,
}

impl Plan {
    /// Reads and validates a plan. Every problem found is reported, not only the first.
    pub fn parse(source: &Source) -> Result<Self, Problems> {
        parse::parse(source)
    }

    pub fn deliverable(&self, id: &str) -> Option<&Deliverable> {
        self.deliverables.iter().find(|d| d.id.as_str() == id)
    }
}

/// One node of the DAG: a unit of work with its own branch, steps and budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deliverable {
    pub id: DeliverableId,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<DeliverableId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acceptance_criteria: Vec<String>,
    pub steps: Vec<Step>,
}

/// One child capsule of a deliverable (`dev`, `qa`, `docs`): a command or a coding agent run
/// in the deliverable's worktree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: StepName,
    #[serde(flatten)]
    pub work: Work,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory relative to the worktree root, normalised, never escaping it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(with = "millis")]
    pub timeout: Duration,
    pub retries: u32,
    #[serde(with = "millis")]
    pub backoff: Duration,
}

impl Step {
    /// How long to wait before retry number `retry` (1-based): `backoff`, doubled for each
    /// earlier retry, capped at [`MAX_BACKOFF`].
    pub fn backoff_before(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(20);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(MAX_BACKOFF.max(self.backoff))
    }
}

/// What a step does: run a command, or have a coding agent work on a prompt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Work {
    Run {
        run: Command,
    },
    Agent {
        /// One of [`AGENTS`]; `None`: the agent configured for the deliverable's persona.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        prompt: String,
        /// The model to ask for; `None`: the persona's, else the agent's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// Tokens reserved for this step before it starts, and its hard cap; `None`: what is
        /// left of the deliverable's budget.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget_tokens: Option<u64>,
    },
}

impl Work {
    /// The command, for a command step.
    pub fn command(&self) -> Option<&Command> {
        match self {
            Self::Run { run } => Some(run),
            Self::Agent { .. } => None,
        }
    }
}

/// What a command step runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// Program and arguments, run directly.
    Argv(Vec<String>),
    /// A shell command line, run by `sh -c`.
    Shell(String),
}

impl Command {
    /// The argv to execute.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Self::Argv(argv) => argv.clone(),
            Self::Shell(line) => vec!["sh".to_owned(), "-c".to_owned(), line.clone()],
        }
    }
}

/// Durations are stored as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(backoff_ms: u64) -> Step {
        Step {
            name: StepName::parse("dev").unwrap(),
            work: Work::Run {
                run: Command::Shell("true".into()),
            },
            env: BTreeMap::new(),
            workdir: None,
            timeout: DEFAULT_TIMEOUT,
            retries: 5,
            backoff: Duration::from_millis(backoff_ms),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = step(1_000);
        let waits: Vec<u64> = (1..=4).map(|r| s.backoff_before(r).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8]);
        assert_eq!(s.backoff_before(30), MAX_BACKOFF);
        assert_eq!(step(0).backoff_before(3), Duration::ZERO);
    }

    #[test]
    fn shell_commands_run_through_sh() {
        assert_eq!(
            Command::Shell("test -f a".into()).argv(),
            ["sh", "-c", "test -f a"]
        );
        assert_eq!(Command::Argv(vec!["true".into()]).argv(), ["true"]);
    }
}
