//! The command line that runs an agent unattended and asks for its machine-readable output.
//!
//! Each adapter follows the agent's own CLI as of the release named beside it. Where an agent's
//! documentation and its source disagree, the source of a recent release wins and the comment
//! says so.

use std::path::{Path, PathBuf};

use crate::{AgentKind, Error};

/// Prompts longer than this many bytes do not go into argv. Linux refuses a single argument
/// over 128 KiB (`MAX_ARG_STRLEN`); 100 KiB leaves room for the rest of the command line.
pub const ARGV_PROMPT_LIMIT: usize = 100 * 1024;

/// What to run: the agent-independent parts of an invocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvocationSpec {
    /// Overrides the agent's usual executable ([`AgentKind::executable`]); for
    /// [`AgentKind::Command`] it replaces the template's first word.
    pub program: Option<String>,
    /// The task, usually built by [`crate::prompt`].
    pub prompt: String,
    /// The model to ask for; `None` leaves the agent's own default.
    pub model: Option<String>,
    /// Tools the agent may use without asking (Claude Code's `--allowedTools`, Gemini CLI's
    /// `--allowed-tools`). Agents without such a list refuse a non-empty one.
    pub allowed_tools: Vec<String>,
    /// Further arguments, placed after kamachiq's own options and before the prompt.
    pub extra_args: Vec<String>,
    /// For [`AgentKind::Command`] only: the argv, with placeholders `{prompt}`, `{prompt_file}`,
    /// `{model}` and `{worktree}` anywhere inside its words.
    pub template: Option<Vec<String>>,
    /// A file the caller has already written the prompt to. Used by agents that read their task
    /// from a file when it is too long for argv (Aider), and by `{prompt_file}`.
    pub prompt_file: Option<PathBuf>,
    /// The git worktree the agent works in; the process runs with it as working directory.
    pub worktree: PathBuf,
}

/// A ready-to-run command: the executor spawns `argv` in the spec's worktree, writes `stdin`
/// (if any) and closes it, and adds `env` to the environment.
///
/// When `stdin` is `None` the agent must still get an empty stdin (the null device, or a pipe
/// closed at once), never one left open: Claude Code, Codex and Gemini CLI all read a
/// non-terminal stdin to the end and add it to the prompt, so an open pipe would hang them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    pub argv: Vec<String>,
    /// The prompt, when it is too long for argv and the agent reads its task from stdin.
    pub stdin: Option<String>,
    pub env: Vec<(String, String)>,
}

/// Builds the command line that runs `kind` on `spec`.
///
/// How a prompt over [`ARGV_PROMPT_LIMIT`] reaches each agent: Claude Code, Codex and Gemini
/// CLI read it from stdin; Aider reads it from `spec.prompt_file` (`--message-file`), so a long
/// prompt without one is an error; a command template must use `{prompt_file}` for it.
pub fn invocation(kind: AgentKind, spec: &InvocationSpec) -> Result<Invocation, Error> {
    if spec.prompt.trim().is_empty() {
        return Err(Error::EmptyPrompt);
    }
    match kind {
        AgentKind::Claude => Ok(claude(spec)),
        AgentKind::Codex => codex(spec),
        AgentKind::Aider => aider(spec),
        AgentKind::Gemini => Ok(gemini(spec)),
        AgentKind::Command => command(spec),
    }
}

fn fits_in_argv(prompt: &str) -> bool {
    prompt.len() <= ARGV_PROMPT_LIMIT
}

fn program(kind: AgentKind, spec: &InvocationSpec) -> String {
    spec.program
        .clone()
        .or_else(|| kind.executable().map(str::to_owned))
        .unwrap_or_default()
}

fn path_arg(what: &'static str, path: &Path) -> Result<String, Error> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::NonUtf8Path {
            what,
            path: path.to_owned(),
        })
}

fn refuse_allowed_tools(kind: AgentKind, spec: &InvocationSpec) -> Result<(), Error> {
    if spec.allowed_tools.is_empty() {
        Ok(())
    } else {
        Err(Error::Unsupported {
            kind,
            option: "allowed_tools",
        })
    }
}

