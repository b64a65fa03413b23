//! Readiness: a weighted checklist that says whether a tenant is ready for more autonomy.
//!
//! Each [`Item`] is worth its weight in points when it passes. An item kamachiq can measure is
//! a CEL condition over [`ReadinessFacts`] ([`Check::Metric`]); the others pass when a person
//! attested them during the current phase ([`Check::Attested`]): an attestation given before the
//! phase started (or after `now`) does not count, so every phase is judged on its own record.
//! Attestations of metric items are ignored: a measured fact is not overruled by a statement.
//!
//! [`assess`] gives the score (points over the maximum), each category's, each item's result
//! with its evidence, and the blockers: the required items that did not pass. The status:
//!
//! | status | when |
//! |---|---|
//! | `ready` | score >= 0.95 and no blocker |
//! | `almost_ready` | 0.90 <= score < 0.95 and no blocker |
//! | `needs_work` | score < 0.90, or any blocker whatever the score |
//!
//! A failing required item means `needs_work` even at a high score: a required item is a gate,
//! and "almost ready" would read as an invitation to propose. The bands are the seed runbook's
//! (below 0.90 investigate, 0.90 to 0.95 monitor, 0.95 and above ready to expand), compared in
//! whole points so that 76 of 80 is exactly 0.95.

use std::collections::{BTreeMap, HashSet};

use kamachiq_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::breaker::{BreakerAction, Rule};
use crate::condition::{self, Var, Vars};
use crate::metrics::WindowMetrics;
use crate::phase::Phase;
use crate::state::GovernanceState;
use crate::{Error, Owner};

/// The most items a checklist holds.
pub const MAX_ITEMS: usize = 200;
/// The most points one item is worth (so that no sum of weights overflows).
pub const MAX_WEIGHT: u32 = 1000;
/// The score from which a tenant is ready, and a proposal may be drafted.
pub const READY: f64 = 0.95;
/// The score from which a tenant is almost ready.
pub const ALMOST_READY: f64 = 0.90;
/// The lowest success rate of a healthy phase (seed runbook: "should be > 99.5%").
pub const SUCCESS_RATE_MIN: f64 = 0.995;
/// The highest error rate of a healthy phase (seed runbook: "should be < 0.5%").
pub const ERROR_RATE_MAX: f64 = 0.005;
/// The highest rollback rate of a healthy phase.
pub const ROLLBACK_RATE_MAX: f64 = 0.02;
/// The lowest share of decided approval requests that were approved.
pub const APPROVAL_RATE_MIN: f64 = 0.95;
/// The fewest actions a phase must have seen for its rates to mean something.
pub const MIN_ACTIONS: u64 = 100;

/// A checklist category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Technical,
    Process,
    Organizational,
}

impl Category {
    pub const ALL: [Category; 3] = [
        Category::Technical,
        Category::Process,
        Category::Organizational,
    ];
}

/// How an item is decided. JSON: `{"kind": "metric", "condition": "..."}` or
/// `{"kind": "attested"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    /// CEL over the [`ReadinessFacts`] variables; passes when it gives `true`.
    Metric { condition: String },
    /// Passes when a person attested it during the current phase.
    Attested,
}

/// One checklist item. JSON: `id`, `category`, `title`, `weight`, `required`, `check`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Item {
    /// Stable, unique in the checklist (`tech.success_rate`); attestations name it.
    pub id: String,
    pub category: Category,
    /// What must hold, as a sentence.
    pub title: String,
    /// Points the item is worth; at least 1.
    pub weight: u32,
    /// Whether the tenant cannot be ready without it, whatever the score.
    pub required: bool,
    pub check: Check,
}

/// A readiness checklist. JSON: `{"items": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checklist {
    pub items: Vec<Item>,
}

