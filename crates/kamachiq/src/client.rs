//! The CLI's side of `--server`: a small HTTP client of kamachiq's API. Answers are the same
//! views the local commands build, so the output is the same either way. A problem document
//! becomes an error that says what the server said; 4xx answers are input errors (exit 2).

use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use kamachiq_api::{
    CancelView, ExecuteParams, PauseView, Problem, ResumeRequest, ResumeView, RunAccepted, RunPage,
    RunView, RunsParams, StopRequest, StopView,
};
use kamachiq_domain::Event;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::InvalidInput;

/// A kamachiq server and the token to call it with.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        // One crypto provider for every TLS user in the process (sqlx uses ring too).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("kamachiq/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the kamachiq server at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = match serde_json::from_str::<Problem>(&text) {
            Ok(p) => {
                let mut m = format!(
                    "the server answered {}: {} ({})",
                    status.as_u16(),
                    p.detail,
                    p.code
                );
                if let Some(field) = &p.field {
                    m.push_str(&format!(" [field: {field}]"));
                }
                for e in &p.errors {
                    let line = e.line.map(|l| format!(":{l}")).unwrap_or_default();
                    let at = e
                        .deliverable
                        .as_ref()
                        .map(|d| format!(" (deliverable {d})"))
                        .unwrap_or_default();
                    m.push_str(&format!("\n  {}{line}{at}: {}", e.file, e.message));
                }
                m
            }
            Err(_) => format!("the server answered {status}"),
        };
        if status.is_client_error() {
            Err(InvalidInput::new(message).into())
        } else {
            Err(anyhow::anyhow!(message))
        }
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> anyhow::Result<T> {
        let response = self.send(request).await?;
        response.json().await.with_context(|| {
            format!(
                "the server at {} sent an answer kamachiq cannot read",
                self.base
            )
        })
    }

    /// `GET path`, the answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.json(self.request(Method::GET, path)).await
    }

    /// `method path` with `body` as JSON (none when `None`), the answer read as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<T> {
        let request = self.request(method, path);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        self.json(request).await
    }

    /// `DELETE path`, expecting no content.
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send(self.request(Method::DELETE, path)).await?;
        Ok(())
    }

    pub async fn runs(&self, params: &RunsParams) -> anyhow::Result<RunPage> {
        self.json(self.request(Method::GET, "/v1/workflows").query(params))
            .await
    }

    pub async fn run(&self, id: &str) -> anyhow::Result<RunView> {
        self.json(self.request(Method::GET, &format!("/v1/workflows/{id}")))
            .await
    }

    /// The run a user means: a full id, `latest`, or a unique prefix of one of the newest 500.
    pub async fn resolve(&self, reference: &str) -> anyhow::Result<String> {
        let newest = |limit| RunsParams {
            limit: Some(limit),
            ..RunsParams::default()
        };
        if reference == "latest" {
            let page = self.runs(&newest(1)).await?;
            return page
                .runs
                .first()
                .map(|r| r.id.clone())
                .ok_or_else(|| InvalidInput::new("no runs yet on the server").into());
        }
        if reference.len() == 26 {
            return Ok(reference.to_owned());
        }
        let page = self.runs(&newest(500)).await?;
        let matches: Vec<&str> = page
            .runs
            .iter()
            .map(|r| r.id.as_str())
            .filter(|id| id.starts_with(&reference.to_ascii_lowercase()))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(InvalidInput::new(format!(
                "no run `{reference}` among the server's 500 newest runs; give the full id"
            ))
            .into()),
            many => Err(InvalidInput::new(format!(
                "`{reference}` matches more than one run ({}); give more of the id",
                many.join(", ")
            ))
            .into()),
        }
    }

    /// Turns the emergency stop on.
    pub async fn stop(&self, reason: &str) -> anyhow::Result<StopView> {
        let body = StopRequest {
            reason: Some(reason.to_owned()),
        };
        self.json(self.request(Method::POST, "/v1/stop").json(&body))
            .await
    }

    /// Lifts the emergency stop.
    pub async fn resume_all(&self) -> anyhow::Result<StopView> {
        self.json(self.request(Method::POST, "/v1/resume-all"))
            .await
    }

    /// Pauses a run.
    pub async fn pause(&self, id: &str) -> anyhow::Result<PauseView> {
        self.json(self.request(Method::POST, &format!("/v1/workflows/{id}/pause")))
            .await
    }

    pub async fn cancel(&self, id: &str) -> anyhow::Result<CancelView> {
        self.json(self.request(Method::POST, &format!("/v1/workflows/{id}/cancel")))
            .await
    }

    pub async fn resume(&self, id: &str, retry_failed: bool) -> anyhow::Result<ResumeView> {
        self.json(
            self.request(Method::POST, &format!("/v1/workflows/{id}/resume"))
                .json(&ResumeRequest { retry_failed }),
        )
        .await
    }

    /// Submits a plan's text (YAML or JSON) as written.
    pub async fn execute(
        &self,
        plan: String,
        json: bool,
        params: &ExecuteParams,
    ) -> anyhow::Result<RunAccepted> {
        let content_type = if json {
            "application/json"
        } else {
            "application/yaml"
        };
        self.json(
            self.request(Method::POST, "/v1/plans/execute")
                .query(params)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(plan),
        )
        .await
    }

    /// Follows a run's events after `after` until `until` says stop (or the stream ends).
    /// Reconnects with `Last-Event-ID` when the connection drops, so no event is missed.
    pub async fn follow(
        &self,
        run: &str,
        mut after: i64,
        mut on_event: impl FnMut(&Event) -> bool,
    ) -> anyhow::Result<()> {
        let mut failures = 0u32;
        loop {
            let request = self
                .request(Method::GET, "/v1/events")
                .query(&[("run_id", run)])
                .header("Last-Event-ID", after.to_string());
            let response = match self.send(request).await {
                Ok(r) => r,
                Err(e) if failures < 5 && e.downcast_ref::<InvalidInput>().is_none() => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut body = response.bytes_stream();
            let mut pending = String::new();
            let mut data = String::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                failures = 0;
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    let line = line.trim_end_matches(['\n', '\r']);
                    if let Some(rest) = line.strip_prefix("data:") {
                        data.push_str(rest.trim_start());
                    } else if line.is_empty() && !data.is_empty() {
                        let event: Event = serde_json::from_str(&data)
                            .context("the server sent an event kamachiq cannot read")?;
                        data.clear();
                        after = event.seq;
                        if !on_event(&event) {
                            return Ok(());
                        }
                    }
                }
            }
            // The connection ended (the server restarted?): reconnect after the last event.
            failures += 1;
            if failures > 5 {
                anyhow::bail!("lost the event stream of run {run} on {}", self.base);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
