//! Running a step's command. [`ProcessRunner`] starts a real process in a process group of its
//! own, sends its output (stdout and stderr interleaved) to a log file, and on timeout or stop
//! terminates the whole group: SIGTERM, then SIGKILL after a grace period. Stragglers a step
//! leaves behind in its group are killed when it exits, so no step outlives itself.
//!
//! The engine takes any [`Runner`]; tests script one, the benchmark uses [`NoopRunner`].

use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

/// Git variables that would point a step's git commands at the wrong repository.
const GIT_LOCATION_VARS: [&str; 5] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_COMMON_DIR",
];

/// The process groups of steps this process has started and not yet reaped. A step's group is
/// normally killed by its runner; this list serves the last resort, an exit that cannot wait
/// for the runners (a second Ctrl-C), so that no step outlives kamachiq.
static LIVE_GROUPS: std::sync::Mutex<std::collections::BTreeSet<i32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn live_groups() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<i32>> {
    LIVE_GROUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Kills (SIGKILL) every step process group this process started that is still running.
/// Returns how many there were.
pub fn kill_all_steps() -> usize {
    let groups: Vec<i32> = live_groups().iter().copied().collect();
    for group in &groups {
        let _ = killpg(Pid::from_raw(*group), Signal::SIGKILL);
    }
    groups.len()
}

/// One execution of a step.
#[derive(Clone, Debug)]
pub struct StepSpec {
    pub argv: Vec<String>,
    /// Variables added to the inherited environment (to nothing, with `clear_env`).
    pub env: Vec<(String, String)>,
    /// Start from an empty environment: the step sees only `env`.
    pub clear_env: bool,
    pub cwd: PathBuf,
    pub timeout: Duration,
    /// Where the output goes while the step runs.
    pub log: PathBuf,
    /// Written to the step's standard input, which is then closed (default: an empty input).
    pub stdin: Option<String>,
    /// Reads the output line by line as it is printed, and may stop the step.
    pub monitor: Option<Arc<dyn Monitor>>,
    /// Stop the step when it prints nothing for this long.
    pub stall: Option<Duration>,
}

impl StepSpec {
    /// A step that runs `argv` in `cwd`, with the inherited environment and no monitor.
    pub fn command(argv: Vec<String>, cwd: PathBuf, timeout: Duration, log: PathBuf) -> Self {
        Self {
            argv,
            env: Vec::new(),
            clear_env: false,
            cwd,
            timeout,
            log,
            stdin: None,
            monitor: None,
            stall: None,
        }
    }
}

/// Why a monitor stopped a step: a stable reason code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    pub code: kamachiq_domain::ReasonCode,
    pub detail: String,
}

/// Watches a step's output as it is printed (stdout and stderr, a line at a time, without the
/// line end). Returning a [`Halt`] stops the step's process group at once.
pub trait Monitor: Send + Sync + Debug {
    fn line(&self, line: &str) -> Option<Halt>;
    /// The step ended (or was stopped): a chance to flush what was gathered.
    fn finish(&self) {}
}

/// How a step's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
    /// Stopped on request (cancel or shutdown), not by its own doing.
    Stopped,
    /// Stopped by its monitor (a budget ran out, it looped) or for printing nothing too long.
    Halted(Halt),
    SpawnFailed(String),
}

impl Exit {
    pub fn succeeded(&self) -> bool {
        *self == Self::Code(0)
    }
}

/// The end of a step: how it exited and what it printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepOutcome {
    pub exit: Exit,
    /// The output, shortened in the middle when longer than the runner's cap.
    pub output: String,
    /// The full size of the output in bytes.
    pub output_bytes: u64,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs steps. `stop` asks for the step to be stopped early.
pub trait Runner: Send + Sync + Debug {
    fn run(&self, spec: StepSpec, stop: CancellationToken) -> BoxFuture<StepOutcome>;
}

/// Real processes.
#[derive(Clone, Debug)]
pub struct ProcessRunner {
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Most bytes of output kept per step attempt.
    pub output_cap: u64,
}

impl Default for ProcessRunner {
    fn default() -> Self {
        Self {
            kill_grace: Duration::from_secs(5),
            output_cap: 1024 * 1024,
        }
    }
}

impl Runner for ProcessRunner {
    fn run(&self, spec: StepSpec, stop: CancellationToken) -> BoxFuture<StepOutcome> {
        let this = self.clone();
        Box::pin(async move { this.run_process(spec, stop).await })
    }
}

