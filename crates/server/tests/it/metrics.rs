//! `GET /metrics`: Prometheus text by default, OpenMetrics on request.

use std::time::Instant;

use axum::body::Body;
use axum::http::header::ACCEPT;
use axum::http::{Method, StatusCode};
use kamachiq_domain::Role;

use crate::support::{RUN_DEADLINE, Server, call, plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_for_a_metrics_token() {
    let server = Server::start().await;
    let scraper = server
        .token("tenant-a", "prometheus", &[Role::Metrics])
        .await;
    let health = server.get_anonymous("/health").await;
    assert_eq!(health.status, StatusCode::OK);

    let reply = server.get("/metrics", &scraper).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.text();
    for expected in [
        "# TYPE kamachiq_runs_total counter",
        "kamachiq_runs_total{state=\"succeeded\"} 0",
        "kamachiq_runs_total{state=\"failed\"} 0",
        "kamachiq_runs_total{state=\"cancelled\"} 0",
        "# TYPE kamachiq_run_duration_seconds histogram",
        "kamachiq_run_duration_seconds_count{state=\"succeeded\"} 0",
        "# TYPE kamachiq_governance_block_total counter",
        "kamachiq_governance_block_total 0",
        "# TYPE kamachiq_http_requests_total counter",
        "kamachiq_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "kamachiq_queue_depth 0",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "{expected} missing from:\n{text}"
        );
    }
    assert!(!text.contains("# EOF"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_openmetrics_when_asked() {
    let server = Server::start().await;
    let admin = server.token("tenant-a", "admin", &[Role::Admin]).await;
    let reply = server
        .send(
            call(Method::GET, "/metrics", Some(&admin))
                .header(
                    ACCEPT,
                    "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = reply.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.lines().any(|l| l == "# TYPE kamachiq_runs counter"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_is_counted() {
    let server = Server::start().await;
    let token = server
        .token("tenant-a", "ci", &[Role::Operator, Role::Metrics])
        .await;
    let run = server.submit(&token, &plan(1)).await;
    server.wait_for(&token, &run, "succeeded").await;
    // The event feed counts the run once it reads the run's last event from the log.
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        let text = server.get("/metrics", &token).await.text();
        if text
            .lines()
            .any(|l| l == "kamachiq_runs_total{state=\"succeeded\"} 1")
        {
            assert!(
                text.lines()
                    .any(|l| l == "kamachiq_run_duration_seconds_count{state=\"succeeded\"} 1"),
                "{text}"
            );
            assert!(
                text.lines().any(|l| l == "kamachiq_runs_submitted_total 1"),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run was never counted:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