impl Checklist {
    /// Checks the checklist as a whole: between 1 and [`MAX_ITEMS`] items; ids non-empty and
    /// unique; weights from 1 to [`MAX_WEIGHT`]; titles non-empty; every metric condition
    /// parses and reads only readiness variables. An item without an id is named by its
    /// position (`#3`).
    pub fn check(&self) -> Result<(), Error> {
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(Error::ChecklistSize {
                items: self.items.len(),
            });
        }
        let mut seen = HashSet::new();
        for (position, item) in self.items.iter().enumerate() {
            let invalid = |why| Error::InvalidItem {
                id: if item.id.trim().is_empty() {
                    format!("#{}", position + 1)
                } else {
                    item.id.clone()
                },
                why,
            };
            if item.id.trim().is_empty() {
                return Err(invalid("the id must not be empty"));
            }
            if !seen.insert(item.id.as_str()) {
                return Err(invalid("the id is used by another item"));
            }
            if item.title.trim().is_empty() {
                return Err(invalid("the title must not be empty"));
            }
            if item.weight == 0 || item.weight > MAX_WEIGHT {
                return Err(invalid("the weight must be between 1 and 1000"));
            }
            if let Check::Metric { condition } = &item.check {
                condition::check::<ReadinessFacts>(&Owner::Item(item.id.clone()), condition)?;
            }
        }
        Ok(())
    }

    /// The points each category is worth, for categories with items.
    pub fn max_points(&self) -> BTreeMap<Category, u32> {
        let mut out = BTreeMap::new();
        for item in &self.items {
            *out.entry(item.category).or_insert(0) += item.weight;
        }
        out
    }
}

/// A person's statement that an item holds. JSON: `item`, `by`, `evidence`, `at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// The item's id.
    pub item: String,
    /// Who attests (an authenticated identity).
    pub by: String,
    /// What shows it: a link, a document, a sentence.
    pub evidence: String,
    pub at: Timestamp,
}

/// What kamachiq measured about the current phase, for readiness conditions. Each field but
/// `phase` and `phaseStartedAt` is a condition variable under its JSON name:
///
/// | variable | type | meaning |
/// |---|---|---|
/// | `daysInPhase` | int | whole days since the phase started |
/// | `minDaysInPhase` | int | the phase's validation period in days (0 at L3) |
/// | `actionsTotal` | int | automated actions finished in the period assessed |
/// | `successRate`, `errorRate`, `rollbackRate` | double | of those actions, 0 when there were none |
/// | `criticalIncidents` | int | critical incidents attributed to them |
/// | `approvalsDecided` | int | approval requests approved or denied in the period |
/// | `approvalRate` | double | the share of those approved; 1 when none was decided (nobody disagreed) |
/// | `breakerRulesEnabled` | int | enabled circuit-breaker rules |
/// | `revertRulesEnabled` | int | of those, the ones that revert to L3 |
/// | `unresolvedBreakerEvents` | int | breaker events nobody resolved yet |
/// | `monitoringEnabled` | bool | metrics are scraped and alerts delivered (the caller decides how it knows) |
/// | `emergencyStopExercised` | bool | the emergency stop was exercised (stopped and resumed) during the phase |
///
/// [`ReadinessFacts::new`] fills the phase's own facts; [`ReadinessFacts::observe`] and
/// [`ReadinessFacts::count_rules`] fill others from what this crate computes; the rest is the
/// caller's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessFacts {
    pub phase: Phase,
    pub phase_started_at: Timestamp,
    pub days_in_phase: u32,
    pub min_days_in_phase: u32,
    pub actions_total: u64,
    pub success_rate: f64,
    pub error_rate: f64,
    pub rollback_rate: f64,
    pub critical_incidents: u64,
    pub approvals_decided: u64,
    pub approval_rate: f64,
    pub breaker_rules_enabled: u32,
    pub revert_rules_enabled: u32,
    pub unresolved_breaker_events: u32,
    pub monitoring_enabled: bool,
    pub emergency_stop_exercised: bool,
}

impl ReadinessFacts {
    /// The facts of `state`'s phase at `now`; every other fact zero or false (approval rate
    /// 1: nothing decided, nothing turned down).
    pub fn new(state: &GovernanceState, now: Timestamp) -> Self {
        let days = now.since(state.phase_started_at).as_secs() / (24 * 60 * 60);
        Self {
            phase: state.current_phase,
            phase_started_at: state.phase_started_at,
            days_in_phase: u32::try_from(days).unwrap_or(u32::MAX),
            min_days_in_phase: state.current_phase.validation_days(),
            actions_total: 0,
            success_rate: 0.0,
            error_rate: 0.0,
            rollback_rate: 0.0,
            critical_incidents: 0,
            approvals_decided: 0,
            approval_rate: 1.0,
            breaker_rules_enabled: 0,
            revert_rules_enabled: 0,
            unresolved_breaker_events: 0,
            monitoring_enabled: false,
            emergency_stop_exercised: false,
        }
    }

    /// Takes the action facts from the metrics of the period assessed.
    pub fn observe(&mut self, metrics: &WindowMetrics) {
        self.actions_total = metrics.total;
        self.success_rate = metrics.success_rate;
        self.error_rate = metrics.error_rate;
        self.rollback_rate = metrics.rollback_rate;
        self.critical_incidents = metrics.critical_incidents;
    }