/// Claude Code 2.x, print mode: `claude -p --output-format stream-json --verbose` (stream-json
/// requires `--verbose` in print mode). `--allowedTools` takes a variable number of values and
/// would swallow a prompt placed after it, so the prompt follows `--`. Tools not allowed are
/// denied in print mode, since nobody is there to approve them.
fn claude(spec: &InvocationSpec) -> Invocation {
    let mut argv = vec![
        program(AgentKind::Claude, spec),
        "-p".to_owned(),
        "--output-format".to_owned(),
        "stream-json".to_owned(),
        "--verbose".to_owned(),
    ];
    if let Some(model) = &spec.model {
        argv.extend(["--model".to_owned(), model.clone()]);
    }
    if !spec.allowed_tools.is_empty() {
        argv.push("--allowedTools".to_owned());
        argv.extend(spec.allowed_tools.iter().cloned());
    }
    argv.extend(spec.extra_args.iter().cloned());
    let mut stdin = None;
    if fits_in_argv(&spec.prompt) {
        argv.extend(["--".to_owned(), spec.prompt.clone()]);
    } else {
        // With no prompt argument, `claude -p` reads the prompt from stdin.
        stdin = Some(spec.prompt.clone());
    }
    Invocation {
        argv,
        stdin,
        env: Vec::new(),
    }
}

/// Codex CLI, `codex exec --json` (codex-rs/exec/src/cli.rs). `exec` never asks for approval;
/// `--sandbox workspace-write` lets it write in its working directory (given with `--cd`) and
/// nowhere else. The docs (docs/exec.md) still say `--full-auto`, but recent sources turned that
/// flag into a hidden trap that only warns to use `--sandbox workspace-write`: this follows the
/// source. A prompt of `-` is read from stdin.
fn codex(spec: &InvocationSpec) -> Result<Invocation, Error> {
    refuse_allowed_tools(AgentKind::Codex, spec)?;
    let mut argv = vec![
        program(AgentKind::Codex, spec),
        "exec".to_owned(),
        "--json".to_owned(),
        "--sandbox".to_owned(),
        "workspace-write".to_owned(),
        "--cd".to_owned(),
        path_arg("worktree", &spec.worktree)?,
    ];
    if let Some(model) = &spec.model {
        argv.extend(["--model".to_owned(), model.clone()]);
    }
    argv.extend(spec.extra_args.iter().cloned());
    let mut stdin = None;
    if fits_in_argv(&spec.prompt) {
        // `--` so that a prompt starting with `-`, or equal to a subcommand name such as
        // `resume`, is still taken as the prompt.
        argv.extend(["--".to_owned(), spec.prompt.clone()]);
    } else {
        argv.push("-".to_owned());
        stdin = Some(spec.prompt.clone());
    }
    Ok(Invocation {
        argv,
        stdin,
        env: Vec::new(),
    })
}

/// Gemini CLI headless mode (docs/cli/headless.md, docs/cli/cli-reference.md): `--prompt`
/// forces non-interactive mode, `--output-format stream-json` gives JSONL events. The prompt is
/// passed as `--prompt=<text>` so that text starting with `-` is not read as an option.
/// `--allowed-tools` is deprecated in favour of the policy engine but still honoured; tools that
/// need approval and are not allowed are refused in headless mode.
fn gemini(spec: &InvocationSpec) -> Invocation {
    let mut argv = vec![
        program(AgentKind::Gemini, spec),
        "--output-format".to_owned(),
        "stream-json".to_owned(),
    ];
    if let Some(model) = &spec.model {
        argv.extend(["--model".to_owned(), model.clone()]);
    }
    // One `--allowed-tools=<tool>` each: the `=` form stops the array option from taking any
    // following word as another tool.
    argv.extend(
        spec.allowed_tools
            .iter()
            .map(|tool| format!("--allowed-tools={tool}")),
    );
    argv.extend(spec.extra_args.iter().cloned());
    let mut stdin = None;
    if fits_in_argv(&spec.prompt) {
        argv.push(format!("--prompt={}", spec.prompt));
    } else {
        // Without `--prompt`, a non-terminal stdin is read as the prompt and still runs headless.
        stdin = Some(spec.prompt.clone());
    }
    Invocation {
        argv,
        stdin,
        env: Vec::new(),
    }
}

