//! Programs: git and the coding agents, asked for their `--version` with a timeout.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::parse::{parse_git_version, version_line, version_number};
use super::{Component, Facts, GIT_MIN, Status, VERSION_TIMEOUT, git_is_recent};

/// How `PROGRAM --version` went.
#[derive(Debug)]
pub enum Ran {
    /// No such program (not on PATH, or no file at the path given).
    Missing,
    /// It exists but could not be started (not executable, ...).
    Unrunnable(std::io::Error),
    /// No answer within the limit; its process group was killed.
    TimedOut,
    /// It ended with a failure status (`None`: killed by a signal).
    Failed {
        code: Option<i32>,
        stderr: String,
    },
    Succeeded {
        stdout: String,
        stderr: String,
    },
}

/// Runs `program --version` with no input, in a process group of its own, for at most
/// `limit`. On timeout the whole group is killed, so a wrapper script's children do not
/// linger either.
pub async fn run_version(program: &str, limit: Duration) -> Ran {
    let mut command = tokio::process::Command::new(program);
    command
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ran::Missing,
        Err(e) => return Ran::Unrunnable(e),
    };
    // Taken now: once the program has been waited for, its id is no longer known.
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let finished = tokio::time::timeout(limit, async {
        tokio::join!(child.wait(), read_some(stdout), read_some(stderr))
    })
    .await;
    match finished {
        Ok((Ok(status), stdout, stderr)) if status.success() => Ran::Succeeded { stdout, stderr },
        Ok((Ok(status), _, stderr)) => Ran::Failed {
            code: status.code(),
            stderr,
        },
        Ok((Err(e), _, _)) => Ran::Unrunnable(e),
        Err(_) => {
            // The group outlives its leader while a member lives, so its id is still ours.
            if let Some(pid) = group {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.start_kill();
            Ran::TimedOut
        }
    }
}

