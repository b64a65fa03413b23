//! `GET /v1/events`: the tenant's events as Server-Sent Events. Each message's `id` is the
//! event's sequence number; a client that reconnects with `Last-Event-ID` gets everything
//! committed after it, from the store's event log, so nothing is missed.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use kamachiq_api::{EventView, EventsParams, Problem};
use kamachiq_domain::Event;
use kamachiq_store::{EventFilter, Store};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authorized, Read};
use crate::error::ApiError;
use crate::extract::Query;
use crate::routes::own_run;
use crate::state::AppState;

/// Events read from the log at once.
const PAGE: u32 = 500;

/// Streams events as they are committed. Without `Last-Event-ID` or `after`, the stream
/// starts with the events committed from now on.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    security(("bearer" = [])),
    params(
        EventsParams,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event (the `id` of the last message received)"),
    ),
    responses(
        (status = 200, description = "A stream of `EventView` messages: `id` is the event's `seq`, `event` its kind, `data` the event as JSON",
            content_type = "text/event-stream", body = EventView),
        (status = 400, description = "Bad `Last-Event-ID` or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run for this tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<EventsParams>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        Some("Last-Event-ID".to_owned()),
                        "Last-Event-ID must be the id (a whole number) of an event received before",
                    )
                })?,
        ),
    };
    if let Some(after) = params.after
        && after < 0
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            Some("after".to_owned()),
            "after must not be negative",
        ));
    }
    let run = match &params.run_id {
        Some(id) => Some(own_run(&state, &auth.caller, id).await?.id),
        None => None,
    };
    let store = state.engine().store().clone();
    let after = match last_event_id.or(params.after) {
        Some(after) => after,
        None => store.latest_event_seq().await?,
    };
    let tail = Tail {
        store,
        filter: EventFilter {
            run,
            tenant: Some(auth.caller.tenant),
        },
        after,
        buffer: VecDeque::new(),
        latest: state.feed().watch(),
        stop: state.stopping().clone(),
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok(message(&event)), tail))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn message(event: &Event) -> SseEvent {
    let view = EventView::from(event);
    SseEvent::default()
        .id(event.seq.to_string())
        .event(event.kind.as_str())
        .json_data(&view)
        .unwrap_or_else(|_| SseEvent::default().comment("unencodable event"))
}

/// One client's position in the log.
struct Tail {
    store: Store,
    filter: EventFilter,
    after: i64,
    buffer: VecDeque<Event>,
    latest: watch::Receiver<i64>,
    stop: CancellationToken,
}

impl Tail {
    /// The next event, waiting for one; `None` ends the stream (the server is stopping, or the
    /// log cannot be read).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(event);
            }
            // Every event up to `seen` is committed and visible: the feed read it before
            // publishing the number. Read it before the log, so nothing committed in between
            // is skipped.
            let seen = *self.latest.borrow_and_update();
            if seen > self.after {
                match self
                    .store
                    .events_after(self.after, &self.filter, PAGE)
                    .await
                {
                    Ok(events) => {
                        match events.last() {
                            Some(last) => self.after = last.seq,
                            // None of them is this client's: skip past them all.
                            None => self.after = seen,
                        }
                        self.buffer.extend(events);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("event stream: cannot read the event log: {e}");
                        return None;
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return None,
                changed = self.latest.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}
