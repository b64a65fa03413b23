//! Every error is a problem document with a stable code, routing errors included.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use kamachiq_domain::Role;

use crate::support::{Server, call};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_is_a_problem() {
    let server = Server::start().await;
    let reply = server.get_anonymous("/v1/nowhere?x=1").await;
    let problem = reply.problem(StatusCode::NOT_FOUND, "no_route");
    assert_eq!(problem["detail"], "no route /v1/nowhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_a_problem() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "admin", &[Role::Admin]).await;
    let reply = server.delete("/v1/workflows", &token).await;
    let problem = reply.problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(problem["detail"], "method DELETE is not allowed here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_run_is_not_found() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    for id in ["01jabcdefghjkmnpqrstvwxyz0", "not-a-run-id"] {
        let problem = server
            .get(&format!("/v1/workflows/{id}"), &token)
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(problem["detail"], format!("no run `{id}`"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_page_size_names_the_parameter() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    let problem = server
        .get("/v1/workflows?limit=0", &token)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(problem["field"], "limit");
    let problem = server
        .get("/v1/workflows?limit=many", &token)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(problem["field"], "limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_plan_problem_locates_every_problem() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "ci", &[Role::Operator]).await;
    let yaml = "\
tenant: tenant-b
deliverables:
  - id: api
    dependencies: [docs]
    steps:
      - name: dev
        run: \"true\"
  - id: docs
    dependencies: [api]
    steps: []
";
    let reply = server
        .send(
            call(Method::POST, "/v1/plans/execute", Some(&token))
                .header(CONTENT_TYPE, "application/yaml")
                .body(Body::from(yaml))
                .unwrap(),
        )
        .await;
    let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plan");
    insta::assert_json_snapshot!("invalid_plan_problem", problem);
}
