//! The `[agents]` and `[personas]` sections: where each agent's program is, what an agent's
//! environment may hold, its limits, prices, and the personas of seed 001.
//!
//! An agent starts from an empty environment: only the basic variables (`PATH`, `HOME`, ...)
//! and those named in `agents.pass_env` are handed to it, their values read here when the
//! configuration loads. That is how API keys reach agents: by name, never written in a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kamachiq_agent::{AgentKind, Price, Prices};
use kamachiq_engine::{AgentEnv, AgentOptions, Persona};
use serde::Deserialize;

use crate::InvalidInput;

/// Variables every agent gets (when set), besides `agents.pass_env`.
pub const BASE_ENV: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM",
];

/// API keys handed to agents unless `agents.pass_env` says otherwise.
pub const DEFAULT_PASS_ENV: [&str; 5] = [
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
];

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgents {
    /// Programs by agent name (`claude = "/opt/claude/bin/claude"`).
    pub programs: Option<BTreeMap<String, String>>,
    /// Arguments added to each agent's command line, by agent name.
    pub args: Option<BTreeMap<String, Vec<String>>>,
    /// The `command` agent's argv template.
    pub template: Option<Vec<String>>,
    /// Variable names handed to agents from kamachiq's environment.
    pub pass_env: Option<Vec<String>>,
    /// `false`: agents inherit kamachiq's whole environment.
    pub isolate_env: Option<bool>,
    pub stall: Option<String>,
    pub repeat_threshold: Option<usize>,
    pub launches_per_minute: Option<u32>,
    pub launch_burst: Option<u32>,
    /// Prices by model (or model prefix), per million tokens in US dollars.
    pub prices: Option<BTreeMap<String, Price>>,
    /// Confine agents with Linux Landlock (they may write only in their worktree).
    pub sandbox: Option<bool>,
    /// Further directories sandboxed agents may write to (`~` is the home directory).
    pub sandbox_write: Option<Vec<String>>,
}

