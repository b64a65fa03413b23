//! Configuration: defaults < `kamachiq.toml` < `KAMACHIQ_*` environment < command-line flags,
//! merged here and nowhere else (this is the only code that reads the environment). Each source
//! is read into an all-optional raw form, then the merge is validated into typed values; a bad
//! value names its key and its source.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod agents;

use anyhow::Context;
use serde::Deserialize;

use crate::InvalidInput;

/// The configuration file read when none is named.
pub const DEFAULT_FILE: &str = "kamachiq.toml";

/// Settings as one source gives them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub home: Option<String>,
    pub database_url: Option<String>,
    pub concurrency: Option<u32>,
    pub log_level: Option<String>,
    #[serde(default)]
    pub engine: RawEngine,
    #[serde(default)]
    pub git: RawGit,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub agents: agents::RawAgents,
    /// The guards a deliverable's diff passes before it is promoted: protected paths, file and
    /// line limits, the secret scan. Replaces the defaults as a whole.
    pub review: Option<kamachiq_review::Options>,
    /// Personas by name (`[personas."developer_backend.v2"]`): their agent, model,
    /// instructions and tools.
    #[serde(default)]
    pub personas: std::collections::BTreeMap<String, agents::RawPersona>,
    /// A kamachiq server for the CLI to act on, instead of the local store.
    pub server_url: Option<String>,
    /// The token for `server_url`. Only from the environment or a flag: a secret does not
    /// belong in a file that may be committed.
    #[serde(skip)]
    pub token: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub max_runs: Option<u32>,
    pub shutdown_grace: Option<String>,
    pub repo_roots: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    pub lease_ttl: Option<String>,
    pub heartbeat: Option<String>,
    pub kill_grace: Option<String>,
    pub max_workspace_disk: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGit {
    pub author_name: Option<String>,
    pub author_email: Option<String>,
}

impl Raw {
    /// `self`, with every value `over` sets taking precedence.
    fn overlay(self, over: Raw) -> Raw {
        Raw {
            home: over.home.or(self.home),
            database_url: over.database_url.or(self.database_url),
            concurrency: over.concurrency.or(self.concurrency),
            log_level: over.log_level.or(self.log_level),
            engine: RawEngine {
                lease_ttl: over.engine.lease_ttl.or(self.engine.lease_ttl),
                heartbeat: over.engine.heartbeat.or(self.engine.heartbeat),
                kill_grace: over.engine.kill_grace.or(self.engine.kill_grace),
                max_workspace_disk: over
                    .engine
                    .max_workspace_disk
                    .or(self.engine.max_workspace_disk),
            },
            git: RawGit {
                author_name: over.git.author_name.or(self.git.author_name),
                author_email: over.git.author_email.or(self.git.author_email),
            },
            server: RawServer {
                listen: over.server.listen.or(self.server.listen),
                max_runs: over.server.max_runs.or(self.server.max_runs),
                shutdown_grace: over.server.shutdown_grace.or(self.server.shutdown_grace),
                repo_roots: over.server.repo_roots.or(self.server.repo_roots),
            },
            agents: self.agents.overlay(over.agents),
            review: over.review.or(self.review),
            personas: if over.personas.is_empty() {
                self.personas
            } else {
                over.personas
            },
            server_url: over.server_url.or(self.server_url),
            token: over.token.or(self.token),
        }
    }
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub home: PathBuf,
    /// `None`: SQLite under the home.
    pub database_url: Option<String>,
    pub concurrency: u32,
    pub log_level: tracing::Level,
    pub lease_ttl: Duration,
    pub heartbeat: Duration,
    pub kill_grace: Duration,
    /// Most disk the worktrees may use before no new one is made (`None`: no limit).
    pub max_workspace_bytes: Option<u64>,
    pub author_name: String,
    pub author_email: String,
    /// Where `kamachiq serve` listens.
    pub listen: std::net::SocketAddr,
    /// Most runs a server drives at once.
    pub max_runs: u32,
    /// How long a stopping server waits for its runs to be handed back.
    pub shutdown_grace: Duration,
    /// Directories a server's runs may merge into (empty: anywhere), resolved.
    pub repo_roots: Vec<PathBuf>,
    /// The server the CLI acts on (`None`: the local store).
    pub server_url: Option<String>,
    /// The token for `server_url`; never printed.
    pub token: Option<String>,
    /// Who the command line acts as in the audit trail: `local:` and the login name.
    pub actor: String,
    /// How agent steps run: programs, environment, limits, prices, personas.
    pub agents: kamachiq_engine::AgentOptions,
    /// The review guards before promotion.
    pub review: kamachiq_review::Options,
    /// Where the values came from, for `config validate`.
    pub sources: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database URL may hold a password: only its redacted form is ever printed.
        f.debug_struct("Config")
            .field("home", &self.home)
            .field("database_url", &self.database_url_display())
            .field("concurrency", &self.concurrency)
            .field("log_level", &self.log_level)
            .field("lease_ttl", &self.lease_ttl)
            .field("heartbeat", &self.heartbeat)
            .field("kill_grace", &self.kill_grace)
            .field("listen", &self.listen)
            .field("max_runs", &self.max_runs)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("repo_roots", &self.repo_roots)
            .field("server_url", &self.server_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("agents", &self.agents)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The database URL for messages: passwords hidden.
    pub fn database_url_display(&self) -> String {
        kamachiq_store::redact_url(&self.database_url())
    }

    /// The database URL in use.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.home.join("kamachiq.db").display()))
    }
}