    /// Counts the enabled rules, and those of them that revert to L3.
    pub fn count_rules(&mut self, rules: &[Rule]) {
        let enabled = rules.iter().filter(|r| r.enabled);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.breaker_rules_enabled = count(enabled.clone().count());
        self.revert_rules_enabled = count(
            enabled
                .filter(|r| r.action == BreakerAction::RevertToL3)
                .count(),
        );
    }
}

impl Vars for ReadinessFacts {
    const NAMES: &'static [&'static str] = &[
        "daysInPhase",
        "minDaysInPhase",
        "actionsTotal",
        "successRate",
        "errorRate",
        "rollbackRate",
        "criticalIncidents",
        "approvalsDecided",
        "approvalRate",
        "breakerRulesEnabled",
        "revertRulesEnabled",
        "unresolvedBreakerEvents",
        "monitoringEnabled",
        "emergencyStopExercised",
    ];

    fn var(&self, name: &str) -> Option<Var> {
        Some(match name {
            "daysInPhase" => Var::Int(i64::from(self.days_in_phase)),
            "minDaysInPhase" => Var::Int(i64::from(self.min_days_in_phase)),
            "actionsTotal" => Var::count(self.actions_total),
            "successRate" => Var::Double(self.success_rate),
            "errorRate" => Var::Double(self.error_rate),
            "rollbackRate" => Var::Double(self.rollback_rate),
            "criticalIncidents" => Var::count(self.critical_incidents),
            "approvalsDecided" => Var::count(self.approvals_decided),
            "approvalRate" => Var::Double(self.approval_rate),
            "breakerRulesEnabled" => Var::Int(i64::from(self.breaker_rules_enabled)),
            "revertRulesEnabled" => Var::Int(i64::from(self.revert_rules_enabled)),
            "unresolvedBreakerEvents" => Var::Int(i64::from(self.unresolved_breaker_events)),
            "monitoringEnabled" => Var::Bool(self.monitoring_enabled),
            "emergencyStopExercised" => Var::Bool(self.emergency_stop_exercised),
            _ => return None,
        })
    }

    fn sample() -> Self {
        let start = Timestamp::from_millis(0);
        Self::new(&GovernanceState::initial(start), start)
    }
}

/// The variables a readiness condition may read.
pub fn variables() -> &'static [&'static str] {
    <ReadinessFacts as Vars>::NAMES
}

/// The readiness status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ready,
    AlmostReady,
    NeedsWork,
}

/// What decided an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Its condition, over the facts (passed or not).
    Metric,
    /// An attestation given during the phase.
    Attested,
    /// No attestation during the phase.
    Missing,
}

/// One category's points. JSON: `name`, `points`, `maxPoints`, `score`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryScore {
    pub name: Category,
    pub points: u32,
    pub max_points: u32,
    pub score: f64,
}

/// One item's result. JSON: `id`, `title`, `category`, `weight`, `required`, `passed`,
/// `source`, `evidence`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    pub id: String,
    pub title: String,
    pub category: Category,
    pub weight: u32,
    pub required: bool,
    pub passed: bool,
    pub source: Source,
    /// The values the condition read (`successRate = 0.998`), the attestation (`attested by
    /// ana at ...: ...`), or why there is none.
    pub evidence: String,
}

/// The overall result. JSON: `score`, `blockers` (the seed runbook reads
/// `.overall.blockers`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overall {
    pub score: f64,
    /// A sentence for each required item that did not pass, in checklist order.
    pub blockers: Vec<String>,
}

/// A readiness assessment. JSON names, a contract (the seed runbook reads `.score` and
/// `.overall.blockers`): `phase`, `assessedAt`, `score`, `points`, `maxPoints`, `status`,
/// `categories`, `items`, `overall`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    pub phase: Phase,
    pub assessed_at: Timestamp,
    /// `points / maxPoints`, in [0, 1].
    pub score: f64,
    pub points: u32,
    pub max_points: u32,
    pub status: Status,
    /// In the order technical, process, organizational; only categories with items.
    pub categories: Vec<CategoryScore>,
    pub items: Vec<ItemResult>,
    pub overall: Overall,
}

impl Assessment {
    /// Whether the score reaches [`READY`], compared in whole points.
    pub fn reaches_ready(&self) -> bool {
        reaches(self.points, self.max_points, 95)
    }
}

/// Whether `points / max >= percent / 100`, exactly.
fn reaches(points: u32, max: u32, percent: u64) -> bool {
    max > 0 && u64::from(points) * 100 >= u64::from(max) * percent
}

