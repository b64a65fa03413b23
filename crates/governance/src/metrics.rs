//! What automated actions did, and the numbers of a time window over them.
//!
//! Every automated action that finishes becomes an [`ActionRecord`]. [`metrics`] sums the
//! records of a window into [`WindowMetrics`], the numbers circuit breakers and the weekly cycle
//! judge; [`Recent`] keeps the records of the last hours sorted by time, so the windows breakers
//! look at (minutes to a day) are found by binary search rather than by a scan.
//!
//! **Window boundaries.** A window of length `w` ending at `now` holds the records with
//! `now - w < at <= now`: a record exactly at `now - w` is *out*, one exactly at `now` is *in*.
//! Windows laid end to end thus count each record once, and an action recorded at the instant
//! a breaker looks is already seen.

use std::collections::BTreeMap;
use std::time::Duration;

use kamachiq_domain::Timestamp;
use kamachiq_policy::Action;
use serde::{Deserialize, Serialize};

/// How an automated action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// It completed, and was later undone (its merge was rolled back).
    RolledBack,
}

/// One finished automated action. JSON names: `action`, `outcome`, `durationMs`, `tokens`,
/// `costMicroUsd`, `critical`, `at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    pub action: Action,
    pub outcome: Outcome,
    pub duration_ms: u64,
    pub tokens: u64,
    /// What it cost, in micro-dollars (1 USD = 1,000,000).
    pub cost_micro_usd: u64,
    /// Whether a critical incident was attributed to it.
    #[serde(default)]
    pub critical: bool,
    /// When it finished.
    pub at: Timestamp,
}

/// The numbers of one window. Every field is also a variable of circuit-breaker conditions,
/// under its JSON name; the JSON names are a contract (the seed's dashboards and `jq` read
/// `errorRate`, `successRate`, ...):
///
/// | name | meaning |
/// |---|---|
/// | `total` | actions that finished in the window |
/// | `succeeded`, `failed`, `rolledBack` | of those, by outcome |
/// | `criticalIncidents` | of those, how many a critical incident was attributed to |
/// | `successRate`, `errorRate`, `rollbackRate` | `succeeded`, `failed`, `rolledBack` over `total`; 0 when `total` is 0 |
/// | `costUsd` | what they cost, in US dollars |
/// | `costRatePerHour` | `costUsd` over the window's length in hours |
/// | `p50Ms`, `p95Ms`, `p99Ms` | duration percentiles (nearest rank), 0 when `total` is 0 |
/// | `byAction` | the same numbers for each action type present, keyed by its name (`run_step`); empty, and left out of JSON, inside itself |
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowMetrics {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub critical_incidents: u64,
    pub success_rate: f64,
    pub error_rate: f64,
    pub rollback_rate: f64,
    pub cost_usd: f64,
    pub cost_rate_per_hour: f64,
    pub p50_ms: u64,
    pub p95_ms: u64,
    pub p99_ms: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_action: BTreeMap<String, WindowMetrics>,
}

impl WindowMetrics {
    /// The numbers of one action type, if it has any record in the window.
    pub fn action(&self, action: Action) -> Option<&WindowMetrics> {
        self.by_action.get(action.as_str())
    }
}

/// The numbers of the records in the window `(from, to]`, in any order; records outside are
/// ignored.
pub fn metrics(records: &[ActionRecord], from: Timestamp, to: Timestamp) -> WindowMetrics {
    let inside: Vec<&ActionRecord> = records
        .iter()
        .filter(|r| from < r.at && r.at <= to)
        .collect();
    summarise(&inside, to.since(from), true)
}

