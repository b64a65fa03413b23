//! `kamachiq doctor`: the report's shape, agents found (or not) on PATH, probes that hang, and
//! a store that does not answer. The machine running the tests may be busy, so CPU, memory and
//! disk are checked for shape and consistency, not for a fixed status.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Workspace, stderr, stdout};

const COMPONENTS: [&str; 10] = [
    "cpu", "memory", "disk", "git", "claude", "codex", "aider", "gemini", "store", "config",
];

/// A directory of fake programs, put first on PATH.
fn fake_bin(ws: &Workspace, programs: &[(&str, &str)]) -> PathBuf {
    let bin = ws.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, script) in programs {
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn path_with(bin: &Path) -> String {
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

/// The report, after checking that the exit code is the one its overall status calls for.
fn report(out: &Output) -> Value {
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)));
    let expected = match report["status"].as_str().unwrap() {
        "healthy" => 0,
        "degraded" => 1,
        "unhealthy" => 4,
        other => panic!("unknown status {other}"),
    };
    assert_eq!(out.status.code(), Some(expected), "{report:#}");
    report
}

fn component<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name} in {report:#}"))
}

#[test]
fn doctor_json_on_a_fresh_home_reports_every_component() {
    let ws = Workspace::new();
    let out = ws.run(&["doctor", "--json"]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report = report(&out);
    let components = report["components"].as_array().unwrap();
    let names: Vec<&str> = components
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, COMPONENTS);
    let rank = |s: &str| {
        ["healthy", "degraded", "unhealthy"]
            .iter()
            .position(|r| *r == s)
    };
    let mut worst = 0;
    for c in components {
        for key in ["label", "value", "detail"] {
            assert!(c[key].is_string(), "{key} in {c}");
        }
        worst = worst.max(rank(c["status"].as_str().unwrap()).unwrap());
    }
    assert_eq!(rank(report["status"].as_str().unwrap()), Some(worst));

    for measured in ["cpu", "memory", "disk"] {
        let c = component(&report, measured);
        let percent = c["percent"].as_u64().unwrap();
        assert!(percent <= 100, "{c}");
        assert_eq!(c["value"], format!("{percent}%"));
    }
    assert_eq!(component(&report, "git")["status"], "healthy");
    let store = component(&report, "store");
    assert_eq!(store["status"], "healthy", "{store}");
    assert_eq!(store["backend"], "sqlite");
    assert!(ws.path().join(".kamachiq/kamachiq.db").exists());
    let config = component(&report, "config");
    assert_eq!(config["status"], "healthy");
    assert_eq!(config["sources"], serde_json::json!(["defaults", "flags"]));
}