/// Up to 64 KiB of what a pipe gives, as text; a `--version` says far less.
async fn read_some(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let mut buffer = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.take(64 * 1024).read_to_end(&mut buffer).await;
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

/// git: present and at least [`GIT_MIN`]. Without it kamachiq cannot run anything.
pub async fn git() -> Component {
    git_at("git").await
}

async fn git_at(program: &str) -> Component {
    const NAME: &str = "git";
    const LABEL: &str = "Git";
    let needed = format!("kamachiq needs git {}.{} or newer", GIT_MIN.0, GIT_MIN.1);
    let unhealthy = |value: &str, why: String| {
        Component::new(NAME, LABEL, Status::Unhealthy, value, why).with(Facts {
            program: Some(program.to_owned()),
            ..Facts::default()
        })
    };
    let stdout = match run_version(program, VERSION_TIMEOUT).await {
        Ran::Succeeded { stdout, .. } => stdout,
        Ran::Missing => {
            return unhealthy(
                "not installed",
                format!("`{program}` is not on PATH; {needed}"),
            );
        }
        other => return unhealthy("failed", format!("`{program} --version` {}", why(&other))),
    };
    let Some(version) = parse_git_version(&stdout) else {
        return Component::new(
            NAME,
            LABEL,
            Status::Degraded,
            "unknown",
            format!(
                "cannot read a version in `{}`; {needed}",
                version_line(&stdout, "").unwrap_or_default()
            ),
        );
    };
    let facts = Facts {
        program: Some(program.to_owned()),
        version: Some(version.text.clone()),
        ..Facts::default()
    };
    if git_is_recent((version.major, version.minor)) {
        Component::new(
            NAME,
            LABEL,
            Status::Healthy,
            version.text.clone(),
            format!(
                "git {} (needs {}.{} or newer)",
                version.text, GIT_MIN.0, GIT_MIN.1
            ),
        )
        .with(facts)
    } else {
        Component::new(
            NAME,
            LABEL,
            Status::Unhealthy,
            version.text.clone(),
            format!(
                "git {} is too old: {needed}, for merges that never touch a checkout",
                version.text
            ),
        )
        .with(facts)
    }
}

/// Why a `--version` did not succeed, after the command: `gave no answer within 5s`.
fn why(ran: &Ran) -> String {
    match ran {
        Ran::Missing => "was not found".to_owned(),
        Ran::Unrunnable(e) => format!("could not be started: {e}"),
        Ran::TimedOut => format!(
            "gave no answer within {}s and was stopped",
            VERSION_TIMEOUT.as_secs()
        ),
        Ran::Failed { code, stderr } => {
            let status = code.map_or_else(
                || "was killed by a signal".to_owned(),
                |c| format!("exited with status {c}"),
            );
            match version_line("", stderr) {
                Some(line) => format!("{status}: {line}"),
                None => status,
            }
        }
        Ran::Succeeded { .. } => "succeeded".to_owned(),
    }
}

/// The label of a known agent; others go by their name.
pub fn agent_label(name: &str) -> String {
    match name {
        "claude" => "Claude Code".to_owned(),
        "codex" => "Codex CLI".to_owned(),
        "aider" => "Aider".to_owned(),
        "gemini" => "Gemini CLI".to_owned(),
        other => other.to_owned(),
    }
}

/// Whether the agent's program was chosen by the operator: anything but its own name.
fn explicit(name: &str, program: &str) -> bool {
    name != program
}

/// A coding agent: `program --version`. An agent that is not installed is fine (a team uses
/// only some), unless its program was configured explicitly; one that is installed but does
/// not answer its version is degraded.
pub async fn agent(name: &str, program: &str) -> Component {
    let label = agent_label(name);
    let ran = run_version(program, VERSION_TIMEOUT).await;
    agent_component(name, &label, program, &ran)
}

fn agent_component(name: &str, label: &str, program: &str, ran: &Ran) -> Component {
    let facts = |installed: bool, version: Option<String>| Facts {
        program: Some(program.to_owned()),
        installed: Some(installed),
        version,
        ..Facts::default()
    };
    match ran {
        Ran::Missing if explicit(name, program) => Component::new(
            name,
            label,
            Status::Degraded,
            "not installed",
            format!("the configured program `{program}` was not found"),
        )
        .with(facts(false, None)),
        Ran::Missing => Component::new(
            name,
            label,
            Status::Healthy,
            "not installed",
            format!("`{program}` is not on PATH; only plans that use {label} need it"),
        )
        .with(facts(false, None)),
        Ran::Succeeded { stdout, stderr } => match version_line(stdout, stderr) {
            Some(line) => {
                let version = version_number(&line).map(str::to_owned);
                Component::new(
                    name,
                    label,
                    Status::Healthy,
                    version.clone().unwrap_or_else(|| line.clone()),
                    format!("`{program} --version`: {line}"),
                )
                .with(facts(true, version))
            }
            None => Component::new(
                name,
                label,
                Status::Degraded,
                "no version",
                format!("`{program} --version` printed nothing"),
            )
            .with(facts(true, None)),
        },
        Ran::TimedOut => Component::new(
            name,
            label,
            Status::Degraded,
            "timed out",
            format!("`{program} --version` {}", why(ran)),
        )
        .with(facts(true, None)),
        Ran::Unrunnable(_) | Ran::Failed { .. } => Component::new(
            name,
            label,
            Status::Degraded,
            "failed",
            format!("`{program} --version` {}", why(ran)),
        )
        .with(facts(true, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn succeeded(stdout: &str) -> Ran {
        Ran::Succeeded {
            stdout: stdout.to_owned(),
            stderr: String::new(),
        }
    }

    #[test]
    fn an_installed_agent_reports_its_version() {
        let c = agent_component(
            "codex",
            "Codex CLI",
            "codex",
            &succeeded("codex-cli 0.58.0\n"),
        );
        assert_eq!(c.status, Status::Healthy);
        assert_eq!(c.value, "0.58.0");
        assert_eq!(c.facts.installed, Some(true));
        assert_eq!(c.facts.version.as_deref(), Some("0.58.0"));
        assert_eq!(c.detail, "`codex --version`: codex-cli 0.58.0");
    }

    #[test]
    fn a_missing_agent_is_healthy_unless_it_was_configured() {
        let default = agent_component("aider", "Aider", "aider", &Ran::Missing);
        assert_eq!(default.status, Status::Healthy);
        assert_eq!(default.value, "not installed");
        assert_eq!(default.facts.installed, Some(false));
        let configured = agent_component("aider", "Aider", "/opt/aider/bin/aider", &Ran::Missing);
        assert_eq!(configured.status, Status::Degraded);
        assert_eq!(configured.facts.installed, Some(false));
    }

    #[test]
    fn an_agent_that_fails_its_version_is_degraded_with_the_reason() {
        let failed = Ran::Failed {
            code: Some(2),
            stderr: "error: no API key\n".to_owned(),
        };
        let c = agent_component("gemini", "Gemini CLI", "gemini", &failed);
        assert_eq!(c.status, Status::Degraded);
        assert_eq!(
            c.detail,
            "`gemini --version` exited with status 2: error: no API key"
        );
        let c = agent_component("gemini", "Gemini CLI", "gemini", &Ran::TimedOut);
        assert_eq!(
            (c.status, c.value.as_str()),
            (Status::Degraded, "timed out")
        );
        let c = agent_component("gemini", "Gemini CLI", "gemini", &succeeded(""));
        assert_eq!(
            (c.status, c.value.as_str()),
            (Status::Degraded, "no version")
        );
    }

    #[tokio::test]
    async fn a_program_that_hangs_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("slow");
        let marker = dir.path().join("pid");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nsleep 30 &\necho $! > {}\nwait\n",
                marker.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        // A thread of another test that forks while this file is still open for writing
        // holds it open in its child until that child execs: "text file busy" for a moment.
        let mut attempts = 0;
        let (ran, started) = loop {
            let started = std::time::Instant::now();
            let ran = run_version(script.to_str().unwrap(), Duration::from_millis(500)).await;
            let busy = matches!(&ran, Ran::Unrunnable(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy);
            attempts += 1;
            if !busy || attempts == 50 {
                break (ran, started);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(matches!(ran, Ran::TimedOut), "{ran:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let child: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background `sleep` was in the group: it is gone (or a zombie being reaped).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let alive = || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .is_ok_and(|s| !s.contains(") Z "))
        };
        while alive() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(), "the child of the timed-out program still runs");
    }

    #[tokio::test]
    async fn a_program_that_is_not_there_is_missing() {
        let ran = run_version("/nonexistent/kamachiq-test-agent", VERSION_TIMEOUT).await;
        assert!(matches!(ran, Ran::Missing), "{ran:?}");
        let c = git_at("/nonexistent/git").await;
        assert_eq!(
            (c.status, c.value.as_str()),
            (Status::Unhealthy, "not installed")
        );
    }
}