/// The numbers of `records`, all taken to be in a window of length `span`; with `by_action`,
/// also per action type.
fn summarise(records: &[&ActionRecord], span: Duration, by_action: bool) -> WindowMetrics {
    let mut m = WindowMetrics {
        total: records.len() as u64,
        ..WindowMetrics::default()
    };
    let mut cost_micro_usd: u128 = 0;
    let mut durations = Vec::with_capacity(records.len());
    for r in records {
        match r.outcome {
            Outcome::Succeeded => m.succeeded += 1,
            Outcome::Failed => m.failed += 1,
            Outcome::RolledBack => m.rolled_back += 1,
        }
        m.critical_incidents += u64::from(r.critical);
        cost_micro_usd += u128::from(r.cost_micro_usd);
        durations.push(r.duration_ms);
    }
    if m.total > 0 {
        let total = m.total as f64;
        m.success_rate = m.succeeded as f64 / total;
        m.error_rate = m.failed as f64 / total;
        m.rollback_rate = m.rolled_back as f64 / total;
    }
    m.cost_usd = cost_micro_usd as f64 / 1_000_000.0;
    let hours = span.as_secs_f64() / 3_600.0;
    if hours > 0.0 {
        m.cost_rate_per_hour = m.cost_usd / hours;
    }
    durations.sort_unstable();
    m.p50_ms = percentile(&durations, 50);
    m.p95_ms = percentile(&durations, 95);
    m.p99_ms = percentile(&durations, 99);
    if by_action {
        for action in Action::ALL {
            let of_type: Vec<&ActionRecord> = records
                .iter()
                .copied()
                .filter(|r| r.action == action)
                .collect();
            if !of_type.is_empty() {
                m.by_action
                    .insert(action.as_str().to_owned(), summarise(&of_type, span, false));
            }
        }
    }
    m
}

/// The nearest-rank percentile of sorted `values`: the smallest value with at least `p` percent
/// of the values at or below it; 0 for no values.
fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// `t - d`, saturating.
pub(crate) fn before(t: Timestamp, d: Duration) -> Timestamp {
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millis(t.as_millis().saturating_sub(ms))
}

/// The records of the last `horizon`, sorted by time, for windows that end now.
///
/// Records may arrive out of order (several workers report); each is inserted in its place.
/// A window longer than the horizon sees only what the buffer still holds, so make the horizon
/// at least the longest window asked for ([`crate::breaker::horizon_for`] gives it for a set of
/// rules). Pushing is O(log n) to find the place (O(1) for a record newer than all others, the
/// usual case) plus the shift of any newer ones; a window is found in O(log n) and summed in
/// time linear in its records.
#[derive(Clone, Debug)]
pub struct Recent {
    horizon: Duration,
    records: Vec<ActionRecord>,
}

impl Recent {
    /// An empty buffer that keeps records for `horizon`.
    pub fn new(horizon: Duration) -> Self {
        Self {
            horizon,
            records: Vec::new(),
        }
    }

    pub fn horizon(&self) -> Duration {
        self.horizon
    }

    /// Adds a record, keeping the buffer sorted by `at` (records with equal times keep the
    /// order they were pushed in).
    pub fn push(&mut self, record: ActionRecord) {
        let at = record.at;
        match self.records.last() {
            Some(last) if last.at > at => {
                let i = self.records.partition_point(|r| r.at <= at);
                self.records.insert(i, record);
            }
            _ => self.records.push(record),
        }
    }

    /// Drops the records that no window ending at `now` within the horizon can hold: those at
    /// or before `now - horizon`.
    pub fn prune(&mut self, now: Timestamp) {
        let cut = before(now, self.horizon);
        let keep_from = self.records.partition_point(|r| r.at <= cut);
        self.records.drain(..keep_from);
    }

