//! `/v1/tokens`: an admin creates, lists and revokes the tokens of their tenant.

use axum::http::StatusCode;
use kamachiq_domain::Role;
use serde_json::{Value, json};

use crate::support::{Server, Token};

async fn admin(server: &Server) -> Token {
    server.token("tenant-a", "admin", &[Role::Admin]).await
}

async fn create(server: &Server, admin: &Token, body: &Value) -> crate::support::Reply {
    server.post_json("/v1/tokens", admin, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_token_works_until_it_is_revoked() {
    let server = Server::start().await;
    let admin = admin(&server).await;
    let reply = create(
        &server,
        &admin,
        &json!({"name": "ci", "roles": ["viewer", "operator", "viewer"]}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let created = reply.json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("kq_"), "{secret}");
    assert_eq!(secret.len(), 3 + 64);
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["token"]["tenant"], "tenant-a");
    assert_eq!(created["token"]["name"], "ci");
    assert_eq!(created["token"]["roles"], json!(["operator", "viewer"]));
    assert_eq!(created["token"]["revoked_at"], Value::Null);

    // The secret is shown once: the list has no secret, and the store keeps its hash only.
    let listed = server.get("/v1/tokens", &admin).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.text().contains(&secret));
    let tokens = listed.json();
    let ci = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        ci.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["created_at", "id", "name", "revoked_at", "roles", "tenant"]
    );
    let stored = server
        .store
        .live_token_by_hash(&kamachiq_server::hash_secret(&secret))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id, id);

    let ci = Token {
        id: id.clone(),
        secret,
    };
    assert_eq!(
        server.get("/v1/workflows", &ci).await.status,
        StatusCode::OK
    );

    let reply = server.delete(&format!("/v1/tokens/{id}"), &admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let revoked = reply.json();
    assert_eq!(revoked["id"], id.as_str());
    assert!(revoked["revoked_at"].is_string(), "{revoked:#}");

    // At once, although the token was just used (and remembered).
    server
        .get("/v1/workflows", &ci)
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_tokens_name_cannot_be_taken_twice() {
    let server = Server::start().await;
    let admin = admin(&server).await;
    let body = json!({"name": "ci", "roles": ["operator"]});
    let first = create(&server, &admin, &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    create(&server, &admin, &body)
        .await
        .problem(StatusCode::CONFLICT, "token_name_taken");

    // Once revoked, the name is free again.
    let id = first.json()["token"]["id"].as_str().unwrap().to_owned();
    let revoked = server.delete(&format!("/v1/tokens/{id}"), &admin).await;
    assert_eq!(revoked.status, StatusCode::OK);
    let again = create(&server, &admin, &body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_needs_a_role() {
    let server = Server::start().await;
    let admin = admin(&server).await;
    let problem = create(&server, &admin, &json!({"name": "ci", "roles": []}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "no_roles");
    assert_eq!(problem["field"], "roles");
    assert_eq!(problem["detail"], "a token needs at least one role");
    let tokens = server.get("/v1/tokens", &admin).await.json();
    assert_eq!(tokens.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_request_names_the_field() {
    let server = Server::start().await;
    let admin = admin(&server).await;
    let problem = create(
        &server,
        &admin,
        &json!({"name": " ci", "roles": ["viewer"]}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_token_name");
    assert_eq!(problem["field"], "name");
    let problem = create(&server, &admin, &json!({"name": "ci", "roles": ["owner"]}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "roles[0]");
    let reply = server
        .send(
            crate::support::call(axum::http::Method::POST, "/v1/tokens", Some(&admin))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{\"name\": "))
                .unwrap(),
        )
        .await;
    reply.problem(StatusCode::BAD_REQUEST, "malformed_json");
    let reply = server
        .send(
            crate::support::call(axum::http::Method::POST, "/v1/tokens", Some(&admin))
                .header("content-type", "text/plain")
                .body(axum::body::Body::from("ci"))
                .unwrap(),
        )
        .await;
    reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_cannot_be_revoked_again() {
    let server = Server::start().await;
    let admin = admin(&server).await;
    let other = server.token("tenant-a", "ci", &[Role::Viewer]).await;
    let first = server
        .delete(&format!("/v1/tokens/{}", other.id), &admin)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    server
        .delete(&format!("/v1/tokens/{}", other.id), &admin)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}
