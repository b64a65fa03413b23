use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kamachiq_domain::plan::{Format, Source};
use kamachiq_domain::run::StepAttempt;
use kamachiq_domain::{DeliverableId, DeliverableState, Plan, RunId, Timestamp};
use kamachiq_engine::probe::{Action, Point, Probe};
use kamachiq_engine::{
    BoxFuture, Engine, EngineOptions, Exit, Parts, Runner, StepOutcome, StepSpec, TokioClock,
};
use kamachiq_store::Store;
use tokio_util::sync::CancellationToken;

/// Lease time of test engines: a crashed driver can be taken over after this long.
pub const LEASE_TTL: Duration = Duration::from_secs(1);

pub fn plan(yaml: &str) -> Plan {
    Plan::parse(&Source::new("test.yaml", yaml, Format::Yaml)).unwrap()
}

/// What a scripted step does.
#[derive(Clone, Debug)]
pub enum Behavior {
    Exit(i32),
    /// Runs until stopped.
    Hang,
    TimeOut,
    /// Succeeds after this long.
    Sleep(Duration),
    /// Exits with this status once the gate is opened (`notify_one`), so a test can act while
    /// the step is known to be running and before its end is recorded.
    ExitWhen(Arc<tokio::sync::Notify>, i32),
}

/// A runner that plays a script instead of starting processes, and remembers what it ran.
#[derive(Clone, Debug, Default)]
pub struct ScriptedRunner(Arc<ScriptState>);

impl std::ops::Deref for ScriptedRunner {
    type Target = ScriptState;
    fn deref(&self) -> &ScriptState {
        &self.0
    }
}

#[derive(Debug)]
pub struct ScriptState {
    /// Counts started steps, so a test can wait for one instead of sleeping and hoping.
    started: tokio::sync::watch::Sender<usize>,
    script: Mutex<HashMap<(String, String), VecDeque<Behavior>>>,
    pub calls: Mutex<Vec<(String, String)>>,
    running: AtomicUsize,
    pub max_running: AtomicUsize,
}

impl Default for ScriptState {
    fn default() -> Self {
        Self {
            started: tokio::sync::watch::channel(0).0,
            script: Mutex::default(),
            calls: Mutex::default(),
            running: AtomicUsize::default(),
            max_running: AtomicUsize::default(),
        }
    }
}

impl ScriptState {
    /// Waits until `deliverable`'s `step` has started (at most a minute).
    pub async fn started(&self, deliverable: &str, step: &str) {
        let mut rx = self.started.subscribe();
        let seen = rx.wait_for(|_| self.calls_of(deliverable).iter().any(|s| s == step));
        tokio::time::timeout(Duration::from_secs(60), seen)
            .await
            .expect("the step never started")
            .unwrap();
    }

    /// The next runs of `deliverable`'s `step` behave as given, in order; after that, exit 0.
    pub fn script(&self, deliverable: &str, step: &str, behaviors: &[Behavior]) {
        self.script.lock().unwrap().insert(
            (deliverable.into(), step.into()),
            behaviors.iter().cloned().collect(),
        );
    }

    pub fn calls_of(&self, deliverable: &str) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(d, _)| d == deliverable)
            .map(|(_, s)| s.clone())
            .collect()
    }

    pub fn order(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for (d, _) in self.calls.lock().unwrap().iter() {
            if !seen.contains(d) {
                seen.push(d.clone());
            }
        }
        seen
    }
}

fn env<'a>(spec: &'a StepSpec, key: &str) -> &'a str {
    spec.env
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

impl Runner for ScriptedRunner {
    fn run(&self, spec: StepSpec, stop: CancellationToken) -> BoxFuture<StepOutcome> {
        let this = self.clone();
        Box::pin(async move {
            let key = (
                env(&spec, "KAMACHIQ_DELIVERABLE").to_owned(),
                env(&spec, "KAMACHIQ_STEP").to_owned(),
            );
            this.calls.lock().unwrap().push(key.clone());
            this.started.send_modify(|n| *n += 1);
            let behavior = this
                .script
                .lock()
                .unwrap()
                .get_mut(&key)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Behavior::Exit(0));
            let now = this.running.fetch_add(1, Ordering::SeqCst) + 1;
            this.max_running.fetch_max(now, Ordering::SeqCst);
            let exit = match behavior {
                Behavior::Exit(code) => {
                    tokio::task::yield_now().await;
                    Exit::Code(code)
                }
                Behavior::Hang => {
                    stop.cancelled().await;
                    Exit::Stopped
                }
                Behavior::TimeOut => Exit::TimedOut,
                Behavior::Sleep(d) => tokio::select! {
                    () = tokio::time::sleep(d) => Exit::Code(0),
                    () = stop.cancelled() => Exit::Stopped,
                },
                Behavior::ExitWhen(gate, code) => tokio::select! {
                    () = gate.notified() => Exit::Code(code),
                    () = stop.cancelled() => Exit::Stopped,
                },
            };
            this.running.fetch_sub(1, Ordering::SeqCst);
            let output = format!("{} {}: {exit:?}\n", key.0, key.1);
            StepOutcome {
                output_bytes: output.len() as u64,
                output,
                exit,
            }
        })
    }
}

