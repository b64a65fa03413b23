use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_kamachiq");

/// A working directory with a git repository `service/` and a kamachiq home of its own.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("service");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["config", "user.name", "Test"]);
        git(&repo, &["config", "user.email", "test@example.com"]);
        std::fs::write(repo.join("README.md"), "# service\n").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "initial"]);
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("service")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `kamachiq ARGS` in the working directory, isolated from the caller's configuration.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args).current_dir(self.dir.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("KAMACHIQ_") {
                command.env_remove(key);
            }
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `kamachiq ARGS` with stdout piped, for tests that act on it while it runs.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Reads JSON event lines from a running `kamachiq ... --json` until `want` matches one;
/// returns every line read so far.
pub fn read_events_until(
    child: &mut Child,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        let done = want(&event);
        seen.push(event);
        if done {
            // Keep draining in the background so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return seen;
        }
    }
    panic!("the awaited event never came; saw {seen:?}");
}

/// Waits until `path` contains `needle`.
pub fn wait_for_text(path: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never contained {needle:?}", path.display());
}

/// The JSON with times, run ids and commits replaced by placeholders, for snapshots.
pub fn redact(mut value: serde_json::Value, run: &str) -> serde_json::Value {
    fn walk(value: &mut serde_json::Value, run: &str) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if (key.ends_with("_at") || key == "merge_commit" || key == "repo")
                        && !v.is_null()
                    {
                        *v = serde_json::Value::String(format!("[{key}]"));
                    } else {
                        walk(v, run);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, run)),
            serde_json::Value::String(s) if s.contains(run) => *s = s.replace(run, "[run]"),
            _ => {}
        }
    }
    walk(&mut value, run);
    value
}

/// Processes on this host that belong to a step of `run` (they carry its id in their
/// environment).
pub fn step_processes(run: &str) -> usize {
    let marker = format!("KAMACHIQ_RUN_ID={run}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        })
        .filter_map(|entry| std::fs::read(entry.path().join("environ")).ok())
        .filter(|environ| {
            environ
                .split(|b| *b == 0)
                .any(|var| var == marker.as_bytes())
        })
        .count()
}

/// Waits until no process of `run`'s steps is left (at most ten seconds); how many remain.
pub fn wait_for_no_steps(run: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = step_processes(run);
        if left == 0 || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh schema on the test PostgreSQL server, named in a database URL that every
/// `kamachiq` process of a test can share; dropped at the end.
pub struct PostgresSchema {
    pub url: String,
    base: String,
    schema: String,
}

impl PostgresSchema {
    /// The schema, or `None` when the server is absent and `KAMACHIQ_SKIP_POSTGRES=1` asks to
    /// skip knowingly; without that, an absent server fails the test and says so.
    #[allow(
        clippy::print_stderr,
        reason = "a skipped test says so in the test's output"
    )]
    pub fn create() -> Option<Self> {
        let base = std::env::var("KAMACHIQ_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        // Named like the store suite's schemas (`kq_t_<secs>_...`), which that suite drops
        // once they are an hour old: a killed test leaves nothing behind for long.
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let schema = format!(
            "kq_t_{secs}_{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        match postgres_execute(&base, &format!("CREATE SCHEMA {schema}")) {
            Ok(()) => {}
            Err(why) if std::env::var("KAMACHIQ_SKIP_POSTGRES").as_deref() == Ok("1") => {
                eprintln!("PostgreSQL test NOT RUN (KAMACHIQ_SKIP_POSTGRES=1): {why}");
                return None;
            }
            Err(why) => panic!(
                "PostgreSQL test not run: no server at {} ({why}). Start PostgreSQL, set \
                 KAMACHIQ_TEST_DATABASE_URL, or set KAMACHIQ_SKIP_POSTGRES=1 to skip it knowingly.",
                kamachiq_store::redact_url(&base)
            ),
        }
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Self {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            base,
            schema,
        })
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let _ = postgres_execute(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
    }
}

fn postgres_execute(url: &str, sql: &str) -> Result<(), String> {
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let pool = tokio::time::timeout(Duration::from_secs(5), sqlx::AnyPool::connect(url))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let done = pool.execute(sqlx::AssertSqlSafe(sql.to_owned())).await;
        pool.close().await;
        done.map(drop).map_err(|e| e.to_string())
    })
}

/// A child process killed when the test ends, passed or not, so that a failed assertion
/// leaves no `kamachiq` or step process running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