/// Aider (aider/args.py): `--message` sends one message and exits, `--yes-always` answers its
/// questions, `--no-pretty` drops colours and `--no-stream` prints each reply whole, so the
/// `Tokens:` report always starts its own line and litellm can price the complete response.
/// kamachiq commits, so Aider must not: `--no-auto-commits` and `--no-dirty-commits`.
/// `--no-gitignore` keeps it from editing the repository's .gitignore (its `.aider*` files are
/// for the executor to exclude), and `--no-check-update` keeps `--yes-always` from upgrading it
/// mid-run.
fn aider(spec: &InvocationSpec) -> Result<Invocation, Error> {
    refuse_allowed_tools(AgentKind::Aider, spec)?;
    let mut argv = vec![
        program(AgentKind::Aider, spec),
        "--yes-always".to_owned(),
        "--no-pretty".to_owned(),
        "--no-stream".to_owned(),
        "--no-auto-commits".to_owned(),
        "--no-dirty-commits".to_owned(),
        "--no-gitignore".to_owned(),
        "--no-check-update".to_owned(),
    ];
    if let Some(model) = &spec.model {
        argv.extend(["--model".to_owned(), model.clone()]);
    }
    argv.extend(spec.extra_args.iter().cloned());
    if fits_in_argv(&spec.prompt) {
        // `=` so that a prompt starting with `-` is not taken for an option.
        argv.push(format!("--message={}", spec.prompt));
    } else if let Some(file) = &spec.prompt_file {
        argv.extend(["--message-file".to_owned(), path_arg("prompt file", file)?]);
    } else {
        return Err(Error::PromptTooLong {
            kind: AgentKind::Aider,
            bytes: spec.prompt.len(),
            limit: ARGV_PROMPT_LIMIT,
            remedy: "write it to a file and give that file as prompt_file",
        });
    }
    Ok(Invocation {
        argv,
        stdin: None,
        env: Vec::new(),
    })
}

