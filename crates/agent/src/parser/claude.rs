//! Claude Code's `--output-format stream-json` (print mode, `--verbose`), as documented for
//! the CLI and the Agent SDK (headless mode, SDK message types, cost tracking):
//!
//! - `{"type":"system","subtype":"init","model":…}` opens the stream;
//! - `{"type":"assistant","message":{"id":…,"model":…,"content":[…],"usage":{…}}}` for each
//!   assistant message. One API response is split over several lines (one per content block),
//!   all with the same message id and the same usage: a message's usage counts once;
//! - `{"type":"user","message":{"content":[{"type":"tool_result",…}]}}` carries tool results;
//! - `{"type":"result","subtype":"success"|"error_…","is_error":…,"result":…,
//!   "total_cost_usd":…,"usage":{…}}` closes it, with the run's totals.
//!
//! Usage is reported per assistant message, as soon as it appears; the result adds only what
//! the messages did not already report, and its `total_cost_usd` replaces any estimate.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

use super::meter::Meter;
use super::text::{self, count, str_field};
use super::{AgentEvent, Parser, Usage};

#[derive(Debug)]
pub(crate) struct Claude {
    meter: Meter,
    /// The model of the latest message, for the result's usage.
    model: Option<String>,
    /// The largest usage seen for each message id.
    messages: HashMap<String, Usage>,
    /// Content blocks already shown, so a block repeated on a later line is shown once.
    shown: HashSet<u64>,
    /// Tool names by tool-use id, to name a failed tool.
    tools: HashMap<String, String>,
}

impl Claude {
    pub(crate) fn new(meter: Meter) -> Self {
        let model = meter.model().map(str::to_owned);
        Self {
            meter,
            model,
            messages: HashMap::new(),
            shown: HashSet::new(),
            tools: HashMap::new(),
        }
    }

    fn remember_model(&mut self, model: Option<&str>) {
        // Claude Code labels messages it makes up itself (an API error shown as a reply) with
        // the model `<synthetic>`; they cost nothing and name no real model.
        if let Some(model) = model.filter(|model| !model.starts_with('<')) {
            self.model = Some(model.to_owned());
        }
    }

    fn assistant(&mut self, line: &Map<String, Value>) -> Vec<AgentEvent> {
        let Some(message) = line.get("message").and_then(Value::as_object) else {
            return Vec::new();
        };
        self.remember_model(str_field(message, "model"));
        let id = str_field(message, "id");
        let mut events = Vec::new();

        if let Some(usage) = message.get("usage").and_then(Value::as_object) {
            let now = anthropic_usage(usage);
            let new = match id {
                Some(id) => {
                    let seen = self.messages.entry(id.to_owned()).or_default();
                    let new = grown(seen, &now);
                    *seen = largest(seen, &now);
                    new
                }
                // Without an id a message cannot be recognised again: count it as it is.
                None => now,
            };
            events.extend(self.meter.delta(Usage {
                model: self.model.clone(),
                ..new
            }));
        }

        let blocks = message.get("content").and_then(Value::as_array);
        for block in blocks.into_iter().flatten() {
            let Some(block) = block.as_object() else {
                continue;
            };
            match str_field(block, "type") {
                Some("text") => {
                    let Some(text) = str_field(block, "text") else {
                        continue;
                    };
                    if self.first_time(id, "text", text) {
                        events.extend(text::progress(text));
                    }
                }
                Some("tool_use") => {
                    let name = str_field(block, "name").unwrap_or("tool");
                    let tool_id = str_field(block, "id").unwrap_or_default();
                    if !tool_id.is_empty() {
                        self.tools.insert(tool_id.to_owned(), name.to_owned());
                    }
                    let call = text::tool_call(name, block.get("input"));
                    if self.first_time(id, tool_id, &call) {
                        events.extend(text::progress(&call));
                    }
                }
                // Thinking and block types added later are not for display.
                _ => {}
            }
        }
        events
    }

    /// Whether this block of this message has not been shown yet.
    fn first_time(&mut self, message: Option<&str>, kind: &str, content: &str) -> bool {
        let mut hasher = DefaultHasher::new();
        (message, kind, content).hash(&mut hasher);
        self.shown.insert(hasher.finish())
    }

    fn user(&mut self, line: &Map<String, Value>) -> Vec<AgentEvent> {
        let blocks = line
            .get("message")
            .and_then(|message| message.get("content"))
            .and_then(Value::as_array);
        let mut events = Vec::new();
        for block in blocks.into_iter().flatten() {
            let Some(block) = block.as_object() else {
                continue;
            };
            let failed = block.get("is_error").and_then(Value::as_bool) == Some(true);
            if str_field(block, "type") != Some("tool_result") || !failed {
                continue;
            }
            let name = str_field(block, "tool_use_id")
                .and_then(|id| self.tools.get(id))
                .map_or("tool", String::as_str);
            let detail = block.get("content").map(content_text).unwrap_or_default();
            events.extend(text::progress(&format!("{name} failed: {detail}")));
        }
        events
    }

