//! The exact command line for each agent.

use std::path::PathBuf;

use kamachiq_agent::{ARGV_PROMPT_LIMIT, AgentKind, Error, Invocation, InvocationSpec, invocation};

fn spec() -> InvocationSpec {
    InvocationSpec {
        prompt: "Add bearer-token authentication.".to_owned(),
        worktree: PathBuf::from("/srv/wt/api-auth"),
        ..InvocationSpec::default()
    }
}

fn full_spec() -> InvocationSpec {
    InvocationSpec {
        model: Some("the-model".to_owned()),
        extra_args: vec!["--extra".to_owned()],
        ..spec()
    }
}

fn argv(kind: AgentKind, spec: &InvocationSpec) -> Vec<String> {
    let invocation = invocation(kind, spec).unwrap();
    assert_eq!(invocation.stdin, None);
    assert_eq!(invocation.env, []);
    invocation.argv
}

fn long_prompt() -> String {
    "x".repeat(ARGV_PROMPT_LIMIT + 1)
}

#[test]
fn claude_minimal() {
    assert_eq!(
        argv(AgentKind::Claude, &spec()),
        [
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--",
            "Add bearer-token authentication."
        ]
    );
}

#[test]
fn claude_with_model_tools_and_extra_args() {
    let spec = InvocationSpec {
        allowed_tools: vec![
            "Read".to_owned(),
            "Edit".to_owned(),
            "Bash(cargo test:*)".to_owned(),
        ],
        ..full_spec()
    };
    assert_eq!(
        argv(AgentKind::Claude, &spec),
        [
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            "the-model",
            "--allowedTools",
            "Read",
            "Edit",
            "Bash(cargo test:*)",
            "--extra",
            "--",
            "Add bearer-token authentication."
        ]
    );
}

#[test]
fn claude_reads_a_long_prompt_from_stdin() {
    let spec = InvocationSpec {
        prompt: long_prompt(),
        ..spec()
    };
    assert_eq!(
        invocation(AgentKind::Claude, &spec).unwrap(),
        Invocation {
            argv: [
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose"
            ]
            .map(String::from)
            .to_vec(),
            stdin: Some(long_prompt()),
            env: Vec::new(),
        }
    );
}

#[test]
fn codex_minimal() {
    assert_eq!(
        argv(AgentKind::Codex, &spec()),
        [
            "codex",
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "--cd",
            "/srv/wt/api-auth",
            "--",
            "Add bearer-token authentication."
        ]
    );
}

#[test]
fn codex_with_model_and_extra_args() {
    assert_eq!(
        argv(AgentKind::Codex, &full_spec()),
        [
            "codex",
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "--cd",
            "/srv/wt/api-auth",
            "--model",
            "the-model",
            "--extra",
            "--",
            "Add bearer-token authentication."
        ]
    );
}

#[test]
fn codex_reads_a_long_prompt_from_stdin() {
    let spec = InvocationSpec {
        prompt: long_prompt(),
        ..spec()
    };
    let invocation = invocation(AgentKind::Codex, &spec).unwrap();
    assert_eq!(invocation.argv.last().map(String::as_str), Some("-"));
    assert_eq!(invocation.argv.len(), 8);
    assert_eq!(invocation.stdin, Some(long_prompt()));
}

#[test]
fn codex_refuses_an_allowed_tools_list() {
    let spec = InvocationSpec {
        allowed_tools: vec!["shell".to_owned()],
        ..spec()
    };
    let err = invocation(AgentKind::Codex, &spec).unwrap_err();
    assert_eq!(err.to_string(), "codex has no equivalent of allowed_tools");
}

#[test]
fn gemini_minimal() {
    assert_eq!(
        argv(AgentKind::Gemini, &spec()),
        [
            "gemini",
            "--output-format",
            "stream-json",
            "--prompt=Add bearer-token authentication."
        ]
    );
}

#[test]
fn gemini_with_model_tools_and_extra_args() {
    let spec = InvocationSpec {
        allowed_tools: vec![
            "replace".to_owned(),
            "run_shell_command(cargo test)".to_owned(),
        ],
        ..full_spec()
    };
    assert_eq!(
        argv(AgentKind::Gemini, &spec),
        [
            "gemini",
            "--output-format",
            "stream-json",
            "--model",
            "the-model",
            "--allowed-tools=replace",
            "--allowed-tools=run_shell_command(cargo test)",
            "--extra",
            "--prompt=Add bearer-token authentication."
        ]
    );
}