#[test]
fn doctor_prints_the_runbook_shape_for_people() {
    let ws = Workspace::new();
    let out = ws.run(&["doctor"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let overall = lines[0].strip_prefix("Overall Status: ").unwrap();
    let expected = match overall {
        "HEALTHY" => 0,
        "DEGRADED" => 1,
        "UNHEALTHY" => 4,
        other => panic!("unknown status {other}"),
    };
    assert_eq!(out.status.code(), Some(expected), "{text}");
    assert_eq!(lines[1..3], ["", "Components:"]);
    assert_eq!(lines.len(), 3 + COMPONENTS.len(), "{text}");
    let git = lines.iter().find(|l| l.contains(" Git: ")).unwrap();
    assert!(
        git.starts_with("✓ Git: ") && git.contains(" (HEALTHY) — git "),
        "{git}"
    );
    let config = lines.iter().find(|l| l.contains("Configuration")).unwrap();
    assert_eq!(
        *config,
        "✓ Configuration: valid (HEALTHY) — from defaults < flags"
    );
}

#[test]
fn doctor_help_gives_the_thresholds_and_exit_codes() {
    let ws = Workspace::new();
    let out = ws.run(&["doctor", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    // Help is wrapped to the terminal's width: compare words, not lines.
    let text = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("unhealthy from 98% or under 500 MiB free"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "Exit codes: 0 healthy · 1 degraded (something needs a look) · 2 invalid \
             configuration · 4 unhealthy (kamachiq cannot work as it is)"
        ),
        "{text}"
    );
}

#[test]
fn an_agent_on_path_reports_its_version() {
    let ws = Workspace::new();
    let bin = fake_bin(
        &ws,
        &[("claude", "#!/bin/sh\necho '1.0.12 (Claude Code)'\n")],
    );
    let out = ws
        .command(&["doctor", "--json"])
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    let report = report(&out);
    let claude = component(&report, "claude");
    assert_eq!(claude["status"], "healthy", "{claude}");
    assert_eq!(claude["installed"], true);
    assert_eq!(claude["version"], "1.0.12");
    assert_eq!(claude["value"], "1.0.12");
    assert_eq!(claude["label"], "Claude Code");
    assert_eq!(claude["detail"], "`claude --version`: 1.0.12 (Claude Code)");
}

#[test]
fn a_missing_agent_is_reported_not_installed_and_healthy() {
    let ws = Workspace::new();
    // Only git on PATH: no agent can be found.
    let git = std::process::Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .unwrap();
    let git = PathBuf::from(String::from_utf8(git.stdout).unwrap().trim());
    let bin = fake_bin(&ws, &[]);
    std::os::unix::fs::symlink(&git, bin.join("git")).unwrap();
    let out = ws
        .command(&["doctor", "--json"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    let report = report(&out);
    for agent in ["claude", "codex", "aider", "gemini"] {
        let c = component(&report, agent);
        assert_eq!(c["status"], "healthy", "{c}");
        assert_eq!(c["installed"], false);
        assert_eq!(c["value"], "not installed");
    }
}

#[test]
fn an_agent_that_hangs_is_degraded_and_does_not_hold_up_the_doctor() {
    let ws = Workspace::new();
    let bin = fake_bin(&ws, &[("codex", "#!/bin/sh\nsleep 30\n")]);
    let started = Instant::now();
    let out = ws
        .command(&["doctor", "--json"])
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "the doctor took {took:?}");
    let report = report(&out);
    let codex = component(&report, "codex");
    assert_eq!(codex["status"], "degraded", "{codex}");
    assert_eq!(codex["value"], "timed out");
    assert_eq!(codex["installed"], true);
    assert_eq!(
        codex["detail"],
        "`codex --version` gave no answer within 5s and was stopped"
    );
    assert_ne!(report["status"], "healthy");
}

#[test]
fn an_unreachable_store_is_unhealthy_and_its_password_never_shown() {
    let ws = Workspace::new();
    let url = "postgres://nobody:hunter2@127.0.0.1:1/x";
    let json = ws
        .command(&["--database-url", url, "doctor", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let human = ws
        .command(&["--database-url", url, "doctor"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (json, human) = (
        json.wait_with_output().unwrap(),
        human.wait_with_output().unwrap(),
    );

    assert_eq!(json.status.code(), Some(4), "{}", stderr(&json));
    let report = report(&json);
    let store = component(&report, "store");
    assert_eq!(store["status"], "unhealthy");
    assert_eq!(store["value"], "unreachable");
    assert_eq!(store["url"], "postgres://nobody:***@127.0.0.1:1/x");
    assert!(
        store["detail"]
            .as_str()
            .unwrap()
            .starts_with("postgres://nobody:***@127.0.0.1:1/x did not answer within 5s"),
        "{store}"
    );

    assert_eq!(human.status.code(), Some(4));
    assert!(stdout(&human).starts_with("Overall Status: UNHEALTHY\n"));
    assert!(
        stdout(&human).contains("✗ Store: unreachable (UNHEALTHY) — postgres://nobody:***@"),
        "{}",
        stdout(&human)
    );
    for out in [&json, &human] {
        assert!(!stdout(out).contains("hunter2"), "{}", stdout(out));
        assert!(!stderr(out).contains("hunter2"), "{}", stderr(out));
    }
}
