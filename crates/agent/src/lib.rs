//! kamachiq's knowledge of the coding agents it runs: Claude Code, Codex CLI, Aider, Gemini CLI,
//! and any other program through an argv template.
//!
//! For each agent this crate knows how to build the command line that asks for its
//! machine-readable output ([`invocation`]), how to write the task it is given ([`prompt`]), and
//! how to read what it prints, line by line, into a few events kamachiq cares about: tokens and
//! cost for the ledger, progress for people watching, the final result ([`parser`]). It also
//! prices tokens an agent did not price itself ([`Prices`]) and notices an agent stuck repeating
//! itself ([`Repetition`]).
//!
//! This crate is pure: it starts no process, reads no file, opens no socket and has no clock. The
//! engine's executors do that and hand lines to the parsers. It depends on no other kamachiq
//! crate and on nothing async, so every agent's format can be tested from samples alone.

mod invocation;
mod kind;
mod parser;
mod price;
mod prompt;
mod repetition;

pub use invocation::{ARGV_PROMPT_LIMIT, Invocation, InvocationSpec, invocation};
pub use kind::AgentKind;
pub use parser::{AgentEvent, Parser, ParserOptions, Usage, parser, parser_with};
pub use price::{Price, Prices};
pub use prompt::{PromptParts, prompt};
pub use repetition::Repetition;

use std::path::PathBuf;

/// Errors of the agent crate: a name or an invocation that cannot be turned into a command line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that is not one of [`AgentKind::ALL`].
    #[error("unknown agent `{name}`: expected one of {}", kind_names())]
    UnknownAgent { name: String },
    /// The prompt is empty or only whitespace: an agent given nothing to do would only guess.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// The `command` agent was asked for without a template.
    #[error("the command agent needs a template: an argv with {{prompt}} or {{prompt_file}} in it")]
    MissingTemplate,
    /// The `command` agent's template has no words at all.
    #[error("the command template is empty")]
    EmptyTemplate,
    /// A template that would never hand the agent its task.
    #[error("command template `{template}` has neither {{prompt}} nor {{prompt_file}}")]
    TemplateWithoutPrompt { template: String },
    /// A `{name}` in a template that is not one of the known placeholders.
    #[error(
        "command template `{template}` uses unknown placeholder `{{{placeholder}}}`; \
         the known ones are {{prompt}}, {{prompt_file}}, {{model}} and {{worktree}}"
    )]
    UnknownPlaceholder {
        template: String,
        placeholder: String,
    },
    /// A template uses a placeholder whose value the spec does not have.
    #[error(
        "command template `{template}` uses `{{{placeholder}}}` but the invocation has no {placeholder}"
    )]
    MissingValue {
        template: String,
        placeholder: &'static str,
    },
    /// The prompt is too long for one argument and this agent has no other way to receive it.
    #[error(
        "the prompt is {bytes} bytes, more than the {limit} that fit in one argument, and {kind} \
         cannot take it another way: {remedy}"
    )]
    PromptTooLong {
        kind: AgentKind,
        bytes: usize,
        limit: usize,
        remedy: &'static str,
    },
    /// An option the spec sets that this agent has no way to honour. Refused rather than
    /// silently dropped, since most of them restrict what the agent may do.
    #[error("{kind} has no equivalent of {option}")]
    Unsupported {
        kind: AgentKind,
        option: &'static str,
    },
    /// A path that must go into an argument is not valid UTF-8.
    #[error("the {what} path {} is not valid UTF-8", path.display())]
    NonUtf8Path { what: &'static str, path: PathBuf },
}

fn kind_names() -> String {
    AgentKind::ALL.map(AgentKind::as_str).join(", ")
}