/// The environment variables kamachiq reads, with the key each sets.
const ENV_KEYS: [(&str, &str); 17] = [
    ("KAMACHIQ_HOME", "home"),
    ("KAMACHIQ_DATABASE_URL", "database_url"),
    ("KAMACHIQ_CONCURRENCY", "concurrency"),
    ("KAMACHIQ_LOG_LEVEL", "log_level"),
    ("KAMACHIQ_ENGINE_LEASE_TTL", "engine.lease_ttl"),
    ("KAMACHIQ_ENGINE_HEARTBEAT", "engine.heartbeat"),
    ("KAMACHIQ_ENGINE_KILL_GRACE", "engine.kill_grace"),
    (
        "KAMACHIQ_ENGINE_MAX_WORKSPACE_DISK",
        "engine.max_workspace_disk",
    ),
    ("KAMACHIQ_GIT_AUTHOR_NAME", "git.author_name"),
    ("KAMACHIQ_GIT_AUTHOR_EMAIL", "git.author_email"),
    ("KAMACHIQ_SERVER_LISTEN", "server.listen"),
    ("KAMACHIQ_SERVER_MAX_RUNS", "server.max_runs"),
    ("KAMACHIQ_SERVER_SHUTDOWN_GRACE", "server.shutdown_grace"),
    ("KAMACHIQ_SERVER_REPO_ROOTS", "server.repo_roots"),
    ("KAMACHIQ_SERVER", "server_url"),
    ("KAMACHIQ_TOKEN", "token"),
    ("KAMACHIQ_CONFIG", "(configuration file)"),
];

/// Loads the configuration: `file` (or `KAMACHIQ_CONFIG`, or `./kamachiq.toml` if present),
/// then the environment, then `flags`.
pub fn load(file: Option<&Path>, flags: Raw) -> anyhow::Result<Config> {
    // The whole environment: `KAMACHIQ_*` settings, and the variables agents are handed
    // (`agents.pass_env`).
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut config = load_from(file, &env, flags)?;
    let uid = nix::unistd::getuid();
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| format!("uid {uid}"));
    config.actor = format!("local:{login}");
    Ok(config)
}

