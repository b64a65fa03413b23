//! The real thing: a repository made with the installed git, diffed with the command the engine
//! runs, parsed and checked.

use std::path::Path;
use std::process::Command;

use kamachiq_review::{Diff, FileStatus, Guard, Guards, Options};

use crate::support::{ALNUM, HEX, UPPER_DIGITS, random};

/// Runs git in `dir` with a configuration of its own: no user or system settings leak in.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=kamachiq tests",
            "-c",
            "user.email=tests@kamachiq.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(dir: &Path, path: &str, content: impl AsRef<[u8]>) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// The diff between the two commits, as the engine asks for it.
fn diff(dir: &Path) -> String {
    git(
        dir,
        &[
            "diff",
            "--no-color",
            "--no-ext-diff",
            "-M",
            "--unified=0",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            "HEAD~1",
            "HEAD",
        ],
    )
}

#[test]
fn a_deliverable_diff_from_git() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    git(dir, &["init", "-q"]);
    let long: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    write(dir, "src/long.txt", &long);
    write(
        dir,
        "src/config.rs",
        "pub fn url() -> String {\n    load()\n}\n",
    );
    write(dir, ".github/workflows/ci.yml", "on: push\n");
    write(dir, "run.sh", "#!/bin/sh\n");
    write(dir, "logo.bin", [0u8, 1, 2, 3]);
    write(dir, "café.txt", "crème\n");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "base"]);

    // The tip: a rename with an edit, secrets in added lines, a deleted protected file, a mode
    // change, a binary change, a quoted path, a path with a space and no final newline.
    let github = ["gh", "p_"].concat() + &random(ALNUM, 36, 1);
    let aws = ["AK", "IA"].concat() + &random(UPPER_DIGITS, 16, 2);
    let kamachiq = ["kq", "_"].concat() + &random(HEX, 64, 3);
    git(dir, &["mv", "src/long.txt", "src/renamed.txt"]);
    write(dir, "src/renamed.txt", format!("{long}line 31\n"));
    write(
        dir,
        "src/config.rs",
        format!(
            "pub fn url() -> String {{\n    let token = \"{github}\";\n    load()\n}}\n\
             const KEY: &str = \"{aws}\";\n"
        ),
    );
    git(dir, &["rm", "-q", ".github/workflows/ci.yml"]);
    write(dir, "logo.bin", [0u8, 9, 9, 9]);
    write(dir, "café.txt", "crème brûlée\n");
    write(dir, "docs/read me.md", format!("KAMACHIQ_TOKEN={kamachiq}"));
    write(
        dir,
        "src/settings.py",
        "password = os.environ[\"DB_PASSWORD\"]\n",
    );
    git(dir, &["add", "-A"]);
    git(dir, &["update-index", "--chmod=+x", "run.sh"]);
    git(dir, &["commit", "-q", "-m", "tip"]);

    let text = diff(dir);
    let diff = Diff::parse(&text).unwrap();
    let files: Vec<_> = diff
        .files
        .iter()
        .map(|f| {
            (
                f.old_path.as_deref(),
                f.new_path.as_deref(),
                f.status,
                f.binary,
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            (
                Some(".github/workflows/ci.yml"),
                None,
                FileStatus::Deleted,
                false
            ),
            (
                Some("café.txt"),
                Some("café.txt"),
                FileStatus::Modified,
                false
            ),
            (None, Some("docs/read me.md"), FileStatus::Added, false),
            (
                Some("logo.bin"),
                Some("logo.bin"),
                FileStatus::Modified,
                true
            ),
            (
                Some("run.sh"),
                Some("run.sh"),
                FileStatus::ModeChanged,
                false
            ),
            (
                Some("src/config.rs"),
                Some("src/config.rs"),
                FileStatus::Modified,
                false
            ),
            (
                Some("src/long.txt"),
                Some("src/renamed.txt"),
                FileStatus::Renamed,
                false
            ),
            (None, Some("src/settings.py"), FileStatus::Added, false),
        ]
    );
    let renamed = &diff.files[6];
    assert_eq!(renamed.added.len(), 1);
    assert_eq!(
        (renamed.added[0].line, renamed.added[0].text.as_str()),
        (31, "line 31")
    );

    let report = Guards::new(&Options::default()).unwrap().check(&diff);
    let findings: Vec<_> = report
        .findings
        .iter()
        .map(|f| (f.guard, f.path.as_deref(), f.line, f.message.as_str()))
        .collect();
    let github_message = format!(
        "GitHub token at src/config.rs:2 ({}…, 40 characters)",
        &github[..4]
    );
    let aws_message = format!(
        "AWS access key id at src/config.rs:5 ({}…, 20 characters)",
        &aws[..4]
    );
    let kamachiq_message = format!(
        "kamachiq API token at docs/read me.md:1 ({}…, 67 characters)",
        &kamachiq[..4]
    );
    assert_eq!(
        findings,
        [
            (
                Guard::ProtectedPath,
                Some(".github/workflows/ci.yml"),
                None,
                "deletes protected path `.github/workflows/ci.yml` (matches `.github/workflows/**`)"
            ),
            (
                Guard::Secret,
                Some("docs/read me.md"),
                Some(1),
                kamachiq_message.as_str()
            ),
            (
                Guard::Secret,
                Some("src/config.rs"),
                Some(2),
                github_message.as_str()
            ),
            (
                Guard::Secret,
                Some("src/config.rs"),
                Some(5),
                aws_message.as_str()
            ),
        ]
    );
    for secret in [&github, &aws, &kamachiq] {
        assert!(!text.is_empty() && text.contains(secret.as_str()));
        assert!(
            report
                .findings
                .iter()
                .all(|f| !f.message.contains(secret.as_str()))
        );
    }
}

#[test]
fn an_empty_change_is_an_empty_diff() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    git(dir, &["init", "-q"]);
    write(dir, "a.txt", "a\n");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "base"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", "nothing"]);
    let diff = Diff::parse(&diff(dir)).unwrap();
    assert_eq!(diff, Diff::default());
}