fn ratio(points: u32, max: u32) -> f64 {
    if max == 0 {
        0.0
    } else {
        f64::from(points) / f64::from(max)
    }
}

/// Assesses `checklist` at `now` over `facts` and the `attestations` given (of any item, any
/// time: those outside the current phase are ignored; of several for one item, the latest
/// counts). A condition that does not compile or evaluate fails its item, with the error as
/// evidence; [`Checklist::check`] catches those before a checklist is stored.
pub fn assess(
    checklist: &Checklist,
    facts: &ReadinessFacts,
    attestations: &[Attestation],
    now: Timestamp,
) -> Assessment {
    let mut items = Vec::with_capacity(checklist.items.len());
    for item in &checklist.items {
        let (passed, source, evidence) = match &item.check {
            Check::Metric { condition } => {
                let owner = Owner::Item(item.id.clone());
                let outcome =
                    condition::compile::<ReadinessFacts>(&owner, condition).and_then(|program| {
                        let passed = condition::holds(&owner, condition, &program, facts)?;
                        Ok((passed, condition::evidence(&program, facts)))
                    });
                match outcome {
                    Ok((passed, evidence)) => (passed, Source::Metric, evidence),
                    Err(e) => (false, Source::Metric, e.to_string()),
                }
            }
            Check::Attested => {
                let latest = attestations
                    .iter()
                    .filter(|a| a.item == item.id && facts.phase_started_at <= a.at && a.at <= now)
                    .max_by_key(|a| a.at);
                match latest {
                    Some(a) => (
                        true,
                        Source::Attested,
                        format!("attested by {} at {}: {}", a.by, a.at, a.evidence),
                    ),
                    None => (
                        false,
                        Source::Missing,
                        format!(
                            "not attested since {} started at {}",
                            facts.phase, facts.phase_started_at
                        ),
                    ),
                }
            }
        };
        items.push(ItemResult {
            id: item.id.clone(),
            title: item.title.clone(),
            category: item.category,
            weight: item.weight,
            required: item.required,
            passed,
            source,
            evidence,
        });
    }

    let categories: Vec<CategoryScore> = Category::ALL
        .into_iter()
        .filter_map(|name| {
            let of: Vec<&ItemResult> = items.iter().filter(|i| i.category == name).collect();
            if of.is_empty() {
                return None;
            }
            let max_points = of.iter().map(|i| i.weight).sum();
            let points = of.iter().filter(|i| i.passed).map(|i| i.weight).sum();
            Some(CategoryScore {
                name,
                points,
                max_points,
                score: ratio(points, max_points),
            })
        })
        .collect();
    let max_points: u32 = items.iter().map(|i| i.weight).sum();
    let points: u32 = items.iter().filter(|i| i.passed).map(|i| i.weight).sum();
    let blockers: Vec<String> = items
        .iter()
        .filter(|i| i.required && !i.passed)
        .map(|i| match i.source {
            Source::Missing => format!("Required: {}: {}", i.title, i.evidence),
            _ => format!("Required: {}: not met ({})", i.title, i.evidence),
        })
        .collect();
    let status = if !blockers.is_empty() || !reaches(points, max_points, 90) {
        Status::NeedsWork
    } else if reaches(points, max_points, 95) {
        Status::Ready
    } else {
        Status::AlmostReady
    };
    let score = ratio(points, max_points);
    Assessment {
        phase: facts.phase,
        assessed_at: now,
        score,
        points,
        max_points,
        status,
        categories,
        items,
        overall: Overall { score, blockers },
    }
}