    /// The records held, oldest first.
    pub fn records(&self) -> &[ActionRecord] {
        &self.records
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records in the window `(now - window, now]`, oldest first.
    pub fn in_window(&self, window: Duration, now: Timestamp) -> &[ActionRecord] {
        let from = before(now, window);
        let start = self.records.partition_point(|r| r.at <= from);
        let end = self.records.partition_point(|r| r.at <= now);
        &self.records[start..end.max(start)]
    }

    /// The numbers of the window `(now - window, now]`: of every action type with a
    /// breakdown in `byAction`, or of one type only (then `byAction` is empty, and the numbers
    /// equal that type's entry in the breakdown).
    pub fn metrics(
        &self,
        window: Duration,
        now: Timestamp,
        action: Option<Action>,
    ) -> WindowMetrics {
        let records = self
            .in_window(window, now)
            .iter()
            .filter(|r| action.is_none_or(|a| r.action == a));
        let records: Vec<&ActionRecord> = records.collect();
        summarise(&records, window, action.is_none())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const T0: i64 = 1_800_000_000_000;
    pub(crate) const MIN: i64 = 60_000;

    pub(crate) fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(T0 + ms)
    }

    pub(crate) fn record(action: Action, outcome: Outcome, ms: i64) -> ActionRecord {
        ActionRecord {
            action,
            outcome,
            duration_ms: 1_000,
            tokens: 100,
            cost_micro_usd: 10_000,
            critical: false,
            at: at(ms),
        }
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(60 * n)
    }

    #[test]
    fn an_empty_window_is_all_zeros() {
        let m = metrics(&[], at(0), at(5 * MIN));
        assert_eq!(m, WindowMetrics::default());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "total": 0, "succeeded": 0, "failed": 0, "rolledBack": 0,
                "criticalIncidents": 0, "successRate": 0.0, "errorRate": 0.0,
                "rollbackRate": 0.0, "costUsd": 0.0, "costRatePerHour": 0.0,
                "p50Ms": 0, "p95Ms": 0, "p99Ms": 0
            })
        );
    }

    #[test]
    fn counts_rates_cost_and_breakdown() {
        let mut records = vec![
            record(Action::RunStep, Outcome::Succeeded, 1),
            record(Action::RunStep, Outcome::Failed, 2),
            record(Action::RunStep, Outcome::Succeeded, 3),
            record(Action::Merge, Outcome::RolledBack, 4),
        ];
        records[1].critical = true;
        records[3].cost_micro_usd = 2_500_000;
        let m = metrics(&records, at(0), at(30 * MIN));
        assert_eq!(
            (m.total, m.succeeded, m.failed, m.rolled_back),
            (4, 2, 1, 1)
        );
        assert_eq!(m.critical_incidents, 1);
        assert_eq!(m.success_rate, 0.5);
        assert_eq!(m.error_rate, 0.25);
        assert_eq!(m.rollback_rate, 0.25);
        assert_eq!(m.cost_usd, 2.53);
        assert_eq!(
            m.cost_rate_per_hour, 5.06,
            "30 minutes: twice the cost per hour"
        );
        assert_eq!(
            m.by_action.keys().collect::<Vec<_>>(),
            ["merge", "run_step"]
        );
        let run = m.action(Action::RunStep).unwrap();
        assert_eq!((run.total, run.failed, run.critical_incidents), (3, 1, 1));
        assert_eq!(run.error_rate, 1.0 / 3.0);
        assert!(run.by_action.is_empty());
        assert_eq!(m.action(Action::Merge).unwrap().rollback_rate, 1.0);
        assert_eq!(m.action(Action::Provision), None);
    }

    #[test]
    fn json_names_are_camel_case_and_nested_breakdowns_are_omitted() {
        let m = metrics(
            &[record(Action::Provision, Outcome::Failed, 1)],
            at(0),
            at(MIN),
        );
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["errorRate"], 1.0);
        assert_eq!(json["byAction"]["provision"]["failed"], 1);
        assert_eq!(json["byAction"]["provision"].get("byAction"), None);
        let back: WindowMetrics = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let records: Vec<ActionRecord> = (1..=100)
            .map(|i| ActionRecord {
                duration_ms: i * 10,
                ..record(Action::RunStep, Outcome::Succeeded, i as i64)
            })
            .collect();
        let m = metrics(&records, at(0), at(MIN));
        assert_eq!((m.p50_ms, m.p95_ms, m.p99_ms), (500, 950, 990));

        let one = metrics(&records[..1], at(0), at(MIN));
        assert_eq!((one.p50_ms, one.p95_ms, one.p99_ms), (10, 10, 10));

        let mut three = records[..3].to_vec();
        three.reverse();
        let m = metrics(&three, at(0), at(MIN));
        assert_eq!((m.p50_ms, m.p95_ms, m.p99_ms), (20, 30, 30));
    }

    #[test]
    fn a_record_at_the_start_of_a_window_is_out_and_one_at_its_end_is_in() {
        let records = [
            record(Action::RunStep, Outcome::Failed, 0),
            record(Action::RunStep, Outcome::Succeeded, 5 * MIN),
        ];
        let m = metrics(&records, at(0), at(5 * MIN));
        assert_eq!((m.total, m.succeeded, m.failed), (1, 1, 0));

        let mut recent = Recent::new(mins(60));
        for r in records {
            recent.push(r);
        }
        let m = recent.metrics(mins(5), at(5 * MIN), None);
        assert_eq!((m.total, m.succeeded, m.failed), (1, 1, 0));
        let m = recent.metrics(mins(5), at(5 * MIN - 1), None);
        assert_eq!((m.total, m.failed), (1, 1), "one millisecond earlier");
    }

    #[test]
    fn a_zero_length_window_has_no_cost_rate() {
        let m = metrics(
            &[record(Action::Merge, Outcome::Succeeded, 0)],
            at(0),
            at(0),
        );
        assert_eq!(m.total, 0);
        assert_eq!(m.cost_rate_per_hour, 0.0);
    }

    #[test]
    fn recent_keeps_records_sorted_whatever_the_arrival_order() {
        let mut recent = Recent::new(mins(60));
        for ms in [5, 1, 3, 3, 9, 0] {
            let mut r = record(Action::RunStep, Outcome::Succeeded, ms * MIN);
            r.tokens = ms as u64;
            recent.push(r);
        }
        let order: Vec<i64> = recent
            .records()
            .iter()
            .map(|r| (r.at.as_millis() - T0) / MIN)
            .collect();
        assert_eq!(order, [0, 1, 3, 3, 5, 9]);
        assert_eq!(recent.len(), 6);
    }

    #[test]
    fn recent_windows_match_the_plain_function() {
        let mut recent = Recent::new(mins(24 * 60));
        let mut all = Vec::new();
        for i in 0..3_000_i64 {
            let action = Action::ALL[(i % 4) as usize];
            let outcome = match i % 7 {
                0 => Outcome::Failed,
                1 => Outcome::RolledBack,
                _ => Outcome::Succeeded,
            };
            let mut r = record(action, outcome, (i * 7_919) % (24 * 60 * MIN));
            r.duration_ms = (i as u64 * 31) % 5_000;
            all.push(r.clone());
            recent.push(r);
        }
        let now = at(24 * 60 * MIN);
        for window in [mins(1), mins(5), mins(15), mins(60), mins(24 * 60)] {
            let expected = metrics(&all, before(now, window), now);
            assert_eq!(recent.metrics(window, now, None), expected, "{window:?}");
            for action in Action::ALL {
                assert_eq!(
                    recent.metrics(window, now, Some(action)),
                    expected.action(action).cloned().unwrap_or_default(),
                    "{window:?} {action}"
                );
            }
        }
    }

    #[test]
    fn a_filtered_window_without_that_type_is_empty() {
        let mut recent = Recent::new(mins(60));
        recent.push(record(Action::RunStep, Outcome::Failed, MIN));
        assert_eq!(
            recent.metrics(mins(5), at(2 * MIN), Some(Action::Merge)),
            WindowMetrics::default()
        );
        assert_eq!(
            recent
                .metrics(mins(5), at(2 * MIN), Some(Action::RunStep))
                .failed,
            1
        );
    }

    #[test]
    fn records_after_now_are_not_counted() {
        let mut recent = Recent::new(mins(60));
        recent.push(record(Action::RunStep, Outcome::Failed, 10 * MIN));
        assert_eq!(recent.metrics(mins(5), at(5 * MIN), None).total, 0);
        assert_eq!(recent.in_window(mins(5), at(5 * MIN)), []);
    }

    #[test]
    fn prune_drops_what_the_horizon_no_longer_covers() {
        let mut recent = Recent::new(mins(60));
        for m in [0, 30, 60, 61, 90] {
            recent.push(record(Action::RunStep, Outcome::Succeeded, m * MIN));
        }
        recent.prune(at(120 * MIN));
        let left: Vec<i64> = recent
            .records()
            .iter()
            .map(|r| (r.at.as_millis() - T0) / MIN)
            .collect();
        assert_eq!(
            left,
            [61, 90],
            "a record exactly at now - horizon is dropped"
        );
        recent.prune(at(1_000 * MIN));
        assert!(recent.is_empty());
        assert_eq!(recent.horizon(), mins(60));
    }
}
