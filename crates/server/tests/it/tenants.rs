//! A token sees its own tenant only: another tenant's run is "not found", exactly like a run
//! that does not exist, and lists never show it.

use axum::http::StatusCode;
use kamachiq_domain::Role;
use serde_json::{Value, json};

use crate::support::{Events, Server, Token, plan};

/// A server where tenant A has a run that keeps running (`sleep 30`), and both tenants have an
/// admin token.
struct TwoTenants {
    server: Server,
    a: Token,
    b: Token,
    run: String,
}

impl TwoTenants {
    async fn new() -> Self {
        let server = Server::start().await;
        let a = server.token("tenant-a", "admin", &[Role::Admin]).await;
        let b = server.token("tenant-b", "admin", &[Role::Admin]).await;
        let run = server.submit(&a, &long_plan()).await;
        Self { server, a, b, run }
    }

    /// Checks that `reply` is the answer for a run that does not exist.
    fn assert_unknown_run(&self, reply: &crate::support::Reply) {
        let problem = reply.problem(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(problem["detail"], format!("no run `{}`", self.run));
    }

    /// A's run, as A sees it.
    async fn run_view(&self) -> Value {
        let reply = self
            .server
            .get(&format!("/v1/workflows/{}", self.run), &self.a)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()
    }
}

fn long_plan() -> Value {
    json!({"deliverables": [{"id": "slow", "steps": [{"name": "dev", "run": "sleep 30"}]}]})
}

fn ids(page: &Value) -> Vec<&str> {
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_run_is_not_found() {
    let t = TwoTenants::new().await;
    let reply = t
        .server
        .get(&format!("/v1/workflows/{}", t.run), &t.b)
        .await;
    t.assert_unknown_run(&reply);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_run_cannot_be_cancelled() {
    let t = TwoTenants::new().await;
    let reply = t
        .server
        .post(&format!("/v1/workflows/{}/cancel", t.run), &t.b)
        .await;
    t.assert_unknown_run(&reply);
    let view = t.run_view().await;
    assert_eq!(view["cancel_requested"], false);
    assert_eq!(view["state"], "running");
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_run_cannot_be_resumed() {
    let t = TwoTenants::new().await;
    let reply = t
        .server
        .post_json(
            &format!("/v1/workflows/{}/resume", t.run),
            &t.b,
            &json!({"retry_failed": true}),
        )
        .await;
    t.assert_unknown_run(&reply);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_events_are_not_found() {
    let t = TwoTenants::new().await;
    let reply = t
        .server
        .get(&format!("/v1/events?run_id={}&after=0", t.run), &t.b)
        .await;
    t.assert_unknown_run(&reply);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_lists_show_only_the_tokens_tenant() {
    let t = TwoTenants::new().await;
    let own = t.server.submit(&t.b, &plan(1)).await;
    for path in ["/v1/workflows", "/v1/kamachiq/runs"] {
        let reply = t.server.get(path, &t.b).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(ids(&reply.json()), [own.as_str()], "{path}");
        let reply = t.server.get(path, &t.a).await;
        assert_eq!(ids(&reply.json()), [t.run.as_str()], "{path}");
    }
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_counts_only_the_tokens_tenant() {
    let t = TwoTenants::new().await;
    t.server.submit(&t.a, &plan(1)).await;
    let reply = t.server.get("/v1/kamachiq/summary", &t.b).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let summary = reply.json();
    assert_eq!(summary["tenant"], "tenant-b");
    assert_eq!(
        summary["runs"],
        json!({"total": 0, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0})
    );
    assert_eq!(summary["deliverables"]["pending"], 0);
    let summary = t.server.get("/v1/kamachiq/summary", &t.a).await.json();
    assert_eq!(summary["runs"]["total"], 2);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_another_tenant_is_not_found() {
    let t = TwoTenants::new().await;
    for path in [
        "/v1/workflows?tenant_id=tenant-a",
        "/v1/kamachiq/runs?tenant_id=tenant-a",
        "/v1/kamachiq/summary?tenant_id=tenant-a",
    ] {
        let problem = t
            .server
            .get(path, &t.b)
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(problem["detail"], "no tenant `tenant-a`", "{path}");
    }
    // Naming one's own tenant is allowed.
    let reply = t.server.get("/v1/workflows?tenant_id=tenant-a", &t.a).await;
    assert_eq!(ids(&reply.json()), [t.run.as_str()]);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_token_cannot_be_revoked() {
    let t = TwoTenants::new().await;
    let problem = t
        .server
        .delete(&format!("/v1/tokens/{}", t.a.id), &t.b)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(problem["detail"], format!("no token `{}`", t.a.id));
    // A's token still works.
    let reply = t.server.get("/v1/tokens", &t.a).await;
    assert_eq!(reply.status, StatusCode::OK);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lists_show_only_the_tokens_tenant() {
    let t = TwoTenants::new().await;
    let ci = t.server.token("tenant-b", "ci", &[Role::Operator]).await;
    let tokens = t.server.get("/v1/tokens", &t.b).await.json();
    let mut listed: Vec<(&str, &str)> = tokens
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["tenant"].as_str().unwrap()))
        .collect();
    listed.sort_unstable();
    let mut expected = vec![(t.b.id.as_str(), "tenant-b"), (ci.id.as_str(), "tenant-b")];
    expected.sort_unstable();
    assert_eq!(listed, expected);
    t.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_only_the_tokens_tenant() {
    let server = Server::start().await;
    let a = server.token("tenant-a", "admin", &[Role::Admin]).await;
    let b = server.token("tenant-b", "admin", &[Role::Admin]).await;
    let theirs = server.submit(&a, &plan(1)).await;
    server.wait_for(&a, &theirs, "succeeded").await;
    let own = server.submit(&b, &plan(1)).await;
    // From the start of the log, which begins with A's run.
    let mut events = Events::open(&server, "/v1/events?after=0", &b, None).await;
    let seen = events.until("run_finished").await;
    assert_eq!(seen[0].event, "run_started");
    for message in &seen {
        assert_eq!(message.data["run_id"], own.as_str(), "{message:?}");
        assert_eq!(message.data["tenant"], "tenant-b", "{message:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_finished_run_is_not_found_though_kept_in_memory() {
    let server = Server::start().await;
    let a = server.token("tenant-a", "admin", &[Role::Admin]).await;
    let b = server.token("tenant-b", "admin", &[Role::Admin]).await;
    let run = server.submit(&a, &plan(1)).await;
    // A reads the finished run, so its view is kept; the second read is served from memory.
    server.wait_for(&a, &run, "succeeded").await;
    let path = format!("/v1/workflows/{run}");
    let kept = server.get(&path, &a).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text());
    assert_eq!(kept.json()["state"], "succeeded");

    let problem = server
        .get(&path, &b)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(problem["detail"], format!("no run `{run}`"));
    server.stop().await;
}