/// kamachiq's default checklist: 80 points, technical 35, process 25, organizational 20. Every
/// item kamachiq can measure is a metric; the rest are attested.
///
/// | id | weight | required | check |
/// |---|---|---|---|
/// | `tech.success_rate` | 6 | yes | `successRate >= 0.995` |
/// | `tech.error_rate` | 5 | yes | `errorRate <= 0.005` |
/// | `tech.rollback_rate` | 4 | no | `rollbackRate <= 0.02` |
/// | `tech.no_critical_incidents` | 5 | yes | `criticalIncidents == 0` |
/// | `tech.volume` | 4 | yes | `actionsTotal >= 100` |
/// | `tech.breakers` | 4 | yes | `revertRulesEnabled >= 1 && breakerRulesEnabled >= 3` |
/// | `tech.monitoring` | 4 | no | `monitoringEnabled` |
/// | `tech.rollback_rehearsed` | 3 | no | attested |
/// | `process.time_in_phase` | 5 | yes | `daysInPhase >= minDaysInPhase` |
/// | `process.breaker_events_resolved` | 5 | yes | `unresolvedBreakerEvents == 0` |
/// | `process.approval_rate` | 4 | no | `approvalRate >= 0.95` |
/// | `process.emergency_stop` | 4 | yes | `emergencyStopExercised` |
/// | `process.runbook` | 3 | yes | attested |
/// | `process.incident_drill` | 4 | no | attested |
/// | `org.on_call` | 6 | yes | attested |
/// | `org.stakeholder_signoff` | 6 | yes | attested |
/// | `org.escalation_contacts` | 4 | no | attested |
/// | `org.approver_training` | 4 | no | attested |
pub fn default_checklist() -> Checklist {
    use Category::{Organizational, Process, Technical};
    let metric = |condition: String| Check::Metric { condition };
    let item = |id: &str, category, title: &str, weight, required, check| Item {
        id: id.to_owned(),
        category,
        title: title.to_owned(),
        weight,
        required,
        check,
    };
    Checklist {
        items: vec![
            item(
                "tech.success_rate",
                Technical,
                "At least 99.5% of automated actions succeed",
                6,
                true,
                metric(format!("successRate >= {SUCCESS_RATE_MIN}")),
            ),
            item(
                "tech.error_rate",
                Technical,
                "At most 0.5% of automated actions fail",
                5,
                true,
                metric(format!("errorRate <= {ERROR_RATE_MAX}")),
            ),
            item(
                "tech.rollback_rate",
                Technical,
                "At most 2% of automated actions are rolled back",
                4,
                false,
                metric(format!("rollbackRate <= {ROLLBACK_RATE_MAX}")),
            ),
            item(
                "tech.no_critical_incidents",
                Technical,
                "No critical incident was attributed to an automated action in this phase",
                5,
                true,
                metric("criticalIncidents == 0".to_owned()),
            ),
            item(
                "tech.volume",
                Technical,
                "At least 100 automated actions were observed, enough to judge the rates",
                4,
                true,
                metric(format!("actionsTotal >= {MIN_ACTIONS}")),
            ),
            item(
                "tech.breakers",
                Technical,
                "Circuit breakers watch the actions: at least 3 rules enabled, one reverting to L3",
                4,
                true,
                metric("revertRulesEnabled >= 1 && breakerRulesEnabled >= 3".to_owned()),
            ),
            item(
                "tech.monitoring",
                Technical,
                "Metrics are scraped and alerts reach a person",
                4,
                false,
                metric("monitoringEnabled".to_owned()),
            ),
            item(
                "tech.rollback_rehearsed",
                Technical,
                "Rolling back a promotion was rehearsed in this phase",
                3,
                false,
                Check::Attested,
            ),
            item(
                "process.time_in_phase",
                Process,
                "The phase's validation period has passed",
                5,
                true,
                metric("daysInPhase >= minDaysInPhase".to_owned()),
            ),
            item(
                "process.breaker_events_resolved",
                Process,
                "Every circuit breaker event is resolved",
                5,
                true,
                metric("unresolvedBreakerEvents == 0".to_owned()),
            ),
            item(
                "process.approval_rate",
                Process,
                "Approvers approve at least 95% of what automation asks",
                4,
                false,
                metric(format!("approvalRate >= {APPROVAL_RATE_MIN}")),
            ),
            item(
                "process.emergency_stop",
                Process,
                "The emergency stop was exercised in this phase",
                4,
                true,
                metric("emergencyStopExercised".to_owned()),
            ),
            item(
                "process.runbook",
                Process,
                "The operator runbook was reviewed for the next phase",
                3,
                true,
                Check::Attested,
            ),
            item(
                "process.incident_drill",
                Process,
                "An incident response drill was held in this phase",
                4,
                false,
                Check::Attested,
            ),
            item(
                "org.on_call",
                Organizational,
                "An on-call rota covers the hours automation runs",
                6,
                true,
                Check::Attested,
            ),
            item(
                "org.stakeholder_signoff",
                Organizational,
                "Stakeholders signed off on expanding autonomy",
                6,
                true,
                Check::Attested,
            ),
            item(
                "org.escalation_contacts",
                Organizational,
                "Escalation contacts are current",
                4,
                false,
                Check::Attested,
            ),
            item(
                "org.approver_training",
                Organizational,
                "Approvers are trained on the approvals inbox and rollback",
                4,
                false,
                Check::Attested,
            ),
        ],
    }
}

#[cfg(test)]
mod tests;