/// [`load`] with the environment given, for tests.
pub fn load_from(
    file: Option<&Path>,
    env: &[(String, String)],
    flags: Raw,
) -> anyhow::Result<Config> {
    let env_value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut sources = vec!["defaults".to_owned()];

    let named = file
        .map(Path::to_path_buf)
        .or_else(|| env_value("KAMACHIQ_CONFIG").map(PathBuf::from));
    let from_file = match &named {
        Some(path) => Some(read_file(path)?),
        None if Path::new(DEFAULT_FILE).is_file() => Some(read_file(Path::new(DEFAULT_FILE))?),
        None => None,
    };
    let mut raw = Raw::default();
    let mut base = PathBuf::from(".");
    if let Some((path, file_raw)) = from_file {
        sources.push(path.display().to_string());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            base = dir.to_path_buf();
        }
        raw = raw.overlay(file_raw);
    }

    let env_raw = from_env(&env_value)?;
    if ENV_KEYS
        .iter()
        .any(|(name, _)| *name != "KAMACHIQ_CONFIG" && env_value(name).is_some())
    {
        sources.push("environment".to_owned());
    }
    raw = raw.overlay(env_raw);
    sources.push("flags".to_owned());
    raw = raw.overlay(flags);
    let agent_env = |name: &str| env_value(name);
    validate(raw, sources, &base, &agent_env)
}

fn read_file(path: &Path) -> anyhow::Result<(PathBuf, Raw)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))
        .map_err(|e| InvalidInput::new(format!("{e:#}")))?;
    let raw: Raw = toml::from_str(&text).map_err(|e| {
        let place = e
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!(":{line}")
            })
            .unwrap_or_default();
        InvalidInput::new(format!("{}{place}: {}", path.display(), e.message()))
    })?;
    Ok((path.to_path_buf(), raw))
}

