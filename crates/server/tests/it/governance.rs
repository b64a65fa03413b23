//! `/api/governance` and `/api/circuit-breaker`: enabling governance, the state, settings,
//! rollback and incidents, rules and events, with roles, tenant isolation and problems.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use kamachiq_domain::Role;
use serde_json::json;

use crate::support::{Server, Token};

/// A server with tenant-a's admin, operator, viewer and ops lead, and tenant-b's admin.
pub struct Cast {
    pub server: Server,
    pub admin: Token,
    pub operator: Token,
    pub viewer: Token,
    pub ops_lead: Token,
    pub other_admin: Token,
}

impl Cast {
    pub async fn new() -> Self {
        let server = Server::start().await;
        Self {
            admin: server.token("tenant-a", "admin", &[Role::Admin]).await,
            operator: server
                .token("tenant-a", "ops.ines", &[Role::Operator])
                .await,
            viewer: server.token("tenant-a", "viewer", &[Role::Viewer]).await,
            ops_lead: server.token("tenant-a", "ops.otto", &[Role::OpsLead]).await,
            other_admin: server.token("tenant-b", "admin-b", &[Role::Admin]).await,
            server,
        }
    }

    /// Enables governance for tenant-a with `body`; the state.
    pub async fn govern(&self, body: serde_json::Value) -> serde_json::Value {
        let reply = self
            .server
            .post_json("/api/governance/enable", &self.admin, &body)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungoverned_tenant_shows_the_state_it_would_start_from() {
    let cast = Cast::new().await;
    let reply = cast.server.get("/api/governance/state", &cast.viewer).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let state = reply.json();
    assert_eq!(state["governed"], false);
    assert_eq!(state["tenant"], "tenant-a");
    assert_eq!(state["currentPhase"], "L3");
    assert_eq!(state["commandWhitelist"], json!([]));
    assert_eq!(state["approvalMode"], "supervised");
    assert_eq!(
        state["settings"],
        json!({"autoApproveLowRisk": false, "approvalTtl": "1d", "onExpiry": "deny", "riskThreshold": "high"})
    );
    assert_eq!(state["version"], 0);
    // What needs a governed tenant says so.
    for path in [
        "/api/circuit-breaker/rules",
        "/api/readiness/score",
        "/api/readiness/current",
    ] {
        let problem = cast
            .server
            .get(path, &cast.viewer)
            .await
            .problem(StatusCode::CONFLICT, "not_governed");
        assert_eq!(
            problem["detail"],
            "tenant `tenant-a` is not governed; an admin enables it with `kamachiq governance enable --tenant tenant-a`"
        );
    }
    cast.server
        .post("/api/governance/run-cycle", &cast.operator)
        .await
        .problem(StatusCode::CONFLICT, "not_governed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_enables_governance_once_with_the_seeds_defaults() {
    let cast = Cast::new().await;
    let server = &cast.server;
    server
        .post("/api/governance/enable", &cast.operator)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let problem = server
        .post_json(
            "/api/governance/enable",
            &cast.admin,
            &json!({"phase": "L6"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "phase");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("unknown phase `L6`: expected one of L3, L3+, L4, L4+, L5"),
        "{problem}"
    );
    let problem = server
        .post_json(
            "/api/governance/enable",
            &cast.admin,
            &json!({"approvalTtl": "30s"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_window");
    assert_eq!(
        problem["detail"],
        "invalid window `30s`: an approval's time to live is at least 1 minute"
    );
    // Nothing was enabled by the refused requests.
    assert_eq!(
        server
            .get("/api/governance/state", &cast.viewer)
            .await
            .json()["governed"],
        false
    );

    let state = cast
        .govern(json!({"phase": "L3+", "mode": "autonomous", "approvalTtl": "2h"}))
        .await;
    assert_eq!(state["governed"], true);
    assert_eq!(state["currentPhase"], "L3+");
    assert_eq!(state["commandWhitelist"], json!(["provision"]));
    assert_eq!(state["validationPeriodDays"], 14);
    assert_eq!(state["daysInPhase"], 0);
    assert_eq!(state["approvalMode"], "autonomous");
    assert_eq!(state["settings"]["approvalTtl"], "2h");
    assert_eq!(state["version"], 1);
    assert_eq!(
        server
            .get("/api/governance/state", &cast.viewer)
            .await
            .json(),
        state
    );
    server
        .post("/api/governance/enable", &cast.admin)
        .await
        .problem(StatusCode::CONFLICT, "already_governed");
    // Another tenant is untouched, and sees nothing of tenant-a.
    let other = server
        .get("/api/governance/state", &cast.other_admin)
        .await
        .json();
    assert_eq!(
        (other["governed"].clone(), other["tenant"].clone()),
        (json!(false), json!("tenant-b"))
    );

    let rules = server
        .get("/api/circuit-breaker/rules", &cast.viewer)
        .await
        .json();
    assert_eq!(
        rules,
        json!([
            {"name": "High Error Rate", "enabled": true, "condition": "errorRate > 0.05", "window": "5m", "action": "revert_to_l3", "alertSeverity": "critical"},
            {"name": "Repeated Command Failures", "enabled": true, "condition": "failed >= 3", "window": "5m", "action": "pause_command_type", "alertSeverity": "high"},
            {"name": "Critical Incident", "enabled": true, "condition": "criticalIncidents > 0", "window": "1m", "action": "revert_to_l3", "alertSeverity": "critical"},
            {"name": "High Rollback Rate", "enabled": true, "condition": "rollbackRate > 0.10", "window": "15m", "action": "alert_only", "alertSeverity": "medium"}
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_change_with_the_admin_role_and_a_rollback_with_admin_or_ops_lead() {
    let cast = Cast::new().await;
    let server = &cast.server;
    cast.govern(json!({"phase": "L4"})).await;
    let patch = |token: &Token, body: serde_json::Value| {
        let token = token.clone();
        async move {
            server
                .send_json(Method::PATCH, "/api/governance/settings", &token, &body)
                .await
        }
    };
    patch(&cast.ops_lead, json!({"mode": "manual"}))
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let problem = patch(&cast.admin, json!({"mode": "reckless"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "mode");
    let state = patch(
        &cast.admin,
        json!({"mode": "manual", "autoApproveLowRisk": true, "onExpiry": "escalate"}),
    )
    .await
    .json();
    assert_eq!(state["approvalMode"], "manual");
    assert_eq!(state["settings"]["autoApproveLowRisk"], true);
    assert_eq!(state["settings"]["onExpiry"], "escalate");
    assert_eq!(state["currentPhase"], "L4");

    let rollback = json!({"targetPhase": "L3+", "reason": "INC-42: bad merges"});
    server
        .post_json("/api/governance/rollback", &cast.operator, &rollback)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let problem = server
        .post_json(
            "/api/governance/rollback",
            &cast.ops_lead,
            &json!({"targetPhase": "L7", "reason": "x"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "targetPhase");
    server
        .post_json(
            "/api/governance/rollback",
            &cast.ops_lead,
            &json!({"targetPhase": "L3", "reason": "  "}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    let problem = server
        .post_json(
            "/api/governance/rollback",
            &cast.ops_lead,
            &json!({"targetPhase": "L5", "reason": "faster"}),
        )
        .await
        .problem(StatusCode::CONFLICT, "phase_not_lower");
    assert_eq!(
        problem["detail"],
        "cannot roll back from L4 to L5: a rollback goes down (or restarts the phase); moving up takes a proposal"
    );
    let reply = server
        .post_json("/api/governance/rollback", &cast.ops_lead, &rollback)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let state = reply.json();
    assert_eq!(state["currentPhase"], "L3+");
    assert_eq!(state["commandWhitelist"], json!(["provision"]));
    let state = server
        .post_json(
            "/api/governance/rollback",
            &cast.admin,
            &json!({"targetPhase": "L3", "reason": "stakeholder request"}),
        )
        .await
        .json();
    assert_eq!(state["currentPhase"], "L3");
    assert_eq!(state["commandWhitelist"], json!([]));
    let trail = server
        .state
        .engine()
        .store()
        .audit_records(
            Some(&kamachiq_domain::TenantId::parse("tenant-a").unwrap()),
            0,
            50,
        )
        .await
        .unwrap();
    let rollbacks: Vec<(String, String)> = trail
        .iter()
        .filter(|r| r.action == "phase_rolled_back")
        .map(|r| {
            (
                r.actor.clone(),
                r.detail["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rollbacks,
        [
            ("ops.otto".to_owned(), "INC-42: bad merges".to_owned()),
            ("admin".to_owned(), "stakeholder request".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_managed_and_a_bad_condition_is_refused_with_the_parser_message() {
    let cast = Cast::new().await;
    let server = &cast.server;
    cast.govern(json!({})).await;
    let rule = json!({
        "name": "Slow merges", "condition": "p95Ms > 60000 && total >= 5", "window": "1h",
        "action": "alert_only", "alertSeverity": "low", "actionType": "merge"
    });
    server
        .post_json("/api/circuit-breaker/rules", &cast.operator, &rule)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let problem = server
        .post_json(
            "/api/circuit-breaker/rules",
            &cast.ops_lead,
            &json!({"name": "Broken", "condition": "errorRate >> 2", "window": "5m", "action": "alert_only", "alertSeverity": "low"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_condition");
    assert_eq!(problem["field"], "condition");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("circuit breaker rule `Broken`: condition `errorRate >> 2` does not parse: ERROR: <input>:1:"),
        "{detail}"
    );
    let problem = server
        .post_json(
            "/api/circuit-breaker/rules",
            &cast.ops_lead,
            &json!({"name": "Typo", "condition": "errors > 2", "window": "5m", "action": "alert_only", "alertSeverity": "low"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_condition");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("circuit breaker rule `Typo`: condition `errors > 2` uses unknown variable(s) errors; known: total,"),
        "{problem}"
    );
    let problem = server
        .post_json(
            "/api/circuit-breaker/rules",
            &cast.ops_lead,
            &json!({"name": "Bad window", "condition": "true", "window": "5 minutes", "action": "alert_only", "alertSeverity": "low"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "window");

    let reply = server
        .post_json("/api/circuit-breaker/rules", &cast.ops_lead, &rule)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.json(), {
        let mut r = rule.clone();
        r["enabled"] = json!(true);
        r
    });
    server
        .post_json("/api/circuit-breaker/rules", &cast.admin, &rule)
        .await
        .problem(StatusCode::CONFLICT, "rule_exists");

    // The seed runbook's PATCH, by name in the path.
    let reply = server
        .send_json(
            Method::PATCH,
            "/api/circuit-breaker/rules/High%20Error%20Rate",
            &cast.admin,
            &json!({"condition": "errorRate > 0.08", "window": "10m", "alertSeverity": "high"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"name": "High Error Rate", "enabled": true, "condition": "errorRate > 0.08", "window": "10m", "action": "revert_to_l3", "alertSeverity": "high"})
    );
    let problem = server
        .send_json(
            Method::PATCH,
            "/api/circuit-breaker/rules/High%20Error%20Rate",
            &cast.admin,
            &json!({"condition": "errorRate >"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_condition");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("does not parse"),
        "{problem}"
    );
    server
        .send_json(
            Method::PATCH,
            "/api/circuit-breaker/rules/High%20Rollback%20Rate",
            &cast.admin,
            &json!({"enabled": false}),
        )
        .await;
    server
        .send_json(
            Method::PATCH,
            "/api/circuit-breaker/rules/Nope",
            &cast.admin,
            &json!({"enabled": false}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let enabled: Vec<String> = server
        .get("/api/circuit-breaker/rules/enabled", &cast.viewer)
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        enabled,
        [
            "High Error Rate",
            "Repeated Command Failures",
            "Critical Incident",
            "Slow merges"
        ]
    );
    let reply = server
        .delete("/api/circuit-breaker/rules/Slow%20merges", &cast.ops_lead)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    server
        .delete("/api/circuit-breaker/rules/Slow%20merges", &cast.ops_lead)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    // Another tenant's admin cannot reach tenant-a's rules: its own tenant is not governed.
    server
        .delete(
            "/api/circuit-breaker/rules/High%20Error%20Rate",
            &cast.other_admin,
        )
        .await
        .problem(StatusCode::CONFLICT, "not_governed");
    assert_eq!(
        server
            .get("/api/circuit-breaker/rules", &cast.viewer)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_incident_reverts_to_l3_and_its_event_is_resolved_once() {
    let cast = Cast::new().await;
    let server = &cast.server;
    cast.govern(json!({"phase": "L4"})).await;
    let problem = server
        .post_json(
            "/api/governance/incidents",
            &cast.operator,
            &json!({"actionType": "deploy", "description": "x"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "actionType");
    server
        .post_json(
            "/api/governance/incidents",
            &cast.operator,
            &json!({"actionType": "merge", "description": "x", "runId": "01nosuchrun0000000000000000"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let reply = server
        .post_json(
            "/api/governance/incidents",
            &cast.operator,
            &json!({"actionType": "merge", "description": "a merge broke production"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());

    // "Critical Incident" reverts within a second of the incident.
    let deadline = Instant::now() + Duration::from_secs(1);
    let state = loop {
        let state = server
            .get("/api/governance/state", &cast.viewer)
            .await
            .json();
        if state["currentPhase"] == "L3" || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(state["currentPhase"], "L3");
    assert_eq!(state["commandWhitelist"], json!([]));
    let events = server
        .get("/api/circuit-breaker/events/unresolved", &cast.viewer)
        .await
        .json();
    let rules: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ruleName"].as_str().unwrap())
        .collect();
    // The incident is a failed action too: one failure in five minutes is an error rate of 1.
    assert!(rules.contains(&"Critical Incident"), "{events:#}");
    let incident = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ruleName"] == "Critical Incident")
        .unwrap();
    assert_eq!(incident["severity"], "critical");
    assert_eq!(incident["metrics"]["criticalIncidents"], 1);
    assert_eq!(incident["resolved"], false);
    let id = incident["id"].as_str().unwrap();

    // Tenant isolation and roles.
    server
        .post(
            &format!("/api/circuit-breaker/events/{id}/resolve"),
            &cast.other_admin,
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    server
        .post(
            &format!("/api/circuit-breaker/events/{id}/resolve"),
            &cast.viewer,
        )
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        server
            .get("/api/circuit-breaker/events", &cast.other_admin)
            .await
            .json(),
        json!([])
    );
    let reply = server
        .post_json(
            &format!("/api/circuit-breaker/events/{id}/resolve"),
            &cast.operator,
            &json!({"note": "bad migration reverted"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let resolved = reply.json();
    assert_eq!(resolved["resolved"], true);
    assert_eq!(resolved["resolvedBy"], "ops.ines");
    assert_eq!(resolved["note"], "bad migration reverted");
    server
        .post(
            &format!("/api/circuit-breaker/events/{id}/resolve"),
            &cast.operator,
        )
        .await
        .problem(StatusCode::CONFLICT, "event_resolved");
    server
        .post(
            "/api/circuit-breaker/events/bke-nope/resolve",
            &cast.operator,
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let all = server
        .get("/api/circuit-breaker/events", &cast.viewer)
        .await
        .json();
    assert_eq!(
        all.as_array().unwrap().len(),
        events.as_array().unwrap().len()
    );
    server
        .get("/api/circuit-breaker/events?limit=0", &cast.viewer)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
}
