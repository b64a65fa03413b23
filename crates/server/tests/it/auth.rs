use axum::body::Body;
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode};
use kamachiq_domain::{Role, Timestamp};

use crate::support::{Server, Token, call, plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_token_is_unauthenticated() {
    let server = Server::start().await;
    let reply = server.get_anonymous("/v1/workflows").await;
    let problem = reply.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"kamachiq\"")
    );
    assert_eq!(
        problem["detail"],
        "no Authorization header; send `Authorization: Bearer <token>`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_header_that_is_not_bearer_is_unauthenticated() {
    let server = Server::start().await;
    let reply = server
        .send(
            call(Method::GET, "/v1/workflows", None)
                .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let problem = reply.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        problem["detail"],
        "the Authorization header must be `Bearer <token>`"
    );
    assert!(reply.header("www-authenticate").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_is_unauthenticated() {
    let server = Server::start().await;
    server.token("tenant-a", "ci", &[Role::Admin]).await;
    let unknown = Token {
        id: "none".into(),
        secret: kamachiq_server::new_secret().unwrap(),
    };
    let reply = server.get("/v1/workflows", &unknown).await;
    let problem = reply.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(problem["detail"], "unknown or revoked token");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"kamachiq\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_in_the_store_is_unauthenticated() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "ci", &[Role::Viewer]).await;
    server
        .store
        .revoke_token(&token.id, None, Timestamp::from_millis(1_800_000_000_001))
        .await
        .unwrap();
    let reply = server.get("/v1/workflows", &token).await;
    let problem = reply.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(problem["detail"], "unknown or revoked token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_submit_a_plan() {
    let server = Server::start().await;
    let viewer = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    let reply = server
        .post_json("/v1/plans/execute", &viewer, &plan(1))
        .await;
    let problem = reply.problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(problem["required_role"], "operator");
    assert_eq!(
        problem["detail"],
        "this operation needs the `operator` role"
    );
    assert!(reply.header("www-authenticate").is_none());
    // Nothing was stored.
    let runs = server.get("/v1/workflows", &viewer).await.json();
    assert_eq!(runs["runs"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_cannot_read_runs() {
    let server = Server::start().await;
    let scraper = server
        .token("tenant-a", "prometheus", &[Role::Metrics])
        .await;
    let reply = server.get("/v1/workflows", &scraper).await;
    let problem = reply.problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(problem["required_role"], "viewer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_manage_tokens_or_scrape_metrics() {
    let server = Server::start().await;
    let viewer = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    let problem = server
        .get("/v1/tokens", &viewer)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(problem["required_role"], "admin");
    let problem = server
        .get("/metrics", &viewer)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(problem["required_role"], "metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_need_no_token() {
    let server = Server::start().await;
    let health = server.get_anonymous("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(
        health.json(),
        serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
    let ready = server.get_anonymous("/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.json(),
        serde_json::json!({"ready": true, "database": "sqlite"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_once_the_server_stops() {
    let server = Server::start().await;
    server.stop().await;
    let ready = server.get_anonymous("/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.json(),
        serde_json::json!({
            "ready": false,
            "database": "sqlite",
            "detail": "the server is shutting down",
        })
    );
}
