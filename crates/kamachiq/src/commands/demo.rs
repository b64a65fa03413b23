//! `kamachiq demo`: a throwaway repository, a plan of six deliverables shaped like a diamond
//! (scaffold -> api, cli -> docs, tests -> release) whose steps write real files and run the
//! project's real test command, run by the real engine. The short sleeps in the steps stand in
//! for an agent's working time so the live display has something to show; one integration test
//! fails on its first attempt to show a retry.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use kamachiq_engine::Target;

use crate::cli::DemoArgs;
use crate::commands::{Drive, drive_with_display, engine, open_store};
use crate::config::Config;
use crate::output;
use crate::progress::Mode;

const README: &str = "# greeter\n\nA tiny project that `kamachiq demo` builds from a plan.\n";

const CHECK: &str = r#"#!/bin/sh
# The project's test command: runs every tests/*_test.sh and fails on the first failure.
set -e
count=0
for t in tests/*_test.sh; do
  [ -e "$t" ] || continue
  sh "$t"
  count=$((count + 1))
done
echo "check: $count test files passed"
"#;

const PLAN: &str = r##"# The demo plan: six deliverables, a diamond of dependencies.
title: Build greeter
tenant: demo
region: local
branch: main
deliverables:
  - id: scaffold
    title: Project layout and the greet function
    persona: developer_backend.v2
    budget_tokens: 20000
    steps:
      - name: dev
        run: |
          sleep 0.5
          mkdir -p src tests
          printf 'greet() { printf "Hello, %%s!\\n" "${1:-world}"; }\n' > src/greet.sh
          printf '. src/greet.sh\n[ "$(greet Ada)" = "Hello, Ada!" ] || { echo "greet is wrong"; exit 1; }\n' > tests/greet_test.sh
      - name: qa
        run: sh check.sh

  - id: api
    title: JSON API over greet
    persona: developer_backend.v2
    dependencies: [scaffold]
    steps:
      - name: dev
        run: |
          sleep 0.7
          printf '. src/greet.sh\napi_greet() { printf "{\\"greeting\\": \\"%%s\\"}\\n" "$(greet "$1")"; }\n' > src/api.sh
          printf '. src/api.sh\n[ "$(api_greet Ada)" = "{\\"greeting\\": \\"Hello, Ada!\\"}" ] || { echo "api_greet is wrong"; exit 1; }\n' > tests/api_test.sh
      - name: qa
        run: sh check.sh

  - id: cli
    title: Command-line tool
    persona: developer_frontend.v1
    dependencies: [scaffold]
    steps:
      - name: dev
        run: |
          sleep 0.9
          mkdir -p bin
          printf '#!/bin/sh\n. "$(dirname "$0")/../src/greet.sh"\ncase "$1" in\n  --help) echo "usage: greeter [NAME]    prints a greeting";;\n  *) greet "$1";;\nesac\n' > bin/greeter
          chmod +x bin/greeter
          printf '[ "$(sh bin/greeter Ada)" = "Hello, Ada!" ] || { echo "greeter is wrong"; exit 1; }\n' > tests/cli_test.sh
      - name: qa
        run: sh check.sh

  - id: docs
    title: Usage guide
    persona: docs_writer.v1
    dependencies: [api, cli]
    steps:
      - name: docs
        run: |
          sleep 0.4
          mkdir -p docs
          { echo "# Using greeter"; echo; sh bin/greeter --help; echo; echo "API: $(. ./src/api.sh; api_greet NAME)"; } > docs/USAGE.md

  - id: tests
    title: Integration tests
    persona: qa_engineer.v1
    dependencies: [api, cli]
    acceptance_criteria:
      - the CLI and the API agree on the greeting
    steps:
      - name: dev
        run: |
          sleep 0.5
          printf '. src/api.sh\n[ "$(api_greet Bo)" = "{\\"greeting\\": \\"$(sh bin/greeter Bo)\\"}" ] || { echo "cli and api disagree"; exit 1; }\n' > tests/integration_test.sh
      - name: qa
        retries: 1
        backoff: 300ms
        env:
          DEMO_STATE: "@STATE@"
        run: |
          if [ ! -e "$DEMO_STATE/flaky-once" ]; then
            touch "$DEMO_STATE/flaky-once"
            echo "integration fixture did not answer in time (a flaky first attempt)"
            exit 1
          fi
          sh check.sh

  - id: release
    title: Version and changelog
    persona: release_manager.v1
    dependencies: [docs, tests]
    steps:
      - name: dev
        run: |
          echo 0.1.0 > VERSION
          printf '# Changelog\n\n## 0.1.0\n\n- greet, JSON API, command-line tool, usage guide\n' > CHANGELOG.md
      - name: qa
        run: sh check.sh && test -s docs/USAGE.md
"##;

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "kamachiq demo")
        .env("GIT_AUTHOR_EMAIL", "demo@kamachiq.invalid")
        .env("GIT_COMMITTER_NAME", "kamachiq demo")
        .env("GIT_COMMITTER_EMAIL", "demo@kamachiq.invalid")
        .output()
        .context("cannot run git; the demo needs git 2.38 or newer on PATH")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

pub async fn demo(config: &Config, args: &DemoArgs) -> anyhow::Result<u8> {
    let dir = tempfile::Builder::new()
        .prefix("kamachiq-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?
        .keep();
    let repo = dir.join("greeter");
    let state = dir.join("state");
    std::fs::create_dir_all(&repo)?;
    std::fs::create_dir_all(&state)?;
    std::fs::write(repo.join("README.md"), README)?;
    std::fs::write(repo.join("check.sh"), CHECK)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "."])?;
    git(
        &repo,
        &[
            "commit",
            "-q",
            "-m",
            "greeter: empty project with its test command",
        ],
    )?;

    let plan_file = dir.join("plan.yaml");
    std::fs::write(
        &plan_file,
        PLAN.replace("@STATE@", &state.display().to_string()),
    )?;
    let plan = super::plan::load(&plan_file)?;

    // The demo keeps its state with its repository, not in the current directory.
    let mut config = config.clone();
    config.home = dir.join(".kamachiq");
    config.database_url = None;
    let json = args.json;
    if !json {
        output::note(format!(
            "demo: repository {} · plan {}",
            repo.display(),
            plan_file.display()
        ));
    }
    let store = open_store(&config).await?;
    let engine = engine(&config, store)?;
    let target = Target::resolve(&repo, Some("main")).await?;
    let events = engine.subscribe();
    let run = engine.submit(plan, Some(&target), 4).await?;
    let drive = Drive {
        events,
        reopen: Vec::new(),
        since: 0,
    };
    let code = drive_with_display(&engine, &run, Mode::pick(json), drive).await?;
    if json {
        return Ok(code);
    }

    output::line("\nThe target branch now (merges of each deliverable, in order):");
    output::line(git(
        &repo,
        &[
            "log",
            "--oneline",
            "--graph",
            "--decorate=no",
            "-n",
            "24",
            "main",
        ],
    )?);
    output::line(format!(
        "\nFiles: {}",
        git(&repo, &["ls-files"])?
            .lines()
            .collect::<Vec<_>>()
            .join("  ")
    ));
    let check = match Command::new("sh")
        .arg("check.sh")
        .current_dir(&repo)
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(e) => format!("cannot run check.sh: {e}"),
    };
    output::line(format!("The project's test command on main: {check}"));
    let home = config.home.display();
    output::line(format!(
        "\nLook around:\n  kamachiq --home {home} status {run}\n  kamachiq --home {home} logs {run} tests qa --attempt 1\n  cat {}\n  git -C {} log --stat main\n(remove it all with: rm -rf {})",
        plan_file.display(),
        repo.display(),
        dir.display()
    ));
    Ok(code)
}
