//! Prometheus metrics. Counters and histograms are fed by the event feed (so runs driven by any
//! process on the store count) and by a middleware that times every request; gauges of work in
//! flight are read from the store at scrape time.
//!
//! `/metrics` answers OpenMetrics to a scraper that asks for it (Prometheus does) and the
//! classic Prometheus text format otherwise, which is what `promtool check metrics` reads.
//! Metric names carry no tenant: the endpoint needs the `metrics` or `admin` role.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kamachiq_domain::run::StepState;
use kamachiq_domain::{DeliverableState, Event, EventKind, RunState};
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
            }),
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
