//! Circuit breakers: rules that watch the windowed metrics of automated actions and, when their
//! condition holds, revert the autonomy phase to L3, pause an action type, or raise an alert.
//!
//! A [`Rule`]'s condition is CEL over the [`WindowMetrics`] of its window, each field a variable
//! under its JSON name (`errorRate > 0.05`, `failed >= 3`, `criticalIncidents > 0`). Which
//! numbers a rule reads:
//!
//! - a rule with an `actionType` reads that type's numbers only;
//! - a `pause_command_type` rule without one is evaluated for each action type present in the
//!   window, and trips once for each type that breaches, so `failed >= 3` pauses exactly the
//!   type that failed three times;
//! - any other rule reads the numbers of every action together.
//!
//! [`Breakers`] compiles each condition once and keeps it, keyed by its text, for every later
//! evaluation; it is `Send + Sync`, so one instance serves every tenant and worker thread.
//! [`effect`] says what a [`Trip`] means for a tenant's [`GovernanceState`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use cel::Program;
use kamachiq_domain::Timestamp;
use kamachiq_policy::Action;
use serde::{Deserialize, Serialize};

use crate::condition::{self, Var, Vars};
use crate::metrics::{Recent, WindowMetrics};
use crate::phase::Phase;
use crate::state::GovernanceState;
use crate::{Error, Owner};

/// Longest rule name accepted.
pub const MAX_NAME: usize = 100;
/// Shortest rule window accepted.
pub const MIN_WINDOW: Duration = Duration::from_secs(60);
/// Longest rule window accepted.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// What a tripped rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerAction {
    /// Back to L3 with an empty whitelist: nothing runs without a person.
    RevertToL3,
    /// Pause the action type that breached: it needs a person until resumed.
    PauseCommandType,
    /// Raise an alert and change nothing.
    AlertOnly,
}

/// How urgently a person must respond: critical within 5 minutes, high 15 minutes, medium an
/// hour, low the next business day (seed runbook).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// How soon a person must respond (seed runbook); `None` for low: the next business day.
    pub const fn response_within(self) -> Option<Duration> {
        match self {
            Severity::Critical => Some(Duration::from_secs(5 * 60)),
            Severity::High => Some(Duration::from_secs(15 * 60)),
            Severity::Medium => Some(Duration::from_secs(60 * 60)),
            Severity::Low => None,
        }
    }
}

/// A circuit-breaker rule. JSON names, a contract with the seed's API and operators' scripts:
/// `name`, `enabled`, `condition`, `window` (`"5m"`, `"1h"`: see [`crate::window`]), `action`
/// (`revert_to_l3`, `pause_command_type`, `alert_only`), `alertSeverity` (also read as
/// `severity`), and `actionType` (absent for every type).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Unique per tenant; at most [`MAX_NAME`] characters.
    pub name: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// CEL over the [`WindowMetrics`] variables; must give a bool.
    pub condition: String,
    #[serde(with = "crate::window")]
    pub window: Duration,
    pub action: BreakerAction,
    #[serde(rename = "alertSeverity", alias = "severity")]
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<Action>,
}

fn enabled() -> bool {
    true
}

impl Rule {
    /// Checks the rule as a whole: a name that is not empty nor longer than [`MAX_NAME`]
    /// characters; a window of whole seconds between [`MIN_WINDOW`] and [`MAX_WINDOW`]; a
    /// condition that parses, reads only metric variables, and gives a bool when tried with
    /// every number 0 or with every number 1 (which catches unknown functions and type
    /// mismatches before the rule is stored, not when it should have tripped; see
    /// `condition::check`).
    pub fn check(&self) -> Result<(), Error> {
        let name_error = |why| Error::RuleName {
            name: self.name.clone(),
            why,
        };
        if self.name.trim().is_empty() {
            return Err(name_error("must not be empty"));
        }
        if self.name.chars().count() > MAX_NAME {
            return Err(name_error("is longer than 100 characters"));
        }
        let window_error = |why| Error::RuleWindow {
            rule: self.name.clone(),
            window: self.window,
            why,
        };
        if self.window < MIN_WINDOW {
            return Err(window_error("is shorter than 1 minute"));
        }
        if self.window > MAX_WINDOW {
            return Err(window_error("is longer than 7 days"));
        }
        if self.window.subsec_nanos() != 0 {
            return Err(window_error("is not a whole number of seconds"));
        }
        condition::check::<WindowMetrics>(&self.owner(), &self.condition)?;
        Ok(())
    }

