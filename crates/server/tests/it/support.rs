use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use kamachiq_domain::{Role, TenantId, Timestamp};
use kamachiq_engine::{Engine, EngineOptions, Parts, ProcessRunner, SystemClock};
use kamachiq_server::{AppState, ServerOptions};
use kamachiq_store::{NewToken, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The longest a run of `true` steps may take to finish on a slow, busy machine.
pub const RUN_DEADLINE: Duration = Duration::from_secs(20);

/// The whole API on a fresh SQLite store in a temporary home, with a scheduler that runs steps
/// as real processes.
pub struct Server {
    pub app: Router,
    pub state: AppState,
    pub store: Store,
    _home: tempfile::TempDir,
}

/// A token made directly in the store: its id and the secret a client sends.
#[derive(Clone, Debug)]
pub struct Token {
    pub id: String,
    pub secret: String,
}

impl Server {
    pub async fn start() -> Self {
        Self::with_options(ServerOptions::default()).await
    }

    pub async fn with_options(options: ServerOptions) -> Self {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&home.path().join("kamachiq.db"))
            .await
            .unwrap();
        let runner = ProcessRunner {
            kill_grace: Duration::from_secs(1),
            ..ProcessRunner::default()
        };
        let engine = Engine::new(Parts::new(
            store.clone(),
            Arc::new(runner),
            Arc::new(SystemClock),
            EngineOptions::new(home.path()),
        ))
        .unwrap();
        let state = AppState::start(engine, options).await.unwrap();
        Self {
            app: kamachiq_server::app(state.clone()),
            state,
            store,
            _home: home,
        }
    }

    /// Creates a live token of `tenant` with `roles`.
    pub async fn token(&self, tenant: &str, name: &str, roles: &[Role]) -> Token {
        let secret = kamachiq_server::new_secret().unwrap();
        let token = self
            .store
            .create_token(&NewToken {
                id: ulid::Ulid::generate().to_string().to_lowercase(),
                tenant: TenantId::parse(tenant).unwrap(),
                name: name.to_owned(),
                roles: roles.to_vec(),
                hash: kamachiq_server::hash_secret(&secret),
                at: Timestamp::from_millis(1_800_000_000_000),
            })
            .await
            .unwrap();
        Token {
            id: token.id,
            secret,
        }
    }

    /// Answers one request. A body that does not end within `RUN_DEADLINE` (an event stream
    /// answered where an error was expected) fails the test instead of hanging it.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(RUN_DEADLINE, response.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("the {status} response's body never ended: {headers:?}"))
            .unwrap()
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET path` without any token.
    pub async fn get_anonymous(&self, path: &str) -> Reply {
        self.send(call(Method::GET, path, None).body(Body::empty()).unwrap())
            .await
    }

    pub async fn get(&self, path: &str, token: &Token) -> Reply {
        self.send(
            call(Method::GET, path, Some(token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, token: &Token) -> Reply {
        self.send(
            call(Method::POST, path, Some(token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, token: &Token, body: &Value) -> Reply {
        self.send_json(Method::POST, path, token, body).await
    }

    /// `method path` with `body` as JSON.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: &Token,
        body: &Value,
    ) -> Reply {
        self.send(
            call(method, path, Some(token))
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &Token) -> Reply {
        self.send(
            call(Method::DELETE, path, Some(token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Submits `plan` as JSON; the new run's id.
    pub async fn submit(&self, token: &Token, plan: &Value) -> String {
        let reply = self.post_json("/v1/plans/execute", token, plan).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        reply.json()["run_id"].as_str().unwrap().to_owned()
    }

    /// Polls the run until it is in `state`; its view then. Fails at once if the run ends in
    /// another state, and after `RUN_DEADLINE` if it never gets there.
    pub async fn wait_for(&self, token: &Token, run: &str, state: &str) -> Value {
        self.wait_until(token, run, state, |view| {
            let now = view["state"].as_str().unwrap();
            assert!(
                now == state || now == "running",
                "run {run} ended {now}, not {state}: {view:#}"
            );
            now == state
        })
        .await
    }

    /// Polls the run's view until `done` holds; the view then. Fails after `RUN_DEADLINE`.
    pub async fn wait_until(
        &self,
        token: &Token,
        run: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            let reply = self.get(&format!("/v1/workflows/{run}"), token).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            let view = reply.json();
            if done(&view) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "run {run}: not {what} after {RUN_DEADLINE:?}: {view:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the scheduler and the event feed: runs still in flight are handed back and
    /// their processes stopped.
    pub async fn stop(&self) {
        assert!(self.state.shutdown(Duration::from_secs(10)).await);
    }
}

/// A request to `path`, with `token` as bearer when given.
pub fn call(method: Method, path: &str, token: Option<&Token>) -> axum::http::request::Builder {
    let builder = Request::builder().method(method).uri(path);
    match token {
        Some(token) => builder.header(AUTHORIZATION, format!("Bearer {}", token.secret)),
        None => builder,
    }
}

/// A plan of `deliverables` independent deliverables, each with one step that runs `true`.
pub fn plan(deliverables: usize) -> Value {
    let deliverables: Vec<Value> = (1..=deliverables)
        .map(|i| json!({"id": format!("d{i}"), "steps": [{"name": "dev", "run": "true"}]}))
        .collect();
    json!({"title": "test plan", "deliverables": deliverables})
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Checks that this is the problem document of `code` with `status`; the document.
    pub fn problem(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text()
        );
        let problem = self.json();
        assert_eq!(problem["code"], code, "{problem:#}");
        assert_eq!(problem["status"], status.as_u16(), "{problem:#}");
        assert_eq!(
            problem["type"],
            format!("urn:kamachiq:problem:{code}"),
            "{problem:#}"
        );
        problem
    }
}

/// One Server-Sent Events message.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: i64,
    pub event: String,
    pub data: Value,
}

/// An open event stream, read frame by frame.
pub struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    /// Opens `path` (a `/v1/events` URL), sending `last_event_id` when given.
    pub async fn open(
        server: &Server,
        path: &str,
        token: &Token,
        last_event_id: Option<&str>,
    ) -> Self {
        let mut request = call(Method::GET, path, Some(token));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = server
            .app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next message (keep-alive comments skipped), waiting at most until `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> Message {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(message) = parse(&block) {
                    return message;
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no event in time; unparsed: {:?}", self.buffer))
                .expect("the event stream ended")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// Every message up to and including the first of kind `event`, within `RUN_DEADLINE`.
    pub async fn until(&mut self, event: &str) -> Vec<Message> {
        let deadline = Instant::now() + RUN_DEADLINE;
        let mut seen = Vec::new();
        loop {
            let message = self.next(deadline).await;
            let last = message.event == event;
            seen.push(message);
            if last {
                return seen;
            }
        }
    }
}

/// A message from its lines; `None` for a comment.
fn parse(block: &str) -> Option<Message> {
    let (mut id, mut event, mut data) = (None, None, String::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.parse().unwrap()),
            "event" => event = Some(value.to_owned()),
            "data" => data.push_str(value),
            "" => {}
            other => panic!("unexpected SSE field {other:?} in {block:?}"),
        }
    }
    if id.is_none() && event.is_none() && data.is_empty() {
        return None;
    }
    Some(Message {
        id: id.unwrap_or_else(|| panic!("a message without id: {block:?}")),
        event: event.unwrap_or_else(|| panic!("a message without event: {block:?}")),
        data: serde_json::from_str(&data).unwrap(),
    })
}