impl RawAgents {
    pub fn overlay(self, over: RawAgents) -> RawAgents {
        RawAgents {
            programs: over.programs.or(self.programs),
            args: over.args.or(self.args),
            template: over.template.or(self.template),
            pass_env: over.pass_env.or(self.pass_env),
            isolate_env: over.isolate_env.or(self.isolate_env),
            stall: over.stall.or(self.stall),
            repeat_threshold: over.repeat_threshold.or(self.repeat_threshold),
            launches_per_minute: over.launches_per_minute.or(self.launches_per_minute),
            launch_burst: over.launch_burst.or(self.launch_burst),
            prices: over.prices.or(self.prices),
            sandbox: over.sandbox.or(self.sandbox),
            sandbox_write: over.sandbox_write.or(self.sandbox_write),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPersona {
    pub agent: Option<String>,
    pub model: Option<String>,
    /// A file of instructions, relative to the configuration file.
    pub instructions: Option<String>,
    /// Tools its agent may use without asking (Claude Code, Gemini CLI).
    #[serde(default)]
    pub tools: Vec<String>,
}

/// The validated `[agents]` and `[personas]` sections. `base` is the directory relative paths
/// are read from (the configuration file's); `env` reads a variable of kamachiq's environment.
pub fn validate(
    raw: RawAgents,
    personas: BTreeMap<String, RawPersona>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<AgentOptions> {
    let defaults = AgentOptions::default();
    let invalid = |key: &str, why: String| InvalidInput::new(format!("{key}: {why}"));
    let agent_name = |key: &str, name: &str| -> anyhow::Result<AgentKind> {
        name.parse::<AgentKind>()
            .map_err(|e| invalid(key, e.to_string()).into())
    };
    let programs = raw.programs.unwrap_or_default();
    for (name, program) in &programs {
        agent_name(&format!("agents.programs.{name}"), name)?;
        if program.trim().is_empty() {
            return Err(invalid(&format!("agents.programs.{name}"), "is empty".into()).into());
        }
    }
    let extra_args = raw.args.unwrap_or_default();
    for name in extra_args.keys() {
        agent_name(&format!("agents.args.{name}"), name)?;
    }
    if let Some(template) = &raw.template
        && !template
            .iter()
            .any(|w| w.contains("{prompt}") || w.contains("{prompt_file}"))
    {
        return Err(invalid(
            "agents.template",
            "must contain {prompt} or {prompt_file}, or the agent never gets its task".into(),
        )
        .into());
    }
    let stall = match &raw.stall {
        None => defaults.stall,
        Some(text) => {
            let d = humantime::parse_duration(text.trim())
                .map_err(|e| invalid("agents.stall", format!("invalid duration `{text}`: {e}")))?;
            if d < Duration::from_secs(1) {
                return Err(invalid("agents.stall", "must be at least 1s".into()).into());
            }
            d
        }
    };
    let repeat_threshold = raw.repeat_threshold.unwrap_or(defaults.repeat_threshold);
    if repeat_threshold < 2 {
        return Err(invalid("agents.repeat_threshold", "must be at least 2".into()).into());
    }
    let launches_per_minute = raw
        .launches_per_minute
        .unwrap_or(defaults.launches_per_minute);
    let launch_burst = raw.launch_burst.unwrap_or(defaults.launch_burst);
    if launches_per_minute == 0 || launch_burst == 0 {
        return Err(invalid(
            "agents.launches_per_minute",
            "the launch rate and burst must be at least 1".into(),
        )
        .into());
    }
    let prices = raw.prices.unwrap_or_default();
    for (model, price) in &prices {
        let all = [
            Some(price.input_per_mtok),
            Some(price.output_per_mtok),
            price.cache_read_per_mtok,
            price.cache_write_per_mtok,
        ];
        if all.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(invalid(
                &format!("agents.prices.\"{model}\""),
                "prices must be zero or positive numbers".into(),
            )
            .into());
        }
    }
    let environment = if raw.isolate_env.unwrap_or(true) {
        let pass = raw
            .pass_env
            .unwrap_or_else(|| DEFAULT_PASS_ENV.iter().map(|s| (*s).to_owned()).collect());
        let mut vars = Vec::new();
        for name in BASE_ENV.iter().map(|s| (*s).to_owned()).chain(pass) {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(invalid(
                    "agents.pass_env",
                    format!("`{name}` is not a variable name"),
                )
                .into());
            }
            if let Some(value) = env(&name)
                && !vars.iter().any(|(k, _): &(String, String)| *k == name)
            {
                vars.push((name, value));
            }
        }
        AgentEnv::Only(vars)
    } else {
        AgentEnv::Inherit
    };
    let mut checked = BTreeMap::new();
    for (name, p) in personas {
        let key = format!("personas.\"{name}\"");
        if let Some(agent) = &p.agent {
            agent_name(&format!("{key}.agent"), agent)?;
        }
        let instructions = match &p.instructions {
            None => None,
            Some(file) => {
                let path = resolve(base, file);
                Some(std::fs::read_to_string(&path).map_err(|e| {
                    invalid(
                        &format!("{key}.instructions"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?)
            }
        };
        checked.insert(
            name,
            Persona {
                agent: p.agent,
                model: p.model.filter(|m| !m.trim().is_empty()),
                instructions,
                tools: p.tools,
            },
        );
    }
    let sandbox = if raw.sandbox.unwrap_or(false) {
        let program = std::env::current_exe().map_err(|e| {
            invalid(
                "agents.sandbox",
                format!("cannot find kamachiq's own program to confine agents with: {e}"),
            )
        })?;
        let home = env("HOME");
        let write = raw
            .sandbox_write
            .unwrap_or_default()
            .into_iter()
            .map(|p| match (p.strip_prefix("~/"), &home) {
                (Some(rest), Some(home)) => Path::new(home).join(rest),
                _ => resolve(base, &p),
            })
            .collect();
        Some(kamachiq_engine::Sandbox { program, write })
    } else {
        None
    };
    Ok(AgentOptions {
        sandbox,
        programs,
        extra_args,
        template: raw.template,
        personas: checked,
        prices: Prices(prices),
        environment,
        stall,
        repeat_threshold,
        launches_per_minute,
        launch_burst,
    })
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let path = PathBuf::from(file);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PATH" => Some("/usr/bin".into()),
            "ANTHROPIC_API_KEY" => Some("sk-test".into()),
            "SECRET" => Some("hidden".into()),
            _ => None,
        }
    }

    #[test]
    fn agents_get_only_the_base_variables_and_the_keys_passed() {
        let options =
            validate(RawAgents::default(), BTreeMap::new(), Path::new("."), &env).unwrap();
        let AgentEnv::Only(vars) = &options.environment else {
            panic!("isolated by default");
        };
        let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["PATH", "ANTHROPIC_API_KEY"]);
        // The debug form names variables, never their values.
        let shown = format!("{options:?}");
        assert!(!shown.contains("sk-test"), "{shown}");
        assert_eq!(options.stall, Duration::from_secs(600));
    }

    #[test]
    fn bad_agent_settings_name_their_key() {
        let cases: [(RawAgents, &str); 4] = [
            (
                RawAgents {
                    programs: Some(BTreeMap::from([("copilot".into(), "x".into())])),
                    ..RawAgents::default()
                },
                "agents.programs.copilot: unknown agent `copilot`",
            ),
            (
                RawAgents {
                    stall: Some("soon".into()),
                    ..RawAgents::default()
                },
                "agents.stall: invalid duration `soon`",
            ),
            (
                RawAgents {
                    template: Some(vec!["my-agent".into()]),
                    ..RawAgents::default()
                },
                "agents.template: must contain {prompt}",
            ),
            (
                RawAgents {
                    launch_burst: Some(0),
                    ..RawAgents::default()
                },
                "agents.launches_per_minute: the launch rate and burst must be at least 1",
            ),
        ];
        for (raw, expected) in cases {
            let err = validate(raw, BTreeMap::new(), Path::new("."), &env)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn personas_read_their_instructions_relative_to_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("backend.md"), "Write tests first.\n").unwrap();
        let personas = BTreeMap::from([(
            "developer_backend.v2".to_owned(),
            RawPersona {
                agent: Some("claude".into()),
                model: Some("claude-sonnet-4-5".into()),
                instructions: Some("backend.md".into()),
                tools: vec!["Edit".into()],
            },
        )]);
        let options = validate(RawAgents::default(), personas, dir.path(), &env).unwrap();
        let persona = &options.personas["developer_backend.v2"];
        assert_eq!(
            persona.instructions.as_deref(),
            Some("Write tests first.\n")
        );
        assert_eq!(persona.agent.as_deref(), Some("claude"));
        let missing = BTreeMap::from([(
            "p".to_owned(),
            RawPersona {
                instructions: Some("nope.md".into()),
                ..RawPersona::default()
            },
        )]);
        let err = validate(RawAgents::default(), missing, dir.path(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("personas.\"p\".instructions: cannot read"),
            "{err}"
        );
    }
}