fn from_env(value: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Raw> {
    let number = |name: &str| -> anyhow::Result<Option<u32>> {
        match value(name) {
            None => Ok(None),
            Some(v) => Ok(Some(v.trim().parse::<u32>().map_err(|_| {
                InvalidInput::new(format!("{name}: expected a whole number, got `{v}`"))
            })?)),
        }
    };
    let concurrency = number("KAMACHIQ_CONCURRENCY")?;
    Ok(Raw {
        home: value("KAMACHIQ_HOME"),
        database_url: value("KAMACHIQ_DATABASE_URL"),
        concurrency,
        log_level: value("KAMACHIQ_LOG_LEVEL"),
        engine: RawEngine {
            lease_ttl: value("KAMACHIQ_ENGINE_LEASE_TTL"),
            heartbeat: value("KAMACHIQ_ENGINE_HEARTBEAT"),
            kill_grace: value("KAMACHIQ_ENGINE_KILL_GRACE"),
            max_workspace_disk: value("KAMACHIQ_ENGINE_MAX_WORKSPACE_DISK"),
        },
        git: RawGit {
            author_name: value("KAMACHIQ_GIT_AUTHOR_NAME"),
            author_email: value("KAMACHIQ_GIT_AUTHOR_EMAIL"),
        },
        server: RawServer {
            listen: value("KAMACHIQ_SERVER_LISTEN"),
            max_runs: number("KAMACHIQ_SERVER_MAX_RUNS")?,
            shutdown_grace: value("KAMACHIQ_SERVER_SHUTDOWN_GRACE"),
            repo_roots: value("KAMACHIQ_SERVER_REPO_ROOTS").map(|v| {
                v.split(':')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
        },
        server_url: value("KAMACHIQ_SERVER"),
        token: value("KAMACHIQ_TOKEN"),
        ..Raw::default()
    })
}

fn duration(key: &str, value: Option<&str>, default: Duration) -> anyhow::Result<Duration> {
    let Some(text) = value else {
        return Ok(default);
    };
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        InvalidInput::new(format!(
            "{key}: invalid duration `{text}`: {e} (write e.g. `30s`, `5m`)"
        ))
    })?;
    if parsed.is_zero() {
        return Err(InvalidInput::new(format!("{key}: must be longer than zero")).into());
    }
    Ok(parsed)
}

fn validate(
    raw: Raw,
    sources: Vec<String>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Config> {
    let home = PathBuf::from(raw.home.as_deref().unwrap_or(".kamachiq"));
    if home.as_os_str().is_empty() {
        return Err(InvalidInput::new("home: must not be empty").into());
    }
    if let Some(url) = &raw.database_url
        && kamachiq_store::Backend::from_url(url).is_err()
    {
        return Err(InvalidInput::new(format!(
            "database_url: `{}` is neither sqlite://PATH nor postgres://USER@HOST/DB",
            kamachiq_store::redact_url(url)
        ))
        .into());
    }
    let concurrency = raw.concurrency.unwrap_or(4);
    if !(1..=4096).contains(&concurrency) {
        return Err(InvalidInput::new(format!(
            "concurrency: must be between 1 and 4096, got {concurrency}"
        ))
        .into());
    }
    let log_level = match raw
        .log_level
        .as_deref()
        .unwrap_or("warn")
        .to_ascii_lowercase()
        .as_str()
    {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        other => {
            return Err(InvalidInput::new(format!(
                "log_level: `{other}` is not one of error, warn, info, debug, trace"
            ))
            .into());
        }
    };
    let lease_ttl = duration(
        "engine.lease_ttl",
        raw.engine.lease_ttl.as_deref(),
        Duration::from_secs(30),
    )?;
    let heartbeat = duration(
        "engine.heartbeat",
        raw.engine.heartbeat.as_deref(),
        Duration::from_secs(10),
    )?;
    if heartbeat >= lease_ttl {
        return Err(InvalidInput::new(format!(
            "engine.heartbeat ({}) must be shorter than engine.lease_ttl ({}), or leases lapse between renewals",
            humantime::format_duration(heartbeat),
            humantime::format_duration(lease_ttl)
        ))
        .into());
    }
    let kill_grace = duration(
        "engine.kill_grace",
        raw.engine.kill_grace.as_deref(),
        Duration::from_secs(5),
    )?;
    let max_workspace_bytes = raw
        .engine
        .max_workspace_disk
        .as_deref()
        .map(|text| {
            parse_size(text).map_err(|why| {
                InvalidInput::new(format!(
                    "engine.max_workspace_disk: `{text}` {why} (write e.g. `20GiB`, `500MB`)"
                ))
            })
        })
        .transpose()?;
    let listen_text = raw.server.listen.as_deref().unwrap_or("127.0.0.1:8200");
    let listen = listen_text.trim().parse().map_err(|_| {
        InvalidInput::new(format!(
            "server.listen: `{listen_text}` is not an address and port (write e.g. `127.0.0.1:8200`)"
        ))
    })?;
    let max_runs = raw.server.max_runs.unwrap_or(16);
    if !(1..=4096).contains(&max_runs) {
        return Err(InvalidInput::new(format!(
            "server.max_runs: must be between 1 and 4096, got {max_runs}"
        ))
        .into());
    }
    let shutdown_grace = duration(
        "server.shutdown_grace",
        raw.server.shutdown_grace.as_deref(),
        Duration::from_secs(30),
    )?;
    let mut repo_roots = Vec::new();
    for root in raw.server.repo_roots.unwrap_or_default() {
        let resolved = std::fs::canonicalize(&root).map_err(|e| {
            InvalidInput::new(format!(
                "server.repo_roots: `{root}` is not a directory kamachiq can reach: {e}"
            ))
        })?;
        repo_roots.push(resolved);
    }
    let server_url = match raw.server_url {
        None => None,
        Some(url) => {
            let trimmed = url.trim().trim_end_matches('/').to_owned();
            if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
                return Err(InvalidInput::new(format!(
                    "server: `{url}` is not an http:// or https:// URL"
                ))
                .into());
            }
            Some(trimmed)
        }
    };
    if let Some(token) = &raw.token
        && token.trim().is_empty()
    {
        return Err(InvalidInput::new("token: must not be empty").into());
    }
    Ok(Config {
        home,
        database_url: raw.database_url,
        concurrency,
        log_level,
        lease_ttl,
        heartbeat,
        kill_grace,
        max_workspace_bytes,
        author_name: raw.git.author_name.unwrap_or_else(|| "kamachiq".to_owned()),
        author_email: raw
            .git
            .author_email
            .unwrap_or_else(|| "kamachiq@localhost".to_owned()),
        listen,
        max_runs,
        shutdown_grace,
        repo_roots,
        server_url,
        token: raw.token.map(|t| t.trim().to_owned()),
        actor: "local:unknown".to_owned(),
        agents: agents::validate(raw.agents, raw.personas, base, env)?,
        review: {
            let review = raw.review.unwrap_or_default();
            kamachiq_review::Guards::new(&review)
                .map_err(|e| InvalidInput::new(format!("review: {e}")))?;
            review
        },
        sources,
    })
}

/// A size: a number of bytes with an optional unit (`B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`,
/// `TB`/`TiB`; K, M, G and T alone are binary).
fn parse_size(text: &str) -> Result<u64, &'static str> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| "is not a size")?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err("has a unit kamachiq does not know"),
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err("is out of range");
    }
    Ok(bytes as u64)
}

