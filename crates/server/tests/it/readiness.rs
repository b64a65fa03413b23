//! Readiness, the weekly cycle, proposals and their approvals by role, action metrics, the
//! approvals inbox, and the governance metrics of `/metrics`.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use kamachiq_domain::{Role, TenantId, Timestamp};
use kamachiq_governance::Outcome;
use kamachiq_policy::Action;
use kamachiq_store::{Change, NewAction};
use serde_json::{Value, json};

use crate::governance::Cast;
use crate::support::{RUN_DEADLINE, Token};

fn tenant() -> TenantId {
    TenantId::parse("tenant-a").unwrap()
}

/// Records `n` outcomes of tenant-a, `failed` of them failures, committed now.
async fn outcomes(cast: &Cast, n: usize, failed: usize) {
    let changes: Vec<Change> = (0..n)
        .map(|i| {
            Change::Acted(Box::new(NewAction {
                tenant: tenant(),
                run: None,
                deliverable: None,
                action: if i % 2 == 0 {
                    Action::RunStep
                } else {
                    Action::Merge
                },
                outcome: if i < failed {
                    Outcome::Failed
                } else {
                    Outcome::Succeeded
                },
                duration_ms: 1_000 + i as u64,
                tokens: 0,
                cost_micro_usd: 1_000,
                critical: false,
            }))
        })
        .collect();
    let engine = cast.server.state.engine();
    engine.store().apply(engine.now(), &changes).await.unwrap();
}

/// Everything readiness needs but the attestations: 120 clean outcomes, a scrape, a drill.
async fn measured_facts(cast: &Cast) {
    outcomes(cast, 120, 0).await;
    let scraper = cast
        .server
        .token("tenant-a", "prometheus", &[Role::Metrics])
        .await;
    assert_eq!(
        cast.server.get("/metrics", &scraper).await.status,
        StatusCode::OK
    );
    let engine = cast.server.state.engine();
    engine.stop_all("local:ops", "drill").await.unwrap();
    engine.resume_all("local:ops").await.unwrap();
}