/// Stops the engine dead at one point of one deliverable, once.
#[derive(Debug)]
pub struct CrashAt {
    pub deliverable: String,
    pub point: Point,
    pub fired: Mutex<bool>,
}

impl CrashAt {
    pub fn new(deliverable: &str, point: Point) -> Self {
        Self {
            deliverable: deliverable.into(),
            point,
            fired: Mutex::new(false),
        }
    }
}

impl Probe for CrashAt {
    fn at(&self, deliverable: &DeliverableId, point: &Point) -> Action {
        let mut fired = self.fired.lock().unwrap();
        if !*fired && deliverable.as_str() == self.deliverable && *point == self.point {
            *fired = true;
            return Action::Crash;
        }
        Action::Continue
    }
}

/// A store in a temporary home, and engines with short leases so tests of takeover wait
/// about a second, not thirty.
pub struct Harness {
    pub home: tempfile::TempDir,
    pub store: Store,
    pub clock: Arc<TokioClock>,
}

impl Harness {
    pub async fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&home.path().join("kamachiq.db"))
            .await
            .unwrap();
        let clock = Arc::new(TokioClock::starting_at(Timestamp::from_millis(
            1_800_000_000_000,
        )));
        Self { home, store, clock }
    }

    pub fn engine(&self, runner: Arc<dyn Runner>, probe: Option<Arc<dyn Probe>>) -> Engine {
        self.engine_with_lease(runner, probe, LEASE_TTL)
    }

    /// An engine with real processes whose options `adjust` changes.
    pub fn engine_with(&self, adjust: impl FnOnce(&mut EngineOptions)) -> Engine {
        let mut options = EngineOptions::new(self.home.path());
        options.lease_ttl = LEASE_TTL;
        options.heartbeat = Duration::from_millis(300);
        options.watch_interval = Duration::from_millis(50);
        adjust(&mut options);
        let runner = kamachiq_engine::ProcessRunner {
            kill_grace: Duration::from_secs(1),
            ..kamachiq_engine::ProcessRunner::default()
        };
        Engine::new(Parts::new(
            self.store.clone(),
            Arc::new(runner),
            self.clock.clone(),
            options,
        ))
        .unwrap()
    }

    /// An engine whose leases last `lease_ttl`.
    pub fn engine_with_lease(
        &self,
        runner: Arc<dyn Runner>,
        probe: Option<Arc<dyn Probe>>,
        lease_ttl: Duration,
    ) -> Engine {
        let mut options = EngineOptions::new(self.home.path());
        options.lease_ttl = lease_ttl;
        options.heartbeat = Duration::from_millis(300);
        options.watch_interval = Duration::from_millis(50);
        let mut parts = Parts::new(self.store.clone(), runner, self.clock.clone(), options);
        if let Some(probe) = probe {
            parts.probe = probe;
        }
        Engine::new(parts).unwrap()
    }

    /// The test clock's time.
    pub fn clock_now(&self) -> Timestamp {
        kamachiq_engine::Clock::now(&*self.clock)
    }

    pub async fn states(&self, run: &RunId) -> Vec<(String, DeliverableState)> {
        self.store
            .deliverables(run)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.id.to_string(), d.state))
            .collect()
    }

    pub async fn attempts(&self, run: &RunId) -> Vec<StepAttempt> {
        self.store.step_attempts(run, None).await.unwrap()
    }
}

pub fn pairs(items: &[(&str, DeliverableState)]) -> Vec<(String, DeliverableState)> {
    items.iter().map(|(id, s)| ((*id).to_owned(), *s)).collect()
}

/// Runs git in `dir`; its trimmed stdout.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
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

/// A repository on `main` with one commit (a README), checked out as a user's clone would be.
pub fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["config", "user.name", "Test"]);
    git(dir.path(), &["config", "user.email", "test@example.com"]);
    std::fs::write(dir.path().join("README.md"), "# service\n").unwrap();
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-q", "-m", "initial"]);
    dir
}

/// Time a test moves by hand (the engine reads timestamps from it; waiting still uses tokio's
/// timer): for what happens hours later, such as an approval request expiring.
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn at(t: Timestamp) -> Self {
        Self(std::sync::atomic::AtomicI64::new(t.as_millis()))
    }

    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(i64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

impl kamachiq_engine::Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

impl Harness {
    /// An engine on this store whose timestamps come from `clock`.
    pub fn engine_on(
        &self,
        runner: Arc<dyn Runner>,
        clock: Arc<dyn kamachiq_engine::Clock>,
    ) -> Engine {
        let mut options = EngineOptions::new(self.home.path());
        options.lease_ttl = LEASE_TTL;
        options.heartbeat = Duration::from_millis(300);
        options.watch_interval = Duration::from_millis(50);
        Engine::new(Parts::new(self.store.clone(), runner, clock, options)).unwrap()
    }
}