    fn result(&mut self, line: &Map<String, Value>) -> Vec<AgentEvent> {
        let mut totals = line
            .get("usage")
            .and_then(Value::as_object)
            .map(anthropic_usage)
            .unwrap_or_default();
        totals.model = self.model.clone();
        totals.cost_usd = line.get("total_cost_usd").and_then(Value::as_f64);
        let mut events: Vec<AgentEvent> = self.meter.total(totals).into_iter().collect();

        let subtype = str_field(line, "subtype").unwrap_or("unknown");
        let is_error = line.get("is_error").and_then(Value::as_bool) == Some(true);
        let success = subtype == "success" && !is_error;
        let result = str_field(line, "result");
        if !success {
            let errors = line
                .get("errors")
                .and_then(Value::as_array)
                .map(|errors| {
                    errors
                        .iter()
                        .map(content_text)
                        .filter(|error| !error.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|errors| !errors.is_empty());
            let message = result
                .map(str::to_owned)
                .or(errors)
                .unwrap_or_else(|| format!("Claude Code stopped: {subtype}"));
            events.push(AgentEvent::Failed {
                message: text::truncate(&message, text::MESSAGE_CHARS),
            });
        }
        events.push(AgentEvent::Finished {
            success,
            summary: result.map(|result| text::truncate(result, text::SUMMARY_CHARS)),
        });
        events
    }
}

impl Parser for Claude {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        if line.trim().is_empty() {
            return Vec::new();
        }
        let Some(object) = text::json_object(line) else {
            return vec![text::output(line)];
        };
        match str_field(&object, "type") {
            Some("system") => {
                if str_field(&object, "subtype") == Some("init") {
                    self.remember_model(str_field(&object, "model"));
                }
                Vec::new()
            }
            Some("assistant") => self.assistant(&object),
            Some("user") => self.user(&object),
            Some("result") => self.result(&object),
            // `stream_event` (partial messages) and types added later carry nothing we need.
            Some(_) => Vec::new(),
            None => vec![text::output(line)],
        }
    }

    fn finish(&mut self) -> Vec<AgentEvent> {
        Vec::new()
    }
}

/// The Messages API usage object: `input_tokens` excludes cache reads
/// (`cache_read_input_tokens`) and cache writes (`cache_creation_input_tokens`).
fn anthropic_usage(usage: &Map<String, Value>) -> Usage {
    Usage {
        model: None,
        input_tokens: count(usage, "input_tokens"),
        output_tokens: count(usage, "output_tokens"),
        cache_read_tokens: count(usage, "cache_read_input_tokens"),
        cache_write_tokens: count(usage, "cache_creation_input_tokens"),
        cost_usd: None,
    }
}

/// What `now` has beyond `seen`, field by field.
fn grown(seen: &Usage, now: &Usage) -> Usage {
    Usage {
        model: None,
        input_tokens: now.input_tokens.saturating_sub(seen.input_tokens),
        output_tokens: now.output_tokens.saturating_sub(seen.output_tokens),
        cache_read_tokens: now.cache_read_tokens.saturating_sub(seen.cache_read_tokens),
        cache_write_tokens: now
            .cache_write_tokens
            .saturating_sub(seen.cache_write_tokens),
        cost_usd: None,
    }
}

fn largest(a: &Usage, b: &Usage) -> Usage {
    Usage {
        model: None,
        input_tokens: a.input_tokens.max(b.input_tokens),
        output_tokens: a.output_tokens.max(b.output_tokens),
        cache_read_tokens: a.cache_read_tokens.max(b.cache_read_tokens),
        cache_write_tokens: a.cache_write_tokens.max(b.cache_write_tokens),
        cost_usd: None,
    }
}

/// Tool-result content: a string, or a list of blocks whose text parts are joined.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|block| match block {
                Value::String(text) => Some(text.as_str()),
                Value::Object(block) => str_field(block, "text"),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParserOptions;

    fn claude() -> Claude {
        Claude::new(Meter::new(ParserOptions::default()))
    }

    #[test]
    fn a_message_growing_over_its_lines_reports_only_the_growth() {
        let mut parser = claude();
        let first = r#"{"type":"assistant","message":{"id":"msg_1","model":"claude-x","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":10,"output_tokens":2}}}"#;
        let second = r#"{"type":"assistant","message":{"id":"msg_1","model":"claude-x","content":[{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"a.rs"}}],"usage":{"input_tokens":10,"output_tokens":30}}}"#;
        let events: Vec<_> = [first, second]
            .into_iter()
            .flat_map(|line| parser.line(line))
            .collect();
        let outputs: Vec<u64> = events
            .iter()
            .filter_map(|event| match event {
                AgentEvent::Usage(usage) => Some(usage.output_tokens),
                _ => None,
            })
            .collect();
        assert_eq!(outputs, [2, 28]);
    }

    #[test]
    fn a_synthetic_message_does_not_change_the_model() {
        let mut parser = claude();
        parser.line(r#"{"type":"system","subtype":"init","model":"claude-x"}"#);
        parser.line(r#"{"type":"assistant","message":{"id":"m","model":"<synthetic>","content":[{"type":"text","text":"API Error"}],"usage":{"input_tokens":0,"output_tokens":0}}}"#);
        assert_eq!(parser.model.as_deref(), Some("claude-x"));
    }

    #[test]
    fn an_error_result_without_text_names_its_subtype() {
        let mut parser = claude();
        let events =
            parser.line(r#"{"type":"result","subtype":"error_max_turns","is_error":true}"#);
        assert_eq!(
            events,
            [
                AgentEvent::Failed {
                    message: "Claude Code stopped: error_max_turns".to_owned()
                },
                AgentEvent::Finished {
                    success: false,
                    summary: None
                }
            ]
        );
    }

    #[test]
    fn an_error_result_lists_its_errors() {
        let mut parser = claude();
        let events = parser.line(r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["first","second"]}"#);
        assert_eq!(
            events[0],
            AgentEvent::Failed {
                message: "first; second".to_owned()
            }
        );
    }

    #[test]
    fn a_success_subtype_flagged_as_error_is_a_failure() {
        let mut parser = claude();
        let events = parser.line(
            r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 401"}"#,
        );
        assert_eq!(
            events,
            [
                AgentEvent::Failed {
                    message: "API Error: 401".to_owned()
                },
                AgentEvent::Finished {
                    success: false,
                    summary: Some("API Error: 401".to_owned())
                }
            ]
        );
    }
}