impl ProcessRunner {
    async fn run_process(&self, spec: StepSpec, stop: CancellationToken) -> StepOutcome {
        let spawn_failed = |message: String| StepOutcome {
            output: message.clone(),
            output_bytes: message.len() as u64,
            exit: Exit::SpawnFailed(message),
        };
        let Some(program) = spec.argv.first() else {
            return spawn_failed("empty command".to_owned());
        };
        let log = match open_log(&spec.log) {
            Ok(log) => log,
            Err(e) => {
                return spawn_failed(format!(
                    "cannot write the step log {}: {e}",
                    spec.log.display()
                ));
            }
        };
        // A watched step's output is read as it comes and written to the log here; an
        // unwatched one writes to the log directly, with no copy through kamachiq.
        let watched = spec.monitor.is_some() || spec.stall.is_some();
        let (stdout, stderr) = if watched {
            (Stdio::piped(), Stdio::piped())
        } else {
            match log.try_clone() {
                Ok(copy) => (Stdio::from(log), Stdio::from(copy)),
                Err(e) => return spawn_failed(format!("cannot write the step log: {e}")),
            }
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(&spec.argv[1..])
            .current_dir(&spec.cwd)
            .stdin(if spec.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        if spec.clear_env {
            command.env_clear();
        }
        for var in GIT_LOCATION_VARS {
            command.env_remove(var);
        }
        command.envs(spec.env.iter().map(|(k, v)| (k, v)));
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                return spawn_failed(format!(
                    "cannot start `{program}` in {}: {e}",
                    spec.cwd.display()
                ));
            }
        };
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        if let Some(group) = group {
            live_groups().insert(group.as_raw());
        }
        if let (Some(text), Some(mut input)) = (spec.stdin.clone(), child.stdin.take()) {
            // Written in the background: a step that never reads its input must not block us.
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = input.write_all(text.as_bytes()).await;
                let _ = input.shutdown().await;
            });
        }

        let waited = if watched {
            let lines = read_lines(&mut child);
            self.watch(&mut child, lines, &spec, &stop).await
        } else {
            tokio::select! {
                status = child.wait() => Ok(status),
                () = tokio::time::sleep(spec.timeout) => Err(Exit::TimedOut),
                () = stop.cancelled() => Err(Exit::Stopped),
            }
        };
        let exit = match waited {
            Ok(Ok(status)) => exit_of(status),
            Ok(Err(e)) => Exit::SpawnFailed(format!("lost track of the step's process: {e}")),
            Err(why) => {
                self.terminate(group, &mut child).await;
                why
            }
        };
        // Whatever the step left running in its group goes with it.
        if let Some(group) = group {
            let _ = killpg(group, Signal::SIGKILL);
            live_groups().remove(&group.as_raw());
        }
        if let Some(monitor) = &spec.monitor {
            monitor.finish();
        }
        let (output, output_bytes) = read_capped(&spec.log, self.output_cap)
            .await
            .unwrap_or_else(|e| (format!("(output unreadable: {e})"), 0));
        // The output travels on with the outcome; the spool file was only for reading it
        // while the step ran.
        let _ = tokio::fs::remove_file(&spec.log).await;
        StepOutcome {
            exit,
            output,
            output_bytes,
        }
    }

    /// Waits for a watched step: every line goes to the log and to the monitor; the step is
    /// stopped when the monitor says so, when it is silent for `spec.stall`, on timeout and on
    /// `stop`. Lines printed just before it exited are still read and written.
    async fn watch(
        &self,
        child: &mut tokio::process::Child,
        mut lines: tokio::sync::mpsc::Receiver<String>,
        spec: &StepSpec,
        stop: &CancellationToken,
    ) -> Result<std::io::Result<std::process::ExitStatus>, Exit> {
        use tokio::io::AsyncWriteExt;
        let mut log = match tokio::fs::OpenOptions::new()
            .append(true)
            .open(&spec.log)
            .await
        {
            Ok(log) => Some(log),
            Err(e) => {
                tracing::warn!(log = %spec.log.display(), error = %e, "cannot write a step's log");
                None
            }
        };
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let stall = spec.stall.unwrap_or(Duration::MAX);
        let mut last_output = tokio::time::Instant::now();
        let mut status = None;
        let mut open = true;
        loop {
            let silent_until = last_output.checked_add(stall);
            tokio::select! {
                line = lines.recv(), if open => match line {
                    Some(line) => {
                        last_output = tokio::time::Instant::now();
                        if let Some(log) = &mut log {
                            let _ = log.write_all(line.as_bytes()).await;
                            let _ = log.write_all(b"\n").await;
                        }
                        if let Some(halt) = spec.monitor.as_ref().and_then(|m| m.line(&line)) {
                            if let Some(log) = &mut log {
                                let note = format!("[kamachiq] stopped: {}\n", halt.detail);
                                let _ = log.write_all(note.as_bytes()).await;
                            }
                            return Err(Exit::Halted(halt));
                        }
                    }
                    None => open = false,
                },
                exited = child.wait(), if status.is_none() => {
                    status = Some(exited);
                    // Read what is left in the pipes for a moment; a grandchild holding them
                    // open is killed with the group afterwards.
                    let drain_until = tokio::time::Instant::now() + Duration::from_millis(500);
                    while open {
                        match tokio::time::timeout_at(drain_until, lines.recv()).await {
                            Ok(Some(line)) => {
                                if let Some(log) = &mut log {
                                    let _ = log.write_all(line.as_bytes()).await;
                                    let _ = log.write_all(b"\n").await;
                                }
                                if let Some(monitor) = &spec.monitor {
                                    // The step has ended: what it reported still counts.
                                    let _ = monitor.line(&line);
                                }
                            }
                            Ok(None) | Err(_) => open = false,
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => return Err(Exit::TimedOut),
                () = stop.cancelled() => return Err(Exit::Stopped),
                () = async {
                    match silent_until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                }, if status.is_none() => {
                    let silence = spec.stall.unwrap_or_default();
                    return Err(Exit::Halted(Halt {
                        code: kamachiq_domain::ReasonCode::Stalled,
                        detail: format!(
                            "the step printed nothing for {}; it was stopped as stalled",
                            humantime::format_duration(silence)
                        ),
                    }));
                }
            }
            if status.is_some() && !open {
                break;
            }
        }
        if let Some(log) = &mut log {
            let _ = log.flush().await;
        }
        status.ok_or(Exit::Stopped)
    }

    /// SIGTERM to the group, SIGKILL after the grace period if the leader still lives.
    async fn terminate(&self, group: Option<Pid>, child: &mut tokio::process::Child) {
        if let Some(group) = group {
            let _ = killpg(group, Signal::SIGTERM);
        }
        if tokio::time::timeout(self.kill_grace, child.wait())
            .await
            .is_err()
        {
            if let Some(group) = group {
                let _ = killpg(group, Signal::SIGKILL);
            }
            let _ = child.wait().await;
        }
    }
}

/// Longest line handed to a monitor; longer lines are cut (the log keeps them whole).
const MAX_LINE: usize = 1024 * 1024;

/// The child's stdout and stderr as lines, in the order they arrive.
fn read_lines(child: &mut tokio::process::Child) -> tokio::sync::mpsc::Receiver<String> {
    use tokio::io::AsyncBufReadExt;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    fn pump<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
        reader: R,
        tx: tokio::sync::mpsc::Sender<String>,
    ) {
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            buf.pop();
                        }
                        let mut line = String::from_utf8_lossy(&buf).into_owned();
                        if line.len() > MAX_LINE {
                            let mut cut = MAX_LINE;
                            while !line.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            line.truncate(cut);
                        }
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    if let Some(out) = child.stdout.take() {
        pump(out, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        pump(err, tx);
    }
    rx
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(-1),
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)
}

/// The file's text, whole if it fits in `cap` bytes, else its first quarter and last three
/// quarters of `cap` around a marker saying how much was left out. Invalid UTF-8 is replaced.
pub async fn read_capped(path: &Path, cap: u64) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    if size <= cap {
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut bytes).await?;
        return Ok((String::from_utf8_lossy(&bytes).into_owned(), size));
    }
    let head_len = cap / 4;
    let tail_len = cap - head_len;
    let mut head = vec![0; usize::try_from(head_len).unwrap_or(0)];
    file.read_exact(&mut head).await?;
    file.seek(std::io::SeekFrom::Start(size - tail_len)).await?;
    let mut tail = Vec::with_capacity(usize::try_from(tail_len).unwrap_or(0));
    file.read_to_end(&mut tail).await?;
    let omitted = size - head_len - tail_len;
    Ok((
        format!(
            "{}\n[... {omitted} bytes omitted ...]\n{}",
            String::from_utf8_lossy(&head),
            String::from_utf8_lossy(&tail)
        ),
        size,
    ))
}

