//! `GET /v1/kamachiq/summary`: the tenant's runs in figures.

use axum::http::StatusCode;
use kamachiq_domain::Role;
use serde_json::json;

use crate::support::{Server, plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_run_counts_as_a_success_with_no_handoffs() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "ci", &[Role::Operator]).await;
    let run = server.submit(&token, &plan(3)).await;
    server.wait_for(&token, &run, "succeeded").await;

    let reply = server.get("/v1/kamachiq/summary", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let summary = reply.json();
    assert_eq!(summary["tenant"], "tenant-a");
    assert_eq!(
        summary["runs"],
        json!({"total": 1, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0})
    );
    assert_eq!(summary["success_rate"], 1.0);
    assert!(summary["mean_run_duration_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(summary["deliverables"]["total"], 3);
    assert_eq!(summary["deliverables"]["succeeded"], 3);
    assert_eq!(summary["blocked_deliverables"], 0);
    assert_eq!(summary["tokens_used"], 0);
    assert_eq!(summary["cost_usd"], 0.0);
    assert_eq!(summary["handoffs_avoided"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_runs_has_no_success_rate() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "lead", &[Role::ExecSponsor]).await;
    let reply = server.get("/v1/kamachiq/summary", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let summary = reply.json();
    assert_eq!(summary["runs"]["total"], 0);
    assert_eq!(summary["success_rate"], serde_json::Value::Null);
    assert_eq!(
        summary["mean_run_duration_seconds"],
        serde_json::Value::Null
    );
    assert_eq!(summary["handoffs_avoided"], 0);
}
