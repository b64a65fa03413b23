use super::*;
use crate::diff::AddedLine;
use crate::fake::{ALNUM, BASE64, UPPER_DIGITS, random, token};

fn guards() -> Guards {
    Guards::new(&Options::default()).unwrap()
}

fn change(status: FileStatus, old: Option<&str>, new: Option<&str>) -> FileDiff {
    FileDiff {
        old_path: old.map(str::to_owned),
        new_path: new.map(str::to_owned),
        status,
        binary: false,
        added: Vec::new(),
        lines_added: 0,
        lines_removed: 0,
    }
}

fn modified(path: &str) -> FileDiff {
    change(FileStatus::Modified, Some(path), Some(path))
}

/// A new text file with `lines`.
fn added(path: &str, lines: &[&str]) -> FileDiff {
    let mut file = change(FileStatus::Added, None, Some(path));
    file.added = lines
        .iter()
        .zip(1..)
        .map(|(text, line)| AddedLine {
            line,
            text: (*text).to_owned(),
        })
        .collect();
    file.lines_added = u32::try_from(lines.len()).unwrap();
    file
}

fn diff(files: Vec<FileDiff>) -> Diff {
    Diff { files }
}

fn messages(report: &Report) -> Vec<&str> {
    report.findings.iter().map(|f| f.message.as_str()).collect()
}

/// The glob that protects `path` by default, if any.
fn protected_by(path: &str) -> Option<String> {
    let report = guards().check(&diff(vec![modified(path)]));
    assert!(report.findings.len() <= 1);
    report.findings.first().map(|f| {
        let glob = f.message.rsplit_once("(matches `").unwrap().1;
        glob.trim_end_matches("`)").to_owned()
    })
}

#[test]
fn an_empty_diff_passes() {
    let report = guards().check(&Diff::default());
    assert!(report.passed());
    assert_eq!(report, Report::default());
}

#[test]
fn environment_files_are_protected() {
    assert_eq!(protected_by(".env").as_deref(), Some(".env"));
    assert_eq!(
        protected_by("config/.env.production").as_deref(),
        Some("*.env.*")
    );
    assert_eq!(protected_by("app.env").as_deref(), Some("*.env"));
    assert_eq!(protected_by("services/api/.env").as_deref(), Some(".env"));
    assert_eq!(protected_by(".envrc").as_deref(), Some(".envrc"));
    assert_eq!(protected_by("docs/environment.md"), None);
    assert_eq!(protected_by("src/app.environment.ts"), None);
    assert_eq!(protected_by("src/env.rs"), None);
}

#[test]
fn git_data_is_protected() {
    assert_eq!(protected_by(".git/config").as_deref(), Some(".git/"));
    assert_eq!(
        protected_by(".git/hooks/pre-commit").as_deref(),
        Some(".git/")
    );
    assert_eq!(protected_by(".gitignore"), None);
    assert_eq!(protected_by(".github/CODEOWNERS"), None);
}

#[test]
fn credentials_are_protected() {
    for (path, glob) in [
        ("certs/server.pem", "*.pem"),
        ("tls.key", "*.key"),
        ("home/.ssh/id_rsa", "id_rsa*"),
        ("id_rsa.pub", "id_rsa*"),
        ("deploy/id_ed25519", "id_ed25519*"),
        ("id_ecdsa", "id_ecdsa*"),
        ("signing/app.p12", "*.p12"),
        ("app.pfx", "*.pfx"),
        ("android/release.keystore", "*.keystore"),
        ("release.jks", "*.jks"),
        (".npmrc", ".npmrc"),
        ("web/.npmrc", ".npmrc"),
        (".pypirc", ".pypirc"),
        (".netrc", ".netrc"),
        (".aws/credentials", "credentials*"),
        ("config/credentials.yml.enc", "credentials*"),
        ("secrets.yaml", "secrets.*"),
        ("deploy/secrets.json", "secrets.*"),
    ] {
        assert_eq!(protected_by(path).as_deref(), Some(glob), "{path}");
    }
    for path in [
        "src/keyboard.rs",
        "src/keys.rs",
        "docs/pem-format.md",
        "src/secrets_test.rs",
        "src/credential.rs",
        "npmrc.md",
    ] {
        assert_eq!(protected_by(path), None, "{path}");
    }
}

