//! `POST /v1/plans/execute` and the life of the run it starts: success, cancel, resume.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use kamachiq_domain::Role;
use kamachiq_server::ServerOptions;
use serde_json::{Value, json};

use crate::support::{Server, Token, call, plan};

async fn operator(server: &Server) -> Token {
    server.token("tenant-a", "ci", &[Role::Operator]).await
}

/// Sends `body` to `/v1/plans/execute?query` with `content_type`.
async fn execute(
    server: &Server,
    token: &Token,
    query: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> crate::support::Reply {
    let mut request = call(
        Method::POST,
        &format!("/v1/plans/execute{query}"),
        Some(token),
    );
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    server.send(request.body(body.into()).unwrap()).await
}

/// Submits the one-deliverable JSON plan with `query`.
async fn execute_one(query: &str, server: &Server, token: &Token) -> crate::support::Reply {
    execute(
        server,
        token,
        query,
        Some("application/json"),
        plan(1).to_string(),
    )
    .await
}

/// Checks that the tenant has no run.
async fn assert_no_runs(server: &Server, token: &Token) {
    let runs = server.get("/v1/workflows", token).await.json();
    assert_eq!(runs, json!({"runs": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_plan_is_accepted_and_its_run_succeeds() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let reply = server
        .post_json("/v1/plans/execute", &token, &plan(1))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let accepted = reply.json();
    let run = accepted["run_id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/workflows/{run}").as_str())
    );
    assert_eq!(
        accepted,
        json!({
            "run_id": run,
            "state": "running",
            "tenant": "tenant-a",
            "deliverables": 1,
            "links": {
                "workflow": format!("/v1/workflows/{run}"),
                "events": format!("/v1/events?run_id={run}"),
            },
        })
    );

    let view = server.wait_for(&token, &run, "succeeded").await;
    assert_eq!(view["tenant"], "tenant-a");
    assert_eq!(view["title"], "test plan");
    assert_eq!(view["repo"], Value::Null);
    assert_eq!(view["concurrency"], 4);
    let d = &view["deliverables"][0];
    assert_eq!(d["id"], "d1");
    assert_eq!(d["state"], "succeeded");
    assert_eq!(d["steps_done"], 1);
    assert_eq!(d["steps"][0]["step"], "dev");
    assert_eq!(d["steps"][0]["state"], "succeeded");
    assert_eq!(d["steps"][0]["exit_code"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_plan_is_accepted_and_its_run_succeeds() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let yaml =
        "deliverables:\n  - id: build\n    steps:\n      - name: dev\n        run: \"true\"\n";
    let reply = execute(
        &server,
        &token,
        "?concurrency=2",
        Some("application/yaml"),
        yaml,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let run = reply.json()["run_id"].as_str().unwrap().to_owned();
    let view = server.wait_for(&token, &run, "succeeded").await;
    assert_eq!(view["concurrency"], 2);
    assert_eq!(view["deliverables"][0]["id"], "build");
    assert_eq!(view["deliverables"][0]["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_for_another_tenant_is_refused() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let mut foreign = plan(1);
    foreign["tenant"] = json!("tenant-b");
    let problem = server
        .post_json("/v1/plans/execute", &token, &foreign)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plan");
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{problem:#}");
    assert_eq!(errors[0]["field"], "tenant");
    assert_eq!(
        errors[0]["message"],
        "the plan is for tenant `tenant-b`, but it was submitted for tenant `tenant-a`"
    );
    assert_no_runs(&server, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_naming_its_own_tenant_is_accepted() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let mut own = plan(1);
    own["tenant"] = json!("tenant-a");
    let reply = server.post_json("/v1/plans/execute", &token, &own).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.json()["tenant"], "tenant-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cyclic_plan_is_refused_and_nothing_is_stored() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let cyclic = json!({"deliverables": [
        {"id": "a", "dependencies": ["b"], "steps": [{"name": "dev", "run": "true"}]},
        {"id": "b", "dependencies": ["a"], "steps": [{"name": "dev", "run": "true"}]},
    ]});
    let problem = server
        .post_json("/v1/plans/execute", &token, &cyclic)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plan");
    assert_eq!(problem["detail"], "the plan has 1 problem; see `errors`");
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{problem:#}");
    assert_eq!(errors[0]["message"], "dependency cycle: a -> b -> a");
    assert_no_runs(&server, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_bad_request() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let reply = execute(
        &server,
        &token,
        "",
        Some("application/json"),
        r#"{"deliverables": ["#,
    )
    .await;
    let problem = reply.problem(StatusCode::BAD_REQUEST, "malformed_json");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("the body is not valid JSON: "),
        "{problem:#}"
    );
    assert_no_runs(&server, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_without_a_content_type_is_unsupported() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let reply = execute(&server, &token, "", None, plan(1).to_string()).await;
    let problem = reply.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert_eq!(
        problem["detail"],
        "send the plan as `Content-Type: application/json` or `application/yaml`"
    );
    assert_no_runs(&server, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_over_the_body_limit_is_too_large() {
    let server = Server::with_options(ServerOptions {
        body_limit: 1024,
        ..ServerOptions::default()
    })
    .await;
    let token = operator(&server).await;
    let big = plan(40).to_string();
    assert!(big.len() > 1024);
    let reply = execute(&server, &token, "", Some("application/json"), big).await;
    let problem = reply.problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert_eq!(
        problem["detail"],
        "the request body is larger than the limit of 1024 bytes"
    );
    assert_no_runs(&server, &token).await;
    // A plan under the limit still gets in.
    let small = plan(1).to_string();
    assert!(small.len() < 1024);
    let reply = execute(&server, &token, "", Some("application/json"), small).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_of_zero_is_a_bad_request() {
    let server = Server::start().await;
    let token = operator(&server).await;
    for concurrency in ["0", "1025"] {
        let reply = execute_one(&format!("?concurrency={concurrency}"), &server, &token).await;
        let problem = reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
        assert_eq!(problem["field"], "concurrency");
        assert_eq!(
            problem["detail"],
            format!("concurrency must be between 1 and 1024 (got {concurrency})")
        );
    }
    assert_no_runs(&server, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_query_parameter_is_a_bad_request() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let reply = execute_one("?colour=red", &server, &token).await;
    let problem = reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("invalid query string: unknown field `colour`"),
        "{problem:#}"
    );
    assert_no_runs(&server, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_repository_is_an_invalid_target() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let reply = execute_one("?repo=foo", &server, &token).await;
    let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_target");
    assert_eq!(problem["field"], "repo");
    assert_eq!(
        problem["detail"],
        "the repository must be an absolute path on the server (got `foo`)"
    );
    assert_no_runs(&server, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plans_relative_repository_is_an_invalid_target() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let mut relative = plan(1);
    relative["repo"] = json!("../service");
    let problem = server
        .post_json("/v1/plans/execute", &token, &relative)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_target");
    assert_eq!(problem["field"], "plan.repo");
    assert_no_runs(&server, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_run_is_cancelled() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let long =
        json!({"deliverables": [{"id": "slow", "steps": [{"name": "dev", "run": "sleep 30"}]}]});
    let run = server.submit(&token, &long).await;
    // Wait for the step to be running, so a driver holds the run.
    server
        .wait_until(&token, &run, "running its step", |view| {
            view["deliverables"][0]["current_step"] == "dev"
        })
        .await;

    let reply = server
        .post(&format!("/v1/workflows/{run}/cancel"), &token)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let cancel = reply.json();
    assert_eq!(cancel["run_id"], run.as_str());
    assert_eq!(cancel["outcome"], "requested");
    assert!(cancel["driver"].is_string(), "{cancel:#}");

    let view = server.wait_for(&token, &run, "cancelled").await;
    assert_eq!(view["cancel_requested"], true);
    assert_eq!(view["deliverables"][0]["state"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_finished_run_changes_nothing() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let run = server.submit(&token, &plan(1)).await;
    server.wait_for(&token, &run, "succeeded").await;
    let reply = server
        .post(&format!("/v1/workflows/{run}/cancel"), &token)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"run_id": run, "outcome": "already_finished", "state": "succeeded"})
    );
    let view = server
        .get(&format!("/v1/workflows/{run}"), &token)
        .await
        .json();
    assert_eq!(view["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_run_cannot_be_resumed() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let run = server.submit(&token, &plan(1)).await;
    server.wait_for(&token, &run, "succeeded").await;
    let reply = server
        .post(&format!("/v1/workflows/{run}/resume"), &token)
        .await;
    reply.problem(StatusCode::CONFLICT, "run_succeeded");
    let reply = server
        .post_json(
            &format!("/v1/workflows/{run}/resume"),
            &token,
            &json!({"retry_failed": true}),
        )
        .await;
    reply.problem(StatusCode::CONFLICT, "run_succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_resumed_only_with_retry_failed() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let failing =
        json!({"deliverables": [{"id": "d1", "steps": [{"name": "dev", "run": "false"}]}]});
    let run = server.submit(&token, &failing).await;
    server.wait_for(&token, &run, "failed").await;
    let problem = server
        .post(&format!("/v1/workflows/{run}/resume"), &token)
        .await
        .problem(StatusCode::CONFLICT, "run_failed");
    assert_eq!(
        problem["detail"],
        format!(
            "run {run} has failed; send {{\"retry_failed\": true}} to run its failed deliverables again"
        )
    );
    let reply = server
        .post_json(
            &format!("/v1/workflows/{run}/resume"),
            &token,
            &json!({"retry_failed": true}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let resumed = reply.json();
    assert_eq!(resumed["run_id"], run.as_str());
    assert!(
        resumed["reopen"]
            .as_array()
            .unwrap()
            .contains(&json!("failed")),
        "{resumed:#}"
    );
    // It fails again (the step still runs `false`), with a second attempt on record.
    let view = server
        .wait_until(&token, &run, "failed a second time", |view| {
            view["state"] == "failed" && view["deliverables"][0]["attempts"] == 2
        })
        .await;
    assert_eq!(view["deliverables"][0]["state"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_body_with_an_unknown_field_is_unprocessable() {
    let server = Server::start().await;
    let token = operator(&server).await;
    let run = server.submit(&token, &plan(1)).await;
    server.wait_for(&token, &run, "succeeded").await;
    let problem = server
        .post_json(
            &format!("/v1/workflows/{run}/resume"),
            &token,
            &json!({"retry_failed": true, "force": true}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert_eq!(problem["field"], "force", "{problem:#}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("unknown field `force`"),
        "{problem:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_view_of_a_failed_run_gives_way_to_its_resume() {
    let server = Server::start().await;
    let token = operator(&server).await;
    // Fails the first time (leaving a marker), succeeds the second.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let script = format!(
        "test -f '{m}' || {{ touch '{m}'; exit 1; }}",
        m = marker.display()
    );
    let flaky = json!({"deliverables": [{"id": "d1", "steps": [{"name": "dev", "run": script}]}]});
    let run = server.submit(&token, &flaky).await;
    let failed = server.wait_for(&token, &run, "failed").await;
    // Read again: this one is answered from memory, and is the same view.
    let path = format!("/v1/workflows/{run}");
    let kept = server.get(&path, &token).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text());
    assert_eq!(kept.json(), failed);

    let reply = server
        .post_json(
            &format!("{path}/resume"),
            &token,
            &json!({"retry_failed": true}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    // The kept `failed` view is served only until the run is reopened.
    server
        .wait_until(&token, &run, "reopened", |view| view["state"] != "failed")
        .await;
    let view = server.wait_for(&token, &run, "succeeded").await;
    let d = &view["deliverables"][0];
    assert_eq!(d["state"], "succeeded", "{view:#}");
    assert_eq!(d["attempts"], 2, "{view:#}");
    let steps: Vec<(&str, &Value)> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["state"].as_str().unwrap(), &s["exit_code"]))
        .collect();
    assert_eq!(
        steps,
        [("failed", &json!(1)), ("succeeded", &json!(0))],
        "{view:#}"
    );
    // The succeeded view is now the one kept and served.
    let again = server.get(&path, &token).await;
    assert_eq!(again.json(), view);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_outside_the_allowed_roots_is_refused() {
    let allowed = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let server = Server::with_options(ServerOptions {
        repo_roots: vec![std::fs::canonicalize(allowed.path()).unwrap()],
        ..ServerOptions::default()
    })
    .await;
    let token = operator(&server).await;
    let query = format!("?repo={}", elsewhere.path().display());
    let reply = execute_one(&query, &server, &token).await;
    let problem = reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "repo_not_allowed");
    assert_eq!(problem["field"], "repo");
    assert_no_runs(&server, &token).await;

    // Inside a root, the repository is checked as usual (this one is no git repository).
    let inside = format!("?repo={}", allowed.path().display());
    let reply = execute_one(&inside, &server, &token).await;
    reply.problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_target");
}
