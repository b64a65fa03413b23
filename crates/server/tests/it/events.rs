//! `GET /v1/events`: Server-Sent Events whose `id` is the event's `seq`, resumable with
//! `Last-Event-ID`.

use axum::http::StatusCode;
use kamachiq_domain::Role;

use crate::support::{Events, Message, Server, plan};

fn kinds(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.event.as_str()).collect()
}

fn ids(messages: &[Message]) -> Vec<i64> {
    messages.iter().map(|m| m.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_events_stream_from_run_started_to_run_finished() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "ci", &[Role::Operator]).await;
    let run = server.submit(&token, &plan(1)).await;
    let path = format!("/v1/events?run_id={run}&after=0");
    let mut events = Events::open(&server, &path, &token, None).await;
    let seen = events.until("run_finished").await;

    assert_eq!(
        kinds(&seen),
        [
            "run_started",
            "deliverable_started",
            "step_started",
            "step_finished",
            "deliverable_succeeded",
            "run_finished",
        ]
    );
    for message in &seen {
        assert_eq!(message.data["seq"], message.id, "{message:?}");
        assert_eq!(message.data["kind"], message.event.as_str(), "{message:?}");
        assert_eq!(message.data["run_id"], run.as_str(), "{message:?}");
        assert_eq!(message.data["tenant"], "tenant-a", "{message:?}");
    }
    assert!(ids(&seen).is_sorted_by(|a, b| a < b), "{:?}", ids(&seen));
    assert_eq!(seen[5].data["data"]["state"], "succeeded");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_resumes_after_its_last_event_id() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "ci", &[Role::Operator]).await;
    let run = server.submit(&token, &plan(2)).await;
    let path = format!("/v1/events?run_id={run}&after=0");
    let whole = Events::open(&server, &path, &token, None)
        .await
        .until("run_finished")
        .await;
    assert_eq!(whole[0].event, "run_started");

    // `Last-Event-ID` wins over `after`.
    let last = whole[0].id.to_string();
    let resumed = Events::open(&server, &path, &token, Some(&last))
        .await
        .until("run_finished")
        .await;
    assert_eq!(ids(&resumed), ids(&whole[1..]));
    assert_eq!(kinds(&resumed), kinds(&whole[1..]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_last_event_id_is_a_bad_request() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    for bad in ["abc", "-1"] {
        let reply = server
            .send(
                crate::support::call(axum::http::Method::GET, "/v1/events", Some(&token))
                    .header("last-event-id", bad)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        let problem = reply.problem(StatusCode::BAD_REQUEST, "invalid_last_event_id");
        assert_eq!(problem["field"], "Last-Event-ID", "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_after_is_a_bad_request() {
    let server = Server::start().await;
    let token = server.token("tenant-a", "viewer", &[Role::Viewer]).await;
    let problem = server
        .get("/v1/events?after=-5", &token)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert_eq!(problem["field"], "after");
}
