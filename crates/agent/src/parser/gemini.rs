//! Gemini CLI's headless output (packages/core/src/output/types.ts, docs/cli/headless.md).
//!
//! `--output-format stream-json` prints one event per line: `init` (session id, model),
//! `message` (role `user` or `assistant`; assistant text arrives in chunks marked
//! `"delta":true`), `tool_use`, `tool_result`, `error` (severity `warning` or `error`), and a
//! final `result` (status, error, `stats` totals for the session). The stream carries no usage
//! before the result, so that is where usage is reported.
//!
//! `--output-format json` prints one pretty-printed document at the end (`response`, `stats`
//! with per-model token counts, `error`); it is recognised too, across its lines.
//!
//! Gemini counts cached tokens inside the prompt count and thinking tokens apart from the
//! candidates, and bills thinking as output: here cached tokens are cache reads, and whatever a
//! total has beyond prompt and candidates counts as output.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::meter::Meter;
use super::text::{self, count, str_field};
use super::{AgentEvent, Parser, Usage};

/// A pretty-printed document longer than this is not a Gemini CLI result: its lines are passed
/// on as output rather than held back any longer.
const DOCUMENT_LINES: usize = 100_000;

#[derive(Debug)]
pub(crate) struct Gemini {
    meter: Meter,
    /// The model from `init`.
    model: Option<String>,
    /// Assistant text received in chunks and not yet shown.
    pending: String,
    /// The latest complete assistant message, the run's summary.
    last_message: Option<String>,
    /// Tool names by tool id, to name a failed tool.
    tools: HashMap<String, String>,
    /// Lines of a `json` document being read.
    document: Option<Vec<String>>,
}

impl Gemini {
    pub(crate) fn new(meter: Meter) -> Self {
        let model = meter.model().map(str::to_owned);
        Self {
            meter,
            model,
            pending: String::new(),
            last_message: None,
            tools: HashMap::new(),
            document: None,
        }
    }

    /// Shows the assistant message received so far, if any.
    fn flush_message(&mut self) -> Option<AgentEvent> {
        let message = std::mem::take(&mut self.pending);
        self.complete_message(&message)
    }

    fn complete_message(&mut self, message: &str) -> Option<AgentEvent> {
        if message.trim().is_empty() {
            return None;
        }
        self.last_message = Some(message.to_owned());
        text::progress(message)
    }

    fn event(&mut self, object: &Map<String, Value>) -> Vec<AgentEvent> {
        let mut events = Vec::new();
        match str_field(object, "type") {
            Some("init") => {
                if let Some(model) = str_field(object, "model") {
                    self.model = Some(model.to_owned());
                }
            }
            Some("message") => {
                if str_field(object, "role") != Some("assistant") {
                    return events;
                }
                let content = str_field(object, "content").unwrap_or_default();
                if object.get("delta").and_then(Value::as_bool) == Some(true) {
                    self.pending.push_str(content);
                } else {
                    events.extend(self.flush_message());
                    events.extend(self.complete_message(content));
                }
            }
            Some("tool_use") => {
                events.extend(self.flush_message());
                let name = str_field(object, "tool_name").unwrap_or("tool");
                if let Some(id) = str_field(object, "tool_id") {
                    self.tools.insert(id.to_owned(), name.to_owned());
                }
                events.extend(text::progress(&text::tool_call(
                    name,
                    object.get("parameters"),
                )));
            }
            Some("tool_result") if str_field(object, "status") == Some("error") => {
                let name = str_field(object, "tool_id")
                    .and_then(|id| self.tools.get(id))
                    .map_or("tool", String::as_str);
                let detail = error_message(object).unwrap_or_default();
                events.extend(text::progress(&format!("{name} failed: {detail}")));
            }
            Some("error") => {
                events.extend(self.flush_message());
                let message = str_field(object, "message").unwrap_or("error");
                if str_field(object, "severity") == Some("warning") {
                    events.extend(text::progress(&format!("Warning: {message}")));
                } else {
                    events.push(failed(message));
                }
            }
            Some("result") => {
                events.extend(self.flush_message());
                if let Some(stats) = object.get("stats").and_then(Value::as_object) {
                    let usage = stream_stats(stats, self.model.clone());
                    events.extend(self.meter.total(usage));
                }
                let success = str_field(object, "status") == Some("success");
                if !success {
                    events.push(failed(
                        error_message(object).unwrap_or("Gemini CLI reported an error"),
                    ));
                }
                events.push(self.finished(success, None));
            }
            // Successful tool results, and types added later.
            _ => {}
        }
        events
    }

    fn finished(&self, success: bool, summary: Option<&str>) -> AgentEvent {
        AgentEvent::Finished {
            success,
            summary: summary
                .or(self.last_message.as_deref())
                .map(|summary| text::truncate(summary, text::SUMMARY_CHARS)),
        }
    }

