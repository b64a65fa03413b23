//! Prometheus metrics. Counters and histograms are fed by the event feed (so runs driven by any
//! process on the store count) and by a middleware that times every request; gauges of work in
//! flight are read from the store at scrape time.
//!
//! `/metrics` answers OpenMetrics to a scraper that asks for it (Prometheus does) and the
//! classic Prometheus text format otherwise, which is what `promtool check metrics` reads.
//! The endpoint needs the `metrics` or `admin` role.
//!
//! Governance metrics (`kamachiq_governance_*`, `kamachiq_approvals_pending`) are read from
//! the store at scrape time, per governed tenant: the `tenant` label is the only one that
//! names a tenant (tenants are few; runs and deliverables are never labels). Action outcomes
//! are counted from the store's record of them, incrementally, from the first scrape on; the
//! approval latency from `approval_decided` events.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableState, Event, EventKind, RunState};
use kamachiq_governance::{Assessment, GovernanceState, Phase, WindowMetrics};
use kamachiq_store::Load;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

type Labels = Vec<(&'static str, String)>;

/// Every metric kamachiq exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    runs: Family<Labels, Counter>,
    runs_submitted: Counter,
    run_duration: Family<Labels, Histogram, fn() -> Histogram>,
    governance_blocks: Counter,
    deliverables_finished: Family<Labels, Counter>,
    step_duration: Family<Labels, Histogram, fn() -> Histogram>,
    deliverables: Family<Labels, Gauge>,
    queue_depth: Gauge,
    http_requests: Family<Labels, Counter>,
    http_duration: Family<Labels, Histogram, fn() -> Histogram>,
    phase_info: Family<Labels, Gauge>,
    time_in_phase: Family<Labels, Gauge>,
    /// Success, error, rollback and approval rates, in that order.
    rates: [Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>; 4],
    actions: Family<Labels, Counter>,
    /// The store's action outcomes counted so far (`None` before the first scrape).
    actions_seen: std::sync::Mutex<Option<i64>>,
    readiness: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    breaker_events: Family<Labels, Counter>,
    breaker_unresolved: Gauge,
    approvals_pending: Family<Labels, Gauge>,
    approval_latency: Histogram,
    /// When this process last noted a scrape in the store (readiness's monitoring fact).
    noted: std::sync::Mutex<Option<Instant>>,
}

/// How often a scrape is noted in the store: readiness asks whether one happened in a day.
const NOTE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Buckets of approval latencies: 1 s to about 6 days.
fn approval_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 10))
}

/// One governed tenant's figures, read from the store at scrape time.
#[derive(Clone, Debug)]
pub struct TenantGovernance {
    pub tenant: String,
    pub state: GovernanceState,
    /// Seconds since the phase started.
    pub in_phase_seconds: u64,
    /// The last 24 hours of action outcomes.
    pub day: WindowMetrics,
    /// People's approvals over their decisions in the last 24 hours (1 when none).
    pub approval_rate: f64,
    pub readiness: Assessment,
}

/// The governance figures of a scrape.
#[derive(Clone, Debug, Default)]
pub struct GovernanceSnapshot {
    pub tenants: Vec<TenantGovernance>,
    /// Breaker events of every tenant by severity: ever, and unresolved.
    pub breaker_events: Vec<(kamachiq_governance::Severity, u64, u64)>,
    /// Approval requests waiting, per tenant.
    pub approvals_pending: Vec<(String, u64)>,
    /// Action outcomes recorded since the last scrape: tenant, action, outcome, count.
    pub actions: Vec<(String, &'static str, &'static str, u64)>,
}

/// Buckets of run durations: 1 s to about 9 hours.
fn run_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// Buckets of step durations: 50 ms to about 3.6 hours.
fn step_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 18))
}

