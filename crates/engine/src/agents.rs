//! Agent steps: which agent runs a step (the step's `agent:`, or its deliverable's persona),
//! the command line and prompt it gets, and the [`AgentMonitor`] that reads what it prints as it
//! streams: usage goes to the ledger, progress to the event log, and the agent is stopped the
//! moment a budget is exhausted or it repeats itself.
//!
//! Budgets are checked against what is known live: the deliverable's and the run's spend when
//! the step started plus what every step of this drive has reported since, and the tenant's day
//! spend as last read from the ledger (at most a couple of seconds old) plus what this process
//! has not written yet. A step of another process can thus overrun a tenant's day cap by what
//! it spends in those seconds; a deliverable or a run cannot be overrun.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kamachiq_agent::{AgentEvent, AgentKind, Parser, Prices, Repetition, Usage};
use kamachiq_domain::{DeliverableId, ReasonCode, RunId, TenantId, Timestamp};
use kamachiq_store::UsageRecord;

use crate::runner::{Halt, Monitor};

/// How agents are run.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Programs by agent name, where they are not on PATH under their usual name.
    pub programs: BTreeMap<String, String>,
    /// Arguments added to each agent's command line, by agent name.
    pub extra_args: BTreeMap<String, Vec<String>>,
    /// The `command` agent's argv, with `{prompt}`, `{prompt_file}`, `{model}`, `{worktree}`.
    pub template: Option<Vec<String>>,
    pub personas: BTreeMap<String, Persona>,
    pub prices: Prices,
    /// The environment an agent starts with (before kamachiq's own variables and the step's).
    pub environment: AgentEnv,
    /// Stop an agent that prints nothing for this long.
    pub stall: Duration,
    /// Stop an agent that prints the same thing this many times in a row.
    pub repeat_threshold: usize,
    /// Agent launches per minute per tenant, and the burst allowed above that pace.
    pub launches_per_minute: u32,
    pub launch_burst: u32,
    /// Confine agents with Linux Landlock: they may write only in their worktree, a temporary
    /// directory of their own, and these places.
    pub sandbox: Option<Sandbox>,
}

/// How agents are confined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    /// The program that confines and then becomes the agent (`kamachiq`, which has a
    /// `sandbox` command): it is run as `PROGRAM sandbox --write DIR ... -- AGENT ARGS`.
    pub program: PathBuf,
    /// Further directories agents may write to (their own state, such as `~/.claude`).
    pub write: Vec<PathBuf>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            programs: BTreeMap::new(),
            extra_args: BTreeMap::new(),
            template: None,
            personas: BTreeMap::new(),
            prices: Prices::default(),
            environment: AgentEnv::Inherit,
            stall: Duration::from_secs(10 * 60),
            repeat_threshold: Repetition::DEFAULT_THRESHOLD,
            launches_per_minute: 60,
            launch_burst: 10,
            sandbox: None,
        }
    }
}

/// What environment an agent starts with. Its `Debug` shows variable names, never values:
/// secrets are among them.
#[derive(Clone, PartialEq, Eq)]
pub enum AgentEnv {
    /// kamachiq's own (for embedding and tests).
    Inherit,
    /// Only these variables: names and values resolved when the configuration was loaded
    /// (secrets among them declared by reference, never written in a file).
    Only(Vec<(String, String)>),
}

impl std::fmt::Debug for AgentEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inherit => f.write_str("Inherit"),
            Self::Only(vars) => f
                .debug_tuple("Only")
                .field(&vars.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// A persona (seed 001: `developer_backend.v2`): the agent and model its steps use, its
/// instructions, and the tools its agent may use without asking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persona {
    pub agent: Option<String>,
    pub model: Option<String>,
    /// The instructions file's content.
    pub instructions: Option<String>,
    pub tools: Vec<String>,
}

/// Live spend counters shared by the monitors of a run's steps (or of a tenant's day).
#[derive(Debug, Default)]
pub struct Counter {
    pub tokens: AtomicU64,
    pub cost_micro_usd: AtomicI64,
}

impl Counter {
    pub fn new(tokens: u64, cost_micro_usd: i64) -> Self {
        Self {
            tokens: AtomicU64::new(tokens),
            cost_micro_usd: AtomicI64::new(cost_micro_usd),
        }
    }

