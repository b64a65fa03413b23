//! The policy gate over HTTP: evaluate, tenants, policy sets and the requeue, with their
//! roles, tenant isolation and problem documents.

use axum::http::{Method, StatusCode};
use kamachiq_domain::Role;
use serde_json::{Value, json};

use crate::support::{Server, Token};

const STARTER: &str = include_str!("../../../../examples/policies/kamachiq.rego");

async fn admin(server: &Server, tenant: &str) -> Token {
    server.token(tenant, "admin", &[Role::Admin]).await
}

/// Configures tenant-a to allow eu-west-1 only.
async fn eu_only(server: &Server, token: &Token) {
    let reply = server
        .post_json(
            "/v1/tenants",
            token,
            &json!({"id": "tenant-a", "settings": {"regions": ["eu-west-1"]}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

#[tokio::test]
async fn evaluate_decides_without_acting_and_names_bad_fields() {
    let server = Server::start().await;
    let admin = admin(&server, "tenant-a").await;
    let viewer = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    eu_only(&server, &admin).await;

    let reply = server
        .post_json(
            "/v1/evaluate",
            &viewer,
            &json!({"action": "provision", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let decision = reply.json();
    assert_eq!(decision["decision"], "deny");
    assert_eq!(decision["score"], 0.0);
    assert_eq!(decision["reasons"][0]["code"], "residency");
    assert_eq!(decision["reasons"][0]["rule"], "builtin.residency");
    assert_eq!(decision["tenant_version"], 1);

    let allowed = server
        .post_json(
            "/v1/evaluate",
            &viewer,
            &json!({"action": "provision", "region": "eu-west-1"}),
        )
        .await
        .json();
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(allowed["reasons"], json!([]));

    // Nothing was recorded: evaluating does not act.
    assert!(
        server
            .store
            .decisions(&kamachiq_store::DecisionQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );

    let problem = server
        .post_json(
            "/v1/evaluate",
            &viewer,
            &json!({"action": "launch", "region": "x"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "action", "{problem:#}");
    server
        .post_json("/v1/evaluate", &viewer, &json!({"region": "x"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    server
        .post_json(
            "/v1/evaluate",
            &viewer,
            &json!({"action": "provision", "region": "x", "tenant": "tenant-b"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    server
        .post_json("/v1/evaluate", &viewer, &json!([1, 2]))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
}

#[tokio::test]
async fn tenants_are_configured_by_their_own_admins() {
    let server = Server::start().await;
    let admin_a = admin(&server, "tenant-a").await;
    let operator = server.token("tenant-a", "ops", &[Role::Operator]).await;
    let admin_b = admin(&server, "tenant-b").await;

    // Not configured yet: the defaults, version 0.
    let view = server.get("/v1/tenants/tenant-a", &operator).await.json();
    assert_eq!(view["version"], 0);
    assert_eq!(view["regions"], json!([]));
    assert_eq!(view["threshold"], 0.5);

    let body = json!({"id": "tenant-a", "settings": {"regions": ["eu-west-1"]}});
    server
        .post_json("/v1/tenants", &operator, &body)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    server
        .post_json("/v1/tenants", &admin_b, &body)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let problem = server
        .post_json(
            "/v1/tenants",
            &admin_a,
            &json!({"id": "tenant-a", "settings": {"threshold": 3}}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting");
    assert_eq!(problem["field"], "threshold");
    eu_only(&server, &admin_a).await;
    server
        .post_json("/v1/tenants", &admin_a, &body)
        .await
        .problem(StatusCode::CONFLICT, "tenant_exists");

    let updated = server
        .send_json(
            Method::PATCH,
            "/v1/tenants/tenant-a",
            &admin_a,
            &json!({"regions": ["eu-west-1", "eu-central-1"], "run_tokens": 50000}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    let updated = updated.json();
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["regions"], json!(["eu-central-1", "eu-west-1"]));
    assert_eq!(updated["budgets"]["run_tokens"], 50000);
    let problem = server
        .send_json(
            Method::PATCH,
            "/v1/tenants/tenant-a",
            &admin_a,
            &json!({"regoins": ["x"]}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(
        problem["detail"].as_str().unwrap().contains("regoins"),
        "{problem:#}"
    );
    server
        .get("/v1/tenants/tenant-a", &admin_b)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    // Both changes are in the audit trail, by the token's name.
    let trail = server.store.audit_records(None, 0, 10).await.unwrap();
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|r| (r.action.as_str(), r.actor.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("tenant_created", "admin"), ("tenant_updated", "admin")]
    );
}

#[tokio::test]
async fn policy_sets_are_compiled_before_they_are_stored() {
    let server = Server::start().await;
    let admin = admin(&server, "tenant-a").await;
    let viewer = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    server
        .get("/v1/policies", &viewer)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");

    let broken = json!({"modules": [{"name": "bad.rego", "source": "package kamachiq\n\ndeny contains x if {\n"}]});
    let problem = server
        .send_json(Method::PUT, "/v1/policies", &admin, &broken)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy");
    assert!(
        problem["detail"].as_str().unwrap().contains("bad.rego"),
        "{problem:#}"
    );
    server
        .send_json(Method::PUT, "/v1/policies", &admin, &json!({"modules": []}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy");
    let set = json!({"modules": [{"name": "kamachiq.rego", "source": STARTER}]});
    server
        .send_json(Method::PUT, "/v1/policies", &viewer, &set)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");

    let stored = server
        .send_json(Method::PUT, "/v1/policies", &admin, &set)
        .await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.text());
    assert_eq!(stored.json()["version"], 1);
    let again = server
        .send_json(Method::PUT, "/v1/policies", &admin, &set)
        .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "an identical set is not a new version"
    );
    let current = server.get("/v1/policies", &viewer).await.json();
    assert_eq!(current["version"], 1);
    assert_eq!(current["modules"][0]["name"], "kamachiq.rego");
    assert_eq!(
        server.get("/v1/policies/1", &viewer).await.status,
        StatusCode::OK
    );
    server
        .get("/v1/policies/2", &viewer)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    // Decisions now name the version that made them.
    let decision = server
        .post_json(
            "/v1/evaluate",
            &viewer,
            &json!({"action": "provision", "region": "local"}),
        )
        .await
        .json();
    assert_eq!(decision["policy_version"], 1);
}

/// A run of tenant-a in us-east-1 against an eu-west-1-only tenant: its deliverable waits in
/// the requeue until an operator overrides the block with a justification.
#[tokio::test]
async fn a_blocked_deliverable_is_listed_and_overridden_by_an_operator() {
    let server = Server::start().await;
    let admin = admin(&server, "tenant-a").await;
    let operator = server.token("tenant-a", "ops", &[Role::Operator]).await;
    let viewer = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    let other = server.token("tenant-b", "ops", &[Role::Operator]).await;
    eu_only(&server, &admin).await;

    let plan = json!({"region": "us-east-1", "deliverables": [
        {"id": "api-svc", "steps": [{"name": "dev", "run": "true"}]}
    ]});
    let run = server.submit(&operator, &plan).await;
    let view = server
        .wait_until(&operator, &run, "api-svc blocked", |v| {
            v["deliverables"][0]["state"] == "blocked"
        })
        .await;
    assert_eq!(view["deliverables"][0]["reason"]["code"], "residency");

    let page = server.get("/v1/kamachiq/requeue", &viewer).await.json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let entry = &items[0];
    assert_eq!(entry["deliverable"], "api-svc");
    assert_eq!(entry["run"], run);
    assert_eq!(entry["reasons"][0]["code"], "residency");
    let id = entry["id"].as_str().unwrap().to_owned();
    assert_eq!(
        server.get("/v1/kamachiq/requeue", &other).await.json()["items"],
        json!([])
    );
    server
        .get("/v1/kamachiq/requeue?limit=0", &viewer)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");

    let resolve = format!("/v1/kamachiq/requeue/{id}/resolve");
    // Re-evaluation: still held back, with the decision saying why.
    let reply = server.post(&resolve, &operator).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let still = reply.json();
    assert_eq!(still["outcome"], "still_blocked");
    assert_eq!(still["decision"]["reasons"][0]["code"], "residency");

    server
        .post_json(
            &resolve,
            &viewer,
            &json!({"allow": true, "justification": "x"}),
        )
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    server
        .post_json(
            &resolve,
            &other,
            &json!({"allow": true, "justification": "x"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let problem = server
        .post_json(
            &resolve,
            &operator,
            &json!({"allow": true, "justification": "  "}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "justification_required");
    assert_eq!(problem["field"], "justification");

    let reply = server
        .post_json(
            &resolve,
            &operator,
            &json!({"allow": true, "justification": "customer consented to US processing"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let resolved: Value = reply.json();
    assert_eq!(resolved["outcome"], "let_through");
    assert_eq!(resolved["resolution"], "overridden");
    server.wait_for(&operator, &run, "succeeded").await;
    server
        .post_json(
            &resolve,
            &operator,
            &json!({"allow": true, "justification": "again"}),
        )
        .await
        .problem(StatusCode::CONFLICT, "requeue_resolved");

    let all = server
        .get("/v1/kamachiq/requeue?all=true", &viewer)
        .await
        .json();
    assert_eq!(all["items"][0]["resolved_by"], "ops");
    assert_eq!(all["items"][0]["resolution"], "overridden");
    let trail = server.store.audit_records(None, 0, 10).await.unwrap();
    let record = trail
        .iter()
        .find(|r| r.action == "requeue_override")
        .unwrap();
    assert_eq!(record.actor, "ops");
    assert_eq!(
        record.detail["justification"],
        "customer consented to US processing"
    );
    // The block was counted.
    let metrics = server.get("/metrics", &admin).await.text();
    assert!(
        metrics.contains("kamachiq_governance_block_total 1"),
        "{metrics}"
    );
}