#[test]
fn gemini_reads_a_long_prompt_from_stdin() {
    let spec = InvocationSpec {
        prompt: long_prompt(),
        ..spec()
    };
    let invocation = invocation(AgentKind::Gemini, &spec).unwrap();
    assert_eq!(
        invocation.argv,
        ["gemini", "--output-format", "stream-json"]
    );
    assert_eq!(invocation.stdin, Some(long_prompt()));
}

#[test]
fn aider_minimal() {
    assert_eq!(
        argv(AgentKind::Aider, &spec()),
        [
            "aider",
            "--yes-always",
            "--no-pretty",
            "--no-stream",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-gitignore",
            "--no-check-update",
            "--message=Add bearer-token authentication."
        ]
    );
}

#[test]
fn aider_with_model_and_extra_args() {
    assert_eq!(
        argv(AgentKind::Aider, &full_spec()),
        [
            "aider",
            "--yes-always",
            "--no-pretty",
            "--no-stream",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-gitignore",
            "--no-check-update",
            "--model",
            "the-model",
            "--extra",
            "--message=Add bearer-token authentication."
        ]
    );
}

#[test]
fn aider_reads_a_long_prompt_from_its_file() {
    let spec = InvocationSpec {
        prompt: long_prompt(),
        prompt_file: Some(PathBuf::from("/srv/runs/r1/prompt.md")),
        ..spec()
    };
    let argv = argv(AgentKind::Aider, &spec);
    assert_eq!(
        argv[argv.len() - 2..],
        ["--message-file", "/srv/runs/r1/prompt.md"]
    );
}

#[test]
fn aider_needs_a_file_for_a_long_prompt() {
    let spec = InvocationSpec {
        prompt: long_prompt(),
        ..spec()
    };
    let err = invocation(AgentKind::Aider, &spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the prompt is {} bytes, more than the 102400 that fit in one argument, and aider \
             cannot take it another way: write it to a file and give that file as prompt_file",
            ARGV_PROMPT_LIMIT + 1
        )
    );
}

#[test]
fn aider_refuses_an_allowed_tools_list() {
    let spec = InvocationSpec {
        allowed_tools: vec!["Edit".to_owned()],
        ..spec()
    };
    assert!(matches!(
        invocation(AgentKind::Aider, &spec),
        Err(Error::Unsupported {
            kind: AgentKind::Aider,
            option: "allowed_tools"
        })
    ));
}

fn template(words: &[&str]) -> Option<Vec<String>> {
    Some(words.iter().map(|word| (*word).to_owned()).collect())
}

#[test]
fn command_fills_every_placeholder() {
    let spec = InvocationSpec {
        template: template(&[
            "my-agent",
            "--model={model}",
            "--dir",
            "{worktree}",
            "--task-file",
            "{prompt_file}",
            "{prompt}",
        ]),
        prompt_file: Some(PathBuf::from("/srv/runs/r1/prompt.md")),
        ..full_spec()
    };
    assert_eq!(
        argv(AgentKind::Command, &spec),
        [
            "my-agent",
            "--model=the-model",
            "--dir",
            "/srv/wt/api-auth",
            "--task-file",
            "/srv/runs/r1/prompt.md",
            "Add bearer-token authentication.",
            "--extra"
        ]
    );
}

#[test]
fn command_program_replaces_the_first_word() {
    let spec = InvocationSpec {
        program: Some("/opt/agent/bin/run".to_owned()),
        template: template(&["agent", "{prompt}"]),
        ..spec()
    };
    assert_eq!(
        argv(AgentKind::Command, &spec),
        ["/opt/agent/bin/run", "Add bearer-token authentication."]
    );
}

#[test]
fn command_keeps_braces_that_are_not_placeholders() {
    let spec = InvocationSpec {
        template: template(&[
            "agent",
            r#"--config={"retries":2}"#,
            "{ prompt }",
            "{prompt}",
        ]),
        ..spec()
    };
    assert_eq!(
        argv(AgentKind::Command, &spec),
        [
            "agent",
            r#"--config={"retries":2}"#,
            "{ prompt }",
            "Add bearer-token authentication."
        ]
    );
}

