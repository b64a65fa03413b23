//! `/api/readiness/checklist`: the tenant's readiness checklist read by anyone of the tenant,
//! replaced whole by an admin, checked first, audited with every edit.

use axum::http::{Method, StatusCode};
use kamachiq_domain::{Role, TenantId};
use serde_json::{Value, json};

use crate::governance::Cast;

const PATH: &str = "/api/readiness/checklist";

/// Two items: a measured one, required, and an attested one.
fn smaller() -> Value {
    json!({"items": [
        {"id": "tech.success_rate", "category": "technical", "title": "Actions succeed",
         "weight": 3, "required": true, "condition": "successRate >= 0.995"},
        {"id": "org.on_call", "category": "organizational", "title": "An on-call rota",
         "weight": 1, "required": false},
    ]})
}

/// An edit that spoils a checklist, the problem code it gets, and a part of its detail.
type Case = (fn(&mut Value), &'static str, &'static str);

async fn governed() -> Cast {
    let cast = Cast::new().await;
    cast.govern(json!({})).await;
    cast
}

async fn put(cast: &Cast, body: &Value) -> crate::support::Reply {
    cast.server
        .send_json(Method::PUT, PATH, &cast.admin, body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checklist_lists_every_item_measured_or_attested() {
    let cast = governed().await;
    let checklist = cast.server.get(PATH, &cast.viewer).await.json();
    let items = checklist["items"].as_array().unwrap();
    let current = cast
        .server
        .get("/api/readiness/current", &cast.viewer)
        .await
        .json();
    assert_eq!(items.len(), current["items"].as_array().unwrap().len());
    let item = |id: &str| items.iter().find(|i| i["id"] == id).unwrap().clone();
    assert_eq!(item("org.on_call")["condition"], Value::Null, "attested");
    assert!(
        item("tech.success_rate")["condition"]
            .as_str()
            .unwrap()
            .contains("successRate"),
        "measured"
    );
    let weights: u64 = items.iter().map(|i| i["weight"].as_u64().unwrap()).sum();
    assert_eq!(weights, 80, "the seed's 80 points");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_replaces_the_checklist() {
    let cast = governed().await;
    for token in [&cast.ops_lead, &cast.operator, &cast.viewer] {
        cast.server
            .send_json(Method::PUT, PATH, token, &smaller())
            .await
            .problem(StatusCode::FORBIDDEN, "forbidden");
    }
    // Another tenant's admin reaches its own tenant, which is not governed.
    cast.server
        .send_json(Method::PUT, PATH, &cast.other_admin, &smaller())
        .await
        .problem(StatusCode::CONFLICT, "not_governed");
    cast.server
        .get(PATH, &cast.other_admin)
        .await
        .problem(StatusCode::CONFLICT, "not_governed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_checklist_is_refused_naming_what_is_wrong_and_changes_nothing() {
    let cast = governed().await;
    let before = cast.server.get(PATH, &cast.viewer).await.json();
    let cases: [Case; 5] = [
        (
            |c| c["items"][1]["weight"] = json!(0),
            "invalid_item",
            "readiness item `org.on_call`: the weight must be between 1 and 1000",
        ),
        (
            |c| c["items"][1]["id"] = json!("tech.success_rate"),
            "invalid_item",
            "readiness item `tech.success_rate`: the id is used by another item",
        ),
        (
            |c| c["items"][0]["condition"] = json!("successRate >= uptime"),
            "invalid_condition",
            "uptime",
        ),
        (
            |c| c["items"] = json!([]),
            "invalid_checklist",
            "a readiness checklist has between 1 and 200 items, not 0",
        ),
        (
            |c| c["items"][0]["points"] = json!(3),
            "invalid_body",
            "points",
        ),
    ];
    for (edit, code, detail) in cases {
        let mut bad = smaller();
        edit(&mut bad);
        let problem = put(&cast, &bad)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert!(
            problem["detail"].as_str().unwrap().contains(detail),
            "{problem:#}"
        );
    }
    assert_eq!(cast.server.get(PATH, &cast.viewer).await.json(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_checklist_scores_readiness_and_names_the_items_to_attest() {
    let cast = governed().await;
    let reply = put(&cast, &smaller()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), smaller());
    assert_eq!(cast.server.get(PATH, &cast.viewer).await.json(), smaller());
    let score = cast
        .server
        .get("/api/readiness/score", &cast.viewer)
        .await
        .json();
    assert_eq!(score["maxPoints"], 4, "{score:#}");
    let lead = cast
        .server
        .token("tenant-a", "lead.ana", &[Role::TechLead])
        .await;
    let attest = |item: &'static str| {
        let (server, lead) = (&cast.server, &lead);
        async move {
            server
                .post_json(
                    "/api/readiness/attest",
                    lead,
                    &json!({"item": item, "evidence": "wiki/x"}),
                )
                .await
        }
    };
    assert_eq!(attest("org.on_call").await.status, StatusCode::CREATED);
    attest("process.runbook")
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "unknown_item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_is_audited_with_the_checklists_before_and_after() {
    let cast = governed().await;
    assert_eq!(put(&cast, &smaller()).await.status, StatusCode::OK);
    // Only the condition loosened: no item added or removed, the same points.
    let mut looser = smaller();
    looser["items"][0]["condition"] = json!("successRate >= 0.5");
    assert_eq!(put(&cast, &looser).await.status, StatusCode::OK);

    let tenant = TenantId::parse("tenant-a").unwrap();
    let records = cast
        .server
        .state
        .engine()
        .store()
        .audit_records(Some(&tenant), 0, 100)
        .await
        .unwrap();
    let changes: Vec<&Value> = records
        .iter()
        .filter(|r| r.action == "checklist_changed")
        .map(|r| {
            assert_eq!(r.actor, "admin");
            &r.detail
        })
        .collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["added"], json!([]));
    assert_eq!(changes[0]["points_after"]["technical"], 3);
    assert!(
        changes[0]["removed"]
            .as_array()
            .unwrap()
            .contains(&json!("process.runbook"))
    );
    assert_eq!(changes[1]["changed"], json!(["tech.success_rate"]));
    assert_eq!(changes[1]["points_before"], changes[1]["points_after"]);
    assert_eq!(
        changes[1]["before"]["items"][0]["check"]["condition"],
        "successRate >= 0.995"
    );
    assert_eq!(
        changes[1]["after"]["items"][0]["check"]["condition"],
        "successRate >= 0.5"
    );
}