    pub fn add(&self, tokens: u64, cost: i64) {
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
        self.cost_micro_usd.fetch_add(cost, Ordering::Relaxed);
    }

    pub fn sub(&self, tokens: u64, cost: i64) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(tokens))
            });
        self.cost_micro_usd.fetch_sub(cost, Ordering::Relaxed);
    }

    pub fn tokens(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed)
    }

    pub fn cost(&self) -> i64 {
        self.cost_micro_usd.load(Ordering::Relaxed)
    }
}

/// A tenant's spend of the day: the ledger's figure as last read, and what this process has
/// reported but not written yet.
#[derive(Debug, Default)]
pub struct DaySpend {
    pub day: Mutex<String>,
    pub stored: Counter,
    pub unwritten: Counter,
    /// Whether this process has warned that the day's spend passed 90 % of a daily limit.
    pub warned: std::sync::atomic::AtomicBool,
}

/// The share of a daily limit past which a `budget_warning` event goes out (seed 003: "Daily
/// cost at 90% of limit").
pub const WARN_AT: f64 = 0.9;

impl DaySpend {
    pub fn tokens(&self) -> u64 {
        self.stored.tokens().saturating_add(self.unwritten.tokens())
    }

    pub fn cost(&self) -> i64 {
        self.stored.cost().saturating_add(self.unwritten.cost())
    }
}

/// The caps one step runs under, and the counters they are checked against.
#[derive(Debug)]
pub struct Caps {
    /// The step's own budget (`budget_tokens:` of the step).
    pub step_tokens: Option<u64>,
    /// The deliverable's cap (the smaller of the plan's and the tenant's), and what it had
    /// spent when the step started.
    pub deliverable_tokens: Option<u64>,
    pub deliverable_spent: u64,
    pub run_tokens: Option<u64>,
    pub run: Arc<Counter>,
    pub day_tokens: Option<u64>,
    pub day_cost_micro_usd: Option<u64>,
    pub day: Arc<DaySpend>,
}

/// Who the usage belongs to.
#[derive(Clone, Debug)]
pub struct Owner {
    pub tenant: TenantId,
    pub run: RunId,
    pub deliverable: DeliverableId,
    pub step: String,
    pub step_attempt: u32,
    pub agent: String,
    pub model: Option<String>,
}

/// What a monitor gathered since it was last drained.
#[derive(Debug, Default)]
pub struct Gathered {
    pub records: Vec<UsageRecord>,
    /// A daily limit passed 90 %: the sentence of the warning to send, once.
    pub warning: Option<String>,
    /// The latest progress text, if it changed.
    pub progress: Option<String>,
    pub tokens: u64,
    pub cost_micro_usd: i64,
}

#[derive(Debug)]
struct State {
    parser: ParserBox,
    repetition: Repetition,
    tokens: u64,
    cost_micro_usd: i64,
    unwritten: Vec<UsageRecord>,
    progress: Option<String>,
    progress_changed: bool,
    /// The agent's own report of an error, if it made one.
    failure: Option<String>,
    /// Whether the agent reported a successful result.
    finished: Option<bool>,
    /// A budget warning to send with the next drain.
    warning: Option<String>,
}

/// A parser with a `Debug` face.
struct ParserBox(Box<dyn Parser>);

impl std::fmt::Debug for ParserBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parser")
    }
}

/// Reads an agent's output as it streams (see the module's documentation).
#[derive(Debug)]
pub struct AgentMonitor {
    owner: Owner,
    caps: Caps,
    clock: Arc<dyn crate::Clock>,
    state: Mutex<State>,
}

impl AgentMonitor {
    pub fn new(
        kind: AgentKind,
        owner: Owner,
        caps: Caps,
        options: &AgentOptions,
        clock: Arc<dyn crate::Clock>,
    ) -> Self {
        let parser = kamachiq_agent::parser_with(
            kind,
            kamachiq_agent::ParserOptions {
                prices: options.prices.clone(),
                model: owner.model.clone(),
            },
        );
        Self {
            owner,
            caps,
            clock,
            state: Mutex::new(State {
                parser: ParserBox(parser),
                repetition: Repetition::new(options.repeat_threshold),
                tokens: 0,
                cost_micro_usd: 0,
                unwritten: Vec::new(),
                progress: None,
                progress_changed: false,
                failure: None,
                finished: None,
                warning: None,
            }),
        }
    }