/// Buckets of request latencies: 100 µs to about 15 s.
fn http_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.5, 14))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let runs = Family::<Labels, Counter>::default();
        registry.register(
            "kamachiq_runs",
            "Runs finished, by final state",
            runs.clone(),
        );
        let runs_submitted = Counter::default();
        registry.register(
            "kamachiq_runs_submitted",
            "Runs submitted",
            runs_submitted.clone(),
        );
        let run_duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(run_buckets);
        registry.register(
            "kamachiq_run_duration_seconds",
            "Wall time of finished runs, by final state",
            run_duration.clone(),
        );
        let governance_blocks = Counter::default();
        registry.register(
            "kamachiq_governance_block",
            "Deliverables a policy decision blocked",
            governance_blocks.clone(),
        );
        let deliverables_finished = Family::<Labels, Counter>::default();
        registry.register(
            "kamachiq_deliverables_finished",
            "Deliverables that reached a final state, by state",
            deliverables_finished.clone(),
        );
        let step_duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(step_buckets);
        registry.register(
            "kamachiq_step_duration_seconds",
            "Wall time of step attempts, by how they ended",
            step_duration.clone(),
        );
        let deliverables = Family::<Labels, Gauge>::default();
        registry.register(
            "kamachiq_deliverables",
            "Deliverables of running runs, by state",
            deliverables.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "kamachiq_queue_depth",
            "Deliverables ready to start (every dependency done) in running runs",
            queue_depth.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "kamachiq_http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(http_buckets);
        registry.register(
            "kamachiq_http_request_duration_seconds",
            "Time to answer HTTP requests, by method and route",
            http_duration.clone(),
        );
        let phase_info = Family::<Labels, Gauge>::default();
        registry.register(
            "kamachiq_governance_phase_info",
            "The autonomy phase of each governed tenant: 1 for its current phase, 0 for the others",
            phase_info.clone(),
        );
        // In seconds, not days: Prometheus wants base units (promtool refuses `_days`).
        let time_in_phase = Family::<Labels, Gauge>::default();
        registry.register(
            "kamachiq_governance_time_in_phase_seconds",
            "Time since each governed tenant's phase started (its days in phase, in seconds)",
            time_in_phase.clone(),
        );
        let rates: [Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>; 4] =
            Default::default();
        for (family, (name, help)) in rates.iter().zip([
            (
                "kamachiq_governance_success_rate",
                "Share of each governed tenant's action outcomes of the last 24 hours that succeeded",
            ),
            (
                "kamachiq_governance_error_rate",
                "Share of each governed tenant's action outcomes of the last 24 hours that failed",
            ),
            (
                "kamachiq_governance_rollback_rate",
                "Share of each governed tenant's action outcomes of the last 24 hours that were rollbacks",
            ),
            (
                "kamachiq_governance_approval_rate",
                "Share of people's decisions on each governed tenant's approval requests of the last 24 hours that approved (1 without decisions)",
            ),
        ]) {
            registry.register(name, help, family.clone());
        }
        let actions = Family::<Labels, Counter>::default();
        registry.register(
            "kamachiq_governance_actions",
            "Automated action outcomes recorded since this server started, by tenant, action and status",
            actions.clone(),
        );
        let readiness = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "kamachiq_governance_readiness_score",
            "Readiness of each governed tenant, 0 to 1, by category and overall",
            readiness.clone(),
        );
        let breaker_events = Family::<Labels, Counter>::default();
        registry.register(
            "kamachiq_governance_breaker_events",
            "Circuit breaker events recorded on the store, by severity",
            breaker_events.clone(),
        );
        let breaker_unresolved = Gauge::default();
        registry.register(
            "kamachiq_governance_breaker_events_unresolved",
            "Circuit breaker events nobody resolved yet, of every tenant",
            breaker_unresolved.clone(),
        );
        let approvals_pending = Family::<Labels, Gauge>::default();
        registry.register(
            "kamachiq_approvals_pending",
            "Approval requests waiting for a person (pending or escalated), by tenant",
            approvals_pending.clone(),
        );
        let approval_latency = approval_buckets();
        registry.register(
            "kamachiq_approval_latency_seconds",
            "Time from an approval request to a person's decision (or its expiry)",
            approval_latency.clone(),
        );
        for severity in ["low", "medium", "high", "critical"] {
            let _ = breaker_events.get_or_create(&vec![("severity", severity.to_owned())]);
        }
        // Every series of a final state exists from the start, so dashboards and alerts see
        // zeros rather than nothing.
        for state in [RunState::Succeeded, RunState::Failed, RunState::Cancelled] {
            let labels = vec![("state", state.to_string())];
            let _ = runs.get_or_create(&labels);
            let _ = run_duration.get_or_create(&labels);
        }
        for state in DeliverableState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
        {
            let _ = deliverables_finished.get_or_create(&vec![("state", state.to_string())]);
        }
        for state in StepState::ALL
            .into_iter()
            .filter(|s| *s != StepState::Running)
        {
            let _ = step_duration.get_or_create(&vec![("state", state.to_string())]);
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                runs,
                runs_submitted,
                run_duration,
                governance_blocks,
                deliverables_finished,
                step_duration,
                deliverables,
                queue_depth,
                http_requests,
                http_duration,
                phase_info,
                time_in_phase,
                rates,
                actions,
                actions_seen: std::sync::Mutex::new(None),
                readiness,
                breaker_events,
                breaker_unresolved,
                approvals_pending,
                approval_latency,
                noted: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The latest action outcome counted, if a scrape counted any yet.
    pub fn actions_seen(&self) -> Option<i64> {
        *self
            .inner
            .actions_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts outcomes up to sequence number `seen`.
    pub fn set_actions_seen(&self, seen: i64) {
        *self
            .inner
            .actions_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(seen);
    }

    /// Sets the governance figures of a scrape.
    pub fn set_governance(&self, g: &GovernanceSnapshot) {
        let m = &self.inner;
        for t in &g.tenants {
            let tenant = || ("tenant", t.tenant.clone());
            for phase in Phase::ALL {
                m.phase_info
                    .get_or_create(&vec![tenant(), ("phase", phase.to_string())])
                    .set(i64::from(phase == t.state.current_phase));
            }
            m.time_in_phase
                .get_or_create(&vec![tenant()])
                .set(i64::try_from(t.in_phase_seconds).unwrap_or(i64::MAX));
            for (family, value) in m.rates.iter().zip([
                t.day.success_rate,
                t.day.error_rate,
                t.day.rollback_rate,
                t.approval_rate,
            ]) {
                family.get_or_create(&vec![tenant()]).set(value);
            }
            m.readiness
                .get_or_create(&vec![tenant(), ("category", "overall".to_owned())])
                .set(t.readiness.score);
            for c in &t.readiness.categories {
                let category = serde_json::to_value(c.name)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                m.readiness
                    .get_or_create(&vec![tenant(), ("category", category)])
                    .set(c.score);
            }
        }
        let mut unresolved = 0;
        for (severity, total, open) in &g.breaker_events {
            let label = serde_json::to_value(severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let counter = m.breaker_events.get_or_create(&vec![("severity", label)]);
            let seen = counter.get();
            if *total > seen {
                counter.inc_by(total - seen);
            }
            unresolved += open;
        }
        m.breaker_unresolved
            .set(i64::try_from(unresolved).unwrap_or(i64::MAX));
        for t in &g.tenants {
            m.approvals_pending
                .get_or_create(&vec![("tenant", t.tenant.clone())])
                .set(0);
        }
        for (tenant, n) in &g.approvals_pending {
            m.approvals_pending
                .get_or_create(&vec![("tenant", tenant.clone())])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        for (tenant, action, status, n) in &g.actions {
            m.actions
                .get_or_create(&vec![
                    ("tenant", tenant.clone()),
                    ("action", (*action).to_owned()),
                    ("status", (*status).to_owned()),
                ])
                .inc_by(*n);
        }
    }

    /// Counts what a committed event records.
    pub fn observe(&self, event: &Event) {
        let m = &self.inner;
        let label = |key: &'static str| {
            event.data[key]
                .as_str()
                .map_or_else(|| "unknown".to_owned(), str::to_owned)
        };
        let seconds = || event.data["duration_ms"].as_f64().map(|ms| ms / 1000.0);
        match event.kind {
            EventKind::RunStarted => {
                m.runs_submitted.inc();
            }
            EventKind::RunFinished => {
                let state = vec![("state", label("state"))];
                m.runs.get_or_create(&state).inc();
                if let Some(s) = seconds() {
                    m.run_duration.get_or_create(&state).observe(s);
                }
            }
            EventKind::StepFinished => {
                if let Some(s) = seconds() {
                    m.step_duration
                        .get_or_create(&vec![("state", label("state"))])
                        .observe(s);
                }
            }
            EventKind::DeliverableSucceeded => self.finished(DeliverableState::Succeeded),
            EventKind::DeliverableFailed => self.finished(DeliverableState::Failed),
            EventKind::DeliverableSkipped => self.finished(DeliverableState::Skipped),
            EventKind::DeliverableCancelled => self.finished(DeliverableState::Cancelled),
            EventKind::DeliverableBlocked => {
                m.governance_blocks.inc();
            }
            EventKind::ApprovalDecided => {
                // A person's decision or an expiry; not what auto-approval or a withdrawal
                // closed.
                let by = event.data["by"].as_str();
                let status = event.data["status"].as_str();
                if by != Some(kamachiq_engine::AUTO_APPROVER)
                    && status != Some("withdrawn")
                    && let Some(ms) = event.data["latency_ms"].as_f64()
                {
                    m.approval_latency.observe(ms / 1000.0);
                }
            }
            _ => {}
        }
    }

    fn finished(&self, state: DeliverableState) {
        self.inner
            .deliverables_finished
            .get_or_create(&vec![("state", state.to_string())])
            .inc();
    }

    /// Sets the gauges of work in flight.
    pub fn set_load(&self, load: &Load) {
        let m = &self.inner;
        let c = &load.deliverables;
        for (state, n) in [
            (DeliverableState::Pending, c.pending),
            (DeliverableState::Running, c.running),
            (DeliverableState::Succeeded, c.succeeded),
            (DeliverableState::Failed, c.failed),
            (DeliverableState::Skipped, c.skipped),
            (DeliverableState::Blocked, c.blocked),
            (DeliverableState::Cancelled, c.cancelled),
        ] {
            m.deliverables
                .get_or_create(&vec![("state", state.to_string())])
                .set(i64::from(n));
        }
        m.queue_depth.set(i64::from(load.queue_depth));
    }

    /// The exposition, in OpenMetrics or in the classic Prometheus text format.
    pub fn render(&self, openmetrics: bool) -> String {
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.inner.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        if openmetrics {
            text
        } else {
            to_prometheus_text(&text)
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// OpenMetrics to the Prometheus text format (0.0.4): a counter family is named with its
/// `_total` suffix in `HELP` and `TYPE`, and `UNIT` and `EOF` lines go.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{prefix}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Middleware: counts and times every request by its route template (never the raw path, so
/// ids do not explode the label space).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let m = &state.metrics().inner;
    m.http_requests
        .get_or_create(&vec![
            ("method", method.clone()),
            ("route", route.clone()),
            ("status", response.status().as_u16().to_string()),
        ])
        .inc();
    m.http_duration
        .get_or_create(&vec![("method", method), ("route", route)])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Reads the governance figures from the store for a scrape, sets them, and notes the scrape
/// (at most once a minute) for readiness's monitoring fact.
pub async fn scrape_governance(state: &AppState) -> Result<(), crate::error::ApiError> {
    let engine = state.engine();
    let store = engine.store();
    let now = engine.now();
    let metrics = state.metrics();
    let note = {
        let mut noted = metrics
            .inner
            .noted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = noted.is_none_or(|at| at.elapsed() >= NOTE_EVERY);
        if due {
            *noted = Some(Instant::now());
        }
        due
    };
    if note {
        store.observe(kamachiq_store::METRICS_SCRAPED, now).await?;
    }
    let day_ago =
        kamachiq_domain::Timestamp::from_millis(now.as_millis().saturating_sub(86_400_000));
    let mut snapshot = GovernanceSnapshot::default();
    for governed in store.governed_tenants().await? {
        let tenant = &governed.tenant;
        let day = store.action_counts(tenant, day_ago, now).await?;
        let decisions = store.approval_decisions(tenant, day_ago).await?;
        let decided = decisions.approved + decisions.denied;
        snapshot.tenants.push(TenantGovernance {
            tenant: tenant.to_string(),
            in_phase_seconds: now.since(governed.state.phase_started_at).as_secs(),
            state: governed.state.clone(),
            day,
            approval_rate: if decided == 0 {
                1.0
            } else {
                decisions.approved as f64 / decided as f64
            },
            readiness: engine.readiness(tenant).await?,
        });
    }
    snapshot.breaker_events = store.breaker_event_totals().await?;
    snapshot.approvals_pending = store
        .open_approval_counts()
        .await?
        .into_iter()
        .map(|(t, n)| (t.to_string(), n))
        .collect();
    // Outcomes are counted from the first scrape on, like the counters fed by events.
    let seen = match metrics.actions_seen() {
        Some(seen) => seen,
        None => store.latest_action_seq().await?,
    };
    let (last, totals) = store.action_totals_after(seen).await?;
    snapshot.actions = totals
        .into_iter()
        .map(|(tenant, action, outcome, n)| {
            let status = match outcome {
                kamachiq_governance::Outcome::Succeeded => "succeeded",
                kamachiq_governance::Outcome::Failed => "failed",
                kamachiq_governance::Outcome::RolledBack => "rolled_back",
            };
            (tenant.to_string(), action.as_str(), status, n)
        })
        .collect();
    metrics.set_actions_seen(last);
    metrics.set_governance(&snapshot);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_total_name_in_prometheus_text() {
        let om = "# HELP kamachiq_runs Runs finished.\n# TYPE kamachiq_runs counter\n\
                  kamachiq_runs_total{state=\"failed\"} 1\n# HELP q Depth.\n# TYPE q gauge\n\
                  # UNIT q seconds\nq 3\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP kamachiq_runs_total Runs finished.\n# TYPE kamachiq_runs_total counter\n\
             kamachiq_runs_total{state=\"failed\"} 1\n# HELP q Depth.\n# TYPE q gauge\nq 3\n"
        );
    }

    #[test]
    fn the_seed_metrics_are_always_exposed() {
        let text = Metrics::new().render(false);
        for name in [
            "# TYPE kamachiq_runs_total counter",
            "# TYPE kamachiq_run_duration_seconds histogram",
            "# TYPE kamachiq_governance_block_total counter",
            "kamachiq_governance_block_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