#[test]
fn ci_configuration_is_protected() {
    for (path, glob) in [
        (".github/workflows/ci.yml", ".github/workflows/**"),
        (
            ".github/workflows/nested/release.yaml",
            ".github/workflows/**",
        ),
        (".gitlab-ci.yml", ".gitlab-ci.yml"),
        (".circleci/config.yml", ".circleci/**"),
        ("Jenkinsfile", "Jenkinsfile"),
        ("ci/Jenkinsfile", "Jenkinsfile"),
        (".buildkite/pipeline.yml", ".buildkite/**"),
        ("azure-pipelines.yml", "azure-pipelines.yml"),
        (".travis.yml", ".travis.yml"),
    ] {
        assert_eq!(protected_by(path).as_deref(), Some(glob), "{path}");
    }
    for path in [
        ".github/dependabot.yml",
        "docs/.github/workflows.md",
        "vendor/lib/.github/workflows/ci.yml",
        "src/jenkins.rs",
    ] {
        assert_eq!(protected_by(path), None, "{path}");
    }
}

#[test]
fn database_schema_is_protected() {
    for (path, glob) in [
        ("migrations/0001_init.up.sql", "**/migrations/**"),
        (
            "crates/store/migrations/20260101_runs.rs",
            "**/migrations/**",
        ),
        ("db/structure.sql", "**/*.sql"),
        ("seed.sql", "**/*.sql"),
        ("db/schema.rb", "**/schema.rb"),
        ("prisma/schema.prisma", "**/schema.prisma"),
    ] {
        assert_eq!(protected_by(path).as_deref(), Some(glob), "{path}");
    }
    for path in [
        "docs/migrations.md",
        "src/migration.rs",
        "src/schema.rs",
        "sql/README.md",
    ] {
        assert_eq!(protected_by(path), None, "{path}");
    }
}

#[test]
fn lock_files_are_not_protected_by_default() {
    for path in [
        "Cargo.lock",
        "package-lock.json",
        "yarn.lock",
        "go.sum",
        "poetry.lock",
    ] {
        assert_eq!(protected_by(path), None, "{path}");
    }
}

#[test]
fn protected_findings_say_what_happened() {
    let report = guards().check(&diff(vec![
        change(FileStatus::Added, None, Some(".env")),
        modified("deploy/tls.key"),
        change(FileStatus::Deleted, Some(".github/workflows/ci.yml"), None),
        change(
            FileStatus::ModeChanged,
            Some("Jenkinsfile"),
            Some("Jenkinsfile"),
        ),
        change(
            FileStatus::Renamed,
            Some("db/seed.sql"),
            Some("docs/seed.txt"),
        ),
        change(FileStatus::Renamed, Some("notes.txt"), Some("secrets.txt")),
        change(FileStatus::Copied, Some(".npmrc"), Some("npmrc.bak")),
        change(FileStatus::Copied, Some("a.txt"), Some("b.pem")),
    ]));
    assert_eq!(
        messages(&report),
        [
            "adds protected path `.env` (matches `.env`)",
            "modifies protected path `deploy/tls.key` (matches `*.key`)",
            "deletes protected path `.github/workflows/ci.yml` (matches `.github/workflows/**`)",
            "changes the mode of protected path `Jenkinsfile` (matches `Jenkinsfile`)",
            "renames protected path `db/seed.sql` to `docs/seed.txt` (matches `**/*.sql`)",
            "renames `notes.txt` to protected path `secrets.txt` (matches `secrets.*`)",
            "copies protected path `.npmrc` to `npmrc.bak` (matches `.npmrc`)",
            "copies `a.txt` to protected path `b.pem` (matches `*.pem`)",
        ]
    );
    let paths: Vec<_> = report.findings.iter().map(|f| f.path.as_deref()).collect();
    assert_eq!(
        paths,
        [
            Some(".env"),
            Some("deploy/tls.key"),
            Some(".github/workflows/ci.yml"),
            Some("Jenkinsfile"),
            Some("db/seed.sql"),
            Some("secrets.txt"),
            Some(".npmrc"),
            Some("b.pem"),
        ]
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.guard == Guard::ProtectedPath
                && f.code == "protected_path"
                && f.line.is_none())
    );
}