/// The commented example configuration (`kamachiq config example`; committed as
/// `kamachiq.example.toml`, which a test keeps identical to this).
pub fn example() -> String {
    let mut out = String::from(
        "# kamachiq configuration. Every key is optional; shown are the defaults.\n\
         # Precedence: these defaults < this file < KAMACHIQ_* environment < command-line flags.\n\
         # kamachiq reads ./kamachiq.toml, or the file named by --config or KAMACHIQ_CONFIG.\n\n",
    );
    for (comment, line) in [
        (
            "Where kamachiq keeps its state: the SQLite database, step logs, worktrees. (KAMACHIQ_HOME)",
            "home = \".kamachiq\"",
        ),
        (
            "Database; unset means SQLite in the home. PostgreSQL: \"postgres://USER@HOST/DB\". (KAMACHIQ_DATABASE_URL)",
            "# database_url = \"sqlite://.kamachiq/kamachiq.db\"",
        ),
        (
            "Deliverables of a run that may run at once. (KAMACHIQ_CONCURRENCY)",
            "concurrency = 4",
        ),
        (
            "error, warn, info, debug or trace. (KAMACHIQ_LOG_LEVEL)",
            "log_level = \"warn\"",
        ),
        (
            "A kamachiq server for runs/status/cancel/resume/run to act on instead of the local store; --server. The token comes from KAMACHIQ_TOKEN or --token, never from this file. (KAMACHIQ_SERVER)",
            "# server_url = \"http://127.0.0.1:8200\"",
        ),
    ] {
        out.push_str(&format!("# {comment}\n{line}\n\n"));
    }
    out.push_str("[engine]\n");
    for (comment, line) in [
        (
            "A driver that has not renewed its lease for this long is taken over. (KAMACHIQ_ENGINE_LEASE_TTL)",
            "lease_ttl = \"30s\"",
        ),
        (
            "How often a driver renews its leases; shorter than lease_ttl. (KAMACHIQ_ENGINE_HEARTBEAT)",
            "heartbeat = \"10s\"",
        ),
        (
            "Between SIGTERM and SIGKILL when a step is stopped. (KAMACHIQ_ENGINE_KILL_GRACE)",
            "kill_grace = \"5s\"",
        ),
        (
            "Most disk the worktrees under the home may use; past it no new worktree is made (`kamachiq workspaces prune` frees space). Unset: no limit. (KAMACHIQ_ENGINE_MAX_WORKSPACE_DISK)",
            "# max_workspace_disk = \"20GiB\"",
        ),
    ] {
        out.push_str(&format!("# {comment}\n{line}\n\n"));
    }
    out.push_str("[server]\n");
    for (comment, line) in [
        (
            "Where `kamachiq serve` listens. (KAMACHIQ_SERVER_LISTEN)",
            "listen = \"127.0.0.1:8200\"",
        ),
        (
            "Most runs the server drives at once; more wait their turn. (KAMACHIQ_SERVER_MAX_RUNS)",
            "max_runs = 16",
        ),
        (
            "On Ctrl-C or SIGTERM, how long to wait for running work to be handed back. (KAMACHIQ_SERVER_SHUTDOWN_GRACE)",
            "shutdown_grace = \"30s\"",
        ),
        (
            "Directories runs submitted over HTTP may merge into; empty means any repository the server can reach. Set it on a server shared by tenants. (KAMACHIQ_SERVER_REPO_ROOTS, colon-separated)",
            "repo_roots = []",
        ),
    ] {
        out.push_str(&format!("# {comment}\n{line}\n\n"));
    }
    out.push_str("[agents]\n");
    for (comment, line) in [
        (
            "An agent starts from an empty environment: PATH, HOME, USER, LOGNAME, LANG, LC_ALL, TZ, TMPDIR and TERM, plus these variables of kamachiq's own environment (API keys are passed by name, never written here). false: agents inherit everything.",
            "isolate_env = true",
        ),
        (
            "",
            "pass_env = [\"ANTHROPIC_API_KEY\", \"OPENAI_API_KEY\", \"CODEX_API_KEY\", \"GEMINI_API_KEY\", \"GOOGLE_API_KEY\"]",
        ),
        (
            "An agent that prints nothing for this long is stopped (reason `stalled`).",
            "stall = \"10m\"",
        ),
        (
            "An agent that prints the same thing this many times in a row is stopped (reason `looping`).",
            "repeat_threshold = 20",
        ),
        (
            "Agent launches per minute per tenant, and the burst allowed above that pace.",
            "launches_per_minute = 60",
        ),
        ("", "launch_burst = 10"),
        (
            "Confine agents with Linux Landlock: they may read everywhere but write only in their worktree, a temporary directory and sandbox_write (needs Linux 5.13+ with Landlock on; `kamachiq doctor` tells).",
            "sandbox = false",
        ),
        ("", "sandbox_write = []"),
        (
            "Programs of agents not on PATH under their usual name (claude, codex, aider, gemini).",
            "# programs = { claude = \"/opt/claude/bin/claude\" }",
        ),
        (
            "Arguments added to an agent's command line.",
            "# args = { claude = [\"--permission-mode\", \"acceptEdits\"] }",
        ),
        (
            "The `command` agent: any program, with {prompt}, {prompt_file}, {model}, {worktree}.",
            "# template = [\"my-agent\", \"--task-file\", \"{prompt_file}\"]",
        ),
        (
            "Prices per million tokens (USD) by model or model prefix, for agents that report tokens without a cost.",
            "# prices = { \"gpt-5\" = { input_per_mtok = 1.25, output_per_mtok = 10.0 } }",
        ),
    ] {
        if comment.is_empty() {
            out.push_str(&format!("{line}\n\n"));
        } else {
            out.push_str(&format!("# {comment}\n{line}\n\n"));
        }
    }
    out.push_str(
        "# Personas (seed 001): the agent and model a deliverable's agent steps use, instructions\n\
         # (a file, relative to this one) and the tools the agent may use without asking.\n\
         # [personas.\"developer_backend.v2\"]\n\
         # agent = \"claude\"\n\
         # model = \"claude-sonnet-4-5\"\n\
         # instructions = \"personas/backend.md\"\n\
         # tools = [\"Read\", \"Edit\", \"Write\", \"Bash\"]\n\n",
    );
    out.push_str(
        "# The guards a deliverable's diff passes before it is merged; a finding holds the merge\n\
         # back for review (the requeue). Setting [review] replaces these defaults as a whole.\n\
         # [review]\n\
         # protected = [\".env\", \"*.env\", \"*.env.*\", \".envrc\", \".git/\", \"*.pem\", \"*.key\", \"id_rsa*\", ...]\n\
         # max_files = 20\n\
         # max_changed_lines = 1000\n\
         # secret_scan = true\n\
         # entropy_threshold = 4.5\n\
         # allow_secrets_in = [\"tests/fixtures/**\"]\n\n",
    );
    out.push_str("[git]\n");
    for (comment, line) in [
        (
            "Author of step commits and merges. (KAMACHIQ_GIT_AUTHOR_NAME)",
            "author_name = \"kamachiq\"",
        ),
        (
            "(KAMACHIQ_GIT_AUTHOR_EMAIL)",
            "author_email = \"kamachiq@localhost\"",
        ),
    ] {
        out.push_str(&format!("# {comment}\n{line}\n\n"));
    }
    out.trim_end().to_owned() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn defaults_apply_without_any_source() {
        let config = load_from(None, &[], Raw::default()).unwrap();
        assert_eq!(config.home, PathBuf::from(".kamachiq"));
        assert_eq!(config.database_url(), "sqlite://.kamachiq/kamachiq.db");
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.lease_ttl, Duration::from_secs(30));
    }

    #[test]
    fn file_then_environment_then_flags_take_precedence() {
        let file = write("concurrency = 2\nhome = \"/srv/kq\"\n[engine]\nlease_ttl = \"1m\"\n");
        let flags = Raw {
            concurrency: Some(8),
            ..Raw::default()
        };
        let config = load_from(
            Some(file.path()),
            &env(&[("KAMACHIQ_HOME", "/env/kq"), ("KAMACHIQ_CONCURRENCY", "3")]),
            flags,
        )
        .unwrap();
        assert_eq!(config.concurrency, 8, "flags beat the environment");
        assert_eq!(
            config.home,
            PathBuf::from("/env/kq"),
            "the environment beats the file"
        );
        assert_eq!(
            config.lease_ttl,
            Duration::from_secs(60),
            "the file beats the defaults"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let file = write("concurrency = 2\n[engine]\nleese_ttl = \"1m\"\n");
        let err = load_from(Some(file.path()), &[], Raw::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3: unknown field `leese_ttl`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                env(&[("KAMACHIQ_CONCURRENCY", "many")]),
                "KAMACHIQ_CONCURRENCY: expected a whole number, got `many`",
            ),
            (
                env(&[("KAMACHIQ_CONCURRENCY", "0")]),
                "concurrency: must be between 1 and 4096, got 0",
            ),
            (
                env(&[("KAMACHIQ_ENGINE_LEASE_TTL", "soon")]),
                "engine.lease_ttl: invalid duration `soon`",
            ),
            (
                env(&[("KAMACHIQ_LOG_LEVEL", "loud")]),
                "log_level: `loud` is not one of",
            ),
            (
                env(&[("KAMACHIQ_DATABASE_URL", "mysql://u:pw@h/db")]),
                "database_url: `mysql://u:***@h/db` is neither",
            ),
            (
                env(&[("KAMACHIQ_ENGINE_HEARTBEAT", "1m")]),
                "engine.heartbeat (1m) must be shorter than engine.lease_ttl (30s)",
            ),
        ];
        for (vars, expected) in cases {
            let err = load_from(None, &vars, Raw::default())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("20GiB"), Ok(20 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("500 MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5G"), Ok(1_610_612_736));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("10 XB").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn the_example_parses_to_the_defaults() {
        let file = write(&example());
        let config = load_from(Some(file.path()), &[], Raw::default()).unwrap();
        let defaults = load_from(None, &[], Raw::default()).unwrap();
        assert_eq!(config.home, defaults.home);
        assert_eq!(config.concurrency, defaults.concurrency);
        assert_eq!(config.lease_ttl, defaults.lease_ttl);
        assert_eq!(config.heartbeat, defaults.heartbeat);
        assert_eq!(config.kill_grace, defaults.kill_grace);
        assert_eq!(config.author_email, defaults.author_email);
        assert_eq!(config.database_url(), defaults.database_url());
    }

    #[test]
    fn the_committed_example_is_current() {
        let committed = include_str!("../../../../kamachiq.example.toml");
        assert_eq!(
            committed,
            example(),
            "run `kamachiq config example > kamachiq.example.toml`"
        );
    }
}