    fn owner(&self) -> Owner {
        Owner::Rule(self.name.clone())
    }
}

impl Vars for WindowMetrics {
    const NAMES: &'static [&'static str] = &[
        "total",
        "succeeded",
        "failed",
        "rolledBack",
        "criticalIncidents",
        "successRate",
        "errorRate",
        "rollbackRate",
        "costUsd",
        "costRatePerHour",
        "p50Ms",
        "p95Ms",
        "p99Ms",
    ];

    fn var(&self, name: &str) -> Option<Var> {
        Some(match name {
            "total" => Var::count(self.total),
            "succeeded" => Var::count(self.succeeded),
            "failed" => Var::count(self.failed),
            "rolledBack" => Var::count(self.rolled_back),
            "criticalIncidents" => Var::count(self.critical_incidents),
            "successRate" => Var::Double(self.success_rate),
            "errorRate" => Var::Double(self.error_rate),
            "rollbackRate" => Var::Double(self.rollback_rate),
            "costUsd" => Var::Double(self.cost_usd),
            "costRatePerHour" => Var::Double(self.cost_rate_per_hour),
            "p50Ms" => Var::count(self.p50_ms),
            "p95Ms" => Var::count(self.p95_ms),
            "p99Ms" => Var::count(self.p99_ms),
            _ => return None,
        })
    }

    fn sample() -> Self {
        Self::default()
    }
}

/// The variables a rule condition may read, the [`WindowMetrics`] fields by their JSON names.
pub fn variables() -> &'static [&'static str] {
    <WindowMetrics as Vars>::NAMES
}

/// A rule whose condition held: what tripped, for which action type, over which numbers.
/// JSON names: `rule`, `actionType`, `metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trip {
    pub rule: Rule,
    /// The action type whose numbers breached; `None` when the rule read every type together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type: Option<Action>,
    /// The numbers the condition held over.
    pub metrics: WindowMetrics,
}

/// The trips and errors of evaluating several rules: one rule that fails does not stop the
/// others from being checked.
#[derive(Debug, Default, PartialEq)]
pub struct Evaluation {
    pub trips: Vec<Trip>,
    pub errors: Vec<Error>,
}

/// Evaluates rules, compiling each distinct condition once. `Send + Sync`.
#[derive(Default)]
pub struct Breakers {
    programs: RwLock<HashMap<String, Arc<Program>>>,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers")
            .field("compiled", &self.compiled())
            .finish()
    }
}

impl Breakers {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct conditions are compiled and kept.
    pub fn compiled(&self) -> usize {
        self.programs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The compiled program of `rule`'s condition, from the cache or compiled now and kept.
    fn program(&self, rule: &Rule) -> Result<Arc<Program>, Error> {
        if let Some(program) = self
            .programs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&rule.condition)
        {
            return Ok(Arc::clone(program));
        }
        let program = Arc::new(condition::compile::<WindowMetrics>(
            &rule.owner(),
            &rule.condition,
        )?);
        let mut programs = self
            .programs
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(
            programs
                .entry(rule.condition.clone())
                .or_insert_with(|| program),
        ))
    }

    /// Whether `rule`'s condition holds over `metrics`.
    pub fn holds(&self, rule: &Rule, metrics: &WindowMetrics) -> Result<bool, Error> {
        let program = self.program(rule)?;
        condition::holds(&rule.owner(), &rule.condition, &program, metrics)
    }

    /// Evaluates `rule` over the window of `recent` that ends at `now`, as the module
    /// documentation describes. A disabled rule never trips. A condition that does not parse,
    /// reads unknown variables, fails or gives something other than a bool is an error, never
    /// a trip.
    pub fn evaluate(
        &self,
        rule: &Rule,
        recent: &Recent,
        now: Timestamp,
    ) -> Result<Vec<Trip>, Error> {
        if !rule.enabled {
            return Ok(Vec::new());
        }
        let trip = |action_type, metrics| Trip {
            rule: rule.clone(),
            action_type,
            metrics,
        };
        if let Some(action) = rule.action_type {
            let metrics = recent.metrics(rule.window, now, Some(action));
            return Ok(if self.holds(rule, &metrics)? {
                vec![trip(Some(action), metrics)]
            } else {
                Vec::new()
            });
        }
        let overall = recent.metrics(rule.window, now, None);
        if rule.action != BreakerAction::PauseCommandType {
            return Ok(if self.holds(rule, &overall)? {
                vec![trip(None, overall)]
            } else {
                Vec::new()
            });
        }
        // Per type: check the condition compiles even when the window is empty.
        self.program(rule)?;
        let mut trips = Vec::new();
        for action in Action::ALL {
            if let Some(metrics) = overall.action(action)
                && self.holds(rule, metrics)?
            {
                trips.push(trip(Some(action), metrics.clone()));
            }
        }
        Ok(trips)
    }

    /// Evaluates every rule in turn, collecting trips and errors.
    pub fn evaluate_all(&self, rules: &[Rule], recent: &Recent, now: Timestamp) -> Evaluation {
        let mut out = Evaluation::default();
        for rule in rules {
            match self.evaluate(rule, recent, now) {
                Ok(trips) => out.trips.extend(trips),
                Err(e) => out.errors.push(e),
            }
        }
        out
    }
}