#[test]
fn configured_protection_replaces_the_defaults() {
    let options = Options {
        protected: vec!["Cargo.lock".to_owned(), "/build.rs".to_owned()],
        ..Options::default()
    };
    let guards = Guards::new(&options).unwrap();
    let report = guards.check(&diff(vec![
        modified("Cargo.lock"),
        modified("build.rs"),
        modified("crates/x/build.rs"),
        modified(".env"),
    ]));
    assert_eq!(
        messages(&report),
        [
            "modifies protected path `Cargo.lock` (matches `Cargo.lock`)",
            "modifies protected path `build.rs` (matches `/build.rs`)",
        ]
    );
}

fn files(count: usize) -> Vec<FileDiff> {
    (0..count)
        .map(|i| modified(&format!("src/f{i}.rs")))
        .collect()
}

#[test]
fn twenty_files_pass() {
    assert!(guards().check(&diff(files(20))).passed());
}

#[test]
fn twenty_one_files_fail() {
    let report = guards().check(&diff(files(21)));
    assert_eq!(
        report.findings,
        [Finding {
            guard: Guard::FileCount,
            code: "too_many_files".to_owned(),
            path: None,
            line: None,
            message: "the diff touches 21 files; the limit is 20".to_owned(),
        }]
    );
}

#[test]
fn binary_files_count_toward_the_file_limit() {
    let mut all = files(20);
    let mut image = modified("assets/logo.png");
    image.binary = true;
    all.push(image);
    let report = guards().check(&diff(all));
    assert_eq!(
        messages(&report),
        ["the diff touches 21 files; the limit is 20"]
    );
}

fn sized(added: u32, removed: u32) -> Diff {
    let mut file = modified("src/big.rs");
    file.lines_added = added;
    file.lines_removed = removed;
    diff(vec![file])
}

#[test]
fn a_thousand_changed_lines_pass() {
    assert!(guards().check(&sized(600, 400)).passed());
}

#[test]
fn a_thousand_and_one_changed_lines_fail() {
    let report = guards().check(&sized(600, 401));
    assert_eq!(
        report.findings,
        [Finding {
            guard: Guard::DiffSize,
            code: "diff_too_large".to_owned(),
            path: None,
            line: None,
            message: "the diff changes 1001 lines (600 added, 401 removed); the limit is 1000"
                .to_owned(),
        }]
    );
    assert_eq!(
        report.stats,
        DiffStats {
            files: 1,
            lines_added: 600,
            lines_removed: 401
        }
    );
}

#[test]
fn limits_can_be_lifted() {
    let options = Options {
        max_files: None,
        max_changed_lines: None,
        ..Options::default()
    };
    let guards = Guards::new(&options).unwrap();
    let mut big = files(500);
    big[0].lines_added = u32::MAX;
    big[1].lines_removed = 7;
    assert!(guards.check(&diff(big)).passed());
}

#[test]
fn size_findings_come_before_path_findings() {
    let mut all = files(21);
    all[0] = modified(".env");
    all[0].lines_added = 1001;
    let report = guards().check(&diff(all));
    let guards: Vec<_> = report.findings.iter().map(|f| f.guard).collect();
    assert_eq!(
        guards,
        [Guard::FileCount, Guard::DiffSize, Guard::ProtectedPath]
    );
}