/// Succeeds at once without starting anything: measures the engine, not the steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopRunner;

impl Runner for NoopRunner {
    fn run(&self, _: StepSpec, _: CancellationToken) -> BoxFuture<StepOutcome> {
        Box::pin(std::future::ready(StepOutcome {
            exit: Exit::Code(0),
            output: String::new(),
            output_bytes: 0,
        }))
    }
}

/// How many processes on this host are steps of some run (they carry `KAMACHIQ_RUN_ID` in
/// their environment), kamachiq itself aside. Linux only; elsewhere, none.
pub fn step_processes() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let me = std::process::id();
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            (pid != me).then_some(entry)
        })
        .filter_map(|entry| std::fs::read(entry.path().join("environ")).ok())
        .filter(|environ| {
            environ
                .split(|b| *b == 0)
                .any(|var| var.starts_with(b"KAMACHIQ_RUN_ID="))
        })
        .count()
}

/// Kills processes left running by a driver that died (`kill -9` gives its steps no chance to be
/// stopped): every process on this host whose environment marks it as a step of `run` (and of
/// `deliverable`, when given). Returns how many were killed. Linux only; elsewhere, none.
pub fn reap_orphans(run: &str, deliverable: Option<&str>) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let me = std::process::id();
    let run_marker = format!("KAMACHIQ_RUN_ID={run}");
    let deliverable_marker = deliverable.map(|d| format!("KAMACHIQ_DELIVERABLE={d}"));
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        let has = |marker: &str| vars.contains(&marker.as_bytes());
        if has(&run_marker)
            && deliverable_marker.as_deref().is_none_or(has)
            && let Ok(pid) = i32::try_from(pid)
            && nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}