    /// Whose usage this monitor books.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes what was gathered since the last call: usage records to write, the latest
    /// progress, and the step's totals so far. What is handed over counts as written.
    pub fn drain(&self) -> Gathered {
        let mut state = self.lock();
        let records = std::mem::take(&mut state.unwritten);
        for r in &records {
            // Handed over to be written: from now on it counts as the ledger's.
            self.caps.day.unwritten.sub(r.tokens(), r.cost_micro_usd);
            self.caps.day.stored.add(r.tokens(), r.cost_micro_usd);
        }
        let progress = if state.progress_changed {
            state.progress_changed = false;
            state.progress.clone()
        } else {
            None
        };
        Gathered {
            records,
            warning: state.warning.take(),
            progress,
            tokens: state.tokens,
            cost_micro_usd: state.cost_micro_usd,
        }
    }

    /// The step's totals: tokens and micro-dollars.
    pub fn totals(&self) -> (u64, i64) {
        let state = self.lock();
        (state.tokens, state.cost_micro_usd)
    }

    /// What the agent itself said went wrong, if it reported an error, and whether it
    /// reported a result at all (`Some(false)`: a failed result).
    pub fn verdict(&self) -> (Option<String>, Option<bool>) {
        let state = self.lock();
        (state.failure.clone(), state.finished)
    }

    /// Books one usage event; a cap it breaks stops the agent.
    fn book(&self, state: &mut State, usage: &Usage) -> Option<Halt> {
        let tokens = usage.total_tokens();
        let cost = usage
            .cost_usd
            .filter(|c| c.is_finite())
            .map_or(0, |c| (c * 1_000_000.0).round() as i64);
        state.tokens = state.tokens.saturating_add(tokens);
        state.cost_micro_usd = state.cost_micro_usd.saturating_add(cost);
        self.caps.run.add(tokens, cost);
        self.caps.day.unwritten.add(tokens, cost);
        state.unwritten.push(UsageRecord {
            tenant: self.owner.tenant.clone(),
            run: self.owner.run.clone(),
            deliverable: self.owner.deliverable.clone(),
            step: self.owner.step.clone(),
            step_attempt: self.owner.step_attempt,
            agent: self.owner.agent.clone(),
            model: usage
                .model
                .clone()
                .or_else(|| self.owner.model.clone())
                .unwrap_or_else(|| "unknown".to_owned()),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_tokens: usage.cache_read_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            cost_micro_usd: cost,
            at: self.clock.now(),
        });
        self.warn_near_limit(state);
        self.over_budget(state)
    }

    /// Notes a warning, once per tenant and day in this process, when the day's spend passes
    /// [`WARN_AT`] of a daily limit.
    fn warn_near_limit(&self, state: &mut State) {
        let caps = &self.caps;
        let near = |used: f64, cap: Option<u64>| cap.is_some_and(|c| used >= c as f64 * WARN_AT);
        let tokens = caps.day.tokens() as f64;
        let cost = caps.day.cost() as f64;
        let what = if near(cost, caps.day_cost_micro_usd) {
            caps.day_cost_micro_usd.map(|cap| {
                format!(
                    "tenant {} has spent ${:.2} today, {:.0}% of its daily limit of ${:.2}",
                    self.owner.tenant,
                    cost / 1e6,
                    100.0 * cost / cap as f64,
                    cap as f64 / 1e6
                )
            })
        } else if near(tokens, caps.day_tokens) {
            caps.day_tokens.map(|cap| {
                format!(
                    "tenant {} has used {} tokens today, {:.0}% of its daily budget of {cap}",
                    self.owner.tenant,
                    tokens as u64,
                    100.0 * tokens / cap as f64
                )
            })
        } else {
            None
        };
        if let Some(what) = what
            && !caps.day.warned.swap(true, Ordering::Relaxed)
        {
            state.warning = Some(what);
        }
    }