#[test]
fn secrets_are_reported_with_path_and_line() {
    let key = token(&["AK", "IA"], UPPER_DIGITS, 16, 1);
    let report = guards().check(&diff(vec![added(
        "src/config.rs",
        &["fn main() {", &format!("    let id = \"{key}\";"), "}"],
    )]));
    assert_eq!(
        report.findings,
        [Finding {
            guard: Guard::Secret,
            code: "secret".to_owned(),
            path: Some("src/config.rs".to_owned()),
            line: Some(2),
            message: format!(
                "AWS access key id at src/config.rs:2 ({}…, 20 characters)",
                &key[..4]
            ),
        }]
    );
}

#[test]
fn only_added_lines_are_scanned() {
    let secret = token(&["gh", "p_"], ALNUM, 36, 2);
    let text = |removed: &str, added: &str| {
        format!(
            "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -7 +7 @@\n-{removed}\n+{added}\n"
        )
    };
    let removing =
        Diff::parse(&text(&format!("let t = \"{secret}\";"), "let t = load();")).unwrap();
    assert!(guards().check(&removing).passed());
    let adding = Diff::parse(&text("let t = load();", &format!("let t = \"{secret}\";"))).unwrap();
    let lines: Vec<_> = guards()
        .check(&adding)
        .findings
        .iter()
        .map(|f| f.line)
        .collect();
    assert_eq!(lines, [Some(7)]);
}

#[test]
fn binary_files_are_never_scanned() {
    let secret = token(&["gh", "p_"], ALNUM, 36, 3);
    let mut file = added("assets/blob.bin", &[&secret]);
    assert!(!guards().check(&diff(vec![file.clone()])).passed());
    file.binary = true;
    assert!(guards().check(&diff(vec![file])).passed());
}

#[test]
fn allow_listed_paths_are_not_scanned() {
    let secret = token(&["gh", "p_"], ALNUM, 36, 4);
    let options = Options {
        allow_secrets_in: vec!["tests/fixtures/**".to_owned()],
        ..Options::default()
    };
    let guards = Guards::new(&options).unwrap();
    let report = guards.check(&diff(vec![
        added("tests/fixtures/leak.txt", &[&secret]),
        added("src/leak.txt", &[&secret]),
    ]));
    let paths: Vec<_> = report.findings.iter().map(|f| f.path.as_deref()).collect();
    assert_eq!(paths, [Some("src/leak.txt")]);
}

#[test]
fn the_secret_scan_can_be_turned_off() {
    let secret = token(&["gh", "p_"], ALNUM, 36, 5);
    let options = Options {
        secret_scan: false,
        ..Options::default()
    };
    let file = added("src/leak.txt", &[&secret]);
    assert!(
        Guards::new(&options)
            .unwrap()
            .check(&diff(vec![file]))
            .passed()
    );
}

#[test]
fn one_finding_per_line() {
    let a = token(&["gh", "p_"], ALNUM, 36, 6);
    let b = token(&["AK", "IA"], UPPER_DIGITS, 16, 7);
    let report = guards().check(&diff(vec![added(
        "notes.txt",
        &[&format!("{a} {b}"), &format!("password = \"{b}\"")],
    )]));
    let lines: Vec<_> = report.findings.iter().map(|f| f.line).collect();
    assert_eq!(lines, [Some(1), Some(2)]);
}