async fn attest(cast: &Cast, by: &Token, items: &[&str]) {
    for item in items {
        let reply = cast
            .server
            .post_json(
                "/api/readiness/attest",
                by,
                &json!({"item": item, "evidence": format!("wiki/{item}")}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    }
}

const ALL_BUT_TRAINING: [&str; 6] = [
    "tech.rollback_rehearsed",
    "process.runbook",
    "process.incident_drill",
    "org.on_call",
    "org.stakeholder_signoff",
    "org.escalation_contacts",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_measured_attested_and_reported_with_its_blockers() {
    let cast = Cast::new().await;
    let server = &cast.server;
    let lead = server
        .token("tenant-a", "lead.ana", &[Role::TechLead])
        .await;
    cast.govern(json!({})).await;
    let current = server
        .get("/api/readiness/current", &cast.viewer)
        .await
        .json();
    assert_eq!(current["status"], "needs_work");
    let blockers: Vec<&str> = current["overall"]["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert_eq!(blockers.len(), 6, "{blockers:#?}");
    assert!(
        blockers[0].starts_with(
            "Required: At least 99.5% of automated actions succeed: not met (successRate = 0"
        ),
        "{}",
        blockers[0]
    );

    measured_facts(&cast).await;
    // Attesting takes an approver role; measured items and unknown ones are refused.
    server
        .post_json(
            "/api/readiness/attest",
            &cast.operator,
            &json!({"item": "org.on_call", "evidence": "x"}),
        )
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let problem = server
        .post_json(
            "/api/readiness/attest",
            &lead,
            &json!({"item": "tech.success_rate", "evidence": "x"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "item_measured");
    assert_eq!(problem["field"], "item");
    let problem = server
        .post_json(
            "/api/readiness/attest",
            &lead,
            &json!({"item": "org.vibes", "evidence": "x"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_item");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .ends_with("org.escalation_contacts, org.approver_training"),
        "{problem}"
    );
    server
        .post_json(
            "/api/readiness/attest",
            &lead,
            &json!({"item": "org.on_call", "evidence": " "}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    attest(&cast, &lead, &ALL_BUT_TRAINING).await;

    let score = server
        .get("/api/readiness/score", &cast.viewer)
        .await
        .json();
    assert_eq!(score["score"], 0.95);
    assert_eq!(
        (score["points"].clone(), score["maxPoints"].clone()),
        (json!(76), json!(80))
    );
    assert_eq!(score["status"], "ready");
    assert_eq!(score["blockers"], json!([]));
    assert_eq!(
        score["categories"],
        json!([
            {"name": "technical", "points": 35, "maxPoints": 35, "score": 1.0},
            {"name": "process", "points": 25, "maxPoints": 25, "score": 1.0},
            {"name": "organizational", "points": 16, "maxPoints": 20, "score": 0.8}
        ])
    );
    let current = server
        .get("/api/readiness/current", &cast.viewer)
        .await
        .json();
    assert_eq!(current["overall"]["blockers"], json!([]));
    let on_call = current["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "org.on_call")
        .unwrap();
    assert_eq!(on_call["source"], "attested");
    assert!(
        on_call["evidence"]
            .as_str()
            .unwrap()
            .starts_with("attested by lead.ana at "),
        "{on_call}"
    );
    let monitoring = current["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "tech.monitoring")
        .unwrap();
    assert_eq!(
        (monitoring["passed"].clone(), monitoring["evidence"].clone()),
        (json!(true), json!("monitoringEnabled = true"))
    );
    server
        .get("/api/readiness/latest", &cast.viewer)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_proposes_and_only_the_right_roles_approve_it_into_the_next_phase() {
    let cast = Cast::new().await;
    let server = &cast.server;
    let lead = server
        .token("tenant-a", "lead.ana", &[Role::TechLead])
        .await;
    let operator_lead = server
        .token("tenant-a", "lead.rui", &[Role::Operator, Role::TechLead])
        .await;
    cast.govern(json!({})).await;
    measured_facts(&cast).await;
    attest(&cast, &lead, &ALL_BUT_TRAINING).await;

    server
        .post("/api/governance/run-cycle", &cast.viewer)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    // The requester holds the tech lead role too: four eyes refuse them later.
    let reply = server
        .post("/api/governance/run-cycle", &operator_lead)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let report = reply.json();
    assert_eq!(report["recommendation"]["kind"], "expand");
    assert_eq!(report["requestedBy"], "lead.rui");
    assert_eq!(report["metrics"]["total"], 120);
    assert_eq!(report["metrics"]["successRate"], 1.0);
    assert_eq!(report["metrics"]["byAction"]["merge"]["total"], 60);
    assert_eq!(report["readiness"]["score"], 0.95);
    assert_eq!(report["circuitBreakerEvents"], json!([]));
    let proposal = &report["proposal"];
    assert_eq!(proposal["fromPhase"], "L3");
    assert_eq!(proposal["targetPhase"], "L3+");
    assert_eq!(proposal["whitelistAdd"], json!(["provision"]));
    assert_eq!(proposal["risk"], "low");
    assert_eq!(proposal["validationDays"], 14);
    assert_eq!(proposal["requiredApprovers"], json!(["tech-lead"]));
    assert_eq!(proposal["status"], "pending");
    let id = proposal["id"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .get("/api/governance/reports/latest", &cast.viewer)
            .await
            .json(),
        report
    );
    assert_eq!(
        server
            .get(
                &format!("/api/governance/reports/{}", report["id"].as_str().unwrap()),
                &cast.viewer
            )
            .await
            .json(),
        report
    );
    server
        .get("/api/governance/reports/grp-nope", &cast.viewer)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    server
        .get(
            &format!("/api/governance/reports/{}", report["id"].as_str().unwrap()),
            &cast.other_admin,
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        server
            .get("/api/readiness/latest", &cast.viewer)
            .await
            .json(),
        report["readiness"]
    );
    let pending = server
        .get("/api/governance/proposals", &cast.viewer)
        .await
        .json();
    assert_eq!(pending[0]["id"], id.as_str());
    // A second cycle drafts nothing while this one waits.
    let again = server
        .post("/api/governance/run-cycle", &cast.operator)
        .await
        .json();
    assert_eq!(again["recommendation"]["kind"], "maintain");
    assert_eq!(
        again["recommendation"]["reasons"],
        json!(["a proposal is already waiting for approvals"])
    );
    assert_eq!(again.get("proposal"), None);

    let approve = |token: &Token, body: Value| {
        let token = token.clone();
        let path = format!("/api/governance/proposals/{id}/approve");
        async move { server.post_json(&path, &token, &body).await }
    };
    // The seed's free-text approver is refused; the approver is the token.
    let problem = approve(&lead, json!({"approvedBy": "tech-lead"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "approvedBy");
    approve(&cast.operator, json!({}))
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let problem = approve(&cast.ops_lead, json!({}))
        .await
        .problem(StatusCode::FORBIDDEN, "approval_refused");
    assert_eq!(
        problem["detail"],
        "ops.otto holds none of the roles this proposal needs (tech-lead)"
    );
    let problem = approve(&operator_lead, json!({}))
        .await
        .problem(StatusCode::FORBIDDEN, "approval_refused");
    assert_eq!(
        problem["detail"],
        "lead.rui asked for this proposal and cannot approve it"
    );
    let other_lead = server.token("tenant-b", "lead-b", &[Role::TechLead]).await;
    approve(&other_lead, json!({}))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        server
            .get("/api/governance/state", &cast.viewer)
            .await
            .json()["currentPhase"],
        "L3"
    );

    let reply = approve(&lead, json!({"comment": "week looks clean"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let decision = reply.json();
    assert_eq!(decision["phaseAdvanced"], true);
    assert_eq!(decision["proposal"]["status"], "approved");
    assert_eq!(decision["proposal"]["approvals"][0]["by"], "lead.ana");
    assert_eq!(decision["proposal"]["approvals"][0]["role"], "tech-lead");
    assert_eq!(decision["state"]["currentPhase"], "L3+");
    assert_eq!(decision["state"]["commandWhitelist"], json!(["provision"]));
    assert_eq!(decision["state"]["validationPeriodDays"], 14);
    assert_eq!(
        server
            .get("/api/governance/state", &cast.viewer)
            .await
            .json()["currentPhase"],
        "L3+"
    );
    approve(&lead, json!({}))
        .await
        .problem(StatusCode::CONFLICT, "proposal_closed");
    assert_eq!(
        server
            .get("/api/governance/proposals", &cast.viewer)
            .await
            .json(),
        json!([])
    );
    assert_eq!(
        server
            .get("/api/governance/proposals?all=true", &cast.viewer)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server
        .post_json(
            "/api/governance/proposals/prp-nope/reject",
            &lead,
            &json!({"reason": "x"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_is_refused_while_a_breaker_event_is_open_and_can_be_rejected() {
    let cast = Cast::new().await;
    let server = &cast.server;
    let lead = server
        .token("tenant-a", "lead.ana", &[Role::TechLead])
        .await;
    cast.govern(json!({})).await;
    measured_facts(&cast).await;
    attest(&cast, &lead, &ALL_BUT_TRAINING).await;
    let report = server
        .post("/api/governance/run-cycle", &cast.operator)
        .await
        .json();
    let id = report["proposal"]["id"].as_str().unwrap().to_owned();
    // A critical incident trips the breakers; the proposal cannot pass.
    let reply = server
        .post_json(
            "/api/governance/incidents",
            &cast.operator,
            &json!({"actionType": "merge", "description": "bad merge"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let deadline = Instant::now() + RUN_DEADLINE;
    while server
        .get("/api/circuit-breaker/events/unresolved", &cast.viewer)
        .await
        .json()
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no breaker event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let problem = server
        .post(&format!("/api/governance/proposals/{id}/approve"), &lead)
        .await
        .problem(StatusCode::CONFLICT, "proposal_blocked");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .ends_with("; 1 circuit breaker event(s) are unresolved"),
        "{problem}"
    );
    server
        .post_json(
            &format!("/api/governance/proposals/{id}/reject"),
            &cast.ops_lead,
            &json!({"reason": "x"}),
        )
        .await
        .problem(StatusCode::FORBIDDEN, "approval_refused");
    server
        .post_json(
            &format!("/api/governance/proposals/{id}/reject"),
            &lead,
            &json!({"reason": ""}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let reply = server
        .post_json(
            &format!("/api/governance/proposals/{id}/reject"),
            &lead,
            &json!({"reason": "incident this morning"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let decision = reply.json();
    assert_eq!(decision["proposal"]["status"], "rejected");
    assert_eq!(
        decision["proposal"]["rejection"]["reason"],
        "incident this morning"
    );
    assert_eq!(decision["phaseAdvanced"], false);
    assert_eq!(decision["state"]["currentPhase"], "L3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_metrics_are_windowed_overall_and_per_type() {
    let cast = Cast::new().await;
    let server = &cast.server;
    outcomes(&cast, 10, 2).await;
    let latest = server.get("/api/metrics/latest", &cast.viewer).await.json();
    assert_eq!(latest["window"], "1h");
    assert_eq!(latest["tenant"], "tenant-a");
    assert_eq!(
        (latest["total"].clone(), latest["failed"].clone()),
        (json!(10), json!(2))
    );
    assert_eq!(latest["errorRate"], 0.2);
    assert_eq!(latest["successRate"], 0.8);
    assert_eq!(latest["byAction"]["run_step"]["failed"], 1);
    assert_eq!(latest["byAction"]["merge"]["total"], 5);
    assert_eq!(latest["p50Ms"], 1_004);
    let five = server
        .get("/api/metrics/latest?window=5m", &cast.viewer)
        .await
        .json();
    assert_eq!(
        (five["window"].clone(), five["total"].clone()),
        (json!("5m"), json!(10))
    );
    assert_eq!(
        server.get("/api/metrics/weekly", &cast.viewer).await.json()["total"],
        10
    );
    let empty = server
        .get(
            "/api/metrics/current?start=2020-01-01T00:00:00Z&end=2020-01-02T00:00:00Z",
            &cast.viewer,
        )
        .await
        .json();
    assert_eq!(
        (empty["total"].clone(), empty["window"].clone()),
        (json!(0), json!("1d"))
    );
    assert_eq!(empty["byAction"], json!({}));
    let problem = server
        .get("/api/metrics/latest?window=5%20minutes", &cast.viewer)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(problem["field"], "window");
    server
        .get("/api/metrics/latest?window=60d", &cast.viewer)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    let problem = server
        .get("/api/metrics/current?start=yesterday", &cast.viewer)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(problem["field"], "start");
    server
        .get(
            "/api/metrics/current?start=2020-01-02T00:00:00Z&end=2020-01-01T00:00:00Z",
            &cast.viewer,
        )
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    // Another tenant's outcomes are not counted.
    assert_eq!(
        server
            .get("/api/metrics/latest", &cast.other_admin)
            .await
            .json()["total"],
        0
    );
    server.get("/api/metrics/latest", &cast.viewer).await;
    let scraper = server.token("tenant-a", "metrics", &[Role::Metrics]).await;
    server
        .get("/api/metrics/latest", &scraper)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_governance_metrics_are_exposed_for_promtool() {
    let cast = Cast::new().await;
    let server = &cast.server;
    let scraper = server
        .token("tenant-a", "prometheus", &[Role::Metrics])
        .await;
    // The first scrape starts counting outcomes.
    server.get("/metrics", &scraper).await;
    cast.govern(json!({"phase": "L4"})).await;
    outcomes(&cast, 4, 0).await;
    let text = server.get("/metrics", &scraper).await.text();
    for expected in [
        "# TYPE kamachiq_governance_phase_info gauge",
        "kamachiq_governance_phase_info{tenant=\"tenant-a\",phase=\"L4\"} 1",
        "kamachiq_governance_phase_info{tenant=\"tenant-a\",phase=\"L3\"} 0",
        "kamachiq_governance_success_rate{tenant=\"tenant-a\"} 1.0",
        "kamachiq_governance_error_rate{tenant=\"tenant-a\"} 0.0",
        "kamachiq_governance_rollback_rate{tenant=\"tenant-a\"} 0.0",
        "kamachiq_governance_approval_rate{tenant=\"tenant-a\"} 1.0",
        "# TYPE kamachiq_governance_actions_total counter",
        "kamachiq_governance_actions_total{tenant=\"tenant-a\",action=\"run_step\",status=\"succeeded\"} 2",
        "kamachiq_governance_actions_total{tenant=\"tenant-a\",action=\"merge\",status=\"succeeded\"} 2",
        "# TYPE kamachiq_governance_readiness_score gauge",
        "# TYPE kamachiq_governance_breaker_events_total counter",
        "kamachiq_governance_breaker_events_total{severity=\"critical\"} 0",
        "kamachiq_governance_breaker_events_unresolved 0",
        "# TYPE kamachiq_approvals_pending gauge",
        "# TYPE kamachiq_approval_latency_seconds histogram",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "{expected} missing from:\n{text}"
        );
    }
    for prefix in [
        "kamachiq_governance_readiness_score{tenant=\"tenant-a\",category=\"technical\"} ",
        "kamachiq_governance_time_in_phase_seconds{tenant=\"tenant-a\"} ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(prefix)),
            "{prefix}: {text}"
        );
    }
    // Counted once: a second scrape adds nothing new.
    let again = server.get("/metrics", &scraper).await.text();
    assert!(again.lines().any(|l| l == "kamachiq_governance_actions_total{tenant=\"tenant-a\",action=\"merge\",status=\"succeeded\"} 2"));
}

/// Waits until tenant-a's inbox holds `n` waiting requests; them.
async fn waiting(cast: &Cast, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        let list = cast.server.get("/api/approvals", &cast.viewer).await.json();
        let list = list.as_array().unwrap().clone();
        if list.len() == n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{n} requests never waited: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approvals_inbox_is_decided_by_approvers_as_themselves() {
    let cast = Cast::new().await;
    let server = &cast.server;
    let lead = server
        .token("tenant-a", "lead.ana", &[Role::TechLead])
        .await;
    cast.govern(json!({"phase": "L3+"})).await;
    let run = server
        .submit(
            &cast.operator,
            &json!({"deliverables": [
                {"id": "a", "steps": [{"name": "dev", "run": "true"}]},
                {"id": "b", "steps": [{"name": "dev", "run": "true"}]}
            ]}),
        )
        .await;
    let list = waiting(&cast, 2).await;
    let of = |d: &str| list.iter().find(|a| a["deliverable"] == d).unwrap().clone();
    let (a, b) = (of("a"), of("b"));
    assert_eq!(a["operation"], "run_step dev of a");
    assert_eq!(a["action"], "run_step");
    assert_eq!(a["risk"], "low");
    assert_eq!(a["cause"], "not_whitelisted");
    assert_eq!(a["status"], "pending");
    assert_eq!(a["runId"], run.as_str());
    assert_eq!(
        a["evidence"]["reasons"][0]["message"],
        "run_step is not on the whitelist of phase L3+"
    );
    let id_a = a["id"].as_str().unwrap();
    let id_b = b["id"].as_str().unwrap();
    assert_eq!(
        server
            .get(&format!("/api/approvals/{id_a}"), &cast.viewer)
            .await
            .json(),
        a
    );
    server
        .get(&format!("/api/approvals/{id_a}"), &cast.other_admin)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    server
        .get("/api/approvals/apr-nope", &cast.viewer)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        server.get("/api/approvals", &cast.other_admin).await.json(),
        json!([])
    );

    // Approving takes an approver role; the approver is the token.
    server
        .post(&format!("/api/approvals/{id_a}/approve"), &cast.operator)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    server
        .post(&format!("/api/approvals/{id_a}/approve"), &cast.other_admin)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let reply = server
        .post_json(
            &format!("/api/approvals/{id_a}/approve"),
            &lead,
            &json!({"comment": "fine"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let approved = reply.json();
    assert_eq!(
        (
            approved["status"].clone(),
            approved["decidedBy"].clone(),
            approved["comment"].clone()
        ),
        (json!("approved"), json!("lead.ana"), json!("fine"))
    );
    server
        .post(&format!("/api/approvals/{id_a}/approve"), &lead)
        .await
        .problem(StatusCode::CONFLICT, "approval_closed");
    server
        .post_json(&format!("/api/approvals/{id_b}/deny"), &lead, &json!({}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let denied = server
        .post_json(
            &format!("/api/approvals/{id_b}/deny"),
            &lead,
            &json!({"reason": "not now"}),
        )
        .await
        .json();
    assert_eq!(
        (denied["status"].clone(), denied["comment"].clone()),
        (json!("denied"), json!("not now"))
    );

    // `a` runs its step; `b` stays blocked.
    let view = server
        .wait_until(&cast.operator, &run, "a succeeded", |v| {
            v["deliverables"][0]["state"] == "succeeded"
        })
        .await;
    assert_eq!(view["deliverables"][1]["state"], "blocked");
    assert_eq!(
        server.get("/api/approvals", &cast.viewer).await.json(),
        json!([])
    );
    let all = server
        .get("/api/approvals?all=true", &cast.viewer)
        .await
        .json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let requeue = server
        .get("/v1/kamachiq/requeue", &cast.viewer)
        .await
        .json();
    assert_eq!(requeue["items"][0]["deliverable"], "b");
    assert_eq!(requeue["items"][0]["next_retry_at"], Value::Null);
}

/// A proposal drafted at L3+ is withdrawn when a breaker reverts the tenant to L3 under it: it
/// leaves the pending list, and approving it is a 409 that says it was withdrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_withdraws_the_pending_proposal_and_it_takes_no_approval() {
    let cast = Cast::new().await;
    let server = &cast.server;
    let lead = server
        .token("tenant-a", "lead.ana", &[Role::TechLead])
        .await;
    cast.govern(json!({"phase": "L3+"})).await;
    measured_facts(&cast).await;
    attest(&cast, &lead, &ALL_BUT_TRAINING).await;
    // As if the tenant had been at L3+ for its whole validation period (14 days): set where
    // the phase started, through the store, the one thing a test cannot wait for.
    let engine = server.state.engine();
    let governed = engine.store().governance(&tenant()).await.unwrap().unwrap();
    let mut state = governed.state.clone();
    let started = Timestamp::from_millis(engine.now().as_millis() - 15 * 24 * 3_600_000);
    state.phase_started_at = started;
    state.validation_ends_at = Some(started.plus(Duration::from_secs(14 * 24 * 3600)));
    let audit = kamachiq_store::AuditEntry {
        tenant: tenant(),
        actor: "test".into(),
        action: "phase_backdated".into(),
        subject: "tenant-a".into(),
        detail: json!({}),
    };
    engine
        .store()
        .save_governance(
            &tenant(),
            governed.version,
            &state,
            &governed.settings,
            &audit,
            engine.now(),
        )
        .await
        .unwrap()
        .unwrap();

    let report = server
        .post("/api/governance/run-cycle", &cast.operator)
        .await
        .json();
    let proposal = &report["proposal"];
    assert_eq!(
        (&proposal["fromPhase"], &proposal["targetPhase"]),
        (&json!("L3+"), &json!("L4")),
        "{report:#}"
    );
    let id = proposal["id"].as_str().unwrap().to_owned();

    let reply = server
        .post_json(
            "/api/governance/incidents",
            &cast.operator,
            &json!({"actionType": "merge", "description": "a merge broke production"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let deadline = Instant::now() + RUN_DEADLINE;
    let withdrawn = loop {
        let p = server
            .get(&format!("/api/governance/proposals/{id}"), &cast.viewer)
            .await
            .json();
        if p["status"] != "pending" || Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(withdrawn["status"], "withdrawn", "{withdrawn:#}");
    assert_eq!(
        server
            .get("/api/governance/proposals", &cast.viewer)
            .await
            .json(),
        json!([])
    );
    let problem = server
        .post_json(
            &format!("/api/governance/proposals/{id}/approve"),
            &lead,
            &json!({}),
        )
        .await
        .problem(StatusCode::CONFLICT, "proposal_closed");
    assert_eq!(
        problem["detail"],
        format!("proposal `{id}` is withdrawn already; it takes no more decisions")
    );
}
