//! What a terminal shows while a run runs. Three forms, one source: the committed events.
//!
//! - live (a terminal): a header with deliverables done / running / failed and a spinner per
//!   running deliverable with its current step; notable events print above them;
//! - plain (output redirected): one timestamped line per notable event;
//! - JSON (`--json`): every event, one object per line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kamachiq_api::RunView;
use kamachiq_domain::{DeliverableState, Event, EventKind};

use crate::output;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Live,
    Plain,
    Json,
}

impl Mode {
    /// Live on a terminal, plain otherwise; JSON when asked.
    pub fn pick(json: bool) -> Self {
        if json {
            Self::Json
        } else if console::Term::stderr().is_term() {
            Self::Live
        } else {
            Self::Plain
        }
    }
}

struct Running {
    bar: Option<ProgressBar>,
    since: Instant,
}

/// The display of one run.
pub struct Progress {
    mode: Mode,
    run: String,
    total: usize,
    states: HashMap<String, DeliverableState>,
    steps_total: HashMap<String, u32>,
    running: HashMap<String, Running>,
    bars: MultiProgress,
    header: Option<ProgressBar>,
    width: usize,
    /// The last event shown; later catch-up reads start after it.
    pub last_seq: i64,
}

impl Progress {
    /// A display for `run`, starting from its current state (a resumed run is partly done).
    pub fn new(mode: Mode, run: &RunView) -> Self {
        let bars = MultiProgress::with_draw_target(match mode {
            Mode::Live => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        let width = run
            .deliverables
            .iter()
            .map(|d| d.id.len())
            .max()
            .unwrap_or(8)
            .min(32);
        let header = (mode == Mode::Live).then(|| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("run {}", run.id));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let progress = Self {
            mode,
            run: run.id.clone(),
            total: run.deliverables.len(),
            states: run
                .deliverables
                .iter()
                .map(|d| (d.id.clone(), d.state))
                .collect(),
            steps_total: run
                .deliverables
                .iter()
                .map(|d| (d.id.clone(), d.steps_total))
                .collect(),
            running: HashMap::new(),
            bars,
            header,
            width,
            last_seq: 0,
        };
        progress.refresh_header();
        progress
    }

    /// Shows one committed event of the run (others are ignored, as are events already shown).
    pub fn show(&mut self, event: &Event) {
        if event.run_id.as_str() != self.run || event.seq <= self.last_seq {
            return;
        }
        self.last_seq = event.seq;
        if self.mode == Mode::Json {
            output::json(event);
            return;
        }
        let id = event
            .deliverable
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        match event.kind {
            EventKind::RunStarted
            | EventKind::RunResumed
            | EventKind::RunReopened
            | EventKind::CancelRequested => {
                let text = match event.kind {
                    EventKind::RunStarted => format!(
                        "run {} started: {} deliverables, up to {} at once",
                        self.run, event.data["deliverables"], event.data["concurrency"]
                    ),
                    EventKind::RunResumed => format!("run {} resumed", self.run),
                    EventKind::RunReopened => format!(
                        "run {} reopened: {} deliverable(s) to run again",
                        self.run, event.data["deliverables"]
                    ),
                    _ => format!("run {}: cancel requested", self.run),
                };
                self.say(&text);
            }
            EventKind::DeliverableStarted => {
                self.set_state(&id, DeliverableState::Running);
                let bar = self.header.as_ref().map(|_| {
                    let bar = self.bars.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner:.green} {msg} {elapsed:.dim}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar.set_message(format!("{id:<w$} starting", w = self.width));
                    bar
                });
                self.running.insert(
                    id.clone(),
                    Running {
                        bar,
                        since: Instant::now(),
                    },
                );
                if self.mode == Mode::Plain {
                    self.say(&format!("{id} started"));
                }
            }
            EventKind::StepStarted => {
                let step = event.data["step"].as_str().unwrap_or("?");
                let index = event.data["index"].as_u64().unwrap_or(0) + 1;
                let attempt = event.data["attempt"].as_u64().unwrap_or(1);
                let total = self.steps_total.get(&id).copied().unwrap_or(0);
                let retry = if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                if let Some(Running { bar: Some(bar), .. }) = self.running.get(&id) {
                    bar.set_message(format!(
                        "{id:<w$} ▸ {step} [{index}/{total}]{retry}",
                        w = self.width
                    ));
                }
                if self.mode == Mode::Plain {
                    self.say(&format!("{id} ▸ {step} [{index}/{total}]{retry}"));
                }
            }
            EventKind::StepFinished => {
                if event.data["state"] == "failed" {
                    let step = event.data["step"].as_str().unwrap_or("?");
                    let why = event.data["reason"]["detail"].as_str().unwrap_or("failed");
                    self.say(&format!("{} {id} ▸ {step}: {why}", style("!").yellow()));
                }
            }
            EventKind::DeliverableMerged => {}
            EventKind::DeliverableSucceeded => {
                let took = self.finish_bar(&id);
                self.set_state(&id, DeliverableState::Succeeded);
                self.say(&format!("{} {id} succeeded{took}", style("✓").green()));
            }
            EventKind::DeliverableFailed => {
                let took = self.finish_bar(&id);
                self.set_state(&id, DeliverableState::Failed);
                let why = event.data["reason"]["detail"].as_str().unwrap_or("");
                self.say(&format!("{} {id} failed{took}: {why}", style("✗").red()));
            }
            EventKind::DeliverableSkipped => {
                self.set_state(&id, DeliverableState::Skipped);
                let why = event.data["reason"]["detail"].as_str().unwrap_or("");
                self.say(&format!("{} {id} skipped: {why}", style("↷").dim()));
            }
            EventKind::DeliverableCancelled => {
                self.finish_bar(&id);
                self.set_state(&id, DeliverableState::Cancelled);
                self.say(&format!("{} {id} cancelled", style("■").dim()));
            }
            EventKind::DeliverableReleased => {
                self.finish_bar(&id);
                self.say(&format!("{} {id} handed back unfinished", style("⏸").dim()));
            }
            EventKind::DeliverableReopened => {
                self.set_state(&id, DeliverableState::Pending);
            }
            EventKind::DeliverableBlocked => {
                self.finish_bar(&id);
                self.set_state(&id, DeliverableState::Blocked);
                let why = event.data["reason"]["detail"].as_str().unwrap_or("");
                let entry = event.data["requeue_id"].as_str().unwrap_or("?");
                self.say(&format!(
                    "{} {id} held back by policy ({entry}): {why}",
                    style("⊘").yellow()
                ));
            }
            EventKind::DeliverableUnblocked => {
                self.set_state(&id, DeliverableState::Pending);
                let how = event.data["resolution"].as_str().unwrap_or("let through");
                self.say(&format!("{} {id} let through ({how})", style("↻").dim()));
            }
            EventKind::RequeueRetried => {}
            EventKind::BudgetWarning => {
                let detail = event.data["detail"]
                    .as_str()
                    .unwrap_or("a daily limit is near");
                self.say(&format!("{} {detail}", style("!").yellow()));
            }
            EventKind::RunPaused => {
                let by = event.data["by"].as_str().unwrap_or("an operator");
                self.say(&format!(
                    "{} run {} paused by {by}",
                    style("⏸").yellow(),
                    self.run
                ));
            }
            EventKind::RunUnpaused => {
                let by = event.data["by"].as_str().unwrap_or("an operator");
                self.say(&format!("run {} resumed by {by}", self.run));
            }
            EventKind::StepProgress => {
                let step = event.data["step"].as_str().unwrap_or("?");
                let tokens = event.data["tokens"].as_u64().unwrap_or(0);
                let cost = event.data["cost_micro_usd"].as_i64().unwrap_or(0);
                let mut line = format!("{id} ▸ {step} · {tokens} tokens");
                if cost > 0 {
                    line.push_str(&format!(" · ${:.2}", cost as f64 / 1e6));
                }
                if let Some(text) = event.data["text"].as_str() {
                    line.push_str(&format!(" · {text}"));
                }
                match self.running.get(&id) {
                    Some(Running { bar: Some(bar), .. }) => {
                        bar.set_message(format!("{line:<w$}", w = self.width));
                    }
                    _ if self.mode == Mode::Plain => self.say(&line),
                    _ => {}
                }
            }
            EventKind::RunFinished => {}
            // Rollbacks happen after a run, from `kamachiq rollback`; a live display of the
            // run has nothing to update.
            EventKind::DeliverableRolledBack => {}
            EventKind::ApprovalRequested => {
                let approval = event.data["approval_id"].as_str().unwrap_or("?");
                let action = event.data["action"].as_str().unwrap_or("?");
                let risk = event.data["risk"].as_str().unwrap_or("?");
                self.say(&format!(
                    "{} {id} waits for a person to approve its {action} ({risk} risk):                      kamachiq approvals view {approval}",
                    style("?").yellow()
                ));
            }
            EventKind::ApprovalDecided => {
                let status = event.data["status"].as_str().unwrap_or("decided");
                // What was let through shows as unblocked; a withdrawal needs no line.
                if status != "withdrawn" && status != "approved" {
                    let by = event.data["by"].as_str().unwrap_or("?");
                    self.say(&format!("{id}: approval {status} by {by}"));
                }
            }
            EventKind::BreakerTripped => {
                let rule = event.data["rule"].as_str().unwrap_or("?");
                let effect = event.data["effect"]["kind"].as_str().unwrap_or("alert");
                self.say(&format!(
                    "{} circuit breaker \"{rule}\" tripped ({effect})",
                    style("⚡").red()
                ));
            }
        }
        self.refresh_header();
    }

    fn set_state(&mut self, id: &str, state: DeliverableState) {
        self.states.insert(id.to_owned(), state);
    }

    /// Removes a deliverable's spinner; returns " in 3.2s" for messages.
    fn finish_bar(&mut self, id: &str) -> String {
        match self.running.remove(id) {
            Some(running) => {
                if let Some(bar) = running.bar {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                format!(" in {}", output::duration(running.since.elapsed()))
            }
            None => String::new(),
        }
    }

    fn refresh_header(&self) {
        let Some(header) = &self.header else { return };
        let count = |s: DeliverableState| self.states.values().filter(|v| **v == s).count();
        let done = count(DeliverableState::Succeeded);
        let mut parts = vec![
            format!("{done}/{} done", self.total),
            format!("{} running", count(DeliverableState::Running)),
        ];
        for (state, label) in [
            (DeliverableState::Failed, "failed"),
            (DeliverableState::Skipped, "skipped"),
            (DeliverableState::Cancelled, "cancelled"),
            (DeliverableState::Blocked, "blocked"),
            (DeliverableState::Pending, "waiting"),
        ] {
            let n = count(state);
            if n > 0 {
                parts.push(format!("{n} {label}"));
            }
        }
        header.set_message(parts.join(" · "));
    }

    /// A line above the bars (live) or on its own (plain).
    fn say(&self, text: &str) {
        match self.mode {
            Mode::Live => self.bars.suspend(|| output::note(text)),
            Mode::Plain => output::note(format!("{} {text}", clock_now())),
            Mode::Json => {}
        }
    }

    /// Clears the live display.
    pub fn finish(&mut self) {
        for (_, running) in self.running.drain() {
            if let Some(bar) = running.bar {
                bar.finish_and_clear();
            }
        }
        if let Some(header) = self.header.take() {
            header.finish_and_clear();
        }
        let _ = self.bars.clear();
    }
}

/// `HH:MM:SS` (UTC) for plain progress lines.
fn clock_now() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    now.get(11..19).unwrap_or(&now).to_owned()
}