#[test]
fn messages_never_contain_the_secret() {
    let secrets = [
        token(&["gh", "p_"], ALNUM, 36, 8),
        token(&["AI", "za"], ALNUM, 35, 9),
        random(BASE64, 48, 10),
        "hunter2hunter2".to_owned(),
    ];
    let lines = [
        format!("x {}", secrets[0]),
        format!("k = {}", secrets[1]),
        format!("salt = \"{}\"", secrets[2]),
        format!("DB_PASSWORD={}", secrets[3]),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let report = guards().check(&diff(vec![added("settings.conf", &lines)]));
    assert_eq!(report.findings.len(), 4);
    for (finding, secret) in report.findings.iter().zip(&secrets) {
        // Not the secret, nor any 5 characters of it.
        let chars: Vec<char> = secret.chars().collect();
        for window in chars.windows(5) {
            let part: String = window.iter().collect();
            assert!(!finding.message.contains(&part), "{}", finding.message);
        }
    }
    assert_eq!(
        messages(&report),
        [
            format!(
                "GitHub token at settings.conf:1 ({}…, 40 characters)",
                &secrets[0][..4]
            ),
            format!(
                "Google API key at settings.conf:2 ({}…, 39 characters)",
                &secrets[1][..4]
            ),
            format!(
                "high-entropy string at settings.conf:3 ({}…, 48 characters)",
                &secrets[2][..4]
            ),
            "value assigned to `DB_PASSWORD` at settings.conf:4 (hun…, 14 characters)".to_owned(),
        ]
    );
}

#[test]
fn a_bad_glob_names_the_field_and_the_glob() {
    let options = Options {
        protected: vec!["*.pem".to_owned(), "a/{b".to_owned()],
        ..Options::default()
    };
    assert_eq!(
        Guards::new(&options).unwrap_err(),
        Error::Glob {
            field: "protected[1]".to_owned(),
            glob: "a/{b".to_owned(),
            reason: "unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)"
                .to_owned(),
        }
    );
}

#[test]
fn the_entropy_threshold_must_be_positive() {
    for value in [0.0, -1.0, f64::INFINITY] {
        let options = Options {
            entropy_threshold: value,
            ..Options::default()
        };
        let error = Guards::new(&options).unwrap_err();
        assert_eq!(error, Error::EntropyThreshold { value });
    }
    let options = Options {
        entropy_threshold: f64::NAN,
        ..Options::default()
    };
    assert_eq!(
        Guards::new(&options).unwrap_err().to_string(),
        "entropy_threshold: must be a positive number of bits per character (got NaN)"
    );
}

#[test]
fn guards_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone + fmt::Debug>(_: &T) {}
    let guards = guards();
    let copy = guards.clone();
    shareable(&copy);
    assert_eq!(copy.options(), guards.options());
}

#[test]
fn guard_names() {
    let names: Vec<_> = [
        Guard::ProtectedPath,
        Guard::FileCount,
        Guard::DiffSize,
        Guard::Secret,
    ]
    .iter()
    .map(|g| (g.as_str(), g.to_string()))
    .collect();
    assert_eq!(
        names,
        [
            ("protected_path", "protected_path".to_owned()),
            ("file_count", "file_count".to_owned()),
            ("diff_size", "diff_size".to_owned()),
            ("secret", "secret".to_owned()),
        ]
    );
}

#[test]
fn arbitrary_text_never_panics() {
    // Pieces of diffs, secrets and multi-byte characters, shuffled into many inputs.
    let pieces = [
        "diff --git a/x b/x\n",
        "diff --git \"a/\\303\\251\" \"b/\\303\\251\"\n",
        "--- a/x\n",
        "+++ b/x\n",
        "@@ -1 +1 @@\n",
        "@@ -0,0 +1,2 @@\n",
        "+token = \"",
        "-removed\n",
        " context\n",
        "\\ No newline at end of file\n",
        "rename from x\n",
        "Binary files a/x and b/x differ\n",
        "\u{3000}é://ü:ö@\u{2028}",
        "\u{3000}",
        "=",
        ":",
        "\"",
        "sha512-",
        "kq_",
        "\n",
    ];
    let token = random(ALNUM, 24, 1);
    let pieces: Vec<&str> = pieces.into_iter().chain([token.as_str()]).collect();
    let guards = guards();
    for seed in 1..2000u64 {
        let picks = random("0123456789abcdefghijk", 12, seed);
        let text: String = picks
            .bytes()
            .map(|b| {
                pieces[usize::from(if b.is_ascii_digit() {
                    b - b'0'
                } else {
                    b - b'a' + 10
                })]
            })
            .collect();
        if let Ok(diff) = Diff::parse(&text) {
            guards.check(&diff);
        }
        let line = added("notes.txt", &[text.as_str()]);
        guards.check(&diff(vec![line]));
    }
}