#[test]
fn command_without_a_template_is_an_error() {
    let err = invocation(AgentKind::Command, &spec()).unwrap_err();
    assert!(matches!(err, Error::MissingTemplate));
    let empty = InvocationSpec {
        template: Some(Vec::new()),
        ..spec()
    };
    assert!(matches!(
        invocation(AgentKind::Command, &empty),
        Err(Error::EmptyTemplate)
    ));
}

#[test]
fn a_template_without_the_prompt_is_an_error_naming_it() {
    let spec = InvocationSpec {
        template: template(&["agent", "--model", "{model}"]),
        ..full_spec()
    };
    let err = invocation(AgentKind::Command, &spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        "command template `agent --model {model}` has neither {prompt} nor {prompt_file}"
    );
}

#[test]
fn an_unknown_placeholder_is_an_error_naming_it() {
    let spec = InvocationSpec {
        template: template(&["agent", "--repo={repo}", "{prompt}"]),
        ..spec()
    };
    let err = invocation(AgentKind::Command, &spec).unwrap_err();
    assert_eq!(
        err.to_string(),
        "command template `agent --repo={repo} {prompt}` uses unknown placeholder `{repo}`; \
         the known ones are {prompt}, {prompt_file}, {model} and {worktree}"
    );
}

#[test]
fn a_placeholder_without_a_value_is_an_error() {
    let without_model = InvocationSpec {
        template: template(&["agent", "--model", "{model}", "{prompt}"]),
        ..spec()
    };
    let err = invocation(AgentKind::Command, &without_model).unwrap_err();
    assert_eq!(
        err.to_string(),
        "command template `agent --model {model} {prompt}` uses `{model}` but the invocation has no model"
    );
    let without_file = InvocationSpec {
        template: template(&["agent", "{prompt_file}"]),
        ..spec()
    };
    assert!(matches!(
        invocation(AgentKind::Command, &without_file),
        Err(Error::MissingValue {
            placeholder: "prompt_file",
            ..
        })
    ));
}

#[test]
fn a_long_prompt_in_a_command_needs_the_prompt_file() {
    let long = InvocationSpec {
        prompt: long_prompt(),
        prompt_file: Some(PathBuf::from("/srv/runs/r1/prompt.md")),
        template: template(&["agent", "{prompt}"]),
        ..spec()
    };
    assert!(matches!(
        invocation(AgentKind::Command, &long),
        Err(Error::PromptTooLong {
            kind: AgentKind::Command,
            ..
        })
    ));
    let with_file = InvocationSpec {
        template: template(&["agent", "--file", "{prompt_file}"]),
        ..long
    };
    assert_eq!(
        argv(AgentKind::Command, &with_file),
        ["agent", "--file", "/srv/runs/r1/prompt.md"]
    );
}

#[test]
fn command_refuses_an_allowed_tools_list() {
    let spec = InvocationSpec {
        allowed_tools: vec!["Edit".to_owned()],
        template: template(&["agent", "{prompt}"]),
        ..spec()
    };
    assert!(matches!(
        invocation(AgentKind::Command, &spec),
        Err(Error::Unsupported {
            kind: AgentKind::Command,
            ..
        })
    ));
}

#[test]
fn a_prompt_starting_with_a_dash_stays_a_prompt() {
    let spec = InvocationSpec {
        prompt: "--help is not what I want".to_owned(),
        ..spec()
    };
    let last = |kind| argv(kind, &spec).last().cloned().unwrap();
    assert_eq!(last(AgentKind::Claude), "--help is not what I want");
    assert_eq!(
        argv(AgentKind::Claude, &spec).iter().rev().nth(1).unwrap(),
        "--"
    );
    assert_eq!(last(AgentKind::Codex), "--help is not what I want");
    assert_eq!(
        last(AgentKind::Gemini),
        "--prompt=--help is not what I want"
    );
    assert_eq!(
        last(AgentKind::Aider),
        "--message=--help is not what I want"
    );
}

#[cfg(unix)]
#[test]
fn a_worktree_path_that_is_not_utf8_is_an_error() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let spec = InvocationSpec {
        worktree: PathBuf::from(OsStr::from_bytes(b"/srv/wt/\xff")),
        ..spec()
    };
    assert!(matches!(
        invocation(AgentKind::Codex, &spec),
        Err(Error::NonUtf8Path {
            what: "worktree",
            ..
        })
    ));
}