    /// The first cap the spend so far breaks, as a halt naming it and the figures.
    fn over_budget(&self, state: &State) -> Option<Halt> {
        let caps = &self.caps;
        let step = &self.owner.step;
        let halt = |detail: String| Halt {
            code: ReasonCode::BudgetExhausted,
            detail: format!("budget_exhausted: {detail}; the agent was stopped"),
        };
        if let Some(cap) = caps.step_tokens
            && state.tokens > cap
        {
            return Some(halt(format!(
                "step `{step}` used {} tokens, over its budget of {}",
                state.tokens, cap
            )));
        }
        if let Some(cap) = caps.deliverable_tokens {
            let used = caps.deliverable_spent.saturating_add(state.tokens);
            if used > cap {
                return Some(halt(format!(
                    "deliverable {} used {used} tokens, over its budget of {cap}",
                    self.owner.deliverable
                )));
            }
        }
        if let Some(cap) = caps.run_tokens {
            let used = caps.run.tokens();
            if used > cap {
                return Some(halt(format!(
                    "run {} used {used} tokens, over its budget of {cap}",
                    self.owner.run
                )));
            }
        }
        if let Some(cap) = caps.day_tokens {
            let used = caps.day.tokens();
            if used > cap {
                return Some(halt(format!(
                    "tenant {} used {used} tokens today, over its daily budget of {cap}",
                    self.owner.tenant
                )));
            }
        }
        if let Some(cap) = caps.day_cost_micro_usd {
            let used = caps.day.cost();
            if used > i64::try_from(cap).unwrap_or(i64::MAX) {
                return Some(halt(format!(
                    "tenant {} spent ${:.2} today, over its daily limit of ${:.2}",
                    self.owner.tenant,
                    used as f64 / 1e6,
                    cap as f64 / 1e6
                )));
            }
        }
        None
    }

    fn take(&self, state: &mut State, events: Vec<AgentEvent>) -> Option<Halt> {
        let mut halt = None;
        for event in events {
            match event {
                AgentEvent::Usage(usage) => {
                    if let Some(h) = self.book(state, &usage) {
                        halt.get_or_insert(h);
                    }
                }
                AgentEvent::Progress { text } => {
                    if let Some(why) = state.repetition.observe(&text) {
                        halt.get_or_insert(looping(&why));
                    }
                    state.progress = Some(text);
                    state.progress_changed = true;
                }
                AgentEvent::Output { text } => {
                    if let Some(why) = state.repetition.observe(&text) {
                        halt.get_or_insert(looping(&why));
                    }
                }
                AgentEvent::Failed { message } => state.failure = Some(message),
                AgentEvent::Finished { success, summary } => {
                    state.finished = Some(success);
                    if !success && state.failure.is_none() {
                        state.failure = summary;
                    }
                }
            }
        }
        halt
    }
}

fn looping(why: &str) -> Halt {
    Halt {
        code: ReasonCode::Looping,
        detail: format!("the agent repeats itself ({why}); it was stopped as stuck in a loop"),
    }
}

impl Monitor for AgentMonitor {
    fn line(&self, line: &str) -> Option<Halt> {
        let mut state = self.lock();
        let events = state.parser.0.line(line);
        self.take(&mut state, events)
    }

    fn finish(&self) {
        let mut state = self.lock();
        let events = state.parser.0.finish();
        let _ = self.take(&mut state, events);
    }
}

/// The agent that runs a step: the step's own, else its persona's. `None` when neither says.
pub fn agent_of(
    step_agent: Option<&str>,
    persona: Option<&Persona>,
) -> Option<Result<AgentKind, String>> {
    let name = step_agent.or_else(|| persona.and_then(|p| p.agent.as_deref()))?;
    Some(name.parse::<AgentKind>().map_err(|e| e.to_string()))
}

/// Where the prompt of a step attempt is kept while it runs (agents that read their task from a
/// file get this path).
pub fn prompt_file(
    home: &std::path::Path,
    run: &RunId,
    deliverable: &DeliverableId,
    step: &str,
    attempt: u32,
) -> PathBuf {
    home.join("prompts")
        .join(run.as_str())
        .join(deliverable.as_str())
        .join(format!("{step}.{attempt}.md"))
}

/// The token bucket of one tenant's agent launches.
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    updated: tokio::time::Instant,
}

impl Bucket {
    pub fn new(burst: u32) -> Self {
        Self {
            tokens: f64::from(burst.max(1)),
            updated: tokio::time::Instant::now(),
        }
    }

    /// Takes a launch if one is available now; otherwise how long until one is.
    pub fn take(&mut self, per_minute: u32, burst: u32) -> Result<(), Duration> {
        let now = tokio::time::Instant::now();
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst.max(1)));
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// `day_of` for a timestamp, re-exported for the drive.
pub fn day(at: Timestamp) -> String {
    kamachiq_store::day_of(at)
}