/// The horizon a [`Recent`] buffer needs for `rules`: their longest window, enabled or not (a
/// rule enabled later should find its window full).
pub fn horizon_for(rules: &[Rule]) -> Duration {
    rules
        .iter()
        .map(|r| r.window)
        .max()
        .unwrap_or(Duration::ZERO)
}

/// What a trip means for a tenant. JSON: `{"kind": "revert_to_l3", ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Effect {
    /// Go back to L3 with an empty whitelist, restarting the phase clock ([`GovernanceState::revert_to_l3`]).
    /// At L3 already this still clears the whitelist and restarts the clock: time in phase
    /// counts from the last incident.
    RevertToL3 {
        from: Phase,
        /// The whitelist that is cleared.
        cleared: Vec<Action>,
    },
    /// Pause `action` ([`GovernanceState::pause`]); `alreadyPaused` when it was paused before.
    Pause {
        action: Action,
        already_paused: bool,
    },
    /// Alert, change nothing. Also what a pausing trip without an action type (which
    /// [`Breakers::evaluate`] never makes) comes to: there is no type to pause.
    Alert,
}

/// What `trip` means for a tenant in `state`. Apply it with [`GovernanceState::apply`].
pub fn effect(state: &GovernanceState, trip: &Trip) -> Effect {
    match (trip.rule.action, trip.action_type) {
        (BreakerAction::RevertToL3, _) => Effect::RevertToL3 {
            from: state.current_phase,
            cleared: state.command_whitelist.clone(),
        },
        (BreakerAction::PauseCommandType, Some(action)) => Effect::Pause {
            action,
            already_paused: state.paused_actions.contains(&action),
        },
        (BreakerAction::PauseCommandType, None) | (BreakerAction::AlertOnly, _) => Effect::Alert,
    }
}

/// kamachiq's default rules, the seed service's own:
///
/// | name | condition | window | action | severity |
/// |---|---|---|---|---|
/// | High Error Rate | `errorRate > 0.05` | 5m | revert_to_l3 | critical |
/// | Repeated Command Failures | `failed >= 3` | 5m | pause_command_type | high |
/// | Critical Incident | `criticalIncidents > 0` | 1m | revert_to_l3 | critical |
/// | High Rollback Rate | `rollbackRate > 0.10` | 15m | alert_only | medium |
///
/// "High Error Rate" has no minimum volume: one failed action that is the only one in five
/// minutes is an error rate of 1 and reverts the phase. That is the seed's behaviour and the
/// safe side (a needless revert costs a re-approval, a missed one an incident), so it is kept;
/// a tenant with sparse, often-failing actions will see reverts that are noise, and should add
/// a guard such as `errorRate > 0.05 && total >= 20` (the seed runbook shows this kind of
/// tuning) rather than lose the rule.
pub fn default_rules() -> Vec<Rule> {
    let rule = |name: &str, condition: &str, minutes: u64, action, severity| Rule {
        name: name.to_owned(),
        enabled: true,
        condition: condition.to_owned(),
        window: Duration::from_secs(60 * minutes),
        action,
        severity,
        action_type: None,
    };
    vec![
        rule(
            "High Error Rate",
            "errorRate > 0.05",
            5,
            BreakerAction::RevertToL3,
            Severity::Critical,
        ),
        rule(
            "Repeated Command Failures",
            "failed >= 3",
            5,
            BreakerAction::PauseCommandType,
            Severity::High,
        ),
        rule(
            "Critical Incident",
            "criticalIncidents > 0",
            1,
            BreakerAction::RevertToL3,
            Severity::Critical,
        ),
        rule(
            "High Rollback Rate",
            "rollbackRate > 0.10",
            15,
            BreakerAction::AlertOnly,
            Severity::Medium,
        ),
    ]
}

#[cfg(test)]
mod tests;
