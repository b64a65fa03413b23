//! The emergency stop, pausing and spend over HTTP.

use axum::http::StatusCode;
use kamachiq_domain::{DeliverableId, Role, RunId, TenantId, Timestamp};
use kamachiq_store::{Change, UsageRecord};
use serde_json::json;

use crate::support::Server;

#[tokio::test]
async fn an_operator_stops_everything_and_an_admin_lifts_it() {
    let server = Server::start().await;
    let operator = server.token("tenant-a", "ops", &[Role::Operator]).await;
    let viewer = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    let admin = server.token("tenant-b", "root", &[Role::Admin]).await;

    let state = server.get("/v1/stop", &viewer).await.json();
    assert_eq!(state["stopped"], false);
    server
        .post("/v1/stop", &viewer)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let reply = server
        .post_json(
            "/v1/stop",
            &operator,
            &json!({"reason": "agent deleting files"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let stopped = reply.json();
    assert_eq!(stopped["stopped"], true);
    assert_eq!(stopped["changed"], true);
    assert_eq!(stopped["by"], "ops (tenant-a)");
    assert_eq!(stopped["reason"], "agent deleting files");
    // Stopping twice changes nothing and says who stopped first.
    let again = server.post("/v1/stop", &admin).await.json();
    assert_eq!(
        (again["changed"].clone(), again["by"].clone()),
        (json!(false), json!("ops (tenant-a)"))
    );

    // While stopped, a submitted run is kept but nothing of it runs.
    let plan = json!({"deliverables": [{"id": "x", "steps": [{"name": "dev", "run": "true"}]}]});
    let run = server.submit(&operator, &plan).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let view = server
        .get(&format!("/v1/workflows/{run}"), &operator)
        .await
        .json();
    assert_eq!(view["deliverables"][0]["state"], "pending", "{view:#}");
    // Policy denies everything meanwhile.
    let decision = server
        .post_json(
            "/v1/evaluate",
            &viewer,
            &json!({"action": "provision", "region": "local"}),
        )
        .await
        .json();
    assert_eq!(decision["decision"], "deny");
    assert_eq!(decision["reasons"][0]["code"], "emergency_stop");

    server
        .post("/v1/resume-all", &operator)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let lifted = server.post("/v1/resume-all", &admin).await.json();
    assert_eq!(
        (lifted["changed"].clone(), lifted["stopped"].clone()),
        (json!(true), json!(false))
    );
    server.wait_for(&operator, &run, "succeeded").await;
    let actions: Vec<String> = server
        .store
        .audit_records(None, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.action.clone())
        .collect();
    assert_eq!(actions, ["emergency_stop", "resume_all"]);
}

#[tokio::test]
async fn a_paused_run_waits_until_it_is_resumed() {
    let server = Server::start().await;
    let operator = server.token("tenant-a", "ops", &[Role::Operator]).await;
    let other = server.token("tenant-b", "ops", &[Role::Operator]).await;
    let plan = json!({"deliverables": [
        {"id": "slow", "steps": [{"name": "dev", "run": "sleep 30"}]}
    ]});
    let run = server.submit(&operator, &plan).await;
    server
        .wait_until(&operator, &run, "slow started", |v| {
            v["deliverables"][0]["state"] == "running"
        })
        .await;
    server
        .post(&format!("/v1/workflows/{run}/pause"), &other)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let paused = server
        .post(&format!("/v1/workflows/{run}/pause"), &operator)
        .await
        .json();
    assert_eq!(
        (paused["paused"].clone(), paused["changed"].clone()),
        (json!(true), json!(true))
    );
    // Its step is handed back; nothing takes the run while it is paused.
    server
        .wait_until(&operator, &run, "slow handed back", |v| {
            v["driver"].is_null() && v["deliverables"][0]["current_step"].is_null()
        })
        .await;
    let reply = server
        .post_json(
            &format!("/v1/workflows/{run}/resume"),
            &operator,
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    server
        .wait_until(&operator, &run, "slow running again", |v| {
            v["deliverables"][0]["attempts"] == 2
        })
        .await;
    server
        .post(&format!("/v1/workflows/{run}/cancel"), &operator)
        .await;
}

#[tokio::test]
async fn spend_is_grouped_for_the_callers_tenant_only() {
    let server = Server::start().await;
    let viewer = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    let run = RunId::parse(
        server
            .submit(
                &server.token("tenant-a", "ops", &[Role::Operator]).await,
                &json!({"deliverables": [{"id": "x", "steps": [{"name": "dev", "run": "true"}]}]}),
            )
            .await,
    )
    .unwrap();
    let record = |tenant: &str, model: &str, tokens: u64, cost: i64| UsageRecord {
        tenant: TenantId::parse(tenant).unwrap(),
        run: run.clone(),
        deliverable: DeliverableId::parse("x").unwrap(),
        step: "dev".into(),
        step_attempt: 1,
        agent: "claude".into(),
        model: model.into(),
        input_tokens: tokens,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_micro_usd: cost,
        at: Timestamp::from_millis(1_800_000_000_000),
    };
    server
        .store
        .apply(
            Timestamp::from_millis(1_800_000_000_000),
            &[Change::Usage {
                records: vec![
                    record("tenant-a", "sonnet", 1000, 30_000),
                    record("tenant-a", "haiku", 5000, 5_000),
                    record("tenant-a", "sonnet", 500, 15_000),
                    record("tenant-b", "opus", 9000, 900_000),
                ],
                progress: None,
            }],
        )
        .await
        .unwrap();
    let cost = server.get("/v1/kamachiq/cost", &viewer).await.json();
    assert_eq!(cost["by"], "model");
    assert_eq!(cost["rows"][0]["key"], "sonnet");
    assert_eq!(cost["rows"][0]["tokens"], 1500);
    assert_eq!(cost["rows"][0]["cost_usd"], 0.045);
    assert_eq!(
        cost["rows"].as_array().unwrap().len(),
        2,
        "tenant-b's usage is not shown"
    );
    assert_eq!(cost["total_tokens"], 6500);
    let by_day = server.get("/v1/kamachiq/cost?by=day", &viewer).await.json();
    assert_eq!(by_day["rows"][0]["key"], "2027-01-15");
    server
        .get("/v1/kamachiq/cost?by=tenant", &viewer)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    server
        .get("/v1/kamachiq/cost?by=color", &viewer)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
}