    /// The events of a `--output-format json` document.
    fn document_events(&mut self, object: &Map<String, Value>) -> Vec<AgentEvent> {
        let mut events = Vec::new();
        let models = object
            .get("stats")
            .and_then(|stats| stats.get("models"))
            .and_then(Value::as_object);
        for (model, metrics) in models.into_iter().flatten() {
            let Some(tokens) = metrics.get("tokens").and_then(Value::as_object) else {
                continue;
            };
            events.extend(self.meter.delta(model_tokens(tokens, model)));
        }
        let error = object.get("error").and_then(Value::as_object);
        if let Some(error) = error {
            events.push(failed(
                str_field(error, "message").unwrap_or("Gemini CLI reported an error"),
            ));
        }
        events.push(self.finished(error.is_none(), str_field(object, "response")));
        events
    }

    /// Reads one line of a pretty-printed document; the document ends with a `}` alone at the
    /// start of a line.
    fn document_line(&mut self, line: &str) -> Vec<AgentEvent> {
        let Some(lines) = self.document.as_mut() else {
            return Vec::new();
        };
        lines.push(text::strip_eol(line).to_owned());
        let closed = text::strip_eol(line).trim_end() == "}";
        if !closed && lines.len() < DOCUMENT_LINES {
            return Vec::new();
        }
        let lines = self.document.take().unwrap_or_default();
        let parsed = serde_json::from_str::<Value>(&lines.join("\n"));
        match parsed {
            Ok(Value::Object(object)) if is_document(&object) => self.document_events(&object),
            _ => lines.iter().map(|line| text::output(line)).collect(),
        }
    }
}

impl Parser for Gemini {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        if self.document.is_some() {
            return self.document_line(line);
        }
        if line.trim().is_empty() {
            return Vec::new();
        }
        if text::strip_eol(line).trim_end() == "{" {
            self.document = Some(vec![text::strip_eol(line).to_owned()]);
            return Vec::new();
        }
        match text::json_object(line) {
            Some(object) if is_document(&object) => self.document_events(&object),
            Some(object) if str_field(&object, "type").is_some() => self.event(&object),
            _ => vec![text::output(line)],
        }
    }

    fn finish(&mut self) -> Vec<AgentEvent> {
        let mut events: Vec<AgentEvent> = self.flush_message().into_iter().collect();
        if let Some(lines) = self.document.take() {
            events.extend(lines.iter().map(|line| text::output(line)));
        }
        events
    }
}

fn is_document(object: &Map<String, Value>) -> bool {
    !object.contains_key("type")
        && ["response", "stats", "error"]
            .iter()
            .any(|key| object.contains_key(*key))
}

fn error_message(object: &Map<String, Value>) -> Option<&str> {
    object
        .get("error")
        .and_then(Value::as_object)
        .and_then(|error| str_field(error, "message"))
}

fn failed(message: &str) -> AgentEvent {
    AgentEvent::Failed {
        message: text::truncate(message, text::MESSAGE_CHARS),
    }
}

/// The `result` event's `stats`: `input_tokens` (the prompt, cached tokens included),
/// `output_tokens` (candidates), `total_tokens`, and in recent releases `cached` and `input`
/// (the prompt without cached tokens).
fn stream_stats(stats: &Map<String, Value>, model: Option<String>) -> Usage {
    let prompt = count(stats, "input_tokens");
    let cached = count(stats, "cached");
    let uncached = match stats.get("input").and_then(Value::as_u64) {
        Some(input) => input,
        None => prompt.saturating_sub(cached),
    };
    let output =
        count(stats, "output_tokens").max(count(stats, "total_tokens").saturating_sub(prompt));
    Usage {
        model,
        input_tokens: uncached,
        output_tokens: output,
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        cost_usd: None,
    }
}

/// One model's `tokens` in the `json` document's `stats.models`: `prompt` (cached included),
/// `cached`, `candidates`, `thoughts`, `tool` (tool-use prompt), `total`.
fn model_tokens(tokens: &Map<String, Value>, model: &str) -> Usage {
    let prompt = count(tokens, "prompt");
    let cached = count(tokens, "cached");
    Usage {
        model: Some(model.to_owned()),
        input_tokens: prompt.saturating_sub(cached) + count(tokens, "tool"),
        output_tokens: count(tokens, "candidates") + count(tokens, "thoughts"),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        cost_usd: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            _ => Map::new(),
        }
    }

    #[test]
    fn stream_stats_without_a_cache_breakdown() {
        let stats =
            object(json!({"total_tokens": 1500, "input_tokens": 1200, "output_tokens": 300}));
        let usage = stream_stats(&stats, None);
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens
            ),
            (1200, 300, 0)
        );
    }

    #[test]
    fn thinking_tokens_in_the_total_count_as_output() {
        let stats = object(
            json!({"total_tokens": 1700, "input_tokens": 1200, "output_tokens": 300, "cached": 200, "input": 1000}),
        );
        let usage = stream_stats(&stats, None);
        assert_eq!(
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens
            ),
            (1000, 500, 200)
        );
        assert_eq!(usage.total_tokens(), 1700);
    }
}
