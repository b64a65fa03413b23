//! What can be wrong with a plan, and where.

use std::fmt;

use crate::id::DeliverableId;

/// One problem found in a plan: what, in which file, on which line, in which deliverable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user named it (or `<request>` for a plan sent over the API).
    pub file: String,
    /// 1-based line, when the format and the parser can tell.
    pub line: Option<u64>,
    /// 1-based column, for syntax errors.
    pub column: Option<u64>,
    /// The deliverable the problem is in, by id as written.
    pub deliverable: Option<String>,
    /// The field the problem is in, as a path (`deliverables[1].steps[0].run`).
    pub field: Option<String>,
    pub kind: ProblemKind,
}

/// The kinds of problems, each with the particulars a fix needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// The file is not valid YAML/JSON, has a value of the wrong type, or a field kamachiq does
    /// not know (the parser's message says which).
    #[error("{message}")]
    Format { message: String },
    #[error("the plan has no deliverables")]
    NoDeliverables,
    #[error("missing required field `{field}`")]
    MissingField { field: &'static str },
    #[error("invalid {what} `{value}`: {why}")]
    InvalidName {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("duplicate deliverable id `{id}`{}", first_line.map(|l| format!(" (first defined on line {l})")).unwrap_or_default())]
    DuplicateId { id: String, first_line: Option<u64> },
    #[error("dependency `{dependency}` does not exist{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownDependency {
        dependency: String,
        suggestion: Option<String>,
    },
    #[error("dependency `{dependency}` is listed more than once")]
    DuplicateDependency { dependency: String },
    #[error("dependency cycle: {}", path.iter().map(DeliverableId::as_str).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The cycle, first node repeated at the end: `a -> b -> a`.
        path: Vec<DeliverableId>,
    },
    #[error("the plan is for tenant `{plan}`, but it was submitted for tenant `{submitter}`")]
    ForeignTenant { plan: String, submitter: String },
    #[error("a value contains the NUL character (\\u0000), which kamachiq cannot store")]
    NulCharacter,
    #[error("no steps: a deliverable needs at least one step to run")]
    NoSteps,
    #[error("step `{step}` has an empty command")]
    EmptyStep { step: String },
    #[error("step `{step}` needs either `run` (a command) or `prompt` (for an agent), not both")]
    RunOrPrompt { step: String },
    #[error("step `{step}` has an empty prompt")]
    EmptyPrompt { step: String },
    #[error("step `{step}`: unknown agent `{agent}`; agents are {}", super::AGENTS.join(", "))]
    UnknownAgent { step: String, agent: String },
    #[error("step `{step}`: `{field}` applies to agent steps only (steps with a `prompt`)")]
    AgentFieldOnCommand { step: String, field: &'static str },
    #[error("step name `{step}` is used more than once")]
    DuplicateStep { step: String },
    #[error("budget_tokens must not be negative (got {value})")]
    NegativeBudget { value: i64 },
    #[error("invalid {field} `{value}`: {why}")]
    InvalidDuration {
        field: &'static str,
        value: String,
        why: String,
    },
    #[error("step `{step}`: workdir `{value}` {why}")]
    InvalidWorkdir {
        step: String,
        value: String,
        why: &'static str,
    },
    #[error("step `{step}`: environment variable name `{key}` {why}")]
    InvalidEnv {
        step: String,
        key: String,
        why: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(deliverable) = &self.deliverable {
            write!(f, "deliverable `{deliverable}`: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// All problems found in one plan, in file order. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl From<Problems> for crate::Error {
    fn from(problems: Problems) -> Self {
        Self::InvalidPlan(problems)
    }
}