/// An operator's argv template, with its placeholders replaced.
fn command(spec: &InvocationSpec) -> Result<Invocation, Error> {
    refuse_allowed_tools(AgentKind::Command, spec)?;
    let template = spec.template.as_deref().ok_or(Error::MissingTemplate)?;
    if template.is_empty() {
        return Err(Error::EmptyTemplate);
    }
    let shown = template.join(" ");

    // Check the whole template before substituting anything, so the error names the first
    // problem whatever values the spec has.
    let mut uses = Vec::new();
    for word in template {
        for piece in pieces(word) {
            if let Piece::Placeholder(name) = piece {
                let placeholder =
                    Placeholder::from_name(name).ok_or_else(|| Error::UnknownPlaceholder {
                        template: shown.clone(),
                        placeholder: name.to_owned(),
                    })?;
                uses.push(placeholder);
            }
        }
    }
    if !uses.contains(&Placeholder::Prompt) && !uses.contains(&Placeholder::PromptFile) {
        return Err(Error::TemplateWithoutPrompt { template: shown });
    }
    if uses.contains(&Placeholder::Prompt) && !fits_in_argv(&spec.prompt) {
        return Err(Error::PromptTooLong {
            kind: AgentKind::Command,
            bytes: spec.prompt.len(),
            limit: ARGV_PROMPT_LIMIT,
            remedy: "use {prompt_file} in the template instead of {prompt}",
        });
    }

    let mut argv = Vec::with_capacity(template.len() + spec.extra_args.len());
    for word in template {
        let mut out = String::with_capacity(word.len());
        for piece in pieces(word) {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder(name) => {
                    // Every name was checked above.
                    let Some(placeholder) = Placeholder::from_name(name) else {
                        continue;
                    };
                    out.push_str(&placeholder.value(spec, &shown)?);
                }
            }
        }
        argv.push(out);
    }
    if let (Some(program), Some(first)) = (&spec.program, argv.first_mut()) {
        first.clone_from(program);
    }
    argv.extend(spec.extra_args.iter().cloned());
    Ok(Invocation {
        argv,
        stdin: None,
        env: Vec::new(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placeholder {
    Prompt,
    PromptFile,
    Model,
    Worktree,
}

impl Placeholder {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "prompt" => Some(Self::Prompt),
            "prompt_file" => Some(Self::PromptFile),
            "model" => Some(Self::Model),
            "worktree" => Some(Self::Worktree),
            _ => None,
        }
    }

    fn value(self, spec: &InvocationSpec, template: &str) -> Result<String, Error> {
        let missing = |placeholder| Error::MissingValue {
            template: template.to_owned(),
            placeholder,
        };
        match self {
            Self::Prompt => Ok(spec.prompt.clone()),
            Self::PromptFile => {
                let file = spec
                    .prompt_file
                    .as_deref()
                    .ok_or_else(|| missing("prompt_file"))?;
                path_arg("prompt file", file)
            }
            Self::Model => spec.model.clone().ok_or_else(|| missing("model")),
            Self::Worktree => path_arg("worktree", &spec.worktree),
        }
    }
}

enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits a template word into text and `{name}` placeholders, where a name is one or more
/// ASCII letters, digits or underscores. Any other brace is plain text, so JSON or shell syntax
/// in a template passes through untouched.
fn pieces(word: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut text_start = 0;
    let mut search = 0;
    while let Some(offset) = word[search..].find('{') {
        let open = search + offset;
        let after = open + 1;
        let name_len = word[after..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(word.len() - after);
        let close = after + name_len;
        if name_len > 0 && word[close..].starts_with('}') {
            if text_start < open {
                pieces.push(Piece::Text(&word[text_start..open]));
            }
            pieces.push(Piece::Placeholder(&word[after..close]));
            text_start = close + 1;
            search = close + 1;
        } else {
            search = after;
        }
    }
    if text_start < word.len() {
        pieces.push(Piece::Text(&word[text_start..]));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prompt: &str) -> InvocationSpec {
        InvocationSpec {
            prompt: prompt.to_owned(),
            worktree: PathBuf::from("/work/wt"),
            ..InvocationSpec::default()
        }
    }

    fn words(pieces: &[Piece<'_>]) -> Vec<String> {
        pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => format!("text:{text}"),
                Piece::Placeholder(name) => format!("var:{name}"),
            })
            .collect()
    }

    #[test]
    fn pieces_finds_placeholders_inside_words() {
        assert_eq!(
            words(&pieces("--message={prompt}.")),
            ["text:--message=", "var:prompt", "text:."]
        );
        assert_eq!(
            words(&pieces("{model}{worktree}")),
            ["var:model", "var:worktree"]
        );
    }

    #[test]
    fn pieces_leaves_other_braces_alone() {
        assert_eq!(words(&pieces(r#"{"a":{}}"#)), [r#"text:{"a":{}}"#]);
        assert_eq!(words(&pieces("{ prompt }")), ["text:{ prompt }"]);
        assert_eq!(words(&pieces("{prompt")), ["text:{prompt"]);
        assert_eq!(words(&pieces("{{prompt}")), ["text:{", "var:prompt"]);
    }

    #[test]
    fn an_empty_prompt_is_refused_for_every_agent() {
        for kind in AgentKind::ALL {
            assert!(matches!(
                invocation(kind, &spec(" \n")),
                Err(Error::EmptyPrompt)
            ));
        }
    }

    #[test]
    fn the_prompt_limit_is_inclusive() {
        let at_limit = "x".repeat(ARGV_PROMPT_LIMIT);
        let claude = invocation(AgentKind::Claude, &spec(&at_limit)).unwrap();
        assert_eq!(claude.stdin, None);
        assert_eq!(claude.argv.last(), Some(&at_limit));
    }

    #[test]
    fn program_overrides_the_usual_executable() {
        let mut spec = spec("fix it");
        spec.program = Some("/opt/bin/claude-2".to_owned());
        let claude = invocation(AgentKind::Claude, &spec).unwrap();
        assert_eq!(claude.argv[0], "/opt/bin/claude-2");
    }
}
